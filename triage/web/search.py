"""/search: full-text search over the tickets, messages, notes and contacts the user may see, with
filters; every hit links to its ticket (a contact to its page), with a snippet whose matched words are <mark>ed by the template
(the snippet is text: its segments are escaped one by one, never marked safe)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from triage.desk.errors import Invalid
from triage.search.service import KIND_NAMES, SearchFilters, search
from triage.web.app import desk, login_of, page, render

_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _day(value: str | None, what: str, *, after: bool = False) -> datetime | None:
    """A YYYY-MM-DD form field as a UTC midnight (the next one for an inclusive end), or Invalid."""
    if not value:
        return None
    try:
        if not _DAY.fullmatch(value):
            raise ValueError(value)
        day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise Invalid(f"{what} is not a date: {value[:20]!r}", "use the date picker (YYYY-MM-DD)") from None
    return day + timedelta(days=1) if after else day


@page
def search_page(request: Request) -> Response:
    app, actor, params = desk(request), login_of(request).actor, request.query_params
    text = (params.get("q") or "").strip()
    team = params.get("team") or None
    kind = params.get("kind") or None
    form = {name: params.get(name) or "" for name in ("q", "team", "status", "since", "until", "language", "kind", "tag")}
    context: dict[str, Any] = {"form": form, "result": None, "error": None, "kinds": KIND_NAMES,
               "teams": {key: t.name for key, t in sorted(app.wiring.teams.items())},  # no model loaded
               "statuses": ["new", "open", "waiting", "resolved"]}
    status = 200
    if text:
        try:
            filters = SearchFilters(team="" if team == "none" else team, status=params.get("status") or None,
                                    since=_day(params.get("since"), "the start"),
                                    until=_day(params.get("until"), "the end", after=True),
                                    language=(params.get("language") or "").strip().lower() or None,
                                    kinds=(kind,) if kind else (), tag=(params.get("tag") or "").strip() or None)
            context["result"] = search(app, actor, text, filters)
        except Invalid as error:
            context["error"], status = error, error.status
    return render(request, "search.html", context, status=status)


routes = [Route("/search", search_page)]
