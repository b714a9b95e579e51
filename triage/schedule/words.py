"""A ticket's reminder clock in words, for the ticket page: "team reminded in 3 business hours",
"stopped: answered". Pure: the clock, the team's calendar and `now` are passed in."""

from __future__ import annotations

from datetime import datetime, timedelta

from triage.schedule.calendar import BusinessCalendar
from triage.schedule.due import Clock
from triage.schedule.policy import LEVEL_NAMES

STOPPED = {
    "answered": "stopped: answered",
    "resolved": "stopped: resolved",
    "no-team": "stopped: no team yet (approve a routing first)",
    "waiting-on-volunteer": "stopped: waiting on the volunteer",
    "ladder-complete": "stopped: every reminder and escalation was sent",
}
WHO = {"team": "team reminded", "team-lead": "team lead reminded", "liaison": "escalated to the liaison"}


def business_time_between(calendar: BusinessCalendar, start: datetime, end: datetime) -> timedelta:
    """The business time from `start` to `end` (zero if `end` is not later)."""
    total = timedelta()
    if end <= start:
        return total
    for s, e in calendar.windows_from(start):
        if s >= end:
            break
        total += min(e, end) - s
    return total


def _duration(span: timedelta) -> str:
    minutes = round(span.total_seconds() / 60)
    if minutes < 60:
        return "less than a minute" if minutes < 1 else f"{minutes} business minute{'s' * (minutes != 1)}"
    hours = round(minutes / 60)
    return f"{hours} business hour{'s' * (hours != 1)}"


def clock_in_words(clock: Clock, calendar: BusinessCalendar, now: datetime) -> str:
    """What the reminder clock will do next, or why it will do nothing."""
    if clock.next_at is None:
        return STOPPED.get(clock.stopped or "", f"stopped: {clock.stopped or 'unknown'}")
    who = WHO.get(LEVEL_NAMES.get(clock.reminded_level + 1, ""), "reminder")
    if clock.next_at <= now:
        return f"{who} at the next reminder run (due since {clock.next_at:%Y-%m-%d %H:%M} UTC)"
    return f"{who} in {_duration(business_time_between(calendar, now, clock.next_at))}"


__all__ = ["STOPPED", "business_time_between", "clock_in_words"]
