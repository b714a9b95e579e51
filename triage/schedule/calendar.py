"""Business time: opening windows per team in its own time zone, holidays, quiet hours.

Everything here is pure and works on aware datetimes in UTC. Local wall-clock windows are
turned into UTC instants day by day through `zoneinfo`, so a DST change moves the window
in UTC and never stretches or shrinks the business hours counted.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

MAX_DAYS = 3 * 366  # a calendar with no opening day in three years is a configuration error

Interval = tuple[datetime, datetime]


class CalendarError(ValueError):
    """The calendar never opens (no business day, empty hours): fix the [reminders] settings."""


@dataclass(frozen=True)
class BusinessCalendar:
    """When a team works: `days` are ISO weekdays (1 = Monday), `start`-`end` local hours,
    minus `holidays` (whole local dates) and `quiet` (local intervals within a day)."""

    tz: str = "UTC"
    days: frozenset[int] = frozenset({1, 2, 3, 4, 5})
    start: time = time(9)
    end: time = time(17)
    holidays: frozenset[date] = frozenset()
    quiet: tuple[tuple[time, time], ...] = ()
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)
    _days: dict[date, list[Interval]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_zone", ZoneInfo(self.tz))
        object.__setattr__(self, "_days", {})
        if not self.days or self.start >= self.end:
            raise CalendarError(f"business hours never open: days={sorted(self.days)} {self.start}-{self.end}")

    def _at(self, day: date, moment: time) -> datetime:
        return datetime.combine(day, moment, tzinfo=self._zone).astimezone(UTC)

    def day_windows(self, day: date) -> list[Interval]:
        """The opening windows of one local date, in UTC, ascending (computed once per date)."""
        cached = self._days.get(day)
        if cached is None:
            cached = self._days[day] = self._compute_day(day)
        return cached

    def _compute_day(self, day: date) -> list[Interval]:
        if day.isoweekday() not in self.days or day in self.holidays:
            return []
        pieces: list[tuple[time, time]] = [(self.start, self.end)]
        for q_start, q_end in self.quiet:
            cut: list[tuple[time, time]] = []
            for s, e in pieces:
                if q_end <= s or q_start >= e:
                    cut.append((s, e))
                    continue
                if s < q_start:
                    cut.append((s, q_start))
                if q_end < e:
                    cut.append((q_end, e))
            pieces = cut
        windows = [(self._at(day, s), self._at(day, e)) for s, e in pieces]
        return [(s, e) for s, e in windows if s < e]  # a window inside a DST gap vanishes

    def windows_from(self, instant: datetime) -> Iterator[Interval]:
        """Opening windows (clipped to start at `instant`) from `instant` on, for ever."""
        day = instant.astimezone(self._zone).date() - timedelta(days=1)
        empty_days = 0
        while True:
            windows = self.day_windows(day)
            empty_days = 0 if windows else empty_days + 1
            if empty_days > MAX_DAYS:
                raise CalendarError("no opening day within three years: check days and holidays")
            for s, e in windows:
                if e > instant:
                    yield (max(s, instant), e)
            day += timedelta(days=1)

    def is_open(self, instant: datetime) -> bool:
        local_day = instant.astimezone(self._zone).date()
        return any(s <= instant < e for d in (local_day - timedelta(days=1), local_day)
                   for s, e in self.day_windows(d))

    def add(self, start: datetime, hours: float, paused: Sequence[Interval] = ()) -> datetime:
        """The instant at which `hours` business hours have passed since `start`, not counting `paused`.

        The result always lies inside an opening window (never at its closing instant): if the
        time runs out exactly at closing, it is due at the next opening.
        """
        remaining = timedelta(hours=hours)
        for s, e in self.windows_from(start):
            for ws, we in (_subtract(s, e, paused) if paused else ((s, e),)):
                length = we - ws
                if remaining < length:
                    return ws + remaining
                remaining -= length
        raise AssertionError("unreachable: windows_from never ends")  # pragma: no cover


def _subtract(start: datetime, end: datetime, paused: Sequence[Interval]) -> list[Interval]:
    pieces = [(start, end)]
    for p_start, p_end in paused:
        cut: list[Interval] = []
        for s, e in pieces:
            if p_end <= s or p_start >= e:
                cut.append((s, e))
                continue
            if s < p_start:
                cut.append((s, p_start))
            if p_end < e:
                cut.append((p_end, e))
        pieces = cut
    return pieces


__all__ = ["UTC", "BusinessCalendar", "CalendarError", "Interval"]
