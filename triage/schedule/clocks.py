"""Reminder clocks: each open ticket carries its due times, so the run finds due tickets by index.

A ticket's clock is a pure function of its facts (`due.ticket_clock`). Whatever changes those
facts (a new ticket, a status or team change, a person's reply queued, a reply that failed)
sets `next_reminder_at` to CLOCK_STALE (the ORM does it in a `before_flush` hook in
`triage.store.schedule_models`, the batch store in its UPDATE); `refresh_clocks` recomputes the stale ones at the start of each reminder run.
So the run's cost follows the tickets that changed since the last run and the tickets due,
never the size of the desk. The run's SQL checks status and answer again, so a clock that
missed a change can make a reminder late, never one sent to a closed or answered ticket.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from triage.schedule.due import Clock, TicketFacts, ticket_clock
from triage.schedule.policy import Policies
from triage.store.db import CLOCK_STALE, core_table
from triage.store.models import Event, Ticket, TicketStatus
from triage.store.outbox_models import Outbox, OutboxStatus
from triage.store.schedule_models import Reminder

BATCH = 5000


def load_facts(session: Session, rows: Sequence[Any]) -> list[TicketFacts]:
    """The facts of `rows` (id, team, status, created_at): status changes, levels sent, first answer."""
    ids = [row.id for row in rows]
    changes: dict[int, list[tuple[datetime, str]]] = defaultdict(list)
    for ticket_id, at, detail in session.execute(
        select(Event.ticket_id, Event.at, Event.detail).where(Event.ticket_id.in_(ids), Event.action == "status")
    ):
        if ticket_id is not None and isinstance(detail, dict) and detail.get("new"):
            changes[ticket_id].append((at, str(detail["new"])))
    reminded: dict[int, set[int]] = defaultdict(set)
    for ticket_id, level in session.execute(
        select(Reminder.ticket_id, Reminder.level).where(Reminder.ticket_id.in_(ids))
    ):
        reminded[ticket_id].add(level)
    answered: dict[int, datetime] = {}
    for ticket_id, at in session.execute(
        select(Outbox.ticket_id, Outbox.created_at).where(
            Outbox.ticket_id.in_(ids), Outbox.auto_submitted.is_(None), Outbox.status != OutboxStatus.failed)
    ):
        if ticket_id is not None and (ticket_id not in answered or at < answered[ticket_id]):
            answered[ticket_id] = at
    return [
        TicketFacts(row.id, row.team, row.created_at, _status(row.status), answered.get(row.id),
                    tuple(changes[row.id]), frozenset(reminded[row.id]))
        for row in rows
    ]


def _status(value: Any) -> str:
    return value.value if isinstance(value, TicketStatus) else str(value)


def stale_clocks(
    session: Session, policies: Policies, now: datetime, *, batch: int = BATCH
) -> list[tuple[TicketFacts, Clock]]:
    """The clocks of the stale open tickets, computed but not written (for readers such as stats)."""
    out: list[tuple[TicketFacts, Clock]] = []
    after = 0
    while True:
        rows = list(session.execute(
            select(Ticket.id, Ticket.team, Ticket.status, Ticket.created_at)
            .where(Ticket.next_reminder_at == CLOCK_STALE, Ticket.id > after).order_by(Ticket.id).limit(batch)
        ))
        if not rows:
            return out
        after = rows[-1].id
        out += [(f, ticket_clock(f, policies.for_team(f.team), now)) for f in load_facts(session, rows)]


def refresh_clocks(session: Session, policies: Policies, now: datetime, *, batch: int = BATCH) -> int:
    """Recompute and store every stale clock, in the caller's transaction; returns how many."""
    session.execute(  # closed tickets need no facts: their clock stops
        update(Ticket).where(Ticket.next_reminder_at == CLOCK_STALE, Ticket.status == TicketStatus.resolved)
        .values(next_reminder_at=None, reminder_due_1=None, reminder_due_2=None, reminder_due_3=None)
        .execution_options(synchronize_session=False)
    )
    clocks = stale_clocks(session, policies, now, batch=batch)
    if clocks:
        table = core_table(Ticket)
        session.execute(
            # Only rows still stale: a concurrent run may have fired and moved the clock meanwhile.
            update(table).where(table.c.id == bindparam("tid"), table.c.next_reminder_at == CLOCK_STALE).values(
                reminder_due_1=bindparam("d1"), reminder_due_2=bindparam("d2"), reminder_due_3=bindparam("d3"),
                reminded_level=bindparam("level"), next_reminder_at=bindparam("next_at"),
            ),
            [{"tid": f.ticket_id, "d1": c.due[0], "d2": c.due[1], "d3": c.due[2], "level": c.reminded_level,
              "next_at": c.next_at} for f, c in clocks],
        )
    return len(clocks)


__all__ = ["load_facts", "refresh_clocks", "stale_clocks"]
