"""Fault injection on a whole deployment: three workers, two mailboxes, PostgreSQL, Dovecot and an SMTP peer.

Each test breaks one part while mail flows (SIGKILL of workers, SIGSTOP of a lease holder, a
PostgreSQL crash, a Dovecot restart, an SMTP peer answering 4xx), delivers more mail after the
fault, then waits with a deadline until the desk settled and checks the invariants of
tests/invariants.py: each mail exactly once, each acknowledgment received once (or uncertain and
at most once), no stuck lease, and no person needed (nothing restarted but what was killed).

One deployment (tests/cluster.py) serves the whole module; mail accumulates across the tests
and every check covers all of it. The faults' moments are drawn from seeded generators.
"""

from __future__ import annotations

import random
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import Engine, create_engine, func, select, text

from tests.cluster import (
    FleetDovecot,
    MailTraffic,
    PgCluster,
    WorkerFleet,
    install_audit,
    pg_missing_reason,
    wait_until,
    worker_config,
)
from tests.invariants import lease_violations, mail_violations, outbox_violations, settle_gaps
from tests.servers.dovecot import dovecot_missing_reason
from tests.servers.smtp_sink import SmtpSink
from triage.bootstrap import bootstrap
from triage.config import load_settings
from triage.store.models import ImapLedgerEntry
from triage.store.outbox_models import Outbox

# One deployment per module: under xdist, `--dist loadgroup` (.ci/run) keeps these tests on one worker.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("faults")]

SLOTS = 3
ACCOUNTS = ("alpha", "beta")
LEASE_SECONDS = 3.0
SETTLE_SECONDS = 45.0
LEASE = "imap:alpha/INBOX"
KILLS = 5


@dataclass
class Deployment:
    pg: PgCluster
    dovecot: FleetDovecot
    sink: SmtpSink
    fleet: WorkerFleet
    engine: Engine
    traffic: MailTraffic

    def begin(self) -> None:
        """Whatever an earlier test left: every worker running, the peer accepting."""
        for slot in self.fleet.slots:
            if self.fleet.alive(slot.index):
                self.fleet.thaw(slot.index)
        self.fleet.restart_dead()
        self.sink.accept()

    def settle_and_check(self, *, timeout: float = SETTLE_SECONDS) -> None:
        """Wait until every delivered mail is stored, marked and acknowledged, then check everything."""
        gap = wait_until(lambda: settle_gaps(self.engine, self.traffic.snapshot()), timeout)
        assert gap is None, f"not settled after {timeout:.0f} s: {gap}\n{self.fleet.log_tails()}"
        # A killed worker's leases lapse within lease_seconds; then each must name a live worker.
        stuck = wait_until(lambda: "; ".join(lease_violations(self.engine, self.fleet.live_pids())) or None,
                           LEASE_SECONDS * 3)
        delivered = self.traffic.snapshot()
        problems = mail_violations(self.engine, delivered, self.dovecot)
        problems += outbox_violations(self.engine, delivered, self.sink)
        problems += [stuck] if stuck else []
        assert not problems, "\n".join(problems[:30])

    def summary(self, name: str) -> None:
        """One line of what the run went through, for `pytest -s` and the report (nothing asserted)."""
        with self.engine.connect() as conn:
            outbox = {str(k): int(n) for k, n in conn.execute(text("SELECT status, count(*) FROM outbox GROUP BY status"))}
            retried = conn.scalar(text("SELECT count(*) FROM outbox WHERE attempts > 1"))
            ledger = {str(k): int(n) for k, n in conn.execute(
                text("SELECT outcome, count(*) FROM imap_ledger GROUP BY outcome"))}
            leases = {str(k): int(n) for k, n in conn.execute(text("SELECT name, generation FROM leases"))}
        events: Counter[str] = Counter()
        for slot in self.fleet.slots:
            events.update(str(e.get("event")) for e in self.fleet.log_events(slot.index)
                          if str(e.get("event")).startswith(("lease.", "runner.step_failed", "outbox.uncertain")))
        print(f"\n[{name}] mails={len(self.traffic.snapshot())} ledger={ledger} outbox={outbox} retried={retried} "
              f"kills={sum(s.kills for s in self.fleet.slots)} leases={leases} events={dict(events)}")

    def stored(self, account: str | None = None) -> int:
        with self.engine.connect() as conn:
            query = select(func.count()).select_from(ImapLedgerEntry)
            if account:
                query = query.where(ImapLedgerEntry.account == account)
            return int(conn.scalar(query) or 0)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    for reason in (pg_missing_reason(), dovecot_missing_reason()):
        if reason:
            pytest.skip(reason)
    root = tmp_path_factory.mktemp("fleet")
    pg = PgCluster()
    dovecot = FleetDovecot(ACCOUNTS, SLOTS)
    sink = SmtpSink()
    fleet: WorkerFleet | None = None
    engine: Engine | None = None
    try:
        pg.init()
        pg.start()
        pg.create_database("triage")
        dovecot.start()
        sink.start()
        bootstrap(load_settings(environ={"TRIAGE_DATABASE_URL": pg.url()})).close()  # the schema, migrated
        engine = create_engine(pg.url(application_name="checks"), pool_pre_ping=True)
        install_audit(engine)
        fleet = WorkerFleet(root, [
            worker_config(slot=slot, pg=pg, dovecot=dovecot, sink=sink, root=root, lease_seconds=LEASE_SECONDS)
            for slot in range(1, SLOTS + 1)
        ])
        fleet.start_all()
        yield Deployment(pg, dovecot, sink, fleet, engine, MailTraffic(dovecot, random.Random(20261204)))
    finally:
        if fleet is not None:
            fleet.close()
        if engine is not None:
            engine.dispose()
        sink.close()
        dovecot.close()
        pg.close()


