"""What the liaison and staff do on a ticket: reply, add an internal note, change its status,
hand it off again, merge it into another (and undo that).

Each function is one use case in one transaction, with the acting user passed in and every
change written to the ticket's event log under `actor.label`. Roles: a viewer reads only;
staff act on their own team's tickets (another team's is NotFound, as for reading); hand-off
and merge are routing decisions, the liaison's alone.

Collisions: the page remembers the newest message and event it showed (`ActionsView`), and
`send_reply` refuses with a Conflict when mail arrived or someone else's reply was queued
since, unless the sender confirms. `set_status` refuses a status the ticket already has, or a
change from a status the page no longer shows, so a decision is never applied twice.

A merged ticket keeps its own messages; `merged_into_id` points at the survivor, whose page
shows the merged tickets' messages with its own (`merged_ticket_ids`), and later mail to the
merged one is threaded onto the survivor by ingest. Writes to a merged ticket are refused
until the merge is undone, so `unmerge` can restore it exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from triage.desk.actors import Actor, require_router, require_visible, require_writer
from triage.desk.errors import Conflict, Invalid
from triage.outbox.compose import ComposeError
from triage.outbox.preview import Preview, preview_of
from triage.outbox.queue import OutboxError, Queued, Skipped, build_reply, enqueue_handoff, enqueue_reply
from triage.outbox.render import TEMPLATE_LANGUAGE, TemplateError
from triage.outbox.wiring import Wiring
from triage.store.db import utcnow
from triage.store.models import Direction, Event, Message, Ticket, TicketStatus
from triage.store.outbox_models import Outbox

if TYPE_CHECKING:
    from triage.bootstrap import App

# Mails the desk sends by itself (their context is not a person's reply): never offered to a person.
AUTOMATIC_MAILS = frozenset({"acknowledgment", "handoff-team", "reminder", "escalation"})
NEEDS_TEAM = frozenset({"handoff-volunteer"})  # speaks of the ticket's team: only once it has one
NEEDS_BODY = frozenset({"reply"})  # nothing but the sender's text
MAX_TEXT = 50_000

# What a person may set, by the names the CLI and the forms use, and how the page labels them.
STATUSES: dict[str, TicketStatus] = {
    "waiting": TicketStatus.waiting, "waiting-on-volunteer": TicketStatus.waiting,
    "resolved": TicketStatus.resolved,
    "open": TicketStatus.open, "reopened": TicketStatus.open, "reopen": TicketStatus.open,
}
STATUS_LABELS = (("waiting", "Waiting on volunteer"), ("resolved", "Resolved"), ("open", "Reopen"))


class Collision(Conflict):
    """Mail arrived, or another reply was queued, since the sender's page read the ticket: the
    sender should read it first, and may confirm to send anyway."""


@dataclass(frozen=True)
class MailTemplate:
    """A mail a person can send on a ticket, and the languages it is written in."""

    name: str
    languages: tuple[str, ...]
    needs_body: bool


@dataclass(frozen=True)
class SentReply:
    outbox_id: int
    message_id: str
    to: tuple[str, ...]
    status: str


@dataclass(frozen=True)
class ActionsView:
    """What the ticket's action panel shows, and the newest message and event it was read with."""

    reference: str
    status: str
    status_choices: tuple[tuple[str, str], ...]  # (value, label) of the statuses it can change to
    team: str | None
    merged_into: str | None
    merged_from: tuple[str, ...]
    templates: tuple[MailTemplate, ...]
    languages: tuple[str, ...]
    last_message_id: int
    last_event_id: int
    may_write: bool
    may_route: bool


# -- finding the ticket --------------------------------------------------------------------------


def _ticket(session: Session, actor: Actor, reference: str, *, lock: bool = False) -> Ticket:
    """The ticket by reference (or numeric id) if `actor` may see it; locked for the transaction
    where the database can (PostgreSQL; SQLite's writers are serialised by BEGIN IMMEDIATE)."""
    ident = reference.strip()
    query = select(Ticket).where(Ticket.reference == ident.upper())
    if ident.isdigit():
        query = select(Ticket).where(Ticket.id == int(ident))
    ticket = session.scalar(query.with_for_update() if lock else query)
    return require_visible(ticket, actor, reference)


