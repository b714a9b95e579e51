"""Reading one ticket: the thread, its flags, the event log, the reminder clock and the contact's
other tickets (`ticket_view`), a message's HTML made safe (`message_html`) and an attachment's
bytes (`attachment`). Everything returned is plain data; what mail wrote stays text, for the page
to escape. A staff user asking for another team's ticket, message or attachment gets NotFound.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from triage.desk.actors import Actor, require_visible, visible
from triage.desk.errors import NotFound
from triage.desk.mail_html import framed_document, sanitise
from triage.schedule.clocks import load_facts
from triage.schedule.due import ticket_clock
from triage.schedule.history import reminder_events
from triage.schedule.policy import Policies
from triage.schedule.words import clock_in_words
from triage.store.blobs import get_blob
from triage.store.db import utcnow
from triage.store.models import Attachment, Contact, Message, Ticket
from triage.store.outbox_models import Outbox
from triage.store.web_models import Role

if TYPE_CHECKING:
    from triage.bootstrap import App

PREVIOUS_TICKETS = 20


@dataclass(frozen=True)
class AttachmentView:
    id: int
    filename: str | None  # the sender's name for it: text to show, never a path
    content_type: str  # what the sender claimed; never trusted when serving it
    size: int
    inline: bool


@dataclass(frozen=True)
class StaffMail:
    """A message the team the ticket was handed to wrote by mail (`Message.extra["staff"]`)."""

    path: str  # "reply": relayed to the volunteer from the desk; "note": an internal note, never sent
    team: str | None  # the team's key
    team_name: str | None  # its name in the teams file, if it is still there
    relayed_message_id: int | None = None  # the desk's mail that passed a reply on (a message of this thread)
    relay_status: str | None = None  # that mail's outbox status: pending, sent, failed, uncertain

    @property
    def is_note(self) -> bool:
        return self.path == "note"


@dataclass(frozen=True)
class MessageView:
    id: int
    direction: str
    message_id: str | None
    from_addr: str | None
    from_name: str | None
    to: list[str]
    cc: list[str]
    subject: str | None
    date: datetime | None
    received_at: datetime
    kind: str
    kind_reason: str | None
    thread_reason: str  # why the message was threaded onto this ticket
    new_text: str
    quoted_text: str  # shown folded away
    signature: str
    has_html: bool
    defects: list[Any]
    attachments: list[AttachmentView]
    staff: StaffMail | None = None  # the team's own mail: a relayed reply or an internal note


@dataclass(frozen=True)
class EventView:
    at: datetime
    actor: str
    action: str
    detail: dict[str, Any]

    @property
    def is_note(self) -> bool:
        return self.action == "note"

    @property
    def note_text(self) -> str:
        return str(self.detail.get("text", "")) if self.is_note else ""


@dataclass(frozen=True)
class Flag:
    kind: str  # stranger, bounce, autoreply, merged
    text: str
    reference: str | None = None  # the ticket it points at, if any


@dataclass(frozen=True)
class ContactView:
    address: str | None
    name: str | None
    language: str | None
    bouncing: bool
    id: int | None = None  # the contact page: /contacts/{id}


@dataclass(frozen=True)
class PreviousTicket:
    reference: str
    subject: str | None
    status: str
    team: str | None
    created_at: datetime


@dataclass(frozen=True)
class ReminderClock:
    words: str  # "team reminded in 3 business hours", "stopped: answered"
    next_at: datetime | None
    stopped: str | None


@dataclass(frozen=True)
class TicketView:
    id: int
    reference: str
    subject: str | None
    status: str
    team: str | None
    flag: str | None
    linked_ticket: str | None
    merged_into: str | None
    contact: ContactView | None
    created_at: datetime
    updated_at: datetime
    flags: list[Flag]
    messages: list[MessageView]
    events: list[EventView]
    clock: ReminderClock
    previous: list[PreviousTicket]
    viewed_at: datetime  # when this view was read: a later message or reply is news to its reader
    latest_message_id: int | None = field(default=None)


def as_json(value: Any) -> Any:
    """A view (or any part of one) as JSON-ready data: datetimes in ISO 8601."""
    if hasattr(value, "__dataclass_fields__"):
        value = asdict(value)
    if isinstance(value, dict):
        return {key: as_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [as_json(item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _find(session: Session, ident: str) -> Ticket | None:
    query = select(Ticket).options(
        selectinload(Ticket.messages).selectinload(Message.attachments),
        selectinload(Ticket.events),
        selectinload(Ticket.contact).selectinload(Contact.addresses),
    )
    ticket = session.scalar(query.where(Ticket.reference == ident.strip().upper()))
    if ticket is None and ident.strip().isdigit():
        ticket = session.scalar(query.where(Ticket.id == int(ident)))
    return ticket


def ticket_view(app: App, actor: Actor, reference: str, *, now: datetime | None = None) -> TicketView:
    """Ticket `reference` (T-2026-00042, or its numeric id) as its page shows it."""
    now = now or utcnow()
    with app.reads() as session:
        ticket = require_visible(_find(session, reference), actor, reference)
        references = _references(session, ticket)
        return TicketView(
            id=ticket.id, reference=ticket.reference, subject=ticket.subject, status=ticket.status.value,
            team=ticket.team, flag=ticket.flag,
            linked_ticket=references.get(ticket.linked_ticket_id), merged_into=references.get(ticket.merged_into_id),
            contact=ContactView(ticket.contact.address, ticket.contact.name, ticket.contact.language,
                                ticket.contact.bouncing, ticket.contact.id) if ticket.contact else None,
            created_at=ticket.created_at, updated_at=ticket.updated_at,
            flags=_flags(ticket, references) + _linked_from(session, actor, ticket),
            messages=_messages(app, session, ticket),
            events=_events(session, ticket),
            clock=_clock(app, session, ticket, now),
            previous=_previous(session, actor, ticket),
            viewed_at=now,
            latest_message_id=max((m.id for m in ticket.messages), default=None),
        )


def ticket_id(app: App, actor: Actor, reference: str) -> int:
    """The id of ticket `reference`, cheaply (for presence polls), or NotFound."""
    with app.reads() as session:
        ticket = session.scalar(select(Ticket).where(Ticket.reference == reference.strip().upper()))
        return require_visible(ticket, actor, reference).id


def _references(session: Session, ticket: Ticket) -> dict[int | None, str]:
    ids = [i for i in (ticket.linked_ticket_id, ticket.merged_into_id) if i is not None]
    if not ids:
        return {}
    return {ident: ref for ident, ref in session.execute(select(Ticket.id, Ticket.reference).where(Ticket.id.in_(ids)))}


def _flags(ticket: Ticket, references: dict[int | None, str]) -> list[Flag]:
    """What the reader must not miss: a stranger's mail, a bouncing address, a merge."""
    flags: list[Flag] = []
    if ticket.flag:
        flags.append(Flag("stranger", ticket.flag, references.get(ticket.linked_ticket_id)))
    if ticket.contact is not None and ticket.contact.bouncing:
        flags.append(Flag("bounce", f"mail to {ticket.contact.address} bounces"))
    for kind in ("bounce", "autoreply"):
        count = sum(1 for m in ticket.messages if m.kind == kind)
        if count:
            flags.append(Flag(kind, f"{count} {kind} message{'s' * (count != 1)} in this thread"))
    if ticket.merged_into_id is not None:
        flags.append(Flag("merged", "merged into another ticket; new mail lands there",
                          references.get(ticket.merged_into_id)))
    return flags


