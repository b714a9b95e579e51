"""Real servers for tests: a Dovecot IMAP server and an aiosmtpd SMTP sink, both on loopback.

The style guide asks for tests against real servers rather than patched sockets. The servers live in
their own modules. Their pytest fixtures are registered under short names (`dovecot_server`,
`dovecot_tls_server`, `make_dovecot`, `smtp_sink`, `make_smtp_sink`) by functions whose names differ,
so a conftest or test module can import them without the parameters shadowing the import::

    from tests.servers.dovecot import (  # noqa: F401
        fixture_dovecot_server, fixture_dovecot_tls_server, fixture_make_dovecot,
    )
    from tests.servers.smtp_sink import fixture_make_smtp_sink, fixture_smtp_sink  # noqa: F401

This module holds what both need: free loopback ports and throwaway TLS certificates.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now (the caller binds it soon after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def world_traversable_tempdir(prefix: str) -> Path:
    """A fresh directory under /tmp that other system users can enter.

    Dovecot's auth and login processes run as the `dovecot` and `dovenull` users and must reach files
    inside it, so neither pytest's tmp_path (which may be 0700) nor $TMPDIR is relied upon.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


@dataclass(frozen=True)
class TlsMaterial:
    """A throwaway CA and a server certificate it signed, valid for localhost and 127.0.0.1."""

    ca_cert_path: Path
    cert_path: Path
    key_path: Path

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts only this CA, with hostname checks on."""
        return ssl.create_default_context(cafile=str(self.ca_cert_path))

    def server_context(self) -> ssl.SSLContext:
        """A server context presenting the signed certificate."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(self.cert_path), str(self.key_path))
        return context


def openssl_missing_reason() -> str | None:
    """Why TLS material cannot be made here, or None when the `openssl` command is available."""
    if shutil.which("openssl") is None:
        return "the openssl command is not installed (run .ci/install-system-packages as root)"
    return None


def make_tls_material(directory: Path) -> TlsMaterial:
    """Write a CA and a localhost server certificate into `directory` with the openssl command.

    A separate CA (rather than one self-signed leaf) keeps the chain shaped like a real one, so strict
    verification (Python 3.13's VERIFY_X509_STRICT) accepts it. EC keys keep generation fast.
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = directory / "ca.key", directory / "ca.pem"
    key, csr, cert = directory / "server.key", directory / "server.csr", directory / "server.pem"
    extensions = directory / "server.ext"
    extensions.write_text(
        "basicConstraints = critical, CA:FALSE\n"
        "keyUsage = critical, digitalSignature, keyEncipherment\n"
        "extendedKeyUsage = serverAuth\n"
        "subjectAltName = DNS:localhost, IP:127.0.0.1\n"
        "subjectKeyIdentifier = hash\n"
        "authorityKeyIdentifier = keyid, issuer\n"
    )
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    commands = [
        [
            "openssl",
            "req",
            "-x509",
            *ec,
            "-keyout",
            ca_key,
            "-out",
            ca_cert,
            "-days",
            "2",
            "-subj",
            "/CN=triage test CA",
            "-addext",
            "basicConstraints = critical, CA:TRUE",
            "-addext",
            "keyUsage = critical, keyCertSign, cRLSign",
        ],
        ["openssl", "req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=localhost"],
        [
            "openssl",
            "x509",
            "-req",
            "-in",
            csr,
            "-CA",
            ca_cert,
            "-CAkey",
            ca_key,
            "-CAcreateserial",
            "-out",
            cert,
            "-days",
            "2",
            "-extfile",
            extensions,
        ],
    ]
    for command in commands:
        subprocess.run([str(part) for part in command], check=True, capture_output=True)
    # Dovecot reads the key as root before dropping privileges; the login processes get it passed in.
    os.chmod(key, 0o600)
    return TlsMaterial(ca_cert_path=ca_cert, cert_path=cert, key_path=key)


def json_log_events(text: str) -> list[dict[str, object]]:
    """The JSON objects of a worker's log text, one per line; other lines (a traceback) are skipped."""
    events = []
    for line in text.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events
