"""Opening an IMAP connection the safe way: TLS verified by default, no silent plain-text fallback.

Plain text is allowed only when configured (`security = none`) and only to a loopback
address (config validation enforces both). STARTTLS that the server does not offer is an
error, never a reason to carry on unencrypted. Secrets are read here and never logged.
"""

from __future__ import annotations

import shlex
import ssl
import subprocess
from pathlib import Path

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError

from triage.config import ImapSettings
from triage.secrets import SecretFileError, read_password


class ImapSecurityError(IMAPClientError):  # type: ignore[misc]
    """The server cannot give us the security the configuration asks for."""


class ImapCredentialError(Exception):
    """The password or token could not be read; the message names the setting."""


def ssl_context(settings: ImapSettings) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=settings.ca_file or None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _password(settings: ImapSettings) -> str:
    try:
        return read_password(settings.password, settings.password_file, key="imap.password_file")
    except SecretFileError as exc:
        raise ImapCredentialError(str(exc)) from None


def _oauth2_token(settings: ImapSettings) -> str:
    if settings.oauth2_token_command:
        try:
            done = subprocess.run(
                shlex.split(settings.oauth2_token_command), capture_output=True, text=True,
                timeout=60, check=True,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise ImapCredentialError(f"imap.oauth2_token_command failed: {type(exc).__name__}") from None
        token = done.stdout.strip()
    else:
        try:
            token = Path(settings.oauth2_token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ImapCredentialError(
                f"imap.oauth2_token_file {settings.oauth2_token_file!r}: {exc.strerror}"
            ) from None
    if not token:
        raise ImapCredentialError("the OAuth2 token source gave an empty token")
    return token


def connect(settings: ImapSettings) -> IMAPClient:
    """A logged-in client, or an exception: LoginError, ImapSecurityError, ssl.SSLError, OSError."""
    implicit = settings.security == "tls"
    client = IMAPClient(
        settings.host,
        port=settings.effective_port,
        ssl=implicit,
        ssl_context=ssl_context(settings) if implicit else None,
        timeout=settings.timeout_seconds,
    )
    try:
        if settings.security == "starttls":
            if b"STARTTLS" not in client.capabilities():
                raise ImapSecurityError(
                    f"{settings.host} does not offer STARTTLS; refusing to log in without TLS "
                    "(use security = tls if it serves implicit TLS)"
                )
            client.starttls(ssl_context(settings))
        if settings.auth == "xoauth2":
            client.oauth2_login(settings.user, _oauth2_token(settings))
        else:
            client.login(settings.user, _password(settings))
    except BaseException:
        try:
            client.shutdown()
        except OSError:
            pass
        raise
    return client


__all__ = ["ImapCredentialError", "ImapSecurityError", "LoginError", "connect", "ssl_context"]