def _linked_from(session: Session, actor: Actor, ticket: Ticket) -> list[Flag]:
    """Tickets that a stranger's mail citing this one opened (the other end of their `stranger` flag)."""
    query = visible(select(Ticket), actor).where(Ticket.linked_ticket_id == ticket.id).order_by(Ticket.id)
    return [Flag("linked", f"{t.reference} was opened by mail from outside this thread that cites this ticket",
                 t.reference) for t in session.scalars(query)]


def _messages(app: App, session: Session, ticket: Ticket) -> list[MessageView]:
    """The thread, each staff mail marked with its team and, for a relayed reply, the desk's mail
    that passed it on and how far that mail got (one query, only when there is such a reply)."""
    marks = {m.id: dict(m.extra["staff"]) for m in ticket.messages if isinstance((m.extra or {}).get("staff"), dict)}
    relayed = [mark["relayed_as"] for mark in marks.values() if isinstance(mark.get("relayed_as"), int)]
    statuses = {pk: status.value for pk, status in session.execute(
        select(Outbox.message_pk, Outbox.status).where(Outbox.message_pk.in_(relayed)))} if relayed else {}
    teams = app.wiring.teams
    views = []
    for m in ticket.messages:
        mark, staff = marks.get(m.id), None
        if mark is not None:
            team = str(mark["team"]) if mark.get("team") else None
            relay = mark.get("relayed_as") if isinstance(mark.get("relayed_as"), int) else None
            named = teams.get(team) if team else None
            staff = StaffMail(str(mark.get("path")), team, named.name if named else None,
                              relay, statuses.get(relay) if relay is not None else None)
        views.append(_message(m, staff))
    return views


