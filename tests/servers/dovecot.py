"""A real Dovecot IMAP server for tests, run from a throwaway config on a free loopback port.

Nothing under /etc/dovecot is read or touched: the config, passwd-file, maildirs, runtime dir, state
and logs all live in one temp dir under /tmp, removed when the server is closed.

Pitfalls this module handles, so tests don't have to:

- Dovecot refuses to serve mail as uid 0; as root, mail homes belong to `nobody` and the passwd-file
  names nobody's uid/gid.
- Its auth and login processes run as `dovecot` and `dovenull`, so every directory above the config
  must be world-traversable (see `world_traversable_tempdir`).
- Plaintext LOGIN over loopback needs `ssl = no` and `disable_plaintext_auth = no`.
- In the TLS mode (`ssl = required`) Dovecot still allows LOGIN before STARTTLS on loopback: it counts
  a connection whose remote and local addresses match as secured. So a test cannot use this server to
  prove a client refuses a plaintext fallback by a server refusal; check what the client sent instead.
- A graceful stop takes about a second (the master waits for its log process); teardown kills.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import pytest
from imapclient import IMAPClient, imap_utf7
from imapclient.exceptions import IMAPClientError

from tests.servers import (
    LOOPBACK,
    TlsMaterial,
    free_port,
    make_tls_material,
    openssl_missing_reason,
    world_traversable_tempdir,
)

INSTALL_SCRIPT = Path(__file__).resolve().parents[2] / ".ci" / "install-system-packages"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0

_install_output: str | None = None


def dovecot_binary() -> str | None:
    """Path of the dovecot binary, also when /usr/sbin is not on PATH (as for non-root users)."""
    found = shutil.which("dovecot")
    if found:
        return found
    return "/usr/sbin/dovecot" if os.access("/usr/sbin/dovecot", os.X_OK) else None


def dovecot_missing_reason() -> str | None:
    """Why no Dovecot can run here, or None. As root, installs it once through the CI script first."""
    global _install_output
    if dovecot_binary() is None and os.geteuid() == 0 and _install_output is None:
        done = subprocess.run(
            ["bash", str(INSTALL_SCRIPT)], check=False, capture_output=True, text=True, timeout=600
        )
        _install_output = "\n".join((done.stdout + done.stderr).strip().splitlines()[-5:])
    if dovecot_binary() is None:
        return (
            "dovecot is not installed and could not be installed (as root, run "
            f".ci/install-system-packages; Debian package dovecot-imapd). {_install_output or ''}"
        ).strip()
    return None


class DovecotError(RuntimeError):
    """Dovecot did not start, stop or behave as a test fixture needs; the message quotes its log."""


class Dovecot:
    """One Dovecot instance with passwd-file users and maildirs. Use as a context manager.

    `tls=False` serves plaintext IMAP on `port`. `tls=True` serves STARTTLS on `port` and implicit TLS on
    `tls_port`, both with a certificate signed by the CA at `ca_cert_path`.
    The helper methods (append, list_uids, ...) log in as `user` unless given another account.
    """

    def __init__(
        self,
        user: str = "liaison",
        password: str = "secret",
        *,
        extra_users: Mapping[str, str] | None = None,
        tls: bool = False,
    ) -> None:
        self.host = LOOPBACK
        self.user = user
        self.password = password
        self.users: dict[str, str] = {user: password, **(extra_users or {})}
        for name, secret in self.users.items():
            if not re.fullmatch(r"[A-Za-z0-9._@-]+", name) or re.search(r"[:\s]", secret):
                raise ValueError(f"passwd-file cannot hold user {name!r} with that password")
        self.tls = tls
        self.root = world_traversable_tempdir("triage-dovecot-")
        self.port = 0
        self.tls_port: int | None = None
        self._pick_ports()
        self._tls_material: TlsMaterial | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._started = False
        try:
            self._write_files()
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise

    # -- public API -------------------------------------------------------------------------------

    @property
    def ca_cert_path(self) -> Path | None:
        """The CA that signed the server certificate (TLS mode only)."""
        return self._tls_material.ca_cert_path if self._tls_material else None

    @property
    def log_path(self) -> Path:
        return self.root / "log" / "dovecot.log"

    def client_ssl_context(self) -> ssl.SSLContext:
        """An SSL context that trusts this server's CA (TLS mode only)."""
        if self._tls_material is None:
            raise DovecotError("this Dovecot runs without TLS; pass tls=True")
        return self._tls_material.client_context()

    def maildir(self, user: str | None = None) -> Path:
        """The account's Maildir++ root (INBOX lives here, other folders in `.Name` below it)."""
        return self.root / "home" / (user or self.user) / "Maildir"

    def start(self) -> None:
        """Start Dovecot in the foreground as a child process and wait for its IMAP greeting.

        The first start moves to other free ports if another process took one in the meantime;
        later starts (restart) keep the ports, as a restarted server would.
        """
        for attempt in range(3):
            try:
                self._start_once()
            except DovecotError as error:
                if self._started or attempt == 2 or "Address already in use" not in str(error):
                    raise
                self._pick_ports()
                (self.root / "dovecot.conf").write_text(self._config())
            else:
                self._started = True
                return

    def _start_once(self) -> None:
        if self._process is not None:
            raise DovecotError("Dovecot is already running")
        binary = dovecot_binary()
        if binary is None:
            raise DovecotError(dovecot_missing_reason() or "dovecot not found")
        (self.root / "log" / "stdio.log").unlink(missing_ok=True)
        with open(self.root / "log" / "stdio.log", "ab") as stdio:
            self._process = subprocess.Popen(
                [binary, "-F", "-c", str(self.root / "dovecot.conf")],
                stdin=subprocess.DEVNULL,
                stdout=stdio,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_for_greeting(self.port)
        except BaseException:
            self.stop()
            raise

    def stop(self, *, graceful: bool = True) -> None:
        """Stop Dovecot by the PID in base_dir/master.pid: SIGTERM, wait, then SIGKILL.

        A graceful stop takes about a second (the master waits for its log process); `close()` skips
        it with `graceful=False`, since the mail is thrown away anyway.
        """
        process, self._process = self._process, None
        if process is None:
            return
        pid_file = self.root / "run" / "master.pid"
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            pid = process.pid
        signals = (signal.SIGTERM, signal.SIGKILL) if graceful else (signal.SIGKILL,)
        for sig in signals:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
            try:
                process.wait(timeout=STOP_TIMEOUT)
                break
            except subprocess.TimeoutExpired:
                continue
        else:
            raise DovecotError(f"Dovecot (pid {pid}) did not stop")
        # Children (imap, auth, login) leave with the master; make sure none keeps the ports open.
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def restart(self) -> None:
        """Stop and start again on the same ports with the same maildirs (a server restart mid-poll)."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop Dovecot and remove the temp dir with everything in it."""
        try:
            self.stop(graceful=False)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def client(self, user: str | None = None, *, timeout: float = 10.0) -> Iterator[IMAPClient]:
        """A logged-in imapclient connection (implicit TLS in TLS mode), logged out afterwards."""
        user = user or self.user
        if self.tls:
            assert self.tls_port is not None
            imap = IMAPClient(
                self.host,
                port=self.tls_port,
                ssl=True,
                ssl_context=self.client_ssl_context(),
                timeout=timeout,
            )
        else:
            imap = IMAPClient(self.host, port=self.port, ssl=False, timeout=timeout)
        try:
            imap.login(user, self.users[user])
            yield imap
        finally:
            try:
                imap.logout()
            except (IMAPClientError, OSError):
                imap.shutdown()

    def append(
        self,
        raw: bytes,
        folder: str = "INBOX",
        flags: Sequence[str | bytes] = (),
        *,
        user: str | None = None,
    ) -> int:
        """APPEND a message and return the UID the server gave it (from the APPENDUID response)."""
        with self.client(user) as imap:
            response = imap.append(folder, raw, flags=tuple(flags))
        match = re.search(rb"\[APPENDUID (\d+) (\d+)\]", response)
        if match is None:
            raise DovecotError(f"APPEND gave no APPENDUID: {response!r}")
        return int(match.group(2))

    def create_folder(self, name: str, *, user: str | None = None) -> None:
        with self.client(user) as imap:
            imap.create_folder(name)

    def list_uids(self, folder: str = "INBOX", *, user: str | None = None) -> list[int]:
        """UIDs of all messages in the folder, ascending."""
        with self.client(user) as imap:
            imap.select_folder(folder, readonly=True)
            return sorted(imap.search("ALL"))

    def flags(self, folder: str = "INBOX", *, user: str | None = None) -> dict[int, tuple[bytes, ...]]:
        """Flags per UID, as imapclient's get_flags returns them (e.g. b"\\Seen")."""
        with self.client(user) as imap:
            imap.select_folder(folder, readonly=True)
            uids = imap.search("ALL")
            return dict(imap.get_flags(uids)) if uids else {}

    def uidvalidity(self, folder: str = "INBOX", *, user: str | None = None) -> int:
        with self.client(user) as imap:
            selected = imap.select_folder(folder, readonly=True)
        return int(selected[b"UIDVALIDITY"])

    def change_uidvalidity(self, folder: str = "INBOX", *, user: str | None = None) -> int:
        """Make Dovecot give the folder a new UIDVALIDITY (and renumber its mails); return the new one.

        Stops the server, deletes the folder's dovecot-uidlist and index files and the mailbox-list
        index, and starts again: Dovecot then treats the folder as new, as after a server migration.
        """
        old = self.uidvalidity(folder, user=user)
        self.stop()
        folder_dir = self._folder_dir(folder, user)
        doomed = [folder_dir / "dovecot-uidlist", *folder_dir.glob("dovecot.index*")]
        doomed += self.maildir(user).glob("dovecot.list.index*")
        for path in doomed:
            path.unlink(missing_ok=True)
        self.start()
        new = self.uidvalidity(folder, user=user)
        if new == old:
            raise DovecotError(f"UIDVALIDITY of {folder!r} stayed {old} after deleting its indexes")
        return new

    # -- internals --------------------------------------------------------------------------------

    def _pick_ports(self) -> None:
        self.port = free_port()
        if self.tls:
            self.tls_port = free_port()
            while self.tls_port == self.port:
                self.tls_port = free_port()

    def _folder_dir(self, folder: str, user: str | None) -> Path:
        root = self.maildir(user)
        if folder.upper() == "INBOX":
            return root
        return root / ("." + str(imap_utf7.encode(folder), "ascii"))

    def _wait_for_greeting(self, port: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise DovecotError(f"Dovecot exited with {self._process.returncode}:\n{self._log_tail()}")
            try:
                with socket.create_connection((self.host, port), timeout=2) as sock:
                    greeting = sock.recv(1024)
                if greeting.startswith(b"* OK"):
                    return
                last_error = DovecotError(f"unexpected greeting {greeting!r}")
            except OSError as error:
                last_error = error
            time.sleep(0.05)
        raise DovecotError(f"no IMAP greeting on port {port} ({last_error}):\n{self._log_tail()}")

    def _log_tail(self, lines: int = 30) -> str:
        text = ""
        for path in (self.root / "log" / "stdio.log", self.log_path):
            if path.exists():
                text += path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def _write_files(self) -> None:
        for sub in ("run", "state", "log", "home"):
            (self.root / sub).mkdir(mode=0o755)
        if os.geteuid() == 0:
            # Dovecot will not serve mail as root; the mail belongs to `nobody`.
            owner = pwd.getpwnam("nobody")
        else:
            owner = pwd.getpwuid(os.geteuid())
        passwd_lines = []
        for name, secret in self.users.items():
            home = self.root / "home" / name
            home.mkdir(mode=0o700)
            os.chown(home, owner.pw_uid, owner.pw_gid)
            passwd_lines.append(f"{name}:{{PLAIN}}{secret}:{owner.pw_uid}:{owner.pw_gid}::{home}::\n")
        passwd = self.root / "passwd"
        passwd.write_text("".join(passwd_lines))
        passwd.chmod(0o644)

        if self.tls:
            reason = openssl_missing_reason()
            if reason:
                raise DovecotError(reason)
            self._tls_material = make_tls_material(self.root / "tls")
        (self.root / "dovecot.conf").write_text(self._config())

    def _config(self) -> str:
        root = self.root
        log = self.log_path
        if self._tls_material is None:
            ssl_block = "ssl = no\ndisable_plaintext_auth = no\n"
            imaps_port = 0
        else:
            ssl_block = (
                "ssl = required\n"
                f"ssl_cert = <{self._tls_material.cert_path}\n"
                f"ssl_key = <{self._tls_material.key_path}\n"
                "ssl_min_protocol = TLSv1.2\n"
            )
            imaps_port = self.tls_port or 0
        if os.geteuid() == 0:
            users = "default_internal_user = dovecot\ndefault_login_user = dovenull\n"
            rootless = ""
        else:
            # Without root there is no user switching and no chroot: everything runs as us.
            me = pwd.getpwuid(os.geteuid()).pw_name
            group = grp.getgrgid(os.getegid()).gr_name
            users = (
                f"default_internal_user = {me}\ndefault_internal_group = {group}\ndefault_login_user = {me}\n"
            )
            rootless = "service anvil {\n  chroot =\n}\nservice imap-login {\n  chroot =\n}\n"
        return f"""# Written by tests/servers/dovecot.py for one test run; nothing here reads /etc/dovecot.
protocols = imap
listen = {self.host}
base_dir = {root}/run
state_dir = {root}/state
instance_name = triage-test-{self.port}
log_path = {log}
info_log_path = {log}
debug_log_path = {log}
{users}first_valid_uid = 1
mail_location = maildir:~/Maildir
auth_mechanisms = plain login
# Answer a wrong password at once instead of after the default two seconds.
auth_failure_delay = 0
login_greeting = triage test Dovecot ready.
{ssl_block}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/passwd
}}
protocol imap {{
  mail_max_userip_connections = 100
}}
service imap-login {{
  inet_listener imap {{
    address = {self.host}
    port = {self.port}
  }}
  inet_listener imaps {{
    address = {self.host}
    port = {imaps_port}
    ssl = yes
  }}
}}
{rootless}"""


# -- pytest fixtures ------------------------------------------------------------------------------


@pytest.fixture(name="make_dovecot")
def fixture_make_dovecot() -> Iterator[Callable[..., Dovecot]]:
    """A factory for started Dovecot servers (same arguments as `Dovecot`); all closed at teardown."""
    reason = dovecot_missing_reason()
    if reason:
        pytest.skip(reason)
    started: list[Dovecot] = []

    def make(**kwargs: Any) -> Dovecot:
        server = Dovecot(**kwargs)
        started.append(server)
        server.start()
        return server

    try:
        yield make
    finally:
        for server in started:
            server.close()


@pytest.fixture(name="dovecot_server")
def fixture_dovecot_server(make_dovecot: Callable[..., Dovecot]) -> Dovecot:
    """A plaintext Dovecot on loopback with the user liaison / secret and an empty INBOX."""
    return make_dovecot()


@pytest.fixture(name="dovecot_tls_server")
def fixture_dovecot_tls_server(make_dovecot: Callable[..., Dovecot]) -> Dovecot:
    """A Dovecot that requires TLS: STARTTLS on `port`, implicit TLS on `tls_port`."""
    return make_dovecot(tls=True)
