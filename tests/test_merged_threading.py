"""Mail that threads onto a merged ticket lands on the survivor (issue 12, Merge): by header or by
subject reference, through a chain of merges, on the batch path and the one-mail path alike."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.conftest import Clock, make_mail
from triage.bootstrap import App
from triage.ingest.pipeline import IncomingMail
from triage.store.models import Event, Message, Ticket, TicketStatus


@pytest.fixture(params=[True, False], ids=["batch", "one-by-one"])
def set_based(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def ingest(app: App, clock: Clock, set_based: bool, raw: bytes) -> str:
    [outcome] = app.ingestor(clock=clock, set_based=set_based).ingest_many([IncomingMail(raw, source="test")])
    assert outcome.status == "stored" and outcome.ticket_reference, outcome
    return outcome.ticket_reference


def merge(app: App, merged: str, survivor: str, *, status: TicketStatus | None = None) -> None:
    """What the merge use case leaves behind: the merged ticket points at the survivor."""
    with app.sessions.begin() as session:
        ticket = session.scalars(select(Ticket).where(Ticket.reference == merged)).one()
        ticket.merged_into_id = session.scalars(select(Ticket.id).where(Ticket.reference == survivor)).one()
        if status is not None:
            ticket.status = status


def three_tickets(app: App, clock: Clock, set_based: bool) -> list[str]:
    return [ingest(app, clock, set_based, make_mail(subject=f"Question {n}", message_id=f"<q{n}@volunteers.example>"))
            for n in (1, 2, 3)]


def message(app: App, message_id: str) -> tuple[str, str]:
    with app.sessions() as session:
        row = session.scalars(select(Message).where(Message.message_id == message_id)).one()
        assert row.ticket is not None
        return row.ticket.reference, row.thread_reason


def test_a_reply_to_a_merged_tickets_mail_lands_on_the_survivor(app: App, clock: Clock, set_based: bool) -> None:
    """In-Reply-To names a mail of the merged ticket: the reply is filed on the survivor, and says why."""
    first, second, _ = three_tickets(app, clock, set_based)
    merge(app, first, second)
    ingest(app, clock, set_based, make_mail(subject="Re: Question 1", message_id="<r1@volunteers.example>",
                                            in_reply_to="<q1@volunteers.example>"))
    reference, reason = message(app, "<r1@volunteers.example>")
    assert reference == second
    assert f"{first} was merged into {second}" in reason and "from a participant" in reason


def test_a_subject_reference_follows_a_chain_of_merges(app: App, clock: Clock, set_based: bool) -> None:
    """T1 merged into T2, T2 into T3: mail citing T1 lands on T3; the merged tickets' status is not its."""
    first, second, third = three_tickets(app, clock, set_based)
    merge(app, first, second, status=TicketStatus.resolved)
    merge(app, second, third, status=TicketStatus.resolved)
    with app.sessions.begin() as session:
        session.scalars(select(Ticket).where(Ticket.reference == third)).one().status = TicketStatus.waiting
    ingest(app, clock, set_based, make_mail(subject=f"Re: [{first}] Question 1", message_id="<r2@volunteers.example>"))
    reference, reason = message(app, "<r2@volunteers.example>")
    assert reference == third and f"{first} was merged into {third}" in reason
    with app.sessions() as session:
        tickets = {t.reference: t for t in session.scalars(select(Ticket))}
        assert tickets[third].status == TicketStatus.open  # the survivor was waiting on the volunteer
        assert tickets[first].status == tickets[second].status == TicketStatus.resolved  # not reopened
        assert not list(session.scalars(select(Event).where(Event.action == "reopened")))


def test_a_stranger_citing_a_merged_ticket_is_linked_to_the_survivor(app: App, clock: Clock, set_based: bool) -> None:
    """The stranger guard still holds across a merge: a new flagged ticket, linked to the survivor."""
    first, second, _ = three_tickets(app, clock, set_based)
    merge(app, first, second)
    opened = ingest(app, clock, set_based, make_mail(sender="Eve <eve@elsewhere.example>",
                                                     subject=f"Re: [{first}] Question 1",
                                                     message_id="<e1@elsewhere.example>"))
    with app.sessions() as session:
        tickets = {t.reference: t for t in session.scalars(select(Ticket))}
        assert opened not in (first, second)
        assert tickets[opened].linked_ticket_id == tickets[second].id and tickets[opened].flag
