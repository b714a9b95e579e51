"""The bundled sample mailbox, end to end: what the quickstart shows is what triage does."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from sqlalchemy import select

from tests.conftest import Clock
from triage.bootstrap import App
from triage.ingest.pipeline import IncomingMail, Ingestor
from triage.ingest.sources import open_source
from triage.queries import list_tickets, ticket_detail
from triage.store.models import Contact, Event, Message, Ticket

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample-mailbox"

# ticket number -> messages on it, from data/sample-mailbox/README.md
EXPECTED_MESSAGES = {1: 2, 2: 2, 3: 2, 5: 2, 8: 2, 9: 2, 14: 2}


def test_sample_mailbox_threads_as_documented(app: App, clock: Clock) -> None:
    """30 mails: 21 tickets, follow-ups threaded, duplicate once, leak flagged, bounce and autoreply kinds."""
    ingestor = Ingestor(app.sessions, app.settings.mail, clock=clock)
    outcomes = [ingestor.ingest(raw, source=label).status for label, raw in open_source(SAMPLE)]
    assert outcomes.count("stored") == 29 and outcomes.count("duplicate") == 1 and "quarantined" not in outcomes
    with app.sessions() as session:
        tickets = list_tickets(session)
        assert [t["reference"] for t in tickets] == [f"T-2026-{n:05d}" for n in range(1, 22)]
        for number, ticket in enumerate(tickets, start=1):
            assert ticket["messages"] == EXPECTED_MESSAGES.get(number, 1), ticket
        leak = ticket_detail(session, "T-2026-00020")
        assert leak["linked_ticket"] == "T-2026-00005" and leak["flag"]
        kinds = {m.kind for m in session.scalars(select(Message))}
        assert kinds == {"normal", "autoreply", "bounce"}
        autoreply = session.scalars(select(Message).where(Message.kind == "autoreply")).one()
        assert autoreply.ticket is not None and autoreply.ticket.reference == "T-2026-00008"
        bounce = session.scalars(select(Message).where(Message.kind == "bounce")).one()
        assert bounce.ticket_id is None  # the desk's bounced reply is not in this database
        grant = ticket_detail(session, "T-2026-00010")
        assert [a["filename"] for a in grant["messages"][0]["attachments"]] == ["Звіт_мікрогрант_Q3.pdf"]
        listed = session.scalars(select(Message).where(Message.list_id.is_not(None))).one()
        assert listed.ticket is not None and listed.ticket.reference == "T-2026-00021"


def _snapshot(app: App) -> list[tuple[object, ...]]:
    with app.sessions() as session:
        rows = session.execute(
            select(Message.message_id, Message.raw_sha256, Message.thread_reason, Message.kind,
                   Ticket.reference, Ticket.status, Ticket.flag, Ticket.linked_ticket_id)
            .outerjoin(Ticket, Ticket.id == Message.ticket_id).order_by(Message.id)
        )
        messages = [tuple(r) for r in rows]
        events = [tuple(r) for r in session.execute(
            select(Ticket.reference, Event.action, Event.detail).join(Ticket, Ticket.id == Event.ticket_id)
            .order_by(Event.ticket_id, Event.action, Event.id)
        )]
        contacts = [tuple(r) for r in session.execute(select(Contact.address, Contact.name).order_by(Contact.address))]
    return messages + events + contacts  # type: ignore[operator]


def test_set_based_and_per_mail_paths_store_the_same(app: App, clock: Clock, tmp_path: Path) -> None:
    """The fast batch path and the per-mail fallback produce the same tickets, threading, events, contacts."""
    from triage.bootstrap import bootstrap
    from triage.config import load_settings

    mails = [IncomingMail(raw, source=label) for label, raw in open_source(SAMPLE)]
    fast = Ingestor(app.sessions, app.settings.mail, clock=clock)
    assert [o.status for o in fast.ingest_many(mails)].count("stored") == 29
    assert fast.fallbacks == 0  # the batch path stored it all, not the per-mail fallback
    other = bootstrap(load_settings(environ={"TRIAGE_DATABASE_URL": f"sqlite:///{tmp_path / 'slow.db'}"}))
    try:
        slow = Ingestor(other.sessions, other.settings.mail, clock=clock, set_based=False)
        slow.ingest_many(mails)
        assert _snapshot(app) == _snapshot(other)
    finally:
        other.close()


def test_one_unstorable_mail_in_a_batch_is_quarantined_alone(app: App, clock: Clock) -> None:
    """A mail that breaks the batch insert is isolated by the per-mail fallback; the rest are stored."""
    real = Ingestor(app.sessions, app.settings.mail, clock=clock)
    mails = [raw for _, raw in open_source(SAMPLE)][:6]

    def parser(raw: bytes, *, max_size: int):  # type: ignore[no-untyped-def]
        parsed = real.parse(raw)
        if raw == mails[2]:
            return replace(parsed, defects=[object()])  # not JSON: the insert of this row fails
        return parsed

    ingestor = Ingestor(app.sessions, app.settings.mail, clock=clock, parser=parser)
    outcomes = ingestor.ingest_many([IncomingMail(raw) for raw in mails])
    assert [o.status for o in outcomes].count("quarantined") == 1 and outcomes[2].status == "quarantined"
    assert ingestor.fallbacks == 1
    assert all(o.status in ("stored", "duplicate") for i, o in enumerate(outcomes) if i != 2)
