"""Operating the worker: roles choose its runners, a running worker process answers /healthz, /readyz
and /metrics over real HTTP (PostgreSQL dropping off the network through a proxy, a runner thread
dying), the metrics move with real mail from Dovecot, and every log line names the worker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
from click.testing import CliRunner
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select, update
from sqlalchemy.engine import make_url

from tests.conftest import make_mail
from tests.servers.dovecot import Dovecot, fixture_make_dovecot  # noqa: F401
from tests.servers.tcp_proxy import TcpProxy
from tests.test_imap_poll import append_many, imap_env
from triage.bootstrap import bootstrap
from triage.cli import cli
from triage.config import load_settings
from triage.ingest.pipeline import IncomingMail
from triage.observe.metrics import DeskCollector
from triage.observe.readings import DeskProbe
from triage.store.lease_models import LeaseRow
from triage.store.models import ImapFolderState, Ticket
from triage.store.outbox_models import Outbox, OutboxStatus
from triage.store.schedule_models import TicketClock
from triage.worker import _runners, main, parse_roles

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "Pw-operate-7731"
BODY = "our chapter would like a banner with the logo"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(autouse=True)
def _fresh_log_context() -> Iterator[None]:
    """A worker run in-process binds its id into this thread's log context and sets a private umask."""
    umask = os.umask(0o022)
    os.umask(umask)
    yield
    structlog.contextvars.clear_contextvars()
    os.umask(umask)


# -- roles --------------------------------------------------------------------------------------


def test_each_role_builds_its_runners(tmp_path: Path) -> None:
    """poll: the IMAP pollers and the spool; send: the outbox sender; route: suggest and retrain;
    remind: reminders, digests, retention; no role, or all: every one, mail movers first."""
    spool = tmp_path / "spool"
    env = {
        "TRIAGE_DATABASE_URL": f"sqlite:///{tmp_path / 'triage.db'}", "TRIAGE_IMAP_HOST": "127.0.0.1",
        "TRIAGE_IMAP_USER": "liaison", "TRIAGE_IMAP_PASSWORD": PASSWORD, "TRIAGE_IMAP_SECURITY": "none", "TRIAGE_INGEST_SPOOL_MAILDIR": str(spool),
        "TRIAGE_SMTP_HOST": "127.0.0.1", "TRIAGE_SMTP_SECURITY": "none", "TRIAGE_PRIVACY_RETENTION_MONTHS": "12",
        "TRIAGE_ROUTING_AUTO_TRAIN": "false", "TRIAGE_ROUTING_MODEL_PATH": str(tmp_path / "model"),
        "TRIAGE_ROUTING_TEAMS_FILE": str(ROOT / "data" / "teams.toml"),
    }
    app = bootstrap(load_settings(environ=env))
    try:
        expected = {"poll": ["imap:liaison", f"spool:{spool}"], "send": ["outbound"],
                    "route": ["routing:suggest", "routing:retrain"], "remind": ["remind", "digest", "retention"]}
        for role, names in expected.items():
            assert [r.name for r in _runners(app, [role], True)] == names, role
        every, chosen = parse_roles(())
        assert not chosen and [r.name for r in _runners(app, every, chosen)] == [n for v in expected.values() for n in v]
    finally:
        app.close()
    assert parse_roles(("remind,poll", " route ")) == (["poll", "route", "remind"], True)
    assert parse_roles(("poll", "all")) == (["poll", "send", "route", "remind"], False)


