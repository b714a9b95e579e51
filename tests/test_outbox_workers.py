"""Several senders on one database: each mail is claimed by one sender and delivered once, and
dead claims recovered by two workers at the same moment are each resolved once."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.servers.smtp_sink import SmtpSink, fixture_make_smtp_sink, fixture_smtp_sink  # noqa: F401 - fixtures
from tests.together import run_together
from triage.bootstrap import bootstrap
from triage.config import Settings, load_settings
from triage.outbox.queue import enqueue
from triage.outbox.sender import CopyFinder, OutboxSender
from triage.store.db import make_engine, make_session_factory, utcnow
from triage.store.models import Event
from triage.store.outbox_models import Outbox, OutboxStatus, SmtpPhase

MAILS = 200

Sessions = Callable[[], sessionmaker[Session]]


@pytest.fixture
def db(db_url: str, smtp_sink: SmtpSink) -> Iterator[tuple[Settings, Sessions]]:
    """The settings (SMTP: the sink) and a maker of session factories, each on an engine of its own,
    as separate workers have; the schema is made once by bootstrap."""
    settings = load_settings(environ={"TRIAGE_DATABASE_URL": db_url, "TRIAGE_SMTP_HOST": smtp_sink.host,
                                      "TRIAGE_SMTP_PORT": str(smtp_sink.port), "TRIAGE_SMTP_SECURITY": "none"})
    bootstrap(settings).close()
    engines = []

    def sessions() -> sessionmaker[Session]:
        engines.append(make_engine(db_url))
        return make_session_factory(engines[-1])

    try:
        yield settings, sessions
    finally:
        for engine in engines:
            engine.dispose()


def queue_mails(sessions: sessionmaker[Session], n: int) -> list[str]:
    """`n` mails to `n` volunteers, queued as the desk queues them."""
    now, ids = utcnow(), []
    with sessions.begin() as session:
        for i in range(n):
            message = EmailMessage()
            message["From"], message["To"] = "liaison@example.org", f"vol{i}@volunteers.example"
            message["Subject"], message["Message-ID"] = f"About your question {i}", make_msgid(domain="example.org")
            message.set_content(f"Hello {i},\n\nhere is the answer.\n")
            ids.append(enqueue(session, message, template="reply", actor="liaison:test", now=now,
                               ticket_id=None).message_id)
    return ids


def test_two_senders_deliver_every_mail_once_taking_different_rows(
    db: tuple[Settings, Sessions], smtp_sink: SmtpSink
) -> None:
    """Two senders, each with its own engine, deliver 200 mails at the same time: every mail
    arrives once, each sender claimed rows the other never claimed (every row was claimed once),
    both did part of the work, and no claim was lost to the other sender."""
    settings, sessions = db
    queued = queue_mails(sessions(), MAILS)
    senders = [OutboxSender(sessions(), settings, worker=f"host-{name}:1:{name}") for name in "ab"]
    started = time.monotonic()
    reports = run_together(*(lambda s=s: s.send_due(limit=10 * MAILS) for s in senders))
    elapsed = time.monotonic() - started
    received = Counter(smtp_sink.message_ids())
    assert received == Counter(queued), "every queued mail arrives exactly once"
    claimed = [{line["id"] for line in r.rows} for r in reports]
    assert not claimed[0] & claimed[1] and len(claimed[0] | claimed[1]) == MAILS
    assert [r.sent for r in reports] == [len(c) for c in claimed] and all(r.sent > 0 for r in reports), reports
    assert [r.contended for r in reports] == [0, 0]
    with sessions()() as session:
        rows = session.scalars(select(Outbox)).all()
    assert {r.status for r in rows} == {OutboxStatus.sent} and {r.attempts for r in rows} == {1}
    assert elapsed < 60


def test_two_workers_recovering_at_once_resolve_each_dead_claim_once(db: tuple[Settings, Sessions]) -> None:
    """Dead claims (another host's, past the lease): before the final dot and after it. Two
    workers recover at the same moment, their copy lookups disagreeing (one finds every mail in
    the server's copy, the other none) and slow: each row is taken back or resolved by one of
    them, once, and its status agrees with the one event that says so."""
    settings, sessions = db
    first = sessions()
    queue_mails(first, 40)
    long_ago = utcnow() - timedelta(seconds=2 * settings.outbox.lease_seconds)
    with first.begin() as session:
        for row in session.scalars(select(Outbox)):
            row.status, row.claimed_by, row.claimed_at = OutboxStatus.sending, "gone-host:4242:dead", long_ago
            row.smtp_phase = SmtpPhase.data_end if row.id % 2 else SmtpPhase.claimed

    def finder(found: bool) -> CopyFinder:
        def look_up(message_id: str) -> bool:
            time.sleep(0.01)  # an IMAP search takes a while: time for the other worker to interfere
            return found
        return look_up

    workers = [OutboxSender(sessions(), settings, worker=f"host-{name}:1:{name}", confirm_copy=finder(found))
               for name, found in (("a", True), ("b", False))]
    reports = run_together(*(lambda w=w: w.recover() for w in workers))
    assert sum(r.recovered for r in reports) == 20 and sum(r.sent + r.uncertain for r in reports) == 20
    with first() as session:
        rows = {r.id: r for r in session.scalars(select(Outbox))}
        events = session.scalars(select(Event).where(Event.action.in_(
            ["mail-recovered", "mail-sent", "mail-uncertain"]))).all()
    per_row = Counter(e.detail["outbox"] for e in events)
    assert set(per_row) == set(rows) and set(per_row.values()) == {1}, per_row
    expected = {"mail-recovered": OutboxStatus.pending, "mail-sent": OutboxStatus.sent,
                "mail-uncertain": OutboxStatus.uncertain}
    for event in events:
        row = rows[event.detail["outbox"]]
        assert row.status is expected[event.action] and row.claimed_by is None, (row.id, row.status, event.action)
        assert (row.smtp_phase is SmtpPhase.data_end) == (event.action != "mail-recovered")
    assert all(w.recover().touched == 0 for w in workers)  # nothing is left to take back


def test_a_sender_whose_claim_was_taken_back_stops_before_the_final_dot(
    db: tuple[Settings, Sessions], smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sender A stalls past the lease with the whole message on the wire but its final dot; sender
    B, on another host, takes the claim back meanwhile (injected at that moment). A then finds the
    claim gone: it drops the connection without the dot (the server discards the message; no QUIT
    read as message data, no wait for a reply that never comes) and records nothing; B's retry is
    the one delivery."""
    settings, sessions = db
    [message_id] = queue_mails(sessions(), 1)
    later = utcnow() + timedelta(seconds=2 * settings.outbox.lease_seconds)
    a = OutboxSender(sessions(), settings, worker="host-a:1:a")
    b = OutboxSender(sessions(), settings, worker="host-b:1:b", clock=lambda: later)
    mark_data_end = a._mark_data_end

    def stalled_past_the_lease(row_id: int) -> None:
        assert b.recover().recovered == 1
        mark_data_end(row_id)

    monkeypatch.setattr(a, "_mark_data_end", stalled_past_the_lease)
    started = time.monotonic()
    report = a.send_due()
    assert time.monotonic() - started < settings.smtp.timeout_seconds / 2
    assert report.touched == 0 and smtp_sink.messages == []
    with sessions()() as session:
        row = session.scalars(select(Outbox)).one()
        assert row.status is OutboxStatus.pending and row.claimed_by is None and row.smtp_phase is None
    assert b.send_due().sent == 1
    assert smtp_sink.message_ids() == [message_id]
