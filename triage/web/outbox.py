"""/outbox: mail waiting, failed or uncertain, what needs the liaison on top, and the liaison's
two decisions on it (mark sent, retry) for the chosen rows. The page calls the service layer;
a refusal comes back with its reason per mail."""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from triage.desk.errors import Invalid
from triage.desk.outbox import attention_first, list_outbox, mark_sent, retry
from triage.outbox.sender import Decision
from triage.web.app import desk, form, login_of, number, page, render

VERBS = {"mark-sent": "Marked sent", "retry": "Queued again"}


def chosen_ids(data: FormData, field: str = "id") -> list[int]:
    """The ids of the rows ticked (or the one button pressed) in a form."""
    return [number(str(v), "a chosen row", "reload the page and choose again") for v in data.getlist(field)]


@page
def outbox_page(request: Request) -> Response:
    app, actor = desk(request), login_of(request).actor
    action = ""
    result: Decision | None = None
    if request.method == "POST":
        data = form(request)
        action = str(data.get("action", ""))
        if action not in VERBS:
            raise Invalid(f"unknown outbox action {action!r}", "use the page's Mark sent or Retry button")
        decide = mark_sent if action == "mark-sent" else retry
        result = decide(app, actor, chosen_ids(data))
    include_sent = request.query_params.get("all") == "1"
    rows = attention_first(list_outbox(app, actor, include_sent=include_sent))
    return render(request, "outbox.html", {"rows": rows, "include_sent": include_sent, "result": result,
                                           "done_verb": VERBS.get(action, "")})


routes = [Route("/outbox", outbox_page, methods=["GET", "POST"])]
