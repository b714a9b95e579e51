"""A stranger who knows a ticket's Message-ID or reference never writes into it, on SQLite and PostgreSQL.

Each test runs on both threading paths (the set-based batch and the per-mail fallback) and on
both engines. The participants of a ticket are its contact and the addresses our own mail on
it went to; anyone else's person-written mail opens a new ticket, linked and flagged.
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Callable
from datetime import datetime

import pytest
from sqlalchemy import select

from tests.conftest import Clock, make_mail
from tests.test_outbox import MakeApp, fixture_make_app, outbox_rows  # noqa: F401 - fixture_make_app: make_app
from triage.bootstrap import App
from triage.ingest.pipeline import Ingestor, IngestOutcome
from triage.outbox.queue import OutboxError, build_reply, enqueue_handoff
from triage.store.blobs import put_blob
from triage.store.models import Direction, Event, Message, Ticket, TicketStatus

EVE = "Eve <eve@elsewhere.example>"
OURS = "mx.example.org"

Ingest = Callable[..., IngestOutcome]


@pytest.fixture(params=[True, False], ids=["batch", "per-mail"])
def set_based(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def ingest_with(app: App, clock: Clock, set_based: bool) -> Ingest:
    mail = app.settings.mail.model_copy(update={"trusted_authserv_ids": [OURS]})
    ingestor = Ingestor(app.sessions, mail, clock=clock, set_based=set_based, outbox=app.wiring)

    def ingest(raw: bytes) -> IngestOutcome:
        outcome = ingestor.ingest(raw)
        assert outcome.status == "stored", outcome
        return outcome

    assert ingestor.fallbacks == 0
    return ingest


def ticket(app: App, reference: str | None) -> Ticket:
    with app.sessions() as session:
        return session.scalars(select(Ticket).where(Ticket.reference == reference)).one()


def set_status(app: App, reference: str | None, status: TicketStatus) -> None:
    with app.sessions.begin() as session:
        session.scalars(select(Ticket).where(Ticket.reference == reference)).one().status = status


def with_auth(raw: bytes, *fields: str) -> bytes:
    """The mail as our server delivers it: its Authentication-Results fields on top."""
    return b"".join(f"{field}\n".encode() for field in fields) + raw


def test_a_stranger_replying_by_header_opens_a_linked_flagged_ticket(
    make_app: MakeApp, clock: Clock, set_based: bool
) -> None:
    """In-Reply-To or References to a resolved ticket's mail: a new flagged ticket; the old one stays resolved."""
    app = make_app(TRIAGE_OUTBOX_AUTO_ACKNOWLEDGE="false")
    ingest = ingest_with(app, clock, set_based)
    first = ingest(make_mail(message_id="<a1@volunteers.example>"))
    set_status(app, first.ticket_reference, TicketStatus.resolved)
    by_reply = ingest(make_mail(sender=EVE, message_id="<e1@elsewhere.example>", subject="Re: logo",
                                in_reply_to="<a1@volunteers.example>", body="EVE WRITES HERE\n"))
    by_refs = ingest(make_mail(sender=EVE, message_id="<e2@elsewhere.example>", subject="Re: logo",
                               references=["<a1@volunteers.example>", "<e1@elsewhere.example>"]))
    for outcome in (by_reply, by_refs):
        assert outcome.ticket_reference not in (None, first.ticket_reference)
        opened = ticket(app, outcome.ticket_reference)
        assert opened.linked_ticket_id == ticket(app, first.ticket_reference).id
        assert opened.flag == f"unknown sender replied on {first.ticket_reference}"
    assert ticket(app, first.ticket_reference).status is TicketStatus.resolved
    with app.sessions() as session:
        on_first = session.scalars(select(Message.from_addr).join(Ticket).where(
            Ticket.reference == first.ticket_reference)).all()
        assert on_first == ["ada@volunteers.example"]
        assert not session.scalars(select(Event).where(Event.action == "reopened")).all()

    answer = ingest(make_mail(message_id="<a2@volunteers.example>", subject="Re: logo",
                              in_reply_to="<a1@volunteers.example>"))
    assert answer.ticket_reference == first.ticket_reference  # the volunteer still joins, and reopens
    assert ticket(app, first.ticket_reference).status is TicketStatus.open


def test_a_stranger_never_changes_a_waiting_ticket(make_app: MakeApp, clock: Clock, set_based: bool) -> None:
    """A stranger's reply to our acknowledgment leaves the ticket waiting; the volunteer's opens it."""
    app = make_app()
    ingest = ingest_with(app, clock, set_based)
    first = ingest(make_mail(message_id="<a1@volunteers.example>"))
    [ack] = outbox_rows(app)
    set_status(app, first.ticket_reference, TicketStatus.waiting)
    stranger = ingest(make_mail(sender=EVE, message_id="<e1@elsewhere.example>", in_reply_to=ack.message_id,
                                subject=f"Re: [{first.ticket_reference}] logo"))
    assert stranger.ticket_reference != first.ticket_reference
    assert ticket(app, first.ticket_reference).status is TicketStatus.waiting
    again = ingest(make_mail(sender=EVE, message_id="<e2@elsewhere.example>", in_reply_to=ack.message_id))
    assert again.ticket_reference not in (first.ticket_reference, stranger.ticket_reference)  # never a participant
    ingest(make_mail(message_id="<a2@volunteers.example>", in_reply_to=ack.message_id))
    assert ticket(app, first.ticket_reference).status is TicketStatus.open