def test_a_role_with_nothing_configured_says_so_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`triage worker --role send,poll` without smtp.host or a mailbox names both and what to set,
    exit 2, rather than idling; an unknown role is a usage error; --help documents the roles."""
    env = {"TRIAGE_CONFIG": "", "TRIAGE_DATABASE_URL": f"sqlite:///{tmp_path / 'triage.db'}",
           "TRIAGE_REMINDERS_ENABLED": "false", "TRIAGE_DIGEST_ENABLED": "false"}
    idle = CliRunner().invoke(cli, ["worker", "--role", "send,poll", "--once"], env=env, prog_name="triage")
    assert idle.exit_code == 2, idle.output
    lines = idle.stderr.splitlines()
    assert any(line.startswith("triage: role poll has nothing to do") and "imap.host" in line for line in lines)
    assert any(line.startswith("triage: role send has nothing to do") and "smtp.host" in line for line in lines)
    remind = CliRunner().invoke(cli, ["worker", "--role", "remind", "--listen", ""], env=env)
    assert remind.exit_code == 2 and "reminders.enabled" in remind.stderr
    assert CliRunner().invoke(cli, ["worker", "--role", "mail"], env=env).exit_code == 2
    assert CliRunner().invoke(cli, ["worker", "--listen", "nowhere"], env=env).exit_code == 2
    elsewhere = CliRunner().invoke(cli, ["--config", str(tmp_path / "none.toml"), "worker", "--once"], env=env)
    assert elsewhere.exit_code == 2 and "none.toml" in elsewhere.stderr  # `triage --config` reaches the worker
    assert main(["--help"]) == 0
    shown = capsys.readouterr().out
    assert all(word in shown for word in ("poll", "send", "remind", "route", "/healthz", "/readyz", "/metrics"))


# -- readings, in-process, on both engines ------------------------------------------------------


def test_desk_readings_count_the_shared_state(db_url: str, tmp_path: Path) -> None:
    """The database metrics: each configured mailbox's last pass (0 before any), outbox rows by
    state, the oldest due mail's age, the reminder lag and the tickets waiting for a suggestion."""
    now = datetime.now(UTC).replace(microsecond=0)
    app = bootstrap(load_settings(environ={"TRIAGE_DATABASE_URL": db_url, "TRIAGE_OUTBOX_AUTO_ACKNOWLEDGE": "true"}))
    probe = DeskProbe(db_url, timeout=5, mailboxes=[("liaison", "INBOX"), ("press", "Archive")], clock=lambda: now)
    try:
        for i in range(3):
            app.ingestor().ingest(make_mail(sender=f"v{i}@volunteers.example", message_id=f"<d{i}@v.example>",
                                            date=now))
        with app.sessions.begin() as session:
            session.add(ImapFolderState(account="liaison", folder="INBOX", uidvalidity=1, last_uid=3,
                                        first_contact_at=now, start_policy="all", updated_at=now,
                                        last_pass_at=now - timedelta(seconds=30)))
            rows = list(session.scalars(select(Outbox.id).order_by(Outbox.id)))
            assert len(rows) == 3  # one acknowledgment per new ticket
            session.execute(update(Outbox).where(Outbox.id == rows[0]).values(status=OutboxStatus.sent))
            session.execute(update(Outbox).where(Outbox.id.in_(rows[1:]))
                            .values(created_at=now - timedelta(minutes=10), next_attempt_at=now))
            ticket = session.scalars(select(Ticket.id).order_by(Ticket.id)).first()
            session.merge(TicketClock(ticket_id=ticket, team=None, due_1=now - timedelta(hours=2),
                                      reminded_level=0, next_at=now - timedelta(hours=2)))
            session.add(LeaseRow(name="imap:liaison/INBOX", holder="host:1:a", generation=3,
                                 expires_at=now + timedelta(seconds=20)))
            session.add(LeaseRow(name="job:remind", holder=None, generation=5, expires_at=now - timedelta(seconds=4)))
        readings = probe.read(None)
        assert readings.leases == {"imap:liaison/INBOX": ("host:1:a", 3, 20.0), "job:remind": (None, 5, -4.0)}
        assert readings.last_pass == {("liaison", "INBOX"): (now - timedelta(seconds=30)).timestamp(),
                                      ("press", "Archive"): None}
        assert readings.outbox == {"pending": 2, "sending": 0, "sent": 1, "failed": 0, "uncertain": 0}
        assert readings.oldest_due_age == 600.0
        assert readings.reminder_lag == 7200.0
        assert readings.suggestions_waiting == 3
        samples = parse(generate_latest(_registry(DeskCollector(probe, lambda: "v7"))).decode())
        assert samples[("triage_mailbox_last_pass_timestamp_seconds", _l(account="press", folder="Archive"))] == 0
        assert samples[("triage_routing_model_info", _l(version="v7"))] == 1
        assert samples[("triage_routing_suggestions_waiting", _l())] == 3  # none from v7 either
        assert samples[("triage_metrics_scrape_error", _l())] == 0
        assert samples[("triage_lease_expires_in_seconds", _l(lease="imap:liaison/INBOX"))] == 20.0
        assert samples[("triage_lease_generation", _l(lease="job:remind"))] == 5
        assert samples[("triage_lease_holder_info", _l(lease="imap:liaison/INBOX", holder="host:1:a"))] == 1
        assert not any(name == "triage_lease_holder_info" and ("lease", "job:remind") in labels
                       for name, labels in samples)  # given back: nobody holds it
    finally:
        probe.close()
        app.close()


