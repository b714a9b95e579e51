"""The IMAP runner and worker against a real Dovecot: IDLE, server restarts, SIGKILL, SIGTERM, TLS, login."""

from __future__ import annotations

import itertools
import os
import random
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from imapclient.exceptions import LoginError
from sqlalchemy import func, select

from tests.conftest import make_mail
from tests.servers.dovecot import (  # noqa: F401
    Dovecot,
    fixture_dovecot_server,
    fixture_dovecot_tls_server,
    fixture_make_dovecot,
)
from tests.test_imap_poll import append_many, imap_env
from triage.bootstrap import bootstrap
from triage.config import load_settings
from triage.ingest.imap_connect import ImapSecurityError, connect
from triage.runners.poll import PollRunner
from triage.store.models import ImapLedgerEntry, Message

ROOT = Path(__file__).resolve().parents[1]


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def message_count(app: Any) -> int:
    with app.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Message)) or 0)


def test_idle_sees_new_mail_and_stop_logs_out(dovecot_server: Dovecot, db_url: str) -> None:
    """While IDLE, a newly appended mail is ingested within seconds; stop ends the runner promptly."""
    settings = load_settings(environ=imap_env(dovecot_server, db_url, poll_seconds="600"))
    app = bootstrap(settings)
    runner = PollRunner(settings.imap, app.ingestor())
    thread = threading.Thread(target=runner.run)
    thread.start()
    try:
        assert wait_for(lambda: runner._client is not None and runner.last_pass != [])
        time.sleep(0.3)  # let it enter IDLE (poll_seconds is long, so only IDLE can wake it)
        append_many(dovecot_server, [make_mail(message_id="<idle@v.example>")])
        assert wait_for(lambda: message_count(app) == 1, timeout=10)
    finally:
        runner.stop_event.set()
        thread.join(timeout=10)
        app.close()
    assert not thread.is_alive()


def test_server_restart_during_idle_reconnects(dovecot_server: Dovecot, db_url: str) -> None:
    """The server restarts while the runner waits in IDLE: it reconnects and ingests what came after.

    The dropped IDLE used to end the runner's thread for good (the worker lived on, polling nothing)."""
    settings = load_settings(environ=imap_env(dovecot_server, db_url, poll_seconds="600",
                                              backoff_max_seconds="0.5"))
    app = bootstrap(settings)
    runner = PollRunner(settings.imap, app.ingestor())
    runner.backoff_base = 0.1
    thread = threading.Thread(target=runner.run)
    thread.start()
    try:
        assert wait_for(lambda: runner._client is not None and runner.last_pass != [])
        time.sleep(0.3)  # let it enter IDLE (poll_seconds is long, so only IDLE can wake it)
        dovecot_server.restart()
        append_many(dovecot_server, [make_mail(message_id="<after-restart@v.example>")])
        assert wait_for(lambda: message_count(app) == 1, timeout=15)
        assert thread.is_alive()
    finally:
        runner.stop_event.set()
        thread.join(timeout=10)
        app.close()


def test_mail_arriving_between_the_pass_and_idle_is_not_left_waiting(dovecot_server: Dovecot, db_url: str) -> None:
    """A mail appended after the pass's SEARCH but before IDLE starts is not reported by IDLE (the
    SELECT before it already counts it): the runner sees the higher UIDNEXT and passes again at once,
    instead of waiting for the IDLE renewal (here 25 minutes)."""
    settings = load_settings(environ=imap_env(dovecot_server, db_url, poll_seconds="600"))
    app = bootstrap(settings)
    runner = PollRunner(settings.imap, app.ingestor())
    try:
        assert runner.step() == 0
        append_many(dovecot_server, [make_mail(message_id="<between@v.example>")])
        waiting = threading.Thread(target=runner.wait, args=(0,))
        waiting.start()
        waiting.join(timeout=5)
        assert not waiting.is_alive(), "the runner went into IDLE over a mail it had not read"
        assert runner.step() == 1 and message_count(app) == 1
    finally:
        runner.stop_event.set()
        runner.close()
        app.close()


def test_server_restart_mid_poll_reconnects_without_loss(dovecot_server: Dovecot, db_url: str) -> None:
    """The server restarts under a running poller: it reconnects with backoff and stores every mail once."""
    settings = load_settings(environ=imap_env(dovecot_server, db_url, poll_seconds="0.2", idle="false",
                                              backoff_max_seconds="0.5", batch_size="20"))
    app = bootstrap(settings)
    runner = PollRunner(settings.imap, app.ingestor())
    runner.backoff_base = 0.1
    append_many(dovecot_server, [make_mail(message_id=f"<r{i}@v.example>") for i in range(200)])
    thread = threading.Thread(target=runner.run)
    thread.start()
    try:
        assert wait_for(lambda: message_count(app) > 0)
        dovecot_server.restart()
        append_many(dovecot_server, [make_mail(message_id=f"<r-after{i}@v.example>") for i in range(10)])
        assert wait_for(lambda: message_count(app) == 210, timeout=30)
        time.sleep(0.5)
        assert message_count(app) == 210
    finally:
        runner.stop_event.set()
        thread.join(timeout=10)
        app.close()