def _message(m: Message, staff: StaffMail | None = None) -> MessageView:
    return MessageView(
        id=m.id, direction=m.direction.value, message_id=m.message_id, from_addr=m.from_addr, from_name=m.from_name,
        to=list(m.to_addrs or []), cc=list(m.cc_addrs or []), subject=m.subject, date=m.date,
        received_at=m.received_at, kind=m.kind, kind_reason=m.kind_reason, thread_reason=m.thread_reason,
        new_text=m.new_text, quoted_text=m.quoted_text, signature=m.signature, has_html=bool(m.body_html),
        defects=list(m.defects or []),
        attachments=[AttachmentView(a.id, a.filename, a.content_type, a.size, a.inline) for a in m.attachments],
        staff=staff,
    )


def _events(session: Session, ticket: Ticket) -> list[EventView]:
    """The ticket's events and its reminders (kept in their own table), oldest first."""
    rows: list[EventView] = [EventView(e.at, e.actor, e.action, dict(e.detail or {})) for e in ticket.events]
    rows += [EventView(r.at, r.actor, r.action, r.detail) for r in reminder_events(session, ticket.id)]
    return sorted(rows, key=lambda e: e.at)


def _clock(app: App, session: Session, ticket: Ticket, now: datetime) -> ReminderClock:
    """Computed from the ticket's facts now, not read from `ticket_clocks`, which the reminder run
    refreshes only every few minutes: the page must agree with the thread it shows."""
    policy = Policies(app.settings.reminders).for_team(ticket.team)
    (facts,) = load_facts(session, [ticket])
    clock = ticket_clock(facts, policy, now)
    return ReminderClock(clock_in_words(clock, policy.calendar, now), clock.next_at, clock.stopped)


def _previous(session: Session, actor: Actor, ticket: Ticket) -> list[PreviousTicket]:
    if ticket.contact_id is None:
        return []
    query = visible(select(Ticket), actor).where(Ticket.contact_id == ticket.contact_id, Ticket.id != ticket.id)
    found = session.scalars(query.order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(PREVIOUS_TICKETS))
    return [PreviousTicket(t.reference, t.subject, t.status.value, t.team, t.created_at) for t in found]


def _may_read(actor: Actor, message: Message) -> bool:
    """Mail on no ticket (an unmatched bounce) belongs to no team: staff do not see it."""
    return actor.may_see(message.ticket) if message.ticket is not None else actor.role is not Role.staff


def message_html(app: App, actor: Actor, message_id: int, *, remote_images: bool = False) -> str:
    """The message's HTML, sanitised, as the whole document of its iframe."""
    with app.reads() as session:
        message = session.get(Message, message_id)
        if message is None or not _may_read(actor, message):
            raise NotFound(f"no message {message_id}", "open it from its ticket's page")
        if not message.body_html:
            raise NotFound(f"message {message_id} has no HTML part", "its text is shown on the ticket's page")
        return framed_document(sanitise(message.body_html, remote_images=remote_images))


def attachment(app: App, actor: Actor, attachment_id: int) -> tuple[str, bytes]:
    """An attachment's display name (the sender's, or a made-up one) and its bytes."""
    with app.reads() as session:
        row = session.get(Attachment, attachment_id)
        if row is None or not _may_read(actor, row.message):
            raise NotFound(f"no attachment {attachment_id}", "open it from its ticket's page")
        return row.filename or f"attachment-{row.id}", get_blob(session, row.blob_sha256)


__all__ = ["AttachmentView", "ContactView", "EventView", "Flag", "MessageView", "PreviousTicket", "ReminderClock",
           "StaffMail", "TicketView", "as_json", "attachment", "message_html", "ticket_id", "ticket_view"]