def test_a_failing_read_is_reported_not_raised(tmp_path: Path) -> None:
    """A database that refuses connections, a read past its deadline (SQLite interrupted by the
    progress handler) and a database without triage's schema: the scrape still answers, with
    triage_metrics_scrape_error 1, and readiness says why."""
    nowhere = DeskProbe("postgresql+psycopg://triage@127.0.0.1:1/triage", timeout=2)
    db = f"sqlite:///{tmp_path / 'triage.db'}"
    app = bootstrap(load_settings(environ={"TRIAGE_DATABASE_URL": db}))
    app.ingestor().ingest_many([IncomingMail(make_mail(message_id=f"<s{i}@v.example>")) for i in range(20)])
    app.close()
    slow = DeskProbe(db, timeout=1e-9)
    empty = DeskProbe(f"sqlite:///{tmp_path / 'empty.db'}", timeout=5)
    try:
        for probe in (nowhere, slow):
            samples = parse(generate_latest(_registry(DeskCollector(probe, lambda: None))).decode())
            assert samples[("triage_metrics_scrape_error", _l())] == 1
            assert not any(name == "triage_outbox_messages" for name, _ in samples)
        assert (nowhere.not_ready() or "").startswith("database unreachable: ")
        assert empty.not_ready() == f"the database schema is at nothing, triage needs {empty.head}"
    finally:
        for probe in (nowhere, slow, empty):
            probe.close()


def _registry(collector: DeskCollector) -> Any:
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    registry.register(collector)
    return registry


# -- a running worker process -------------------------------------------------------------------


def _l(**labels: str) -> frozenset[tuple[str, str]]:
    return frozenset(labels.items())


def parse(text: str) -> Samples:
    return {(s.name, _l(**s.labels)): s.value for family in text_string_to_metric_families(text)
            for s in family.samples}


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