def _worker_env(server: Dovecot, db_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIAGE_")}
    env.update(imap_env(server, db_url, **extra))
    # any free port for the health endpoint: tests run in parallel, and the default port is one per host
    env.update({"TRIAGE_CONFIG": "", "TRIAGE_LOG_LEVEL": "warning", "PYTHONPATH": str(ROOT),
                "TRIAGE_WORKER_LISTEN": "127.0.0.1:0"})
    return env


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # PostgreSQL: tests/test_faults.py kills workers there
def test_sigkill_at_random_points_stores_every_mail_exactly_once(dovecot_server: Dovecot, db_url: str) -> None:
    """`triage poll --once` killed with SIGKILL at random instants, many times, then run to the end: each mail once."""
    total = 400
    append_many(dovecot_server, [make_mail(message_id=f"<kill{i}@v.example>", sender=f"v{i % 40}@v.example")
                                 for i in range(total)])
    env = _worker_env(dovecot_server, db_url, batch_size="25")
    rng = random.Random(1234)
    kills = 0
    for _ in range(12):
        proc = subprocess.Popen([sys.executable, "-m", "triage", "poll", "--once"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.4, 2.5))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    final = subprocess.run([sys.executable, "-m", "triage", "poll", "--once"], env=env, capture_output=True,
                           text=True, check=False)
    assert final.returncode == 0, final.stderr
    assert kills >= 3, "the batch finished too fast for the kills to land mid-batch"
    settings = load_settings(environ=env)
    app = bootstrap(settings)
    try:
        with app.sessions() as session:
            ids = list(session.scalars(select(Message.message_id)))
            ledger = list(session.scalars(select(ImapLedgerEntry.uid)))
            unmarked = session.scalar(select(func.count()).select_from(ImapLedgerEntry)
                                      .where(ImapLedgerEntry.marked_at.is_(None)))
        assert sorted(ids) == sorted(f"<kill{i}@v.example>" for i in range(total))
        assert sorted(ledger) == sorted(dovecot_server.list_uids())
        assert unmarked == 0
        assert all(b"\\Seen" in flags for flags in dovecot_server.flags().values())
    finally:
        app.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # PostgreSQL: tests/test_faults.py stops a fleet cleanly there
def test_worker_sigterm_finishes_batch_and_exits(dovecot_server: Dovecot, db_url: str) -> None:
    """run_worker.py on SIGTERM finishes the batch in progress, commits, logs out and exits 0."""
    append_many(dovecot_server, [make_mail(message_id=f"<t{i}@v.example>") for i in range(300)])
    env = _worker_env(dovecot_server, db_url, batch_size="50")
    proc = subprocess.Popen([sys.executable, str(ROOT / "run_worker.py")], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    settings = load_settings(environ=env)
    time.sleep(1.0)
    app = bootstrap(settings)
    try:
        # The worker imports scikit-learn and connects before its first batch: on a loaded machine
        # (the suite runs on every core) that takes a while, so wait long, but stop at once if it died.
        wait_for(lambda: proc.poll() is not None or message_count(app) > 0, timeout=90)
        assert proc.poll() is None, f"the worker exited before its first batch: {proc.communicate()[1]}"
        assert message_count(app) > 0
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 0, stderr
        stored = message_count(app)
        with app.sessions() as session:
            ledger = session.scalar(select(func.count()).select_from(ImapLedgerEntry))
        assert stored == ledger and (stored % 50 == 0 or stored == 300)  # whole batches only
        assert "secret" not in stderr
    finally:
        if proc.poll() is None:
            proc.kill()
        app.close()


def test_tls_trusted_ca_connects_untrusted_is_refused(dovecot_tls_server: Dovecot, tmp_path: Path) -> None:
    """Implicit TLS and STARTTLS connect when the CA is trusted; the default trust store refuses the cert."""
    server = dovecot_tls_server
    base = {"TRIAGE_IMAP_HOST": server.host, "TRIAGE_IMAP_USER": server.user,
            "TRIAGE_IMAP_PASSWORD": server.password, "TRIAGE_IMAP_TIMEOUT_SECONDS": "10"}
    trusted_tls = load_settings(environ={**base, "TRIAGE_IMAP_PORT": str(server.tls_port),
                                         "TRIAGE_IMAP_SECURITY": "tls", "TRIAGE_IMAP_CA_FILE": str(server.ca_cert_path)})
    trusted_starttls = load_settings(environ={**base, "TRIAGE_IMAP_PORT": str(server.port),
                                              "TRIAGE_IMAP_SECURITY": "starttls",
                                              "TRIAGE_IMAP_CA_FILE": str(server.ca_cert_path)})
    for settings in (trusted_tls, trusted_starttls):
        client = connect(settings.imap)
        try:
            assert client.select_folder("INBOX")[b"UIDVALIDITY"]
        finally:
            client.logout()
    untrusted = load_settings(environ={**base, "TRIAGE_IMAP_PORT": str(server.tls_port), "TRIAGE_IMAP_SECURITY": "tls"})
    with pytest.raises(ssl.SSLCertVerificationError):
        connect(untrusted.imap)
    untrusted_starttls = trusted_starttls.imap.model_copy(update={"ca_file": ""})
    with pytest.raises(ssl.SSLCertVerificationError):
        connect(untrusted_starttls)


def test_starttls_not_offered_is_refused_not_downgraded(dovecot_server: Dovecot) -> None:
    """security = starttls against a server without STARTTLS refuses to log in in plain text."""
    settings = load_settings(environ={
        "TRIAGE_IMAP_HOST": dovecot_server.host, "TRIAGE_IMAP_PORT": str(dovecot_server.port),
        "TRIAGE_IMAP_SECURITY": "starttls", "TRIAGE_IMAP_USER": dovecot_server.user,
        "TRIAGE_IMAP_PASSWORD": dovecot_server.password,
    })
    with pytest.raises(ImapSecurityError, match="STARTTLS"):
        connect(settings.imap)


def test_login_failure_is_clear_and_never_shows_the_password(dovecot_server: Dovecot, db_url: str) -> None:
    """A wrong password: LoginError in-process; the CLI exits non-zero naming the account, no password shown."""
    env = _worker_env(dovecot_server, db_url)
    env["TRIAGE_IMAP_PASSWORD"] = "wrong-Pa55word"
    with pytest.raises(LoginError):
        connect(load_settings(environ=env).imap)
    done = subprocess.run([sys.executable, "-m", "triage", "poll", "--once"], env=env, capture_output=True,
                          text=True, check=False)
    assert done.returncode != 0
    assert "liaison" in done.stderr and "LoginError" in done.stderr
    assert "wrong-Pa55word" not in done.stderr + done.stdout


def test_password_file_and_login_retry_delay(dovecot_server: Dovecot, db_url: str, tmp_path: Path) -> None:
    """The password can come from a file; after a rejected login the runner waits the slow login delay."""
    secret = tmp_path / "imap-password"
    secret.write_text(dovecot_server.password + "\n")
    env = imap_env(dovecot_server, db_url)
    del env["TRIAGE_IMAP_PASSWORD"]
    env["TRIAGE_IMAP_PASSWORD_FILE"] = str(secret)
    settings = load_settings(environ={**env, "TRIAGE_IMAP_LOGIN_RETRY_SECONDS": "600"})
    connect(settings.imap).logout()
    app = bootstrap(settings)
    try:
        runner = PollRunner(settings.imap, app.ingestor())
        assert 540 <= runner.retry_delay(LoginError("no"), 1) <= 660
        assert runner.retry_delay(OSError("down"), 1) <= 1.0
        assert runner.retry_delay(OSError("down"), 30) <= settings.imap.backoff_max_seconds
    finally:
        app.close()


def test_oauth2_token_from_command_or_file(tmp_path: Path) -> None:
    """XOAUTH2 takes its token from a configured command or file; a failing command is a clear error."""
    from triage.ingest.imap_connect import ImapCredentialError, _oauth2_token

    token_file = tmp_path / "token"
    token_file.write_text("ya29.from-file\n")
    base = {"TRIAGE_IMAP_HOST": "imap.example.org", "TRIAGE_IMAP_USER": "liaison@example.org",
            "TRIAGE_IMAP_AUTH": "xoauth2"}
    from_file = load_settings(environ={**base, "TRIAGE_IMAP_OAUTH2_TOKEN_FILE": str(token_file)}).imap
    assert _oauth2_token(from_file) == "ya29.from-file"
    from_command = load_settings(environ={**base, "TRIAGE_IMAP_OAUTH2_TOKEN_COMMAND": "echo ya29.from-command"}).imap
    assert _oauth2_token(from_command) == "ya29.from-command"
    failing = load_settings(environ={**base, "TRIAGE_IMAP_OAUTH2_TOKEN_COMMAND": "false"}).imap
    with pytest.raises(ImapCredentialError, match="oauth2_token_command"):
        _oauth2_token(failing)
    with pytest.raises(Exception, match="xoauth2 needs"):
        load_settings(environ=base)


def test_idle_is_reissued_before_the_renewal_window(dovecot_server: Dovecot, db_url: str) -> None:
    """IDLE ends and is issued again every idle_renew_seconds (RFC 2177 asks for under 29 minutes)."""
    settings = load_settings(environ=imap_env(dovecot_server, db_url, poll_seconds="600", idle_renew_seconds="1"))
    app = bootstrap(settings)
    runner = PollRunner(settings.imap, app.ingestor())
    passes: list[float] = []
    real_poll = runner.poller.poll

    def counting_poll(client: Any, folders: Any = None) -> Any:
        passes.append(time.monotonic())
        return real_poll(client, folders)

    runner.poller.poll = counting_poll  # type: ignore[method-assign]
    thread = threading.Thread(target=runner.run)
    thread.start()
    try:
        assert wait_for(lambda: len(passes) >= 4, timeout=15)
    finally:
        runner.stop_event.set()
        thread.join(timeout=10)
        app.close()
    gaps = [b - a for a, b in itertools.pairwise(passes)]
    assert all(0.8 <= gap <= 5 for gap in gaps[1:]), gaps
