"""/quarantine: mail that could not be parsed or stored, with the reason, run again one by one
or all at once; and the raw mail as a download. A quarantined mail is hostile: the page shows
only escaped text read from its header, and the raw bytes are never rendered, only served as
an attachment of type application/octet-stream under a name made from its id."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from triage.desk.quarantine import Retried, list_quarantine, quarantined_raw, retry_quarantined
from triage.web.app import desk, form, login_of, page, render
from triage.web.outbox import chosen_ids


@page
def quarantine_page(request: Request) -> Response:
    app, actor = desk(request), login_of(request).actor
    result: Retried | None = None
    if request.method == "POST":
        data = form(request)
        result = retry_quarantined(app, actor, None if data.get("all") else chosen_ids(data))
    include_released = request.query_params.get("all") == "1"
    rows = list_quarantine(app, actor, include_released=include_released)
    return render(request, "quarantine.html", {"rows": rows, "include_released": include_released,
                                               "result": result})


@page
def raw_download(request: Request) -> Response:
    row_id = int(request.path_params["row_id"])
    raw = quarantined_raw(desk(request), login_of(request).actor, row_id)
    return Response(raw, media_type="application/octet-stream", headers={
        "Content-Disposition": f'attachment; filename="quarantine-{row_id}.eml"'})


routes = [
    Route("/quarantine", quarantine_page, methods=["GET", "POST"]),
    Route("/quarantine/{row_id:id}/raw", raw_download),
]
