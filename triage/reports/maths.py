"""The pure half of the reports: grouped rows in, tables out. No database, no clock.

Days are the unit the queries group by (an ISO date string, 'YYYY-MM-DD', in UTC), so both
engines bucket the same way; weeks and months are made here from them: a week is the ISO week
('2026-W45', Monday to Sunday), a month 'YYYY-MM'.

Percentiles are interpolated linearly between the closest ranks (numpy's default
method, PostgreSQL's `percentile_cont`, which computes them there): for 1 h, 2 h and
10 h the median is 2 h and the 90th percentile 2 + 0.8 x (10 - 2) = 8.4 h.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from itertools import chain, groupby
from operator import itemgetter
from typing import cast

from triage.digest.weeks import week_of

UNROUTED = "(unrouted)"
UNKNOWN = "(unknown)"
NONE = "(none)"


def iso_week(day: str) -> str:
    """'2026-11-02' -> '2026-W45' (the ISO year, which differs from the calendar year around New
    Year): the weekly digest's own week label (`triage.digest.weeks`)."""
    return str(week_of(date.fromisoformat(day)))


def month(day: str) -> str:
    return day[:7]


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-th percentile (0-100) by linear interpolation between closest ranks; None for no values."""
    return ranked_percentile(sorted(values), q)


def ranked_percentile(ordered: Sequence[float], q: float) -> float | None:
    """`percentile` of values already in ascending order (a query's ORDER BY sorted them): two
    look-ups, no sort. The rank is q/100 x (n - 1), as numpy's and PostgreSQL's linear method."""
    if not ordered:
        return None
    rank = q / 100 * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))


@dataclass(frozen=True, slots=True)
class ResponseFigure:
    """First-response times of the tickets of one team (or '*', all teams) in one month."""

    month: str
    team: str
    answered: int  # tickets with a first response: the percentiles are over these
    unanswered: int  # tickets with none yet (left out of the percentiles, so shown beside them)
    median_hours: float | None
    p90_hours: float | None


def response_figure(month: str, team: str, tickets: int, answered: int, median_seconds: float | None,
                    p90_seconds: float | None) -> ResponseFigure:
    """One month and team's figure from counts and percentiles in seconds (what SQL computed)."""
    return ResponseFigure(month, team, answered, tickets - answered, _hours(median_seconds, 3600),
                          _hours(p90_seconds, 3600))


def first_response(rows: Iterable[tuple[str, str | None, float | None]]) -> list[ResponseFigure]:
    """(month the ticket arrived, team, seconds to its first response or None), ordered by month,
    team and seconds (None last) -> median and 90th percentile in hours per team and month, and for
    all teams together (team '*'), months in order. The order lets each team's values arrive sorted
    (two look-ups each); a month's are its teams' sorted runs, which one merge sort joins."""
    figures: list[ResponseFigure] = []
    for m, month_rows in groupby(rows, key=itemgetter(0)):
        tickets = 0
        runs: list[list[float]] = []
        for team, team_rows in groupby(month_rows, key=itemgetter(1)):
            values = [seconds for _, _, seconds in team_rows]
            answered = cast("list[float]", values[: len(values) - values.count(None)])
            tickets += len(values)
            runs.append(answered)
            figures.append(response_figure(m, team or UNROUTED, len(values), len(answered),
                                           ranked_percentile(answered, 50), ranked_percentile(answered, 90)))
        everyone = sorted(chain.from_iterable(runs))
        figures.append(response_figure(m, "*", tickets, len(everyone), ranked_percentile(everyone, 50),
                                       ranked_percentile(everyone, 90)))
    return sorted(figures, key=lambda f: (f.month, f.team))


def _hours(value: float | None, per_hour: float = 1.0) -> float | None:
    return None if value is None else round(value / per_hour, 2)


def volume(rows: Iterable[tuple[str, str | None, str | None, int]]) -> dict[str, list[tuple[str, str, int]]]:
    """(day, team, language, new tickets) -> new tickets per (week, team) and per (week, language),
    and per week in total (the second column '*')."""
    by_team: dict[tuple[str, str], int] = defaultdict(int)
    by_language: dict[tuple[str, str], int] = defaultdict(int)
    total: dict[tuple[str, str], int] = defaultdict(int)
    for day, team, language, n in rows:
        week = iso_week(day)
        by_team[(week, team or UNROUTED)] += int(n)
        by_language[(week, language or UNKNOWN)] += int(n)
        total[(week, "*")] += int(n)
    return {name: [(w, k, n) for (w, k), n in sorted(counts.items())]
            for name, counts in (("team", by_team), ("language", by_language), ("total", total))}


def by_week(rows: Iterable[tuple[str, str, int]]) -> list[tuple[str, str, int]]:
    """(day, key, count) -> (ISO week, key, count), summed; for mail per kind and the like."""
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for day, key, n in rows:
        counts[(iso_week(day), key or NONE)] += int(n)
    return [(w, k, n) for (w, k), n in sorted(counts.items())]


@dataclass(frozen=True, slots=True)
class RoutingWeek:
    """One ISO week of routing: decisions and how many agreed with the suggestion; suggestions made
    and how many named a team (coverage: the model did not abstain)."""

    week: str
    decisions: int
    agreed: int
    suggestions: int
    named: int

    @property
    def agreement(self) -> float | None:
        return round(self.agreed / self.decisions, 3) if self.decisions else None

    @property
    def coverage(self) -> float | None:
        return round(self.named / self.suggestions, 3) if self.suggestions else None


def routing_weeks(decisions: Iterable[tuple[str, int, int]],
                  suggestions: Iterable[tuple[str, int, int]]) -> list[RoutingWeek]:
    """(day, decisions, agreed) and (day, suggestions, naming a team) -> one row per ISO week."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for day, n, agreed in decisions:
        row = counts[iso_week(day)]
        row[0] += int(n)
        row[1] += int(agreed or 0)
    for day, n, named in suggestions:
        row = counts[iso_week(day)]
        row[2] += int(n)
        row[3] += int(named or 0)
    return [RoutingWeek(week, *row) for week, row in sorted(counts.items())]


def confusion(rows: Iterable[tuple[str | None, str, int]]) -> list[tuple[str, str, int]]:
    """(suggested team, team chosen, decisions) -> the corrections only (suggested != chosen),
    most frequent first; a ticket the model had no suggestion for is suggested '(none)'."""
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for suggested, chosen, n in rows:
        if suggested != chosen:
            counts[(suggested or NONE, chosen)] += int(n)
    return sorted(((s, c, n) for (s, c), n in counts.items()), key=lambda row: (-row[2], row[0], row[1]))


def confusion_matrix(rows: Iterable[tuple[str | None, str, int]]) -> tuple[list[str], list[str], list[list[int]]]:
    """Every decision as a matrix: (suggested teams, chosen teams, counts[suggested][chosen])."""
    counts = {(suggested or NONE, chosen): int(n) for suggested, chosen, n in rows}
    suggested = sorted({s for s, _ in counts})
    chosen = sorted({c for _, c in counts})
    return suggested, chosen, [[counts.get((s, c), 0) for c in chosen] for s in suggested]


__all__ = ["NONE", "UNKNOWN", "UNROUTED", "ResponseFigure", "RoutingWeek", "by_week", "confusion",
           "confusion_matrix", "first_response", "iso_week", "month", "percentile", "ranked_percentile", "response_figure",
           "routing_weeks", "volume"]
