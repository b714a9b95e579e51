"""ISO weeks in a team's time zone, and when a team's digest is due. Pure: `now` is passed in.

A digest reports on one ISO week (Monday 00:00 to the next Monday 00:00, local time of the team's
reminder calendar), and is due from the team's send time (weekday and hour, local) of the week
after. Between a Monday 00:00 and the send time the previous week's digest went out last week,
so nothing is due; a digest missed for a whole week (a worker down) is not sent late by the
schedule: `triage digest --week` sends it by hand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


class WeekError(ValueError):
    """Not an ISO week such as 2026-W48."""


@dataclass(frozen=True, order=True)
class Week:
    """An ISO week: `str(week)` is its label, 2026-W48."""

    year: int
    number: int

    def __str__(self) -> str:
        return f"{self.year:04d}-W{self.number:02d}"

    @property
    def monday(self) -> date:
        return date.fromisocalendar(self.year, self.number, 1)

    def shifted(self, weeks: int) -> Week:
        return week_of(self.monday + timedelta(weeks=weeks))

    def bounds(self, tz: str = "UTC") -> tuple[datetime, datetime]:
        """[start, end) in UTC: local Monday 00:00 to the next local Monday 00:00."""
        zone = ZoneInfo(tz)
        start = datetime.combine(self.monday, time(), tzinfo=zone)
        end = datetime.combine(self.monday + timedelta(weeks=1), time(), tzinfo=zone)
        return start.astimezone(UTC), end.astimezone(UTC)


def week_of(day: date) -> Week:
    year, number, _ = day.isocalendar()
    return Week(year, number)


def parse_week(value: str) -> Week:
    """`2026-W48` -> Week(2026, 48); WeekError for anything else (week 53 only where the year has one)."""
    match = _WEEK.match(value.strip())
    if not match:
        raise WeekError(f"{value!r} is not an ISO week such as 2026-W48")
    year, number = int(match.group(1)), int(match.group(2))
    try:
        date.fromisocalendar(year, number, 1)
    except ValueError:
        raise WeekError(f"{value!r}: {year} has no week {number}") from None
    return Week(year, number)


def local_week(now: datetime, tz: str) -> Week:
    """The ISO week `now` falls in, in time zone `tz`."""
    return week_of(now.astimezone(ZoneInfo(tz)).date())


def send_time(week: Week, tz: str, weekday: int, hour: int) -> datetime:
    """When the digest of the week *before* `week` is due: `weekday` (ISO, 1 = Monday) at `hour`
    local, in `week`; in UTC."""
    day = week.monday + timedelta(days=weekday - 1)
    return datetime.combine(day, time(hour), tzinfo=ZoneInfo(tz)).astimezone(UTC)


def due_week(now: datetime, tz: str, weekday: int, hour: int) -> Week | None:
    """The week whose digest is due at `now` (the previous week, once this week's send time has
    passed), or None before the send time."""
    current = local_week(now, tz)
    return current.shifted(-1) if now >= send_time(current, tz, weekday, hour) else None


def last_complete_week(now: datetime, tz: str) -> Week:
    """The latest week that has ended at `now`."""
    return local_week(now, tz).shifted(-1)


__all__ = ["Week", "WeekError", "due_week", "last_complete_week", "local_week", "parse_week", "send_time", "week_of"]
