"""/tickets: the tickets the user may see, newest first, filtered by status, team, flag and
subject text; a ticket's reference typed into the search opens that ticket."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from triage.desk import lists
from triage.desk.errors import Invalid
from triage.web.app import desk, login_of, page, render


def _flagged(value: str | None) -> bool | None:
    if value in (None, ""):
        return None
    if value in ("yes", "no"):
        return value == "yes"
    raise Invalid(f"expected yes or no, not {value!r}", "use the filter form")


@page
def tickets_page(request: Request) -> Response:
    app, actor, params = desk(request), login_of(request).actor, request.query_params
    text = (params.get("q") or "").strip()
    if lists.is_reference(text):  # NotFound (404) for a ticket this user may not see
        return RedirectResponse(f"/tickets/{lists.ticket_row(app, actor, text).reference}", status_code=303)
    team = params.get("team") or None
    filters = lists.TicketFilters(status=params.get("status") or None, team="" if team == "none" else team,
                                  flagged=_flagged(params.get("flagged")), text=text or None)
    result = lists.list_tickets(app, actor, filters)
    return render(request, "tickets.html", {
        "tickets": result, "teams": {key: team.name for key, team in sorted(app.router().teams.items())},
        "statuses": ["new", "open", "waiting", "resolved"],
    })


routes = [Route("/tickets", tickets_page)]
