"""Staff by mail (issue 12), like Request Tracker's correspond and comment addresses, end to end
through the ingest path, the outbox and a real SMTP server (aiosmtpd on loopback): a reply from the
team the ticket was handed to is relayed to the volunteer from the desk, threaded into the
volunteer's conversation, exactly once; a mail to the comment address stays an internal note;
nobody else may use either path."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.conftest import Clock, make_mail
from tests.servers.smtp_sink import (  # noqa: F401 - fixtures, found by pytest under their names
    SmtpSink,
    fixture_make_smtp_sink,
    fixture_smtp_sink,
)
from tests.test_outbox import MakeApp, actions, fixture_make_app, outbox_rows  # noqa: F401 - fixture: make_app
from triage.bootstrap import App
from triage.ingest.pipeline import IncomingMail, IngestOutcome
from triage.outbox.sender import OutboxSender
from triage.routing.desk import Router
from triage.store.models import Event, Message, Ticket, TicketStatus
from triage.store.outbox_models import Outbox

TEAMS = """
[teams.legal]
name = "Legal"
address = "legal@example.org"
members = ["rosa@example.org"]

[teams.technology]
name = "Technology"
address = "technology@example.org"
members = ["tom@example.org"]
"""
ROSA_TEXT = "Yes, your chapter may use the logo on the banner."
NOTE_TEXT = "Internal: the trademark file says banners are fine; no need to tell her."


def headers(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


@pytest.fixture(params=[True, False], ids=["batch", "one-by-one"])
def set_based(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


class Desk:
    """A desk with Ada's ticket handed to Legal, Ada's follow-up on it, and the mail so far sent."""

    def __init__(self, app: App, sink: SmtpSink, clock: Clock, set_based: bool) -> None:
        self.app, self.sink, self.clock = app, sink, clock
        self.ingestor = app.ingestor(clock=clock, set_based=set_based)
        first = self.ingest(make_mail(message_id="<v1@volunteers.example>"))
        assert first.ticket_reference is not None
        self.reference = first.ticket_reference
        Router(app.sessions, None, app.wiring.teams, clock=clock, on_routed=app.handoff).approve(
            self.reference, actor="liaison:ana", team="legal")
        self.ingest(make_mail(message_id="<v2@volunteers.example>", subject=f"Re: [{self.reference}] logo",
                              in_reply_to="<v1@volunteers.example>", references=["<v1@volunteers.example>"],
                              body="One more thing: the banner is 3 m wide.\n"))
        self.send()
        self.handoff = next(m for m in self.sink.messages if m.rcpt_tos == ("legal@example.org",))
        self.sink.clear()

    def ingest(self, raw: bytes) -> IngestOutcome:
        [outcome] = self.ingestor.ingest_many([IncomingMail(raw, source="test")])
        return outcome

    def send(self) -> None:
        OutboxSender(self.app.sessions, self.app.settings, clock=self.clock).send_due()

    def reply_to_handoff(self, sender: str, message_id: str, *, to: str = "liaison@example.org",
                         body: str = ROSA_TEXT) -> bytes:
        handoff = headers(self.handoff.raw)
        quoted = "\n".join(f"> {line}" for line in handoff.get_body(("plain",)).get_content().splitlines())  # type: ignore[union-attr]
        return make_mail(sender=sender, to=to, subject=f"Re: {handoff['Subject']}", message_id=message_id,
                         in_reply_to=str(handoff["Message-ID"]), references=[str(handoff["Message-ID"])],
                         body=f"{body}\n\nOn Monday the desk wrote:\n{quoted}\n")

    def ticket(self) -> Ticket:
        with self.app.reads() as session:
            return session.scalars(select(Ticket).where(Ticket.reference == self.reference)).one()


@pytest.fixture
def desk(make_app: MakeApp, smtp_sink: SmtpSink, clock: Clock, set_based: bool, tmp_path: Path) -> Desk:
    teams = tmp_path / "teams.toml"
    teams.write_text(TEAMS)
    app = make_app(TRIAGE_SMTP_HOST=smtp_sink.host, TRIAGE_SMTP_PORT=str(smtp_sink.port),
                   TRIAGE_SMTP_SECURITY="none", TRIAGE_ROUTING_TEAMS_FILE=str(teams))
    return Desk(app, smtp_sink, clock, set_based)


def test_a_team_members_reply_is_relayed_to_the_volunteer_threaded_and_once(desk: Desk) -> None:
    """Rosa of Legal answers the hand-off: her words reach Ada from the desk's address, as an answer
    to Ada's latest mail, once, even when Rosa's mail is delivered to the desk twice."""
    raw = desk.reply_to_handoff("Rosa <rosa@example.org>", "<r1@example.org>")
    outcome = desk.ingest(raw)
    assert outcome.status == "stored" and outcome.ticket_reference == desk.reference and outcome.staff == "reply"
    assert desk.ingest(raw).status == "duplicate"  # delivered again: stored once, relayed once
    desk.send()
    desk.send()
    [relayed] = desk.sink.messages
    assert relayed.mail_from == "liaison@example.org" and relayed.rcpt_tos == ("ada@volunteers.example",)
    mail = headers(relayed.raw)
    assert mail["From"].addresses[0].addr_spec == "liaison@example.org"
    assert mail["In-Reply-To"] == "<v2@volunteers.example>"
    assert str(mail["References"]).split() == ["<v1@volunteers.example>", "<v2@volunteers.example>"]
    assert mail["Auto-Submitted"] is None  # a person's answer, not automatic mail
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert ROSA_TEXT in text and "rosa@example.org" not in text and "the desk wrote" not in text
    assert "passes ticket" not in text  # the hand-off Rosa quoted is not passed on
    ticket = desk.ticket()
    assert ticket.status == TicketStatus.waiting
    with desk.app.reads() as session:
        stored = session.scalars(select(Message).where(Message.message_id == "<r1@example.org>")).one()
        assert "staff reply" in stored.thread_reason
        [row] = session.scalars(select(Outbox).where(Outbox.template == "staff-reply")).all()
        assert row.actor == "staff:rosa@example.org" and row.ticket_id == ticket.id
        assert stored.ticket_id == ticket.id and stored.extra["staff"] == {
            "path": "reply", "team": "legal", "relayed_as": row.message_pk}  # the ticket page links the two


def test_a_relay_rolls_back_with_its_ingest(desk: Desk) -> None:
    """The relay is written in the ingest's transaction: if the batch fails after it, neither the
    mail nor the relay is kept, and the next delivery relays it exactly once."""
    raw = desk.reply_to_handoff("Rosa <rosa@example.org>", "<r1@example.org>")

    def crash(_session: object, _outcomes: object) -> None:
        raise RuntimeError("the worker died before the commit")

    with pytest.raises(RuntimeError):
        desk.ingestor.ingest_many([IncomingMail(raw)], after=crash)
    with desk.app.reads() as session:
        assert session.scalars(select(Outbox).where(Outbox.template == "staff-reply")).all() == []
    assert desk.ingest(raw).staff == "reply"
    desk.send()
    assert [m.rcpt_tos for m in desk.sink.messages] == [("ada@volunteers.example",)]


def test_a_mail_to_the_comment_address_stays_an_internal_note(desk: Desk) -> None:
    """Rosa writes to liaison+comment@: an internal note on the ticket with her as its author, and
    nothing leaves the desk; the ticket's status is not changed."""
    before = desk.ticket().status
    outcome = desk.ingest(desk.reply_to_handoff("Rosa <rosa@example.org>", "<n1@example.org>",
                                                to="Desk notes <liaison+comment@example.org>", body=NOTE_TEXT))
    assert outcome.ticket_reference == desk.reference and outcome.staff == "note"
    desk.send()
    assert desk.sink.messages == []
    ticket_id = desk.ticket().id
    with desk.app.reads() as session:
        [note] = session.scalars(select(Event).where(Event.action == "note")).all()
        assert note.actor == "staff:rosa@example.org" and note.ticket_id == ticket_id
        assert note.detail["text"].startswith(NOTE_TEXT) and "the desk wrote" not in note.detail["text"]
        assert not any(NOTE_TEXT.encode() in (row.raw or b"") for row in session.scalars(select(Outbox)))
    assert desk.ticket().status == before


