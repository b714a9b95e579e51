"""The reminders table: one row per reminder or escalation sent, keyed by (ticket, level, due time).

The unique key is what makes the reminder run idempotent: a run inserts the row with
ON CONFLICT DO NOTHING and queues the mail only when its insert won, in the same transaction,
so two runs (or two workers) never send the same reminder twice.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, event, inspect
from sqlalchemy.orm import Mapped, Session, mapped_column

from triage.store.db import Base, address, intpk, utc, utcnow
from triage.store.models import Ticket
from triage.store.outbox_models import Outbox


class Reminder(Base):
    __tablename__ = "reminders"
    __table_args__ = (
        UniqueConstraint("ticket_id", "level", "due_at", name="uq_reminders_ticket_level_due"),
    )

    id: Mapped[intpk]
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    level: Mapped[int]
    due_at: Mapped[utc]
    team: Mapped[str | None] = mapped_column(String(64))
    to_addr: Mapped[address | None]
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id"))
    fired_at: Mapped[utc]
    next_due_at: Mapped[utc | None]  # earliest the next level can be due; None: the ladder is done
    run_id: Mapped[str | None] = mapped_column(String(32), index=True)  # the run that fired it


class TicketClock(Base):
    """The reminder clock of an open ticket: a narrow row, so that the reminder run reads and
    moves thousands of clocks without touching the wide, scattered ticket rows.

    Recomputed from the ticket's facts (triage.schedule.clocks) whenever `tickets.clock_stale_at`
    is set; deleted when the ticket is resolved.
    """

    __tablename__ = "ticket_clocks"

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), primary_key=True)
    team: Mapped[str | None] = mapped_column(String(64))
    due_1: Mapped[utc | None]  # each level's due time; None while the clock is stopped
    due_2: Mapped[utc | None]
    due_3: Mapped[utc | None]
    reminded_level: Mapped[int] = mapped_column(default=0)  # the highest level sent
    next_at: Mapped[utc | None] = mapped_column(index=True)  # the next level's due time; None: stopped
    stopped: Mapped[str | None] = mapped_column(String(32))  # why: answered, waiting-on-volunteer, ...


Index("ix_tickets_status_created_at", Ticket.status, Ticket.created_at)

@event.listens_for(Session, "before_flush")
def _stale_on_change(session: Session, _context: Any, _instances: Any) -> None:
    """ORM writes that change a ticket's facts make its clock stale, in the same flush."""
    for obj in (*session.new, *session.dirty):
        if isinstance(obj, Ticket):
            state = inspect(obj)
            if obj not in session.new and any(
                state.attrs[name].history.has_changes() for name in ("status", "team", "created_at")
            ):
                obj.clock_stale_at = utcnow()
        elif (isinstance(obj, Outbox) and obj.ticket_id is not None and obj.auto_submitted is None
              and (obj in session.new or inspect(obj).attrs.status.history.has_changes())):
            ticket = session.get(Ticket, obj.ticket_id)
            if ticket is not None:
                ticket.clock_stale_at = utcnow()


__all__ = ["Reminder", "TicketClock"]
