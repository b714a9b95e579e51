"""Secrets and errors: a locked, unreachable or full database is one line on stderr that names the
cause and the fix, with a non-zero exit status, for every command and the worker; no password
and no mail body ever reaches stdout, stderr or a log line.

The failures are real: a second SQLite connection holding the write lock, a PostgreSQL URL on a
closed port, an SQLite database at its page limit (`PRAGMA max_page_count`, set on every
connection the process opens) and, where the test may mount one, a 1 MB tmpfs.
"""

from __future__ import annotations

import mailbox
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import event
from sqlalchemy.engine import Engine

from tests.conftest import make_mail
from triage.bootstrap import bootstrap
from triage.cli import cli
from triage.config import load_settings
from triage.failures import describe
from triage.secrets import redact_text, redact_url

ROOT = Path(__file__).resolve().parents[1]
BODY = "BODYMARK7f3a"
PASSWORD = "PWMARK91c2"
CLOSED_PORT_URL = f"postgresql+psycopg://triage:{PASSWORD}@127.0.0.1:1/test?password={PASSWORD}"
FULL = "PRAGMA max_page_count=1"  # clamped by SQLite to the current size: not one page more
CAP = (
    "import sqlalchemy, sys\n"
    "@sqlalchemy.event.listens_for(sqlalchemy.engine.Engine, 'connect')\n"
    "def full(dbapi, _):\n"
    f"    dbapi.execute({FULL!r})\n"
)


def mail_bytes(n: int) -> list[bytes]:
    """Mails whose bodies carry the marker in text that does not compress (so they fill a disk)."""
    return [make_mail(message_id=f"<f{i}@v.example>", subject=f"Question {i}",
                      body=f"{BODY} {secrets.token_urlsafe(24_000)}\n") for i in range(n)]


@pytest.fixture
def desk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """An SQLite desk holding one ticket, a mailbox of marked mail and a spool, run from tmp_path."""
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "triage.db"
    env = {
        "TRIAGE_CONFIG": "", "TRIAGE_DATABASE_URL": f"sqlite:///{db}?timeout=0.3",
        "TRIAGE_ROUTING_AUTO_TRAIN": "false", "TRIAGE_ROUTING_MODEL_PATH": str(tmp_path / "model"),
        "TRIAGE_ROUTING_TEAMS_FILE": str(ROOT / "data" / "teams.toml"),
        "TRIAGE_INGEST_SPOOL_MAILDIR": str(tmp_path / "spool"), "TRIAGE_INGEST_POLL_SECONDS": "0.2",
        "TRIAGE_WORKER_LISTEN": "127.0.0.1:0",  # tests run in parallel: the default port is one per host
    }
    app = bootstrap(load_settings(environ=env))
    app.ingestor().ingest(make_mail(message_id="<first@v.example>"))  # a ticket to show, reply to, approve
    app.close()
    box = mailbox.mbox(tmp_path / "in.mbox", create=True)
    spool = mailbox.Maildir(tmp_path / "spool", create=True)
    for raw in mail_bytes(3):
        box.add(raw)
        spool.add(raw)
    box.close()
    (tmp_path / "reply.txt").write_text("We will look into it.\n")
    return {"env": env, "db": db, "tmp": tmp_path}


COMMANDS = [
    ["ingest", "in.mbox"], ["tickets"], ["show", "T-2026-00001"], ["queue"], ["approve", "T-2026-00001", "--team",
    "legal"], ["unmatched"], ["quarantine"], ["quarantine", "--retry"], ["outbox"], ["outbox", "--send"],
    ["reply", "T-2026-00001", "--body-file", "reply.txt"], ["remind"], ["stats"], ["retrain", "--force"],
    ["db", "current"], ["db", "upgrade"],
]


def check_failure(status: int, stdout: str, stderr: str, cause: str | None) -> None:
    """Success, or one error line naming `cause`, exit 1; never a traceback, a body or a password."""
    for text in (stdout, stderr):
        assert BODY not in text and PASSWORD not in text, text
        assert "Traceback" not in text and "[SQL" not in text, text
    errors = [line for line in stderr.splitlines() if line.startswith(("triage:", "triage-worker:"))]
    if status == 0 and cause is None:
        return
    assert status == 1, (status, stdout, stderr)
    assert len(errors) == 1 and cause is not None and cause in errors[0], stderr


