"""The reminder tables: `reminders`, one row per reminder or escalation sent, keyed by (ticket,
level, due time), and `ticket_clocks`, the reminder clock of each open ticket.

The key is what makes the reminder run idempotent: a run inserts the rows with ON CONFLICT DO
NOTHING and keeps in its mails only the tickets whose insert won, in the same transaction, so two
runs (or two workers) never send the same reminder twice. The rows are also the ticket's log of
its reminders (`triage.schedule.history`): no separate events row is written for each.
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from triage.store.db import Base, utc


class Reminder(Base):
    """A reminder sent: narrow, because a run writes thousands in one statement."""

    __tablename__ = "reminders"

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), primary_key=True)
    level: Mapped[int] = mapped_column(primary_key=True)
    due_at: Mapped[utc] = mapped_column(primary_key=True)
    team: Mapped[str | None] = mapped_column(String(64))  # the owning team when it fired
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id"))  # the mail it went out in
    fired_at: Mapped[utc]


class TicketClock(Base):
    """The reminder clock of an open ticket: a narrow row, so that the reminder run reads and
    moves thousands of clocks without touching the wide, scattered ticket rows.

    Recomputed from the ticket's facts (triage.schedule.clocks) whenever `tickets.clock_stale_at`
    is set (triage.schedule.stale for ORM writes); deleted when the ticket is resolved.
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


__all__ = ["Reminder", "TicketClock"]