def _reference(session: Session, ticket_id: int | None) -> str | None:
    return session.scalar(select(Ticket.reference).where(Ticket.id == ticket_id)) if ticket_id else None


def _not_merged(session: Session, ticket: Ticket) -> None:
    if ticket.merged_into_id is not None:
        survivor = _reference(session, ticket.merged_into_id)
        raise Conflict(f"{ticket.reference} was merged into {survivor}",
                       f"act on {survivor}, or undo the merge first")


def merged_ticket_ids(session: Session, ticket_id: int) -> list[int]:
    """The tickets merged into `ticket_id`: their messages are shown (and watched) with its own."""
    return list(session.scalars(select(Ticket.id).where(Ticket.merged_into_id == ticket_id).order_by(Ticket.id)))


def _log(session: Session, ticket: Ticket, actor: Actor, action: str, now: datetime, **detail: Any) -> Event:
    event = Event(ticket_id=ticket.id, at=now, actor=actor.label, action=action, detail=detail)
    session.add(event)
    return event


# -- the panel -----------------------------------------------------------------------------------


def _templates(wiring: Wiring, ticket: Ticket, language: str | None) -> list[MailTemplate]:
    renderer = wiring.renderer
    out = []
    for name in renderer.names():
        if name in AUTOMATIC_MAILS or (name in NEEDS_TEAM and (not ticket.team or ticket.team not in wiring.teams)):
            continue
        try:
            languages = tuple(sorted({TEMPLATE_LANGUAGE, *renderer.languages(name)}))
        except TemplateError:
            continue  # a folder without subject.txt and body.txt is not a mail
        if language and language not in languages:
            continue
        out.append(MailTemplate(name, languages, name in NEEDS_BODY))
    return out


def templates_for(app: App, actor: Actor, reference: str, *, language: str | None = None) -> list[MailTemplate]:
    """The mails a person can send on this ticket (the folders of templates/email/ that are not
    the desk's automatic mail), with their languages; only those written in `language` if given."""
    with app.reads() as session:
        ticket = _ticket(session, actor, reference)
        return _templates(app.wiring, ticket, language)


def ticket_actions(app: App, actor: Actor, reference: str) -> ActionsView:
    """Everything the action panel needs, read in one transaction; its last message and event
    ids are what `send_reply` later compares against."""
    with app.reads() as session:
        ticket = _ticket(session, actor, reference)
        ids = [ticket.id, *merged_ticket_ids(session, ticket.id)]
        templates = _templates(app.wiring, ticket, None)
        merged_from = tuple(session.scalars(
            select(Ticket.reference).where(Ticket.merged_into_id == ticket.id).order_by(Ticket.id)))
        return ActionsView(
            reference=ticket.reference, status=ticket.status.value, team=ticket.team,
            status_choices=tuple(
                (v, "Open" if v == "open" and ticket.status is not TicketStatus.resolved else label)
                for v, label in STATUS_LABELS if STATUSES[v] is not ticket.status),
            merged_into=_reference(session, ticket.merged_into_id), merged_from=merged_from,
            templates=tuple(templates),
            languages=tuple(sorted({lang for t in templates for lang in t.languages})),
            last_message_id=session.scalar(select(func.max(Message.id)).where(Message.ticket_id.in_(ids))) or 0,
            last_event_id=session.scalar(select(func.max(Event.id)).where(Event.ticket_id.in_(ids))) or 0,
            may_write=actor.may_write(), may_route=actor.may_route(),
        )


# -- replying ------------------------------------------------------------------------------------