def test_the_team_address_itself_may_answer(desk: Desk) -> None:
    """legal@ (the team's own address, as well as its members') is the team."""
    assert desk.ingest(desk.reply_to_handoff("Legal <LEGAL@example.org>", "<l1@example.org>")).staff == "reply"
    desk.send()
    assert [m.rcpt_tos for m in desk.sink.messages] == [("ada@volunteers.example",)]


@pytest.mark.parametrize("to", ["liaison@example.org", "liaison+comment@example.org"])
def test_nobody_outside_the_team_may_use_either_path(desk: Desk, to: str) -> None:
    """Tom of Technology (another team), and Ada herself at the comment address, are strangers
    there: a new flagged ticket linked to this one; nothing relayed, no note."""
    senders = ["Tom <tom@example.org>", "Eve <eve@elsewhere.example>"]
    ticket_id = desk.ticket().id
    if to.startswith("liaison+comment"):
        senders.append("Ada Volunteer <ada@volunteers.example>")
    for n, sender in enumerate(senders):
        outcome = desk.ingest(desk.reply_to_handoff(sender, f"<x{n}@example.net>", to=to, body=NOTE_TEXT))
        assert outcome.staff is None and outcome.ticket_reference != desk.reference, sender
        with desk.app.reads() as session:
            opened = session.scalars(select(Ticket).where(Ticket.reference == outcome.ticket_reference)).one()
            assert opened.linked_ticket_id == ticket_id and opened.flag
    desk.send()
    assert not any(NOTE_TEXT.encode() in m.raw.replace(b"=\r\n", b"") for m in desk.sink.messages
                   if m.rcpt_tos == ("ada@volunteers.example",))
    assert actions(desk.app, "note") == []
    with desk.app.reads() as session:
        assert session.scalars(select(Outbox).where(Outbox.template == "staff-reply")).all() == []


def test_a_team_members_out_of_office_is_not_relayed(desk: Desk) -> None:
    """Only a person's mail is the team's word: Rosa's auto-reply is filed, never passed on."""
    raw = make_mail(sender="Rosa <rosa@example.org>", message_id="<ooo@example.org>", subject="Out of office",
                    in_reply_to=str(headers(desk.handoff.raw)["Message-ID"]), headers={"Auto-Submitted": "auto-replied"})
    assert desk.ingest(raw).staff is None
    desk.send()
    assert desk.sink.messages == []
