"""The report charts, drawn by matplotlib and rendered to SVG (the workbench) or PNG (files).

Thread-safe use: each chart is its own `Figure` rendered through the Agg/SVG canvas, never
pyplot's global state, because the web server draws in a thread pool. Text on a chart comes from
teams and contacts, so every label is cut short and its `$` escaped (matplotlib would otherwise
read `$...$` as mathtext and could fail on it); SVG text is drawn as paths, and matplotlib
XML-escapes whatever it writes as text.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Callable

import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from triage.reports import maths
from triage.reports.queries import Report

# Stable ids inside the SVG, so the same report draws the same bytes (the chart under docs/).
matplotlib.rcParams["svg.hashsalt"] = "triage-reports"

FORMATS = ("svg", "png")
WIDTH, HEIGHT, DPI = 8.0, 3.6, 100
MAX_LABEL = 32
MAX_SERIES = 8  # more teams than this: the largest ones, the rest summed as "other"


def label(text: str) -> str:
    """Chart-safe text: at most MAX_LABEL characters, no mathtext."""
    short = text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"
    return short.replace("$", r"\$")


def _figure(title: str, *, left: float = 0.08, right: float = 0.97, bottom: float = 0.2) -> tuple[Figure, Axes]:
    """A figure with fixed margins: a layout engine (constrained, tight) measures every text and
    costs more than drawing the chart itself (0.5 s of 0.9 s for the volume chart here)."""
    fig = Figure(figsize=(WIDTH, HEIGHT), dpi=DPI)
    fig.subplots_adjust(left=left, right=right, bottom=bottom, top=0.9)
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=11)
    return fig, ax


def _empty(ax: Axes, text: str = "nothing in this period") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def _values(values: list[float | None]) -> list[float]:
    """None (no data that week) as NaN: matplotlib leaves a gap in the line."""
    return [float("nan") if v is None else v for v in values]


def _ticks(ax: Axes, labels: list[str]) -> None:
    """Category labels on the x axis, thinned to about a dozen so they stay readable."""
    step = max(1, len(labels) // 12)
    positions = list(range(0, len(labels), step))
    ax.set_xticks(positions, [label(labels[i]) for i in positions], rotation=45, ha="right", fontsize=8)


def volume_chart(report: Report) -> Figure:
    """New tickets per ISO week, stacked by team (a stacked area: one polygon a team, not a bar a week)."""
    fig, ax = _figure("New tickets per week, by team", right=0.78)
    rows = report.volume.get("team", [])
    if not rows:
        _empty(ax)
        return fig
    weeks = sorted({w for w, _, _ in rows})
    totals: dict[str, int] = defaultdict(int)
    for _, team, n in rows:
        totals[team] += n
    keep = sorted(totals, key=lambda t: (-totals[t], t))[:MAX_SERIES]
    series: dict[str, list[int]] = {team: [0] * len(weeks) for team in sorted(keep)}
    index = {w: i for i, w in enumerate(weeks)}
    for week, team, n in rows:
        series.setdefault(team if team in keep else "other", [0] * len(weeks))[index[week]] += n
    ax.stackplot(range(len(weeks)), *series.values(), labels=[label(team) for team in series], step="mid")
    ax.set_xlim(-0.5, len(weeks) - 0.5)
    _ticks(ax, weeks)
    ax.set_ylabel("tickets")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def response_chart(report: Report) -> Figure:
    """Median and 90th percentile of the first-response time per month (all teams, or the one filtered)."""
    fig, ax = _figure("First-response time per month (hours)")
    key = report.filters.team or "*"
    rows = [f for f in report.first_response if f.team == key and f.median_hours is not None]
    if not rows:
        _empty(ax)
        return fig
    months = [f.month for f in rows]
    ax.plot(months, _values([f.median_hours for f in rows]), marker="o", label="median")
    ax.plot(months, _values([f.p90_hours for f in rows]), marker="s", linestyle="--", label="90th percentile")
    ax.set_ylabel("hours")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    return fig


def routing_chart(report: Report) -> Figure:
    """Agreement (decisions that took the suggestion) and coverage (suggestions naming a team) per week."""
    fig, ax = _figure("Routing agreement and coverage per week")
    rows = report.routing
    if not rows:
        _empty(ax)
        return fig
    weeks = [r.week for r in rows]
    x = list(range(len(weeks)))
    ax.plot(x, _values([r.agreement for r in rows]), marker="o", label="agreement")
    ax.plot(x, _values([r.coverage for r in rows]), marker="s", linestyle="--", label="coverage")
    _ticks(ax, weeks)
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8)
    return fig


def confusion_chart(report: Report) -> Figure:
    """Every routing decision as a matrix: the suggested team (rows) against the team chosen."""
    fig, ax = _figure("Suggested team (rows) against the team chosen", left=0.22, bottom=0.3)
    suggested, chosen, counts = maths.confusion_matrix(report.decisions_matrix)
    if not counts:
        _empty(ax)
        return fig
    ax.imshow(counts, cmap="Blues", aspect="auto")
    ax.set_yticks(range(len(suggested)), [label(s) for s in suggested], fontsize=8)
    ax.set_xticks(range(len(chosen)), [label(c) for c in chosen], rotation=45, ha="right", fontsize=8)
    peak = max(max(row) for row in counts) or 1
    if len(suggested) * len(chosen) <= 400:
        for i, row in enumerate(counts):
            for j, n in enumerate(row):
                if n:
                    ax.text(j, i, str(n), ha="center", va="center", fontsize=7,
                            color="white" if n > peak / 2 else "black")
    return fig


def backlog_chart(report: Report) -> Figure:
    """Now: overdue tickets and tickets waiting on the volunteer, per team."""
    fig, ax = _figure("Overdue and waiting on the volunteer, now", left=0.22, bottom=0.14)
    waiting = {w.team: w.tickets for w in report.waiting}
    teams = sorted(set(report.overdue) | set(waiting))
    if not teams:
        _empty(ax, "nothing overdue or waiting")
        return fig
    y = list(range(len(teams)))
    ax.barh([i - 0.2 for i in y], [report.overdue.get(t, 0) for t in teams], height=0.4, label="overdue")
    ax.barh([i + 0.2 for i in y], [waiting.get(t, 0) for t in teams], height=0.4, label="waiting on volunteer")
    ax.set_yticks(y, [label(t) for t in teams], fontsize=8)
    ax.set_xlabel("tickets")
    ax.legend(fontsize=8)
    return fig


CHARTS: dict[str, Callable[[Report], Figure]] = {
    "volume": volume_chart,
    "first_response": response_chart,
    "routing": routing_chart,
    "confusion": confusion_chart,
    "backlog": backlog_chart,
}


def render(figure: Figure, fmt: str) -> bytes:
    """The figure as SVG or PNG bytes (no date in the SVG's metadata, so output is reproducible)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown chart format {fmt!r}")
    out = io.BytesIO()
    metadata = {"Date": None} if fmt == "svg" else {"Software": None}
    figure.savefig(out, format=fmt, metadata=metadata)
    return out.getvalue()


def chart(report: Report, name: str, fmt: str = "svg") -> bytes:
    return render(CHARTS[name](report), fmt)


__all__ = ["CHARTS", "FORMATS", "chart", "label", "render"]