def test_the_team_we_handed_the_ticket_to_is_a_participant(make_app: MakeApp, clock: Clock, set_based: bool) -> None:
    """Our hand-off went to legal@: its answer by header joins the ticket; a colleague's personal address does not."""
    app = make_app(TRIAGE_OUTBOX_AUTO_ACKNOWLEDGE="false")
    ingest = ingest_with(app, clock, set_based)
    first = ingest(make_mail(message_id="<a1@volunteers.example>"))
    with app.sessions.begin() as session:
        enqueue_handoff(session, session.scalars(select(Ticket)).one(), "legal", "liaison", clock.now, wiring=app.wiring)
    team_mail = outbox_rows(app)[0]
    team = ingest(make_mail(sender="Legal <LEGAL@example.org>", message_id="<l1@example.org>",
                            in_reply_to=team_mail.message_id))
    colleague = ingest(make_mail(sender="Bob <bob@example.org>", message_id="<b1@example.org>",
                                 in_reply_to=team_mail.message_id))
    assert team.ticket_reference == first.ticket_reference
    assert colleague.ticket_reference != first.ticket_reference


def test_bounces_and_autoreplies_still_attach_by_header_without_effect(
    make_app: MakeApp, clock: Clock, set_based: bool
) -> None:
    """A server's bounce or a stranger's auto-reply naming a resolved ticket's mail is filed there; nothing changes."""
    app = make_app(TRIAGE_OUTBOX_AUTO_ACKNOWLEDGE="false")
    ingest = ingest_with(app, clock, set_based)
    first = ingest(make_mail(message_id="<a1@volunteers.example>"))
    set_status(app, first.ticket_reference, TicketStatus.resolved)
    autoreply = ingest(make_mail(sender=EVE, message_id="<o1@elsewhere.example>", subject="Out of office",
                                 in_reply_to="<a1@volunteers.example>", headers={"Auto-Submitted": "auto-replied"}))
    bounce = ingest(make_mail(sender="MAILER-DAEMON@mx.elsewhere.example", message_id="<d1@mx.elsewhere.example>",
                              subject="Undelivered Mail Returned to Sender", references=["<a1@volunteers.example>"],
                              body="This is the mail system at host mx. Your message could not be delivered.\n",
                              headers={"Return-Path": "<>"}))
    assert autoreply.ticket_reference == bounce.ticket_reference == first.ticket_reference
    assert "filed without effect" in autoreply.reason and "filed without effect" in bounce.reason
    resolved = ticket(app, first.ticket_reference)
    assert resolved.status is TicketStatus.resolved and resolved.flag is None


def test_a_participant_whose_from_fails_dmarc_at_our_server_is_a_stranger(
    make_app: MakeApp, clock: Clock, set_based: bool
) -> None:
    """Our server's DMARC fail on top (a forged pass below it is not read): flagged; a pass or no result joins."""
    app = make_app(TRIAGE_OUTBOX_AUTO_ACKNOWLEDGE="false")
    ingest = ingest_with(app, clock, set_based)
    first = ingest(make_mail(message_id="<a1@volunteers.example>"))
    forged = ingest(with_auth(
        make_mail(message_id="<f1@volunteers.example>", in_reply_to="<a1@volunteers.example>",
                  headers={"Authentication-Results": f"{OURS}; dmarc=pass header.from=volunteers.example"}),
        f"Authentication-Results: {OURS}; dmarc=fail (p=reject) header.from=volunteers.example",
        "Received: from mx.elsewhere.example by mx.example.org",
    ))
    assert forged.ticket_reference != first.ticket_reference
    assert (ticket(app, forged.ticket_reference).flag or "").startswith("forged participant")
    not_ours = ingest(with_auth(make_mail(message_id="<f2@volunteers.example>", in_reply_to="<a1@volunteers.example>"),
                                "Authentication-Results: mx.elsewhere.example; dmarc=fail"))
    passed = ingest(with_auth(make_mail(message_id="<a2@volunteers.example>", in_reply_to="<a1@volunteers.example>"),
                              f"Authentication-Results: {OURS}; dmarc=pass header.from=volunteers.example"))
    assert not_ours.ticket_reference == passed.ticket_reference == first.ticket_reference