def test_sigkill_of_random_workers_loses_and_doubles_nothing(deployment: Deployment) -> None:
    """Workers SIGKILLed at random moments, many times, each restarted: every mail once, every ack once."""
    d = deployment
    d.begin()
    rng = random.Random(1)
    flow = d.traffic.deliver_steadily(40, "kill", interval=0.2)
    for _ in range(KILLS):
        # A worker that got as far as its runners (one killed while importing proves little).
        assert wait_until(lambda: None if _up(d) else "no worker up", 60) is None, d.fleet.log_tails()
        time.sleep(rng.uniform(0.1, 0.8))  # when the fault strikes; nothing is asserted on time
        victim = rng.choice(_up(d) or [rng.randint(1, SLOTS)])
        d.fleet.kill(victim)
        d.fleet.start(victim)
    flow.join()
    d.traffic.deliver(12, "kill-after")
    d.settle_and_check()
    d.summary("sigkill")
    assert sum(s.kills for s in d.fleet.slots) >= KILLS
    assert d.fleet.deaths() == []


def test_sigstopped_lease_holder_neither_commits_nor_marks_after_it_lost_the_lease(deployment: Deployment) -> None:
    """The holder of a mailbox's lease frozen mid-pass past the lease time: another worker takes the mailbox
    over; thawed at once, with its fetched batches still in hand, the frozen one commits no ledger row and
    sets no flag for that mailbox (its effects are what the audit triggers and Dovecot's mail_log see)."""
    d = deployment
    d.begin()
    held = wait_until(lambda: None if _holder(d) else f"no live lease {LEASE} held by a worker", 30)
    assert held is None, f"{held} (are leases on this branch?)\n{d.fleet.log_tails()}"
    before = _holder(d)
    assert before is not None
    frozen, generation = before
    d.traffic.deliver(30, "freeze-burst", account="alpha", follow_ups=0)
    start = d.stored("alpha")
    wait_until(lambda: None if d.stored("alpha") > start else "holder not ingesting yet", 15, every=0.02)
    d.fleet.freeze(frozen)  # mid-pass: its next batches are fetched or due, their commits and marks to come
    frozen_at = time.monotonic()
    try:
        d.traffic.deliver(10, "frozen", account="alpha", follow_ups=0)
        taken = wait_until(lambda: None if (_holder(d) or (frozen, 0))[0] != frozen else "not taken over",
                           LEASE_SECONDS * 4 + 10, every=0.05)
        takeover = time.monotonic() - frozen_at
        assert taken is None, f"no other worker took {LEASE} over from the frozen worker {frozen}"
        # The promise of worker.lease_seconds, with 2 s for process wake-ups on a loaded machine.
        assert takeover <= LEASE_SECONDS + 2.0, f"taken over {takeover:.1f} s after the freeze"
        print(f"[sigstop] taken over {takeover:.2f} s after the freeze (lease_seconds {LEASE_SECONDS})")
        after = _holder(d)
        assert after is not None and after[1] > generation
        audit_mark = _audit_mark(d.engine)
        flags_mark = d.dovecot.log_size()
        log_mark = d.fleet.log_size(frozen)
    finally:
        d.fleet.thaw(frozen)  # while the new holder works through the same backlog
    d.traffic.deliver(8, "thawed", account="alpha", follow_ups=0)
    d.settle_and_check()
    d.summary("sigstop")
    # Should the thawed worker take the lease again later (a slow renewal elsewhere), it may write from then on.
    regained = [e["timestamp"] for e in d.fleet.log_events(frozen, log_mark)
                if e.get("event") == "lease.acquired" and e.get("lease") == LEASE]
    with d.engine.connect() as conn:
        late = conn.execute(text(
            "SELECT tbl, op, uid, at FROM fault_audit WHERE id > :mark AND app = :app AND account = 'alpha' "
            "AND (CAST(:until AS timestamptz) IS NULL OR at < CAST(:until AS timestamptz))"
        ), {"mark": audit_mark, "app": f"w{frozen}", "until": regained[0] if regained else None}).all()
    assert late == [], f"the frozen worker {frozen} committed after losing {LEASE}: {late[:10]}"
    if not regained:
        login = d.dovecot.login("alpha", frozen)
        marks = [line for who, line in d.dovecot.flag_changes(since=flags_mark) if who == login]
        assert marks == [], f"the frozen worker {frozen} set flags after losing {LEASE}: {marks[:10]}"


