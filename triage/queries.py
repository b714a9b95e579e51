"""Read-side views of tickets for the CLI and the liaison's pages (plain dicts, JSON-ready)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from triage.schedule.history import LoggedReminder, reminder_events
from triage.store.models import Contact, Direction, Event, Message, Quarantine, Ticket, TicketStatus


class NotFound(LookupError):
    """No ticket (or quarantined mail) with that id or reference."""


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def list_tickets(
    session: Session, *, status: str | None = None, team: str | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    counts = (
        select(Message.ticket_id, func.count().label("n")).group_by(Message.ticket_id).subquery()
    )
    query = (
        select(Ticket, Contact.address, func.coalesce(counts.c.n, 0))
        .outerjoin(Contact, Ticket.contact_id == Contact.id)
        .outerjoin(counts, counts.c.ticket_id == Ticket.id)
        .order_by(Ticket.id)
    )
    if status is not None:
        query = query.where(Ticket.status == TicketStatus(status))
    if team is not None:
        query = query.where(Ticket.team == team)
    if limit is not None:
        query = query.limit(limit)
    return [
        {
            "id": ticket.id,
            "reference": ticket.reference,
            "status": ticket.status.value,
            "team": ticket.team,
            "contact": address,
            "subject": ticket.subject,
            "messages": count,
            "flag": ticket.flag,
            "created_at": _iso(ticket.created_at),
            "updated_at": _iso(ticket.updated_at),
        }
        for ticket, address, count in session.execute(query)
    ]


def find_ticket(session: Session, ident: str) -> Ticket:
    """A ticket by public reference (T-2026-00042) or by numeric id."""
    query = select(Ticket).options(
        selectinload(Ticket.messages).selectinload(Message.attachments),
        selectinload(Ticket.events),
        selectinload(Ticket.contact),
    )
    ticket = session.scalar(query.where(Ticket.reference == ident.upper()))
    if ticket is None and ident.isdigit():
        ticket = session.scalar(query.where(Ticket.id == int(ident)))
    if ticket is None:
        raise NotFound(f"no ticket {ident!r}; `triage tickets` lists them")
    return ticket


def ticket_detail(session: Session, ident: str) -> dict[str, Any]:
    ticket = find_ticket(session, ident)
    linked = session.get(Ticket, ticket.linked_ticket_id) if ticket.linked_ticket_id else None
    log: list[Event | LoggedReminder] = [*ticket.events, *reminder_events(session, ticket.id)]
    return {
        "id": ticket.id,
        "reference": ticket.reference,
        "subject": ticket.subject,
        "status": ticket.status.value,
        "team": ticket.team,
        "flag": ticket.flag,
        "linked_ticket": linked.reference if linked else None,
        "contact": {"address": ticket.contact.address, "name": ticket.contact.name} if ticket.contact else None,
        "created_at": _iso(ticket.created_at),
        "updated_at": _iso(ticket.updated_at),
        "messages": [
            {
                "id": m.id,
                "direction": m.direction.value,
                "message_id": m.message_id,
                "from_addr": m.from_addr,
                "from_name": m.from_name,
                "to": m.to_addrs,
                "subject": m.subject,
                "date": _iso(m.date),
                "kind": m.kind,
                "thread_reason": m.thread_reason,
                "new_text": m.new_text,
                "body_text": m.body_text,
                "defects": m.defects,
                "raw_sha256": m.raw_sha256,
                "attachments": [
                    {"filename": a.filename, "content_type": a.content_type, "size": a.size,
                     "sha256": a.blob_sha256}
                    for a in m.attachments
                ],
            }
            for m in ticket.messages
        ],
        "events": [
            {"at": _iso(e.at), "actor": e.actor, "action": e.action, "detail": e.detail}
            for e in sorted(log, key=lambda e: e.at)
        ],
    }


def list_unmatched(session: Session, *, kind: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """Inbound mail stored without a ticket, newest first: bounces and autoreplies that match no
    ticket (they never open one), so that the liaison still sees a volunteer's address bouncing
    or an out-of-office about a thread this desk no longer holds."""
    query = (select(Message).where(Message.ticket_id.is_(None), Message.direction == Direction.inbound)
             .order_by(Message.received_at.desc(), Message.id.desc()))
    if kind is not None:
        query = query.where(Message.kind == kind)
    if limit is not None:
        query = query.limit(limit)
    return [
        {
            "id": m.id,
            "received_at": _iso(m.received_at),
            "kind": m.kind,
            "why": m.kind_reason,
            "from_addr": m.from_addr,
            "subject": m.subject,
            "bounced_recipients": (m.extra or {}).get("bounced_recipients", []),
            "thread_reason": m.thread_reason,
            "raw_sha256": m.raw_sha256,
        }
        for m in session.scalars(query)
    ]


def list_quarantine(session: Session, *, include_released: bool = False) -> list[dict[str, Any]]:
    query = select(Quarantine).order_by(Quarantine.id)
    if not include_released:
        query = query.where(Quarantine.released_at.is_(None))
    return [
        {
            "id": q.id,
            "raw_sha256": q.raw_sha256,
            "source": q.source,
            "stage": q.stage,
            "error": q.error,
            "attempts": q.attempts,
            "created_at": _iso(q.created_at),
            "released_at": _iso(q.released_at),
        }
        for q in session.scalars(query)
    ]
