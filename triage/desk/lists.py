"""The ticket list: the tickets an actor may see, filtered by status, team, flag and subject
text, newest or oldest first, each with its message count. The workbench's /tickets page and
`triage tickets` both read it here; a merged ticket is not listed (its mail is on the survivor).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, false, func, or_, select

from triage.desk.actors import Actor, require_visible, visible
from triage.desk.routing import LIST_LIMIT, as_query, check_order, check_status
from triage.store.models import ContactAddress, Message, Ticket

if TYPE_CHECKING:
    from triage.bootstrap import App

_REFERENCE = re.compile(r"T-\d{4}-\d{3,}", re.IGNORECASE)


@dataclass(frozen=True)
class TicketFilters:
    status: str | None = None
    team: str | None = None  # "" for tickets routed to no team yet
    flagged: bool | None = None
    text: str | None = None  # in the subject, or a ticket's reference

    def query(self) -> dict[str, str]:
        return as_query(self)


@dataclass(frozen=True)
class TicketRow:
    id: int
    reference: str
    status: str
    team: str | None
    contact: str | None
    subject: str | None
    messages: int
    flag: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class TicketList:
    rows: list[TicketRow]
    total: int  # matching tickets, of which `rows` holds the first `limit`
    filters: TicketFilters
    order: str = "newest"


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _ticket_rows() -> Any:
    """Tickets with their contact's address and their message count (counted per listed row,
    through the index on messages.ticket_id, so a page of 100 costs 100 index lookups)."""
    messages = (select(func.count()).where(Message.ticket_id == Ticket.id).correlate(Ticket)
                .scalar_subquery())
    return (select(Ticket, ContactAddress.address, messages.label("messages"))
            .outerjoin(ContactAddress, and_(ContactAddress.contact_id == Ticket.contact_id, ContactAddress.is_primary)))


def _row(ticket: Ticket, address: str | None, messages: int | None) -> TicketRow:
    return TicketRow(id=ticket.id, reference=ticket.reference, status=ticket.status.value, team=ticket.team,
                     contact=address, subject=ticket.subject, messages=int(messages or 0), flag=ticket.flag,
                     created_at=ticket.created_at, updated_at=ticket.updated_at)


def list_tickets(app: App, actor: Actor, filters: TicketFilters | None = None, *, order: str = "newest",
                 limit: int | None = LIST_LIMIT) -> TicketList:
    """The tickets `actor` may see, narrowed by status, team, flag and subject text; `limit` None lists all."""
    filters = filters or TicketFilters()
    check_order(order)
    status = check_status(filters.status)
    query = visible(_ticket_rows(), actor).where(Ticket.merged_into_id.is_(None))
    if status is not None:
        query = query.where(Ticket.status == status)
    if filters.team is not None:
        query = query.where(Ticket.team == filters.team if filters.team else Ticket.team.is_(None))
    if filters.flagged is not None:
        query = query.where(Ticket.flag.is_not(None) if filters.flagged else Ticket.flag.is_(None))
    text = (filters.text or "").strip()
    if text:
        by_reference = Ticket.reference == text.upper() if _REFERENCE.fullmatch(text) else false()
        query = query.where(or_(Ticket.subject.ilike(_like(text), escape="\\"), by_reference))
    query = query.order_by(Ticket.id.desc() if order == "newest" else Ticket.id)
    with app.reads() as session:
        total = session.scalar(select(func.count()).select_from(
            query.with_only_columns(Ticket.id).order_by(None).subquery())) or 0
        rows = [_row(*found) for found in session.execute(query if limit is None else query.limit(limit))]
    return TicketList(rows, int(total), filters, order)


def ticket_row(app: App, actor: Actor, reference: str) -> TicketRow:
    """One ticket's list row; a ticket of another team is NotFound, like a missing one."""
    with app.reads() as session:
        found = session.execute(_ticket_rows().where(Ticket.reference == reference.strip().upper())).one_or_none()
        ticket, address, messages = found if found else (None, None, 0)
        return _row(require_visible(ticket, actor, reference), address, messages)


def is_reference(text: str) -> bool:
    return bool(_REFERENCE.fullmatch(text.strip()))


__all__ = ["TicketFilters", "TicketList", "TicketRow", "is_reference", "list_tickets", "ticket_row"]
