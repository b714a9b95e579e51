"""/reports: the charts and tables of `triage.reports` for the period and team chosen, with each
table as a CSV download.

Charts are SVG files served by a route of this site (`image/svg+xml`) and shown with <img>, so
nothing in them can run as script, whatever a label says; the SVG response carries its own CSP
(no script, no loads) for anyone who opens it directly. One page view asks for the report once
and then for five charts: the report is kept for a minute per set of filters, so the charts and
the CSV downloads reuse the page's reading instead of reading again (at 100,000 tickets a reading
takes 0.7 to 2 s on this shared machine: bench/bench_reports.py). The page says the time its figures are from.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from triage.desk import reports as desk_reports
from triage.desk.errors import NotFound
from triage.reports import charts
from triage.reports.queries import Report, ReportFilters
from triage.reports.tables import tables, to_csv
from triage.web.app import desk, login_of, page, render

SVG_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'; sandbox"
CACHE_SECONDS = 60.0
CACHE_SIZE = 32


class ReportCache:
    """The last few reports by filters, each for CACHE_SECONDS (thread-safe: pages run in a pool).
    The filters are the ones the role rules produced, so one user never reads another's wider report."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: OrderedDict[ReportFilters, tuple[float, Report]] = OrderedDict()

    def get(self, filters: ReportFilters) -> Report | None:
        with self._lock:
            item = self._items.get(filters)
            if item is None or time.monotonic() - item[0] > CACHE_SECONDS:
                return None
            return item[1]

    def put(self, report: Report) -> None:
        with self._lock:
            self._items[report.filters] = (time.monotonic(), report)
            self._items.move_to_end(report.filters)
            while len(self._items) > CACHE_SIZE:
                self._items.popitem(last=False)


_cache_lock = threading.Lock()


def _cache_of(request: Request) -> ReportCache:
    """The workbench's own cache (one per application: two workbenches on two databases never share)."""
    state = request.app.state
    with _cache_lock:
        cache: ReportCache | None = getattr(state, "report_cache", None)
        if cache is None:
            cache = state.report_cache = ReportCache()
    return cache


def _filters(request: Request) -> tuple[ReportFilters, dict[str, str]]:
    """The filters from the query string, as the user's role allows, and the query that repeats them."""
    params, actor = request.query_params, login_of(request).actor
    since = desk_reports.parse_day(params.get("since"), "the first day")
    until = desk_reports.parse_day(params.get("until"), "the last day")
    filters = desk_reports.filters_for(actor, since=since, until=until, team=params.get("team") or None)
    query = {key: value for key, value in (("since", str(since) if since else ""),
                                           ("until", str(until) if until else ""),
                                           ("team", filters.team or "")) if value}
    return filters, query


def _report(request: Request) -> tuple[Report, dict[str, str]]:
    filters, query = _filters(request)
    cache = _cache_of(request)
    report = cache.get(filters)
    if report is None:
        report = desk_reports.report(desk(request), login_of(request).actor, filters)
        cache.put(report)
    return report, query


@page
def reports_page(request: Request) -> Response:
    report, query = _report(request)
    teams = {key: team.name for key, team in sorted(desk(request).wiring.teams.items())}
    return render(request, "reports.html", {
        "report": report, "tables": tables(report), "charts": list(charts.CHARTS),
        "chart_titles": {name: (fn.__doc__ or name).split("\n")[0] for name, fn in charts.CHARTS.items()},
        "query": urlencode(query), "teams": teams, "since": query.get("since", ""), "until": query.get("until", ""),
    })


@page
def chart_svg(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in charts.CHARTS:
        raise NotFound(f"no chart {name[:40]!r}", "pick a chart from /reports")
    report, _ = _report(request)
    return Response(charts.chart(report, name, "svg"), media_type="image/svg+xml",
                    headers={"Content-Security-Policy": SVG_CSP})


@page
def table_csv(request: Request) -> Response:
    name = request.path_params["name"]
    report, _ = _report(request)
    table = tables(report).get(name)
    if table is None:
        raise NotFound(f"no table {name[:40]!r}", "pick a table from /reports")
    return Response(to_csv(table), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="triage-{name}.csv"'})


routes = [
    Route("/reports", reports_page),
    Route("/reports/charts/{name}.svg", chart_svg),
    Route("/reports/tables/{name}.csv", table_csv),
]
