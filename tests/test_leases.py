"""Leases with fencing tokens, on SQLite and PostgreSQL; the poller under them against a real Dovecot;
one worker only on an SQLite file."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from tests import test_imap_poll
from tests.conftest import make_mail
from tests.servers.dovecot import Dovecot, fixture_dovecot_server, fixture_make_dovecot  # noqa: F401
from tests.test_imap_poll import append_many, count
from triage.bootstrap import App
from triage.coordination.leases import Claim, LeaseLost, Leases
from triage.coordination.share import MailboxShare
from triage.coordination.single_worker import AnotherWorker, claim_sqlite_database
from triage.coordination.workers import coordinate
from triage.runners.poll import PollRunner
from triage.store.db import utcnow
from triage.store.lease_models import LeaseRow
from triage.store.models import Event, ImapLedgerEntry, Message

desk = test_imap_poll.desk  # the fixture: (overrides) -> (settings, app) on this Dovecot and database

TTL = 0.6  # seconds: short, so that expiry is seen without long waits


def lease_row(app: App, name: str) -> LeaseRow:
    with app.sessions() as session:
        return session.get_one(LeaseRow, name)


def test_a_lease_has_one_holder_until_it_expires(app: App) -> None:
    """Taken when free; refused to another while valid; taken over after expiry with a new generation,
    and the former holder can then neither renew nor fence."""
    first, second = Leases(app.sessions, "host:1:a", TTL), Leases(app.sessions, "host:2:b", TTL)
    mine = first.acquire("job:remind")
    assert mine is not None and mine.generation == 1
    assert second.acquire("job:remind") is None
    again = first.acquire("job:remind")  # asked again by its holder: renewed, same generation
    assert again is not None and again.generation == 1
    time.sleep(TTL + 0.2)
    theirs = second.acquire("job:remind")
    assert theirs is not None and theirs.generation == 2
    with pytest.raises(LeaseLost):
        first.renew(mine)
    with pytest.raises(LeaseLost), app.sessions.begin() as session:
        session.execute(text("UPDATE leases SET renewed_at = renewed_at WHERE name = 'job:remind'"))
        first.fence(session, mine)
    assert lease_row(app, "job:remind").holder == "host:2:b"


def test_renewal_keeps_the_generation_and_release_hands_over_at_once(app: App) -> None:
    leases, other = Leases(app.sessions, "host:1:a", TTL), Leases(app.sessions, "host:2:b", TTL)
    lease = leases.acquire("imap:liaison/INBOX")
    assert lease is not None
    for _ in range(3):
        time.sleep(TTL / 3)
        lease = leases.renew(lease)
    assert lease.generation == 1 and other.acquire("imap:liaison/INBOX") is None  # renewed past the first TTL
    assert leases.release(lease)
    taken = other.acquire("imap:liaison/INBOX")
    assert taken is not None and taken.generation == 2
    assert not leases.release(lease)  # no longer ours: nothing happens to the new holder's row
    assert lease_row(app, "imap:liaison/INBOX").holder == "host:2:b"


def test_an_expired_lease_nobody_took_is_renewed_with_its_generation(app: App) -> None:
    leases = Leases(app.sessions, "host:1:a", TTL)
    lease = leases.acquire("job:digest")
    assert lease is not None
    time.sleep(TTL + 0.1)
    assert leases.renew(lease).generation == lease.generation


def test_a_fenced_off_write_rolls_back_whole(app: App) -> None:
    """The write and the fence share one transaction: LeaseLost leaves nothing of the write."""
    old, new = Leases(app.sessions, "host:1:a", TTL), Leases(app.sessions, "host:2:b", TTL)
    stale = old.acquire("imap:x/INBOX")
    assert stale is not None
    time.sleep(TTL + 0.2)
    assert new.acquire("imap:x/INBOX") is not None
    with pytest.raises(LeaseLost), app.sessions.begin() as session:
        session.add(Event(at=utcnow(), actor="test", action="stale-write", detail={}))
        session.flush()
        old.fence(session, stale)
    assert count(app, Event) == 0


def test_claim_touches_the_database_only_when_renewal_is_due(app: App) -> None:
    ticks = [0.0]
    claim = Claim(Leases(app.sessions, "host:1:a", 30), "job:retention", clock=lambda: ticks[0])
    assert claim.hold()
    renewed = lease_row(app, "job:retention").renewed_at
    ticks[0] = 5.0
    assert claim.hold() and lease_row(app, "job:retention").renewed_at == renewed
    ticks[0] = 11.0  # a third of 30 s has passed
    assert claim.hold() and lease_row(app, "job:retention").renewed_at > renewed
    claim.release()
    assert lease_row(app, "job:retention").holder is None


def test_a_taker_waits_for_the_holders_commit_in_flight(app: App) -> None:
    """The holder fenced inside a transaction that outlives the lease: a taker blocks on the row (PostgreSQL)
    or the write lock (SQLite) until the commit, then takes over with a new generation; never overlapping."""
    holder, taker = Leases(app.sessions, "host:1:a", TTL), Leases(app.sessions, "host:2:b", TTL)
    lease = holder.acquire("imap:y/INBOX")
    assert lease is not None
    committed_at: list[float] = []
    fenced = threading.Event()

    def hold_long() -> None:
        with app.sessions.begin() as session:
            holder.fence(session, lease)
            fenced.set()
            time.sleep(TTL + 0.5)
        committed_at.append(time.monotonic())

    thread = threading.Thread(target=hold_long)
    thread.start()
    fenced.wait(5)
    time.sleep(TTL + 0.2)  # the lease has expired, the holder's transaction is still open
    taken = taker.acquire("imap:y/INBOX")
    taken_at = time.monotonic()
    thread.join()
    assert taken is not None and taken.generation == 2
    assert committed_at and taken_at >= committed_at[0]


@pytest.mark.postgres
def test_a_worker_frozen_inside_a_transaction_loses_it_to_the_server(app: App) -> None:
    """coordinate() sets idle_in_transaction_session_timeout (half a lease): the server ends the frozen
    transaction, its locks go, another worker takes the lease, and the frozen worker commits nothing."""
    if app.engine.dialect.name != "postgresql":
        pytest.skip("one worker on SQLite: no other worker to wait for")
    coordinate(app.engine, app.sessions, str(app.engine.url), 2.0, [])
    frozen, other = Leases(app.sessions, "host:1:a", 2.0), Leases(app.sessions, "host:2:b", 2.0)
    lease = frozen.acquire("imap:z/INBOX")
    assert lease is not None
    with pytest.raises(Exception, match="idle-in-transaction|terminat|closed"), app.sessions.begin() as session:
        frozen.fence(session, lease)
        session.add(Event(at=utcnow(), actor="test", action="frozen-write", detail={}))
        session.flush()
        time.sleep(2.6)  # past the lease, and past the server's idle-in-transaction limit (1 s)
        taken = other.acquire("imap:z/INBOX")
        assert taken is not None and taken.generation == 2
    assert count(app, Event) == 0


# -- the poller under leases, against a real Dovecot ---------------------------------------------


@pytest.mark.postgres
def test_two_pollers_on_one_mailbox_fetch_each_mail_once(dovecot_server: Dovecot, desk: Callable[..., Any],
                                                         db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("several workers need PostgreSQL")
    settings, app = desk()
    append_many(dovecot_server, [make_mail(message_id=f"<l{i}@v.example>") for i in range(12)])
    runners = [PollRunner(settings.imap_all[0], app.ingestor(), leases=Leases(app.sessions, f"h:{i}:t", 5))
               for i in range(2)]
    try:
        for runner in runners:
            runner.run(once=True)
        fetched = [sum(p.fetched for p in r.last_pass) for r in runners]
        assert sorted(fetched) == [0, 12]
        assert runners[1]._client is None  # the one without the lease never logged in
        assert count(app, Message) == 12
        assert lease_row(app, "imap:liaison/INBOX").holder is None  # released when the runner stopped
    finally:
        for runner in runners:
            runner.close()


def test_a_poller_fenced_off_mid_pass_stores_and_marks_nothing(dovecot_server: Dovecot,
                                                               desk: Callable[..., Any]) -> None:
    """A poller that believes it holds the lease (its renewal not yet due, as after a freeze) while another
    worker took it over: its batch rolls back at the fence and no mail is marked; the new holder stores it."""
    settings, app = desk()
    append_many(dovecot_server, [make_mail(message_id=f"<f{i}@v.example>") for i in range(5)])
    frozen_clock = [0.0]
    stale = PollRunner(settings.imap_all[0], app.ingestor(), leases=Leases(app.sessions, "h:1:stale", TTL))
    for claim in stale.claims.values():
        claim._clock = lambda: frozen_clock[0]  # its renewal is never due: it "slept"
    assert stale.held_folders() == ["INBOX"]
    time.sleep(TTL + 0.2)
    fresh = PollRunner(settings.imap_all[0], app.ingestor(), leases=Leases(app.sessions, "h:2:fresh", TTL))
    assert fresh.held_folders() == ["INBOX"]
    try:
        assert stale.step() == 0
        assert stale.claims["INBOX"].lease is None and stale._client is None
        assert count(app, Message) == 0 and count(app, ImapLedgerEntry) == 0
        assert not any(b"\\Seen" in flags for flags in dovecot_server.flags().values())
        assert fresh.step() == 5
        assert count(app, Message) == 5
    finally:
        stale.close()
        fresh.close()


# -- one worker on an SQLite file ----------------------------------------------------------------


def test_a_second_worker_on_sqlite_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'triage.db'}"
    lock = claim_sqlite_database(url, me="host:1:first")
    assert lock is not None
    with pytest.raises(AnotherWorker, match=r"host:1:first.*one worker at a time.*PostgreSQL"):
        claim_sqlite_database(url, me="host:2:second")
    lock.release()
    again = claim_sqlite_database(url, me="host:2:second")
    assert again is not None
    again.release()


def test_the_worker_command_refuses_a_second_worker_on_sqlite(tmp_path: Path) -> None:
    """Two real worker processes on one SQLite file: the second exits 2 and says why and what to do;
    once the first is killed (SIGKILL: no clean-up), a new one starts."""
    maildir = tmp_path / "spool"
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True)
    env = {**os.environ, "TRIAGE_DATABASE_URL": f"sqlite:///{tmp_path / 'triage.db'}",
           "TRIAGE_INGEST_SPOOL_MAILDIR": str(maildir), "TRIAGE_REMINDERS_ENABLED": "false",
           "TRIAGE_DIGEST_ENABLED": "false", "TRIAGE_ROUTING_TEAMS_FILE": str(tmp_path / "none.toml"),
           "TRIAGE_WORKER_LISTEN": "127.0.0.1:0"}
    command = [sys.executable, "-m", "triage.worker"]
    first = subprocess.Popen(command, env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        lock_file = tmp_path / "triage.db.worker-lock"
        while not (lock_file.exists() and lock_file.read_text()) and time.monotonic() < deadline:
            assert first.poll() is None, first.stderr.read() if first.stderr else ""
            time.sleep(0.1)
        second = subprocess.run(command, check=False, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert second.returncode == 2
        assert "already runs on the SQLite database" in second.stderr and "PostgreSQL" in second.stderr
    finally:
        first.kill()
        first.wait()
    third = subprocess.run([*command, "--once"], check=False, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert third.returncode == 0, third.stderr


def test_leases_table_counts(app: App) -> None:
    """Every lease name is one row, whatever the number of workers that asked for it."""
    for i in range(3):
        Leases(app.sessions, f"h:{i}:x", TTL).acquire("job:remind")
    with app.sessions() as session:
        assert session.scalar(select(func.count()).select_from(LeaseRow)) == 1


# -- mailboxes shared out among the pollers -------------------------------------------------------


def _poller(app: App, holder: str, names: list[str]) -> tuple[MailboxShare, list[Claim]]:
    leases = Leases(app.sessions, holder, TTL)
    share = MailboxShare(leases, len(names))
    claims = [Claim(leases, name) for name in names]
    for claim in claims:
        claim.share = share
    return share, claims


def _holders(app: App, names: list[str]) -> dict[str, str | None]:
    with app.sessions() as session:
        return {row.name: row.holder for row in session.scalars(select(LeaseRow).where(LeaseRow.name.in_(names)))}


def test_a_second_poller_gets_its_share_and_the_survivor_takes_all_back(app: App) -> None:
    """The first poller takes all four mailboxes; a second one that starts gets two within a few renewals
    (the first gives back what is over its share), never a mailbox held twice; when the second stops
    renewing (dies), the first takes all four back once its presence and leases lapse."""
    names = [f"imap:box{i}/INBOX" for i in range(4)]
    _, first = _poller(app, "h:1:first", names)
    assert all(claim.hold() for claim in first)
    _, second = _poller(app, "h:2:second", names)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for claim in first + second:
            claim.hold()
        held_first = sum(c.lease is not None for c in first)
        held_second = sum(c.lease is not None for c in second)
        assert not any(a.lease and b.lease for a, b in zip(first, second, strict=True)), "a mailbox held twice"
        if (held_first, held_second) == (2, 2):
            break
        time.sleep(0.03)
    assert (held_first, held_second) == (2, 2)
    holders = _holders(app, names)
    assert sorted(holders.values()) == ["h:1:first"] * 2 + ["h:2:second"] * 2
    deadline = time.monotonic() + 10  # the second dies: nobody renews its presence and mailboxes
    while time.monotonic() < deadline and not all(claim.lease for claim in first):
        for claim in first:
            claim.hold()
        time.sleep(0.03)
    assert all(claim.lease for claim in first)
    assert set(_holders(app, names).values()) == {"h:1:first"}


def test_a_mailbox_only_one_poller_reads_is_never_given_back(app: App) -> None:
    """Two pollers configured for different mailboxes (a static split): each over its computed share of
    one, but nobody else wants its mailboxes, so each keeps both and every mailbox stays read."""
    _, first = _poller(app, "h:1:first", ["imap:a/INBOX", "imap:b/INBOX"])
    _, second = _poller(app, "h:2:second", ["imap:c/INBOX", "imap:d/INBOX"])
    deadline = time.monotonic() + 3  # several renewal periods (TTL / 3 each)
    while time.monotonic() < deadline:
        for claim in first + second:
            claim.hold()
        time.sleep(0.03)
    assert all(claim.lease is not None for claim in first + second)