def _check_reply(wiring: Wiring, ticket: Ticket, template: str, body: str, language: str | None) -> None:
    if template in AUTOMATIC_MAILS:
        raise Invalid(f"{template} is sent by the desk itself", "choose reply, resolution or another template")
    if template in NEEDS_BODY and not body.strip():
        raise Invalid("the reply is empty; nothing was queued", "write the reply's text")
    if len(body) > MAX_TEXT:
        raise Invalid(f"the text is longer than {MAX_TEXT} characters", "shorten it, or attach nothing")
    if template in NEEDS_TEAM and (not ticket.team or ticket.team not in wiring.teams):
        raise Invalid(f"{template} names the ticket's team, and {ticket.reference} has none with an address",
                      "route the ticket first, or choose another template")
    if language is not None:
        try:
            available = {TEMPLATE_LANGUAGE, *wiring.renderer.languages(template)}
        except TemplateError as exc:
            raise Invalid(str(exc), "choose one of the templates offered") from None
        if language not in available:
            raise Invalid(f"{template} has no {language!r} translation",
                          f"choose one of {', '.join(sorted(available))}, or let the desk choose")


def _build(session: Session, wiring: Wiring, ticket: Ticket, template: str, body: str, language: str | None,
           now: datetime) -> tuple[str, EmailMessage]:
    _check_reply(wiring, ticket, template, body, language)
    try:
        rendered, message = build_reply(session, ticket, template=template, body=body, now=now, wiring=wiring,
                                        language=language)
    except (OutboxError, ComposeError, TemplateError) as exc:
        raise Invalid(str(exc), "choose one of the templates offered, and check the text") from None
    return rendered.language, message


def preview_reply(app: App, actor: Actor, reference: str, template: str, body: str,
                  language: str | None = None, *, now: datetime | None = None) -> Preview:
    """The mail `send_reply` would queue, built the same way; nothing is written."""
    require_writer(actor)
    wiring = app.wiring
    with app.reads() as session:
        ticket = _ticket(session, actor, reference)
        _not_merged(session, ticket)
        used, message = _build(session, wiring, ticket, template, body, language or None, now or utcnow())
    return preview_of(message, template=template, language=used)


def _since(session: Session, ticket_ids: list[int], seen_message_id: int | None,
           seen_event_id: int | None) -> tuple[int, list[str]]:
    """(new mails, the senders of replies queued) on these tickets since what the page showed."""
    new_mail = 0
    replies: dict[int, str] = {}
    if seen_message_id is not None:
        new_mail = session.scalar(select(func.count()).where(
            Message.ticket_id.in_(ticket_ids), Message.direction == Direction.inbound,
            Message.id > seen_message_id)) or 0
        replies.update((row_id, label) for row_id, label in session.execute(select(Outbox.id, Outbox.actor).where(
            Outbox.ticket_id.in_(ticket_ids), Outbox.auto_submitted.is_(None),
            Outbox.message_pk > seen_message_id)))
    if seen_event_id is not None:
        for actor_label, detail in session.execute(select(Event.actor, Event.detail).where(
                Event.ticket_id.in_(ticket_ids), Event.action == "mail-queued", Event.id > seen_event_id)):
            if isinstance(detail, dict) and detail.get("auto_submitted") is None and detail.get("outbox"):
                replies[int(detail["outbox"])] = actor_label
    return new_mail, sorted(set(replies.values()))


def _collision(new_mail: int, repliers: list[str]) -> Collision:
    parts = []
    if new_mail:
        parts.append("new mail arrived" if new_mail == 1 else f"{new_mail} new mails arrived")
    if repliers:
        parts.append(f"another reply was queued (by {', '.join(repliers)})")
    what = " and ".join(parts)
    read = "read it" if new_mail + len(repliers) == 1 else "read them"
    return Collision(f"{what} since you opened the ticket", f"{read} and send again, or send anyway")


