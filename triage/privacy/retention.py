"""The retention run: erase the content of tickets resolved more than `privacy.retention_months`
ago, as of `now` (the worker's clock, so tests move time instead of waiting).

Idempotent: an emptied ticket is listed in `erased_tickets` and skipped, unless it changed after
its erasure (mail arrived on the shell), in which case its new content is erased in turn. Each
batch of tickets is one transaction and one tombstone (reason "retention"); the log says counts
only.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import and_, exists, select
from sqlalchemy.orm import Session, sessionmaker

from triage.config import PrivacySettings
from triage.privacy.erase import erase, scrubbing
from triage.privacy.scope import tickets_scope
from triage.store.models import Ticket, TicketStatus
from triage.store.privacy_models import ErasedTicket

log = structlog.get_logger(__name__)

ACTOR = "system:retention"


def months_before(now: datetime, months: int) -> datetime:
    """`now` moved back by whole calendar months; the day is clamped (31 March - 1 month = 28/29 Feb)."""
    index = now.year * 12 + now.month - 1 - months
    year, month = divmod(index, 12)
    day = min(now.day, calendar.monthrange(year, month + 1)[1])
    return now.replace(year=year, month=month + 1, day=day)


def due_tickets(session: Session, cutoff: datetime, limit: int) -> list[int]:
    """Resolved tickets last changed before `cutoff` and not erased since they last changed."""
    already = exists().where(and_(ErasedTicket.ticket_id == Ticket.id, ErasedTicket.erased_at > Ticket.updated_at))
    return list(session.scalars(
        select(Ticket.id).where(Ticket.status == TicketStatus.resolved, Ticket.updated_at < cutoff, ~already)
        .order_by(Ticket.id).limit(limit)))


@dataclass
class RetentionRun:
    cutoff: datetime | None
    tickets: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"cutoff": self.cutoff.isoformat() if self.cutoff else None, "tickets": self.tickets, **self.counts}


def run_retention(sessions: sessionmaker[Session], settings: PrivacySettings, *, now: datetime) -> RetentionRun:
    """One retention pass to the end of what is due; nothing when retention_months is 0."""
    if not settings.retention_months:
        return RetentionRun(None)
    run = RetentionRun(months_before(now, settings.retention_months))
    assert run.cutoff is not None
    while True:
        with sessions.begin() as session:
            ids = due_tickets(session, run.cutoff, settings.batch_size)
            if not ids:
                break
            with scrubbing(session, purge=False):
                tombstone = erase(session, tickets_scope(session, ids), actor=ACTOR, reason="retention", now=now)
            run.tickets += len(ids)
            for key, value in tombstone.counts.items():
                run.counts[key] = run.counts.get(key, 0) + int(value)
    if run.tickets:
        # Once per run, not per batch: merging the search index costs time in proportion to its size.
        # A crash before this leaves the erased words in its old segments until the next run that
        # erases something.
        with sessions.begin() as session, scrubbing(session):
            pass
        log.info("privacy.retention", **run.as_dict())
    return run


__all__ = ["RetentionRun", "due_tickets", "months_before", "run_retention"]
