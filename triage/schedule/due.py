"""When a ticket's next reminder is due: a pure function of its facts, its policy and `now`.

`TicketFacts` is the compact summary of the ticket's events: when it arrived, when a person
first answered, its status changes (the clock pauses while the ticket waits on the volunteer)
and the levels already sent. `ticket_clock` turns it into the clock the reminder run stores
and queries in SQL; `next_due` is the same decision for one ticket at one instant (`Due`, or
`Skip` with its reason), the specification a property test holds the stored clocks to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from triage.schedule.calendar import Interval
from triage.schedule.policy import LEVELS, Policy

WAITING = "waiting"
CLOSED = frozenset({"resolved"})


@dataclass(frozen=True)
class TicketFacts:
    ticket_id: int
    team: str | None
    created_at: datetime
    status: str
    answered_at: datetime | None = None
    status_changes: Sequence[tuple[datetime, str]] = ()  # (when, new status), any order
    reminded: frozenset[int] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Due:
    ticket_id: int
    level: int
    due_at: datetime


@dataclass(frozen=True)
class Skip:
    ticket_id: int
    reason: str
    due_at: datetime | None = None
    level: int | None = None


def paused_intervals(facts: TicketFacts, now: datetime) -> list[Interval]:
    """The intervals up to `now` in which the ticket waited on the volunteer (clock stopped)."""
    paused: list[Interval] = []
    since: datetime | None = None
    for when, status in sorted(facts.status_changes, key=lambda change: change[0]):
        if when > now:
            break
        if status == WAITING and since is None:
            since = when
        elif status != WAITING and since is not None:
            paused.append((since, when))
            since = None
    if since is not None:
        paused.append((since, now))
    return paused


def _times(facts: TicketFacts, policy: Policy, now: datetime, upto: int) -> dict[int, datetime]:
    """Due times of levels 1.. until one lies after `now` (and at least up to level `upto`).

    Business time adds up, so each level continues from the one before instead of starting over.
    """
    paused = paused_intervals(facts, now)
    times: dict[int, datetime] = {}
    at, hours = facts.created_at, policy.first_response_hours
    for level in LEVELS:
        at = times[level] = policy.calendar.add(at, hours, paused)
        hours = policy.reminder_hours
        if at > now and level >= upto:
            break
    return times


def next_due(facts: TicketFacts, policy: Policy, now: datetime) -> Due | Skip:
    """The level to send now, or why not. Several overdue levels send only the highest one."""
    if facts.answered_at is not None and facts.answered_at <= now:
        return Skip(facts.ticket_id, "answered")
    if facts.status in CLOSED:
        return Skip(facts.ticket_id, "resolved")
    if facts.team is None:
        return Skip(facts.ticket_id, "no-team")
    done = max(facts.reminded, default=0)
    if done >= LEVELS[-1]:
        return Skip(facts.ticket_id, "ladder-complete")
    times = _times(facts, policy, now, done + 1)
    reached = max((level for level, at in times.items() if at <= now), default=0)
    level = reached if reached > done else done + 1  # the level this ticket is heading for
    if facts.status == WAITING:
        return Skip(facts.ticket_id, "waiting-on-volunteer", times[level], level)
    if reached == 0:
        return Skip(facts.ticket_id, "not-due", times[level], level)
    if reached <= done:
        return Skip(facts.ticket_id, "already-reminded", times[level], level)
    if not policy.calendar.is_open(now):
        return Skip(facts.ticket_id, "outside-business-hours", times[level], level)
    return Due(facts.ticket_id, level, times[level])


@dataclass(frozen=True)
class Clock:
    """What the reminder run stores on a ticket so that SQL alone can find it when it falls due.

    `due` holds each level's due time (None while the clock is stopped), `next_at` the due time
    of the next level not yet sent (None: nothing will ever fall due without a change of facts,
    and `stopped` says why).
    """

    due: tuple[datetime | None, datetime | None, datetime | None]
    reminded_level: int
    next_at: datetime | None
    stopped: str | None  # why there is no next reminder: answered, resolved, no-team, waiting..., ladder-complete


def ticket_clock(facts: TicketFacts, policy: Policy, now: datetime) -> Clock:
    """The clock of a ticket as of its facts. Due times do not depend on `now` unless the ticket
    is waiting, and then the clock is stopped until its status changes (which makes it stale)."""
    level = max(facts.reminded, default=0)
    stopped: str | None = None
    if facts.answered_at is not None and facts.answered_at <= now:
        stopped = "answered"
    elif facts.status in CLOSED:
        stopped = "resolved"
    elif facts.team is None:
        stopped = "no-team"
    elif facts.status == WAITING:
        stopped = "waiting-on-volunteer"
    if stopped is not None:
        return Clock((None, None, None), level, None, stopped)
    times = _times(facts, policy, now, LEVELS[-1])
    due = (times[1], times[2], times[3])
    if level >= LEVELS[-1]:  # still unanswered and overdue, but nobody is left to remind
        return Clock(due, level, None, "ladder-complete")
    return Clock(due, level, due[level], None)


__all__ = ["Clock", "Due", "Skip", "TicketFacts", "next_due", "paused_intervals", "ticket_clock"]
