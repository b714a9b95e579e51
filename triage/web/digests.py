"""/digests: each team's weekly digest (opt-in, schedule, the last one sent) and a preview of the
one this week sends, as the mail will read. Staff see their own team's only. The page reads; the
run is the worker's (or `triage digest`)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from triage.desk.digests import overview
from triage.web.app import desk, login_of, page, render


@page
def digests_page(request: Request) -> Response:
    rows = overview(desk(request), login_of(request).actor)
    return render(request, "digests.html", {"rows": rows})


routes = [Route("/digests", digests_page)]
