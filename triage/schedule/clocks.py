"""Reminder clocks: each open ticket has one, so the run finds due tickets by index.

A ticket's clock is a pure function of its facts (`due.ticket_clock`), kept in the narrow
`ticket_clocks` table. Whatever changes those facts (a new ticket, a status or team change,
a person's reply queued, a reply that failed) sets `tickets.clock_stale_at` (the App's ORM
sessions do it in a `before_flush` hook, `triage.schedule.stale`; the batch store in its UPDATE);
`refresh_clocks` recomputes the stale ones at the start of each reminder run. So the run's
cost follows the tickets that changed since the last run and the tickets due, never the
size of the desk. The run's SQL checks status and answer again, so a clock that missed a
change can make a reminder late, never one sent to a closed or answered ticket.
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
from triage.store.db import core_table, upsert_insert
from triage.store.models import Event, Ticket, TicketStatus
from triage.store.outbox_models import Outbox, OutboxStatus
from triage.store.schedule_models import Reminder, TicketClock

BATCH = 5000
T = core_table(Ticket)
C = core_table(TicketClock)


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
) -> list[tuple[TicketFacts, Clock, datetime]]:
    """The clocks of the stale tickets, computed but not written (readers such as stats use this),
    each with the `clock_stale_at` it was computed for."""
    out: list[tuple[TicketFacts, Clock, datetime]] = []
    stale = sorted(session.scalars(select(T.c.id).where(T.c.clock_stale_at.is_not(None))))
    for start in range(0, len(stale), batch):
        rows = list(session.execute(
            select(T.c.id, T.c.team, T.c.status, T.c.created_at, T.c.clock_stale_at)
            .where(T.c.id.in_(stale[start:start + batch])).order_by(T.c.id)
        ))
        marks = {row.id: row.clock_stale_at for row in rows}
        out += [(f, ticket_clock(f, policies.for_team(f.team), now), marks[f.ticket_id])
                for f in load_facts(session, rows)]
    return out


def refresh_clocks(session: Session, policies: Policies, now: datetime, *, batch: int = BATCH) -> int:
    """Recompute and store every stale clock, in the caller's transaction; returns how many."""
    stale = stale_clocks(session, policies, now, batch=batch)
    if not stale:
        return 0
    closed = [f.ticket_id for f, clock, _ in stale if clock.stopped == "resolved"]
    for start in range(0, len(closed), batch):
        session.execute(C.delete().where(C.c.ticket_id.in_(closed[start:start + batch])))
    live = [{"ticket_id": f.ticket_id, "team": f.team, "due_1": c.due[0], "due_2": c.due[1], "due_3": c.due[2],
             "reminded_level": c.reminded_level, "next_at": c.next_at, "stopped": c.stopped}
            for f, c, _ in stale if c.stopped != "resolved"]
    if live:
        insert = upsert_insert(session)(C)
        session.execute(insert.on_conflict_do_update(
            index_elements=["ticket_id"],
            set_={name: insert.excluded[name] for name in live[0] if name != "ticket_id"},
        ), live)
    # Cleared only where nothing marked the ticket again since it was read (a concurrent change).
    session.execute(
        update(T).where(T.c.id == bindparam("tid"), T.c.clock_stale_at == bindparam("seen"))
        .values(clock_stale_at=None),
        [{"tid": f.ticket_id, "seen": seen} for f, _, seen in stale],
    )
    return len(stale)


__all__ = ["load_facts", "refresh_clocks", "stale_clocks"]