class Worker:
    """`python -m triage worker ARGS` with JSON logs in a file; `url` once it serves."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path, prelude: str = "") -> None:
        self.log = log
        base = {k: v for k, v in os.environ.items() if not k.startswith("TRIAGE_")}
        base.update({"TRIAGE_CONFIG": "", "TRIAGE_LOG_FORMAT": "json", "TRIAGE_LOG_LEVEL": "info",
                     "TRIAGE_WORKER_LISTEN": "127.0.0.1:0", "PYTHONPATH": str(ROOT), **env})
        code = f"import sys\n{prelude}\nfrom triage.cli import main\nsys.argv[0] = 'triage'\nmain()"
        with log.open("w") as err:
            self.proc = subprocess.Popen([sys.executable, "-c", code, "worker", *args], env=base,
                                         stdout=subprocess.DEVNULL, stderr=err, cwd=log.parent)
        self.url = ""
        assert wait_for(lambda: self._listening() or self.proc.poll() is not None, timeout=60)
        assert self.url, f"the worker did not serve: {log.read_text()}"

    def _listening(self) -> bool:
        for line in self.lines():
            if line.get("event") == "health.listening":
                self.url = line["url"]
                return True
        return False

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.startswith("{")]

    def metrics(self) -> Samples:
        status, text = get(self.url + "/metrics")
        assert status == 200, text
        return parse(text)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


@pytest.mark.postgres
def test_a_running_worker_reports_mail_and_its_database(make_dovecot: Callable[..., Dovecot], pg_url: str,
                                                        tmp_path: Path) -> None:
    """A `--role poll` worker on PostgreSQL (through a proxy) and Dovecot: after four mails and an
    oversize one, /metrics counts them per mailbox and outcome, the mailbox's last pass is set and
    the acknowledgments are pending in the outbox; /healthz and /readyz are 200. With the database
    cut off, /readyz is 503 naming it and /metrics still answers with the scrape error; mended, ready
    again. Every log line carries the worker's id, none the password or a body."""
    dovecot = make_dovecot(password=PASSWORD)
    now = datetime.now(UTC)
    append_many(dovecot, [make_mail(sender=f"v{i}@volunteers.example", message_id=f"<w{i}@v.example>", date=now,
                                    body=f"Hello,\n\n{BODY} ({i}).\n") for i in range(4)])
    append_many(dovecot, [make_mail(message_id="<big@v.example>", body="x" * 30_000)])
    url = make_url(pg_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432).start()
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    env = {**imap_env(dovecot, proxied, poll_seconds="0.3", idle="false"), "TRIAGE_WORKER_ID": "w-ops-1",
           "TRIAGE_MAIL_MAX_SIZE_BYTES": "20000", "TRIAGE_OUTBOX_AUTO_ACKNOWLEDGE": "true",
           "TRIAGE_ROUTING_MODEL_PATH": str(tmp_path / "model")}
    started = time.time()
    worker = Worker(["--role", "poll"], env, tmp_path / "worker.log")
    try:
        inbox = _l(account="liaison", folder="INBOX", outcome="stored")
        assert wait_for(lambda: worker.metrics().get(("triage_mail_ingested_total", inbox)) == 4)
        assert wait_for(lambda: worker.metrics().get(
            ("triage_mailbox_last_pass_timestamp_seconds", _l(account="liaison", folder="INBOX")), 0) > 0)
        samples = worker.metrics()
        assert samples[("triage_mail_ingested_total", _l(account="liaison", folder="INBOX", outcome="quarantined"))] == 1
        assert samples[("triage_mail_ingested_total", _l(account="liaison", folder="INBOX", outcome="duplicate"))] == 0
        last_pass = samples[("triage_mailbox_last_pass_timestamp_seconds", _l(account="liaison", folder="INBOX"))]
        assert started - 1 <= last_pass <= time.time() + 1
        assert samples[("triage_outbox_messages", _l(state="pending"))] == 4  # the acknowledgments, unsent
        assert samples[("triage_outbox_messages", _l(state="sent"))] == 0
        assert samples[("triage_outbox_oldest_due_age_seconds", _l())] > 0
        assert samples[("triage_runner_up", _l(runner="imap:liaison"))] == 1
        assert samples[("triage_runner_consecutive_failures", _l(runner="imap:liaison"))] == 0
        assert started - 1 <= samples[("triage_runner_last_success_timestamp_seconds", _l(runner="imap:liaison"))]
        assert samples[("triage_worker_info", _l(worker="w-ops-1", roles="poll", version="0.1.0"))] == 1
        assert samples[("triage_metrics_scrape_error", _l())] == 0
        assert get(worker.url + "/healthz") == (200, "ok\n")
        assert get(worker.url + "/readyz") == (200, "ok\n")
        assert get(worker.url + "/nothing")[0] == 404

        proxy.cut()
        status, reason = get(worker.url + "/readyz")
        assert status == 503 and reason.startswith("database unreachable: "), reason
        cut = worker.metrics()
        assert cut[("triage_metrics_scrape_error", _l())] == 1
        assert ("triage_outbox_messages", _l(state="pending")) not in cut
        assert get(worker.url + "/healthz") == (200, "ok\n")  # alive: a restart would not bring the database back
        proxy.mend()
        assert wait_for(lambda: get(worker.url + "/readyz") == (200, "ok\n"), timeout=15)
    finally:
        status = worker.stop()
        proxy.close()
    assert status == 0, worker.log.read_text()
    text = worker.log.read_text()
    lines = worker.lines()
    assert len(lines) == len(text.splitlines()), "every line is a JSON log line"
    assert all(line.get("worker") == "w-ops-1" for line in lines), [ln for ln in lines if "worker" not in ln][:3]
    passes = [line for line in lines if line["event"] == "imap.pass"]
    assert passes and all(p["runner"] == "imap:liaison" and p["mailbox"] == "liaison/INBOX" for p in passes)
    assert any(line["event"] == "health.failing" and line["check"] == "readyz" for line in lines)
    assert PASSWORD not in text and BODY not in text and "Traceback" not in text