@pytest.fixture
def full_database() -> Iterator[None]:
    """Every SQLite connection this process opens from now on finds its database full."""
    def full(dbapi: Any, _record: Any) -> None:
        if isinstance(dbapi, sqlite3.Connection):
            dbapi.execute(FULL)

    event.listen(Engine, "connect", full)
    yield
    event.remove(Engine, "connect", full)


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
@pytest.mark.parametrize("failure", ["locked", "unreachable", "full"])
def test_every_command_fails_in_one_line(desk: dict[str, Any], command: list[str], failure: str,
                                         request: pytest.FixtureRequest) -> None:
    """Each command on a locked, unreachable or full database: one line naming the cause, exit 1
    (or, reading a full database, success); no traceback, body or password."""
    env = dict(desk["env"])
    holder = None
    if failure == "locked":
        holder = sqlite3.connect(desk["db"], isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
    elif failure == "unreachable":
        env["TRIAGE_DATABASE_URL"] = CLOSED_PORT_URL
    else:
        request.getfixturevalue("full_database")
    try:
        result = CliRunner().invoke(cli, command, env=env)
    finally:
        if holder is not None:
            holder.close()
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    cause = {"locked": "the database is locked", "unreachable": "cannot connect to the database",
             "full": "the database is full" if command[0] == "ingest" else None}[failure]
    check_failure(result.exit_code, result.stdout, result.stderr, cause)


def run(args: list[str], env: dict[str, str], cwd: Path, prelude: str = "") -> subprocess.CompletedProcess[str]:
    """`triage ARGS...`, or `triage-worker ARGS...` when args[0] is "worker", in a fresh process
    that runs `prelude` first."""
    entry = "from triage.worker import main; sys.exit(main())" if args[0] == "worker" else \
        "from triage.cli import main; main()"
    argv = args[1:] if args[0] == "worker" else args
    return subprocess.run([sys.executable, "-c", "import sys\n" + prelude + entry, *argv], check=False,
                          env={**os.environ, **env}, cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("failure", ["locked", "unreachable", "full"])
def test_the_worker_fails_in_one_line(desk: dict[str, Any], failure: str) -> None:
    """In a real process, `triage-worker --once` on a failing database prints one line naming the
    cause and exits 1, without a traceback, a mail body or a password."""
    env, prelude, holder = dict(desk["env"]), "", None
    cause = {"locked": "the database is locked", "unreachable": "cannot connect to the database",
             "full": "the database is full"}[failure]
    if failure == "locked":
        holder = sqlite3.connect(desk["db"], isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
    elif failure == "unreachable":
        env["TRIAGE_DATABASE_URL"] = CLOSED_PORT_URL
    else:
        prelude = CAP
    try:
        done = run(["worker", "--once"], env, desk["tmp"], prelude)
        check_failure(done.returncode, done.stdout, done.stderr, cause)
    finally:
        if holder is not None:
            holder.close()


def test_the_running_worker_logs_a_full_database_in_one_line(desk: dict[str, Any]) -> None:
    """The long-running worker logs each failed pass as one line naming the cause, keeps retrying,
    and still stops cleanly on SIGTERM; no body in any log line."""
    log = desk["tmp"] / "worker.log"
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-c", "import sys\n" + CAP + "from triage.worker import main; "
                                 "sys.exit(main())"], env={**os.environ, **desk["env"]}, cwd=desk["tmp"],
                                stdout=subprocess.DEVNULL, stderr=err, text=True)
        try:
            deadline = time.monotonic() + 60
            while "runner.step_failed" not in log.read_text() and time.monotonic() < deadline:
                time.sleep(0.1)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    text = log.read_text()
    failed = [line for line in text.splitlines() if "runner.step_failed" in line]
    # Every failed pass names its cause: the full database, or (the desk's timeout is 0.3 s, and
    # several runners share the one SQLite file) the lock another runner held while it failed.
    assert any("the database is full" in line for line in failed), text
    assert all("the database is full" in line or "the database is locked" in line for line in failed), text
    assert BODY not in text and "Traceback" not in text and "[SQL" not in text


def test_a_real_full_disk_is_named(tmp_path: Path) -> None:
    """On a 1 MB tmpfs that fills up during ingest, `triage ingest` (a real process) names the full
    disk in one line, where SQLite itself reports only "no such savepoint"."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)]
    if subprocess.run(mount, check=False, capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        box = mailbox.mbox(tmp_path / "in.mbox", create=True)
        for raw in mail_bytes(40):
            box.add(raw)
        box.close()
        env = {"TRIAGE_CONFIG": "", "TRIAGE_DATABASE_URL": f"sqlite:///{disk / 'triage.db'}",
               "TRIAGE_ROUTING_AUTO_TRAIN": "false", "TRIAGE_ROUTING_TEAMS_FILE": str(ROOT / "data" / "teams.toml")}
        done = run(["ingest", str(tmp_path / "in.mbox"), "--batch-size", "10"], env, tmp_path)
        check_failure(done.returncode, done.stdout, done.stderr, "the database is full")
    finally:
        subprocess.run(["umount", str(disk)], check=True)


@pytest.mark.parametrize(("env", "secret"), [
    ({"TRIAGE_DATABASE_URL": f"postgresql+psycopg://u@h/db?password={PASSWORD}&sslmode=require"}, PASSWORD),
    ({"TRIAGE_DATABASE_URL": f"postgresql+psycopg://u:{PASSWORD}@h/db"}, PASSWORD),
    ({"TRIAGE_IMAP_HOST": "imap.example.org", "TRIAGE_IMAP_USER": "u", "TRIAGE_IMAP_AUTH": "xoauth2",
      "TRIAGE_IMAP_OAUTH2_TOKEN_COMMAND": f"oauth-helper --refresh-token {PASSWORD}"}, PASSWORD),
    ({"TRIAGE_SMTP_HOST": "smtp.example.org", "TRIAGE_SMTP_USER": "u", "TRIAGE_SMTP_PASSWORD": PASSWORD}, PASSWORD),
])
def test_config_check_hides_every_secret(env: dict[str, str], secret: str) -> None:
    """`config check` shows the settings but masks passwords in the URL's userinfo and query string,
    token commands and passwords; `config example` shows none either."""
    for command in (["config", "check"], ["config", "example"]):
        result = CliRunner().invoke(cli, command, env={"TRIAGE_CONFIG": "", **env})
        assert result.exit_code == 0, result.stderr
        assert secret not in result.stdout and secret not in result.stderr
    shown = CliRunner().invoke(cli, ["config", "check"], env={"TRIAGE_CONFIG": "", **env}).stdout
    assert "***" in shown and ("sslmode=require" in shown or "sslmode" not in str(env))


def test_redaction_and_description_units() -> None:
    """The helpers behind it: URLs and free text lose their secrets; a failure is one capped line."""
    assert redact_url("postgresql+psycopg://u:pw@h:5/db?password=x&options=-c%20a%3Db") == \
        "postgresql+psycopg://u:***@h:5/db?options=-c+a%3Db&password=***"
    assert redact_text("dsn postgresql://u:pw@h/db token=abc password: 'x y' ok") == \
        "dsn postgresql://u:***@h/db token=*** password: *** ok"
    line = describe(ValueError("first line\nsecond " + "x" * 500))
    assert line.startswith("ValueError: first line") and "\n" not in line and len(line) < 230
    assert describe(FileNotFoundError(2, "No such file or directory", "/x/y")) == "No such file or directory: /x/y"


def test_a_bug_stops_a_command_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception nobody expected (a bug, raised here by a command added for the test, as no real
    one can be caused on demand) is one escaped line on stderr, exit 1; TRIAGE_DEBUG=1 re-raises it."""
    import click

    @click.command("explode")
    def explode() -> None:
        raise RuntimeError(f"while quoting {BODY}\x1b[2J\nsecond line")

    cli.add_command(explode)
    try:
        result = CliRunner().invoke(cli, ["explode"], env={"TRIAGE_CONFIG": ""})
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
        assert result.stderr.count("\n") == 1, result.stderr
        assert result.stderr.startswith("triage: unexpected error RuntimeError at triage/cli.py:")
        assert BODY not in result.stderr and "TRIAGE_DEBUG=1" in result.stderr
        monkeypatch.setenv("TRIAGE_DEBUG", "1")
        debug = CliRunner().invoke(cli, ["explode"], env={"TRIAGE_CONFIG": ""})
        assert isinstance(debug.exception, RuntimeError)
    finally:
        cli.commands.pop("explode")


def test_log_lines_never_quote_the_mail(tmp_path: Path) -> None:
    """At debug level, a run that quarantines, refuses and skips mail logs why by kind only: the
    subject of a refused mail and the text of a skipped acknowledgment's reason stay out of the log."""
    folder = tmp_path / "mail"
    folder.mkdir()
    (folder / "big.eml").write_bytes(make_mail(subject=f"Photos {BODY}", body="x" * 5000))
    (folder / "list.eml").write_bytes(make_mail(subject=f"Digest {BODY}", sender=f"{BODY} <news@lists.example>",
                                                headers={"List-Id": f"<{BODY}.lists.example>"}))
    env = {"TRIAGE_DATABASE_URL": f"sqlite:///{tmp_path / 'triage.db'}", "TRIAGE_LOG_LEVEL": "debug",
           "TRIAGE_MAIL_MAX_SIZE_BYTES": "4000", "TRIAGE_OUTBOX_AUTO_ACKNOWLEDGE": "true",
           "TRIAGE_ROUTING_MODEL_PATH": str(tmp_path / "model")}
    done = run(["ingest", str(folder)], env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "mail.refused_oversize" in done.stderr and "outbox.skipped" in done.stderr, done.stderr  # logged, by kind
    assert BODY not in done.stderr and BODY not in done.stdout


def test_a_quarantined_mail_is_logged_without_its_reason_text(tmp_path: Path) -> None:
    """The quarantine row keeps the whole reason for the liaison (an error's message may quote the
    mail); the log line carries only its kind. The parser that fails is a stand-in: the real one
    has no failure that quotes a mail on demand."""
    from structlog.testing import capture_logs


    def failing_parser(raw: bytes, *, max_size: int) -> Any:
        raise ValueError(f"cannot read the header value {BODY!r}")

    app = bootstrap(load_settings(environ={"TRIAGE_DATABASE_URL": f"sqlite:///{tmp_path / 'triage.db'}"}))
    try:
        with capture_logs() as logs:
            outcome = app.ingestor(parser=failing_parser).ingest(make_mail())
    finally:
        app.close()
    assert outcome.status == "quarantined" and BODY in outcome.reason  # the liaison sees what failed
    (line,) = [entry for entry in logs if entry["event"] == "mail.quarantined"]
    assert BODY not in repr(logs) and line["error"] == "ValueError"


@pytest.mark.parametrize("text", ["a." * 20_000, "password" * 5_000, "a" * 80_000, "://" + "a:" * 20_000])
def test_redaction_is_linear_in_the_text(text: str) -> None:
    """`redact_text` runs on every log field and error line, which can quote a hostile mail: 40-80 kB
    take milliseconds (the first form took minutes when a match could start anywhere and backtrack)."""
    start = time.perf_counter()
    redact_text(text)
    assert time.perf_counter() - start < 1.0


def test_a_mail_servers_refusal_is_not_called_a_bug() -> None:
    """`triage-worker --once` reports what stopped each runner: a wrong IMAP password is the
    operator's to fix, said in the server's words, not 'a bug, please report it'."""
    from imapclient.exceptions import LoginError

    from triage.failures import stopped_by

    line = stopped_by(LoginError("[AUTHENTICATIONFAILED] Authentication failed."))
    assert "bug" not in line and "AUTHENTICATIONFAILED" in line
    assert "a bug" in stopped_by(KeyError("x"))
