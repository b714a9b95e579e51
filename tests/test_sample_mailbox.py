"""The bundled sample mailbox, end to end: what the quickstart shows is what triage does."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from tests.conftest import Clock
from triage.bootstrap import App
from triage.ingest.pipeline import Ingestor
from triage.ingest.sources import open_source
from triage.queries import list_tickets, ticket_detail
from triage.store.models import Message

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