def _restart_mid_run(d: Deployment, server: str, label: str, restart: Callable[[], None]) -> None:
    """Restart a server while mail flows, then check every mail once and no worker restarted."""
    d.begin()
    starts = [s.starts for s in d.fleet.slots]
    flow = d.traffic.deliver_steadily(30, label, interval=0.15)
    begun = d.stored()
    wait_until(lambda: None if d.stored() > begun else "no progress yet", 15)
    restart()
    flow.join()
    d.traffic.deliver(10, f"{label}-after")
    d.settle_and_check()
    d.summary(f"{server}-restart")
    assert d.fleet.deaths() == [] and [s.starts for s in d.fleet.slots] == starts


def test_postgresql_restart_mid_run_is_survived_without_a_person(deployment: Deployment) -> None:
    """PostgreSQL crashes and restarts while mail flows: the workers reconnect on their own."""
    _restart_mid_run(deployment, "postgres", "pg", lambda: deployment.pg.restart("immediate"))


def test_dovecot_restart_mid_run_is_survived_without_a_person(deployment: Deployment) -> None:
    """Dovecot restarts while mail flows: the pollers reconnect, marks left undone are made later."""
    _restart_mid_run(deployment, "dovecot", "imap", deployment.dovecot.restart)


def test_smtp_peer_refusing_for_a_while_then_accepting(deployment: Deployment) -> None:
    """The SMTP peer answers 451 for a while: acknowledgments wait and retry, then arrive once each."""
    d = deployment
    d.begin()
    starts = [s.starts for s in d.fleet.slots]
    with d.engine.connect() as conn:
        first_row = int(conn.scalar(select(func.coalesce(func.max(Outbox.id), 0))) or 0)
    d.sink.refuse(451)
    try:
        d.traffic.deliver(30, "smtp", follow_ups=0.1)

        def retried() -> str | None:
            with d.engine.connect() as conn:
                n = conn.scalar(select(func.count()).select_from(Outbox)
                                .where(Outbox.id > first_row, Outbox.attempts >= 3))
            return None if n and n >= 10 else f"{n} acknowledgments refused 3 times so far"

        assert wait_until(retried, 30) is None
    finally:
        d.sink.accept()
    d.traffic.deliver(10, "smtp-after")
    d.settle_and_check()
    d.summary("smtp-4xx")
    assert d.fleet.deaths() == [] and [s.starts for s in d.fleet.slots] == starts


def test_clean_stop_releases_every_lease(deployment: Deployment) -> None:
    """SIGTERM to every worker after the mail settled: each exits 0 and no lease is left held."""
    d = deployment
    d.begin()
    d.traffic.deliver(6, "stop")
    d.settle_and_check()
    d.summary("clean-stop")
    codes = d.fleet.stop_all()
    assert codes == {slot: 0 for slot in range(1, SLOTS + 1)}, d.fleet.log_tails()
    assert lease_violations(d.engine, {}, stopped=True) == []


def _up(d: Deployment) -> list[int]:
    return [slot.index for slot in d.fleet.slots if d.fleet.up(slot.index)]


def _holder(d: Deployment) -> tuple[int, int] | None:
    """(slot, generation) of the live worker holding LEASE now, if any."""
    with d.engine.connect() as conn:
        if conn.scalar(text("SELECT to_regclass('leases')")) is None:
            return None
        row = conn.execute(text("SELECT holder, generation FROM leases WHERE name = :name AND expires_at > now()"),
                           {"name": LEASE}).first()
    if row is None or row.holder is None:
        return None
    for pid, slot in d.fleet.live_pids().items():
        if pid in {int(n) for n in re.findall(r"\d+", row.holder)}:
            return slot, int(row.generation)
    return None


def _audit_mark(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(text("SELECT coalesce(max(id), 0) FROM fault_audit")) or 0)

