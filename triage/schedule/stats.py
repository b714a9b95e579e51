"""Figures for `triage stats`: overdue tickets per team and the median time to a first answer.

Both read the same facts as the reminder run: a ticket is overdue when its level-1 due time
(the first response, in its team's business hours, not counting time waiting on the volunteer)
has passed and no person has answered it yet.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from statistics import median

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from triage.config import Settings
from triage.schedule.clocks import stale_clocks
from triage.schedule.policy import Policies
from triage.schedule.run import RUNNING, answered_by_a_person
from triage.store.db import core_table
from triage.store.models import Ticket
from triage.store.outbox_models import Outbox, OutboxStatus
from triage.store.schedule_models import TicketClock


def overdue_by_team(session: Session, settings: Settings, now: datetime) -> dict[str, int]:
    """Unanswered open tickets whose first response is past due, counted per team.

    Fresh clocks are counted in SQL; stale ones (facts changed since the last reminder run)
    are computed here without being written, so a read never waits for the run.
    """
    tickets, clocks = core_table(Ticket), core_table(TicketClock)
    counts: Counter[str] = Counter()
    for team, n in session.execute(
        select(tickets.c.team, func.count()).select_from(clocks).join(tickets, tickets.c.id == clocks.c.ticket_id)
        .where(tickets.c.status.in_(RUNNING), tickets.c.clock_stale_at.is_(None), clocks.c.due_1 <= now,
               ~answered_by_a_person())
        .group_by(tickets.c.team)
    ):
        if team is not None:
            counts[team] += int(n)
    for facts, clock, _ in stale_clocks(session, Policies(settings.reminders), now):
        first = clock.due[0]
        if facts.team is not None and first is not None and first <= now:
            counts[facts.team] += 1
    return dict(sorted(counts.items()))


def median_first_response_hours(session: Session, since: datetime) -> dict[str, float]:
    """Median wall-clock hours from a ticket's arrival to the first mail a person queued on it, per team,
    over tickets created since `since` (the key "*" holds all teams together)."""
    first = (select(Outbox.ticket_id, func.min(Outbox.created_at).label("answered_at"))
             .where(Outbox.auto_submitted.is_(None), Outbox.status != OutboxStatus.failed,
                    Outbox.ticket_id.is_not(None))
             .group_by(Outbox.ticket_id).subquery())
    rows = session.execute(
        select(Ticket.team, Ticket.created_at, first.c.answered_at)
        .join(first, first.c.ticket_id == Ticket.id).where(Ticket.created_at >= since)
    )
    hours: dict[str, list[float]] = {"*": []}
    for team, created_at, answered_at in rows:
        value = (answered_at - created_at).total_seconds() / 3600
        hours["*"].append(value)
        hours.setdefault(team or "(unrouted)", []).append(value)
    return {team: round(median(values), 2) for team, values in sorted(hours.items()) if values}


__all__ = ["median_first_response_hours", "overdue_by_team"]
