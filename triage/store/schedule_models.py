"""The reminders table: one row per reminder or escalation sent, keyed by (ticket, level, due time).

The unique key is what makes the reminder run idempotent: a run inserts the row with
ON CONFLICT DO NOTHING and queues the mail only when its insert won, in the same transaction,
so two runs (or two workers) never send the same reminder twice.
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from triage.store.db import Base, address, intpk, utc
from triage.store.models import Ticket


class Reminder(Base):
    __tablename__ = "reminders"
    __table_args__ = (
        UniqueConstraint("ticket_id", "level", "due_at", name="uq_reminders_ticket_level_due"),
        Index("ix_reminders_ticket_id_next_due_at", "ticket_id", "next_due_at"),
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


Index("ix_tickets_status_created_at", Ticket.status, Ticket.created_at)

__all__ = ["Reminder"]
