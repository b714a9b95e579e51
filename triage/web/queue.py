"""The queue: tickets awaiting a routing decision."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from triage.web.app import desk, page, render


@page
def queue_page(request: Request) -> Response:
    app = desk(request)
    with app.reads() as session:
        rows = app.router().queue(session)
    return render(request, "queue.html", {"rows": rows})


routes = [Route("/queue", queue_page)]