DYING_SPOOL = """
from triage.runners.spool import SpoolRunner

class Killed(BaseException):
    pass

def step(self):
    raise Killed("the spool runner's thread is gone")

SpoolRunner.step = step
"""


def test_liveness_names_a_runner_whose_thread_died(tmp_path: Path) -> None:
    """A runner thread that ends (here the spool's, by an injected BaseException: no real part
    kills a thread on demand) turns /healthz to 503 naming it and its triage_runner_up to 0, while
    the other runner and readiness carry on (SQLite)."""
    spool = tmp_path / "spool"
    for sub in ("new", "cur", "tmp"):
        (spool / sub).mkdir(parents=True)
    env = {"TRIAGE_DATABASE_URL": f"sqlite:///{tmp_path / 'triage.db'}", "TRIAGE_INGEST_SPOOL_MAILDIR": str(spool),
           "TRIAGE_SMTP_HOST": "127.0.0.1", "TRIAGE_SMTP_SECURITY": "none"}  # an empty outbox: it never connects
    worker = Worker(["--role", "poll,send"], env, tmp_path / "worker.log", prelude=DYING_SPOOL)
    try:
        assert wait_for(lambda: get(worker.url + "/healthz")[0] == 503, timeout=15)
        assert get(worker.url + "/healthz") == (503, f"runner thread died: spool:{spool}\n")
        samples = worker.metrics()
        assert samples[("triage_runner_up", _l(runner=f"spool:{spool}"))] == 0
        assert samples[("triage_runner_up", _l(runner="outbound"))] == 1
        assert samples[("triage_outbox_messages", _l(state="pending"))] == 0  # the database read on SQLite
        assert get(worker.url + "/readyz") == (200, "ok\n")
    finally:
        status = worker.stop()
    assert status == 1  # a runner crashed: the exit status says so
    crashed = [line for line in worker.lines() if line["event"] == "runner.crashed"]
    assert [(c["runner"], c["worker"]) for c in crashed] == [(f"spool:{spool}", crashed[0]["worker"])]
    assert crashed[0]["worker"].endswith(f":{worker.proc.pid}")  # host:pid when worker.id is not set



def test_the_poller_hook_binds_mailbox_and_lease_generation(capsys: pytest.CaptureFixture[str]) -> None:
    """`bind_mailbox` (for the poller under a lease) adds mailbox and lease_generation to the lines
    logged inside it, beside the worker's id, and nothing after."""
    from triage.config import LogSettings
    from triage.logging import bind_mailbox, bind_worker, configure_logging

    configure_logging(LogSettings(format="json"))
    bind_worker("w-hook")
    log = structlog.get_logger("test")
    with bind_mailbox("press/INBOX", lease_generation=7):
        log.info("inside")
    log.info("after")
    inside, after = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert (inside["worker"], inside["mailbox"], inside["lease_generation"]) == ("w-hook", "press/INBOX", 7)
    assert after["worker"] == "w-hook" and "mailbox" not in after and "lease_generation" not in after
