"""Figures for `triage stats`: overdue tickets per team and the median time to a first answer.

Both read the same facts as the reminder run: a ticket is overdue when its level-1 due time
(the first response, in its team's business hours, not counting time waiting on the volunteer)
has passed and no person has answered it yet.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from statistics import median

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from triage.config import Settings
from triage.schedule.due import paused_intervals
from triage.schedule.policy import Policies
from triage.schedule.run import OPEN_STATUSES, answered_by_a_person, load_facts
from triage.store.models import Ticket, TicketStatus
from triage.store.outbox_models import Outbox, OutboxStatus

BATCH = 5000


def overdue_by_team(session: Session, settings: Settings, now: datetime) -> dict[str, int]:
    """Unanswered open tickets whose first response is past due, counted per team."""
    policies = Policies(settings.reminders)
    cutoff = now - timedelta(hours=policies.min_first_hours)
    counts: Counter[str] = Counter()
    after_id = 0
    while True:
        rows = list(session.execute(
            select(Ticket.id, Ticket.team, Ticket.status, Ticket.created_at)
            .where(Ticket.status.in_(OPEN_STATUSES), Ticket.status != TicketStatus.waiting, Ticket.created_at <= cutoff,
                   Ticket.team.is_not(None), Ticket.id > after_id, ~answered_by_a_person())
            .order_by(Ticket.id).limit(BATCH)
        ))
        if not rows:
            break
        after_id = rows[-1].id
        for facts in load_facts(session, rows):
            policy = policies.for_team(facts.team)
            due = policy.calendar.add(facts.created_at, policy.first_response_hours, paused_intervals(facts, now))
            if due <= now and facts.team is not None:
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
