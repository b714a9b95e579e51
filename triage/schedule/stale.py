"""Reminder clocks go stale when a ticket's facts change through the ORM.

Registered by `bootstrap()` on the App's own write sessionmaker (never on SQLAlchemy's `Session`
class, which would reach every session in the process): an ORM write through `app.sessions` that
changes a ticket's status, team or creation time, or queues, fails or sends a person's mail on it,
sets `tickets.clock_stale_at` in the same flush, and the next reminder run recomputes the clock
(`triage.schedule.clocks`). Core writes (the ingest batch, the reminder run) set it themselves.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session, sessionmaker

from triage.store.db import utcnow
from triage.store.models import Ticket
from triage.store.outbox_models import Outbox

FACTS = ("status", "team", "created_at")


def _stale_on_change(session: Session, _context: Any, _instances: Any) -> None:
    for obj in (*session.new, *session.dirty):
        if isinstance(obj, Ticket):
            state = inspect(obj)
            if obj not in session.new and any(state.attrs[name].history.has_changes() for name in FACTS):
                obj.clock_stale_at = utcnow()
        elif (isinstance(obj, Outbox) and obj.ticket_id is not None and obj.auto_submitted is None
              and (obj in session.new or inspect(obj).attrs.status.history.has_changes())):
            ticket = session.get(Ticket, obj.ticket_id)
            if ticket is not None:
                ticket.clock_stale_at = utcnow()


def stale_clocks_on_change(sessions: sessionmaker[Session]) -> None:
    """Make ORM writes through `sessions` (a new sessionmaker: call once) mark the changed tickets'
    clocks stale. No `event.contains` guard: SQLAlchemy keys its registry by the target's id(), and
    a new sessionmaker can take the address of one just freed whose entry is not cleared until the
    cyclic collector frees its class, so the guard would skip the listener, at random."""
    event.listen(sessions, "before_flush", _stale_on_change)


__all__ = ["stale_clocks_on_change"]