def send_reply(app: App, actor: Actor, reference: str, template: str, body: str, *, language: str | None = None,
               seen_message_id: int | None = None, seen_event_id: int | None = None, confirm: bool = False,
               now: datetime | None = None) -> SentReply:
    """Queue a person's mail on the ticket (the outbox delivers it) and set the status it implies.

    `seen_message_id` / `seen_event_id` are the newest the sender's page showed: when mail
    arrived or another reply was queued since, this refuses with a Conflict unless `confirm`.
    """
    require_writer(actor)
    now = now or utcnow()
    wiring = app.wiring
    with app.sessions.begin() as session:
        ticket = _ticket(session, actor, reference, lock=True)
        _not_merged(session, ticket)
        if not confirm:
            new_mail, repliers = _since(session, [ticket.id, *merged_ticket_ids(session, ticket.id)],
                                        seen_message_id, seen_event_id)
            if new_mail or repliers:
                raise _collision(new_mail, repliers)
        _check_reply(wiring, ticket, template, body, language or None)
        try:
            row = enqueue_reply(session, ticket, template=template, body=body, actor=actor.label, now=now,
                                wiring=wiring, language=language or None)
        except (OutboxError, ComposeError, TemplateError) as exc:
            raise Invalid(str(exc), "choose one of the templates offered, and check the text") from None
        ticket.clock_stale_at = now  # a person answered: the reminder clock stops or restarts
        return SentReply(row.id, row.message_id, tuple(row.recipients), ticket.status.value)


# -- notes and status ----------------------------------------------------------------------------


def add_note(app: App, actor: Actor, reference: str, text: str, *, now: datetime | None = None) -> int:
    """An internal note on the ticket's log: for the desk only, never mailed, never quoted in a
    reply (replies quote messages, and a note is not one). Returns the event's id."""
    require_writer(actor)
    text = text.strip("\n")
    if not text.strip():
        raise Invalid("the note is empty", "write the note's text")
    if len(text) > MAX_TEXT:
        raise Invalid(f"the note is longer than {MAX_TEXT} characters", "shorten it")
    now = now or utcnow()
    with app.sessions.begin() as session:
        ticket = _ticket(session, actor, reference)
        _not_merged(session, ticket)
        event = _log(session, ticket, actor, "note", now, text=text)
        session.flush()
        return event.id


def _change_status(session: Session, ticket: Ticket, actor: Actor, new: TicketStatus, now: datetime,
                   why: str) -> None:
    """The status, its "status" event (the reminder clock's history reads these) and a stale clock."""
    _log(session, ticket, actor, "status", now, old=ticket.status.value, new=new.value, why=why)
    ticket.status = new
    ticket.updated_at = now
    ticket.clock_stale_at = now  # the next reminder run recomputes the clock from the new facts


def set_status(app: App, actor: Actor, reference: str, status: str, *, expected: str | None = None,
               now: datetime | None = None) -> dict[str, str]:
    """Waiting on the volunteer, resolved, or reopened. `expected` is the status the page showed:
    when someone changed it since, or the ticket already has `status`, this refuses (Conflict)."""
    require_writer(actor)
    new = STATUSES.get(status.strip().lower())
    if new is None:
        raise Invalid(f"unknown status {status!r}", "use waiting, resolved or open (reopen)")
    now = now or utcnow()
    with app.sessions.begin() as session:
        ticket = _ticket(session, actor, reference, lock=True)
        _not_merged(session, ticket)
        old = ticket.status
        if expected and old.value != expected:
            raise Conflict(f"{ticket.reference} is now {old.value}, no longer {expected}",
                           "someone changed it meanwhile: reload the ticket and decide again")
        if old is new:
            raise Conflict(f"{ticket.reference} is already {new.value}", "nothing to change")
        _change_status(session, ticket, actor, new, now, f"set by {actor.label}")
        return {"reference": ticket.reference, "old": old.value, "new": new.value}


# -- hand-off ------------------------------------------------------------------------------------


def hand_off(app: App, actor: Actor, reference: str, *, now: datetime | None = None) -> list[dict[str, Any]]:
    """Send the routed ticket's hand-off again (the team's introduction and the volunteer's
    notice), as the routing approval does: e.g. after the team's address changed."""
    require_router(actor)
    now = now or utcnow()
    with app.sessions.begin() as session:
        ticket = _ticket(session, actor, reference, lock=True)
        _not_merged(session, ticket)
        if not ticket.team:
            raise Invalid(f"{ticket.reference} is not routed to a team yet", "approve a team in the queue first")
        results = enqueue_handoff(session, ticket, ticket.team, actor.label, now, wiring=app.wiring)
        mails = [{"template": r.template, "to": r.to,
                  "outcome": "queued" if isinstance(r, Queued) else "skipped" if isinstance(r, Skipped) else "failed",
                  "reason": None if isinstance(r, Queued) else r.reason} for r in results]
        _log(session, ticket, actor, "handoff", now, team=ticket.team, mails=mails)
        return mails