def _legacy_stranger_mail(app: App, reference: str | None, now: datetime) -> None:
    """A stranger's mail on the ticket, as a database written before the participant rule may hold it."""
    with app.sessions.begin() as session:
        row = session.scalars(select(Ticket).where(Ticket.reference == reference)).one()
        session.add(Message(
            ticket_id=row.id, direction=Direction.inbound, message_id="<e0@elsewhere.example>",
            in_reply_to=None, references=[], from_addr="eve@elsewhere.example", from_name="Eve",
            to_addrs=["liaison@example.org"], cc_addrs=[], subject="Re: logo", date=now, received_at=now,
            body_text="EVE WRITES HERE", new_text="EVE WRITES HERE", quoted_text="", signature="",
            body_html=None, kind="normal", kind_reason=None, list_id=None, defects=[], size=10,
            oversize=False, raw_sha256=put_blob(session, b"From: eve@elsewhere.example\n\nEVE WRITES HERE"), source="legacy", thread_reason="legacy", extra={},
        ))


def test_the_handoff_quotes_the_contacts_own_latest_mail(make_app: MakeApp, clock: Clock) -> None:
    """Neither the team's answer nor a stranger's mail on the ticket is quoted to a team as the volunteer's words."""
    app = make_app(TRIAGE_OUTBOX_AUTO_ACKNOWLEDGE="false")
    ingest = ingest_with(app, clock, True)
    first = ingest(make_mail(message_id="<a1@volunteers.example>", body="ADA ASKS ABOUT THE LOGO\n"))
    with app.sessions.begin() as session:
        enqueue_handoff(session, session.scalars(select(Ticket)).one(), "legal", "liaison", clock.now, wiring=app.wiring)
    ingest(make_mail(sender="Legal <legal@example.org>", message_id="<l1@example.org>", body="LEGAL NOTES\n",
                     in_reply_to=outbox_rows(app)[0].message_id))
    clock.advance(minutes=5)
    _legacy_stranger_mail(app, first.ticket_reference, clock.now)
    with app.sessions.begin() as session:
        enqueue_handoff(session, session.scalars(select(Ticket)).one(), "communications", "liaison", clock.now, wiring=app.wiring)
    handoff = email.message_from_bytes(outbox_rows(app)[-2].raw, policy=email.policy.default)
    text = handoff.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "ADA ASKS ABOUT THE LOGO" in text and "LEGAL NOTES" not in text and "EVE WRITES" not in text
    assert "Ada Volunteer <ada@volunteers.example> asked:" in text
    with app.sessions() as session:
        _, reply = build_reply(session, ticket(app, first.ticket_reference), template="reply", body="Yes.",
                               now=clock.now, wiring=app.wiring)
    assert reply["In-Reply-To"] == "<a1@volunteers.example>" and str(reply["To"]) == "Ada Volunteer <ada@volunteers.example>"


def test_a_reply_never_goes_to_a_sender_who_is_not_the_contact(make_app: MakeApp, clock: Clock) -> None:
    """A ticket without a contact (its mail had no From) has no one to answer, whoever else wrote on it."""
    app = make_app(TRIAGE_OUTBOX_AUTO_ACKNOWLEDGE="false")
    ingest = ingest_with(app, clock, True)
    raw = make_mail(message_id="<n1@volunteers.example>")
    anonymous = ingest(b"".join(line for line in raw.splitlines(keepends=True) if not line.startswith(b"From:")))
    assert ticket(app, anonymous.ticket_reference).contact_id is None
    _legacy_stranger_mail(app, anonymous.ticket_reference, clock.now)
    with app.sessions() as session, pytest.raises(OutboxError, match="no sender address"):
        build_reply(session, ticket(app, anonymous.ticket_reference), template="reply", body="Hi", now=clock.now, wiring=app.wiring)


def test_without_a_contact_the_opening_mail_stands_for_the_volunteer(app: App) -> None:
    """A ticket opened by a mail without a From has no contact: a later From-less mail on it is
    not the volunteer's word (nobody's is known), so the opening mail is the one answered."""
    from triage.ingest.pipeline import IncomingMail
    from triage.outbox.mails import load_view
    from triage.store.models import Message, Ticket

    def fromless(message_id: str) -> bytes:
        return make_mail(message_id=message_id).replace(b"From: Ada Volunteer <ada@volunteers.example>\n", b"")

    app.ingestor().ingest_many([IncomingMail(fromless("<open@volunteers.example>"), source="test"),
                                IncomingMail(fromless("<later@elsewhere.example>"), source="test")])
    with app.sessions.begin() as session:
        opening, later = session.scalars(select(Message).order_by(Message.id)).all()
        assert opening.from_addr is None and later.from_addr is None
        later.ticket_id = opening.ticket_id  # as if threading had joined it
        ticket_id = opening.ticket_id
    with app.reads() as session:
        ticket = session.get(Ticket, ticket_id)
        assert ticket is not None and ticket.contact_id is None
        view = load_view(session, ticket)
        assert view.last_inbound is not None and view.last_inbound.message_id == "<open@volunteers.example>"