# -- merge ---------------------------------------------------------------------------------------


def merge(app: App, actor: Actor, source_reference: str, into_reference: str, *,
          now: datetime | None = None) -> dict[str, Any]:
    """Join `source` into `into` (two tickets threading split): `source` points at the survivor,
    is resolved (its reminders stop), and both logs say so. `unmerge` undoes it exactly."""
    require_router(actor)
    now = now or utcnow()
    with app.sessions.begin() as session:
        source = _ticket(session, actor, source_reference, lock=True)
        into = _ticket(session, actor, into_reference, lock=True)
        if source.id == into.id:
            raise Invalid(f"{source.reference} cannot be merged into itself", "name the ticket to keep")
        _not_merged(session, source)
        if into.merged_into_id is not None:
            survivor = _reference(session, into.merged_into_id)
            raise Invalid(f"{into.reference} was itself merged into {survivor}", f"merge into {survivor}")
        if held := [_reference(session, i) for i in merged_ticket_ids(session, source.id)]:
            raise Conflict(f"{', '.join(map(str, held))} {'is' if len(held) == 1 else 'are'} merged into "
                           f"{source.reference}", f"merge {into.reference} into {source.reference} instead, "
                           "or undo those merges first")
        messages = session.scalar(select(func.count()).where(Message.ticket_id == source.id)) or 0
        status_before = source.status.value
        source.merged_into_id = into.id
        source.updated_at = into.updated_at = now
        if source.status is not TicketStatus.resolved:
            _change_status(session, source, actor, TicketStatus.resolved, now, f"merged into {into.reference}")
        _log(session, source, actor, "merged", now, into=into.reference, status_before=status_before,
             messages=messages)
        _log(session, into, actor, "merged-from", now, source=source.reference, messages=messages)
        return {"source": source.reference, "into": into.reference, "messages": messages}


def unmerge(app: App, actor: Actor, source_reference: str, into_reference: str | None = None, *,
            now: datetime | None = None) -> dict[str, Any]:
    """Undo `merge`: `source` stands alone again with the status it had (unless that changed
    since), and both logs say so. `into_reference`, if given, must be the ticket it was merged into."""
    require_router(actor)
    now = now or utcnow()
    with app.sessions.begin() as session:
        source = _ticket(session, actor, source_reference, lock=True)
        if source.merged_into_id is None:
            raise Conflict(f"{source.reference} is not merged", "nothing to undo")
        into = session.get_one(Ticket, source.merged_into_id)
        if into_reference is not None and _ticket(session, actor, into_reference).id != into.id:
            raise Conflict(f"{source.reference} is merged into {into.reference}, not {into_reference}",
                           f"undo it with {into.reference}")
        merged = session.scalar(select(Event).where(Event.ticket_id == source.id, Event.action == "merged")
                                .order_by(Event.id.desc()).limit(1))
        before = (merged.detail or {}).get("status_before") if merged is not None else None
        source.merged_into_id = None
        source.updated_at = into.updated_at = now
        if before and before != source.status.value and source.status is TicketStatus.resolved:
            _change_status(session, source, actor, TicketStatus(before), now, f"merge into {into.reference} undone")
        _log(session, source, actor, "unmerged", now, into=into.reference, status=source.status.value)
        _log(session, into, actor, "unmerged-from", now, source=source.reference)
        return {"source": source.reference, "into": into.reference, "status": source.status.value}


__all__ = [
    "AUTOMATIC_MAILS", "STATUSES", "STATUS_LABELS", "ActionsView", "Collision", "MailTemplate", "Preview",
    "SentReply",
    "add_note", "hand_off", "merge", "merged_ticket_ids", "preview_reply", "send_reply", "set_status",
    "templates_for", "ticket_actions", "unmerge",
]
