"""The queue: tickets awaiting a routing decision, approved with one key, corrected with a team
picker, approved in bulk above a confidence; filtered, with saved views, refreshed live.

Every action calls triage.desk.routing. Actions come from htmx: a decided row swaps out and a
status line says what happened; a refused action keeps the row (or drops it, when someone else
decided first) and says why. Without htmx the same forms post and redirect back.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from urllib.parse import urlencode

from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from triage.desk import routing
from triage.desk.errors import Conflict, DeskError, Invalid
from triage.routing.evidence import around
from triage.web.app import desk, form, login_of, number, page, render

PAGE_ROWS = routing.LIST_LIMIT
POLL_SECONDS = 10.0
POLL_RANGE = (1.0, 600.0)
ORDER_TITLES = {"oldest": "oldest", "newest": "newest", "uncertain": "uncertain first"}


def highlight(text: str, words: Iterable[str]) -> Markup:
    """`text` escaped, with each evidence word wrapped in <mark>. Every fragment of the mail is
    escaped on its own (never the markup around it), so mail text can never become markup."""
    terms = sorted({w for w in words if w}, key=len, reverse=True)
    if not terms:
        return escape(text)
    pattern = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(t) for t in terms) + ")", re.IGNORECASE)
    parts: list[str] = []  # plain strs joined once: a Markup per fragment costs several times more
    position = 0
    for match in pattern.finditer(text):
        parts.append(str(escape(text[position:match.start()])))
        parts.append(f"<mark>{escape(match.group())}</mark>")
        position = match.end()
    parts.append(str(escape(text[position:])))
    return Markup("".join(parts))


def _flag(value: str | None) -> bool | None:
    if value in (None, ""):
        return None
    if value in ("yes", "no"):
        return value == "yes"
    raise Invalid(f"expected yes or no, not {value!r}", "use the filter form")


def _filters(request: Request) -> tuple[routing.QueueFilters, str | None]:
    params = request.query_params
    view = params.get("view") or None
    if view is not None:
        return routing.saved_view(view, login_of(request).actor), view
    return routing.QueueFilters(
        team=params.get("team") or None, status=params.get("status") or None,
        language=(params.get("language") or "").strip().lower() or None,
        flagged=_flag(params.get("flagged")), overdue=_flag(params.get("overdue")),
        suggested=_flag(params.get("suggested")),
    ), None


def _poll(request: Request) -> float:
    try:
        seconds = float(request.query_params.get("poll") or POLL_SECONDS)
    except ValueError:
        seconds = POLL_SECONDS
    return min(max(seconds, POLL_RANGE[0]), POLL_RANGE[1])


def _page_number(request: Request) -> int:
    raw = request.query_params.get("page") or "1"
    if number(raw, "the page", "pages count from 1") < 1:
        raise Invalid(f"no page {raw!r}", "pages count from 1")
    return int(raw)


def _context(request: Request) -> dict[str, object]:
    filters, view = _filters(request)
    order = request.query_params.get("order") or "oldest"
    number = _page_number(request)
    result = routing.queue(desk(request), login_of(request).actor, filters=filters, order=order,
                            limit=PAGE_ROWS, page=number)
    keep = {**filters.query(), **({"view": view} if view else {}), "order": order}
    bulk_url = "/queue/approve-confident?" + urlencode(keep)
    poll = _poll(request)
    if poll != POLL_SECONDS:
        keep["poll"] = f"{poll:g}"
    page_urls = {"previous": "/queue?" + urlencode({**keep, "page": number - 1}) if number > 1 else None,
                 "next": "/queue?" + urlencode({**keep, "page": number + 1}) if result.has_more else None}
    if number > 1:
        keep["page"] = str(number)
    return {
        "bulk_url": bulk_url, "page_urls": page_urls,
        "queue": result, "view": view, "views": routing.VIEW_TITLES, "statuses": ["new", "open", "waiting"],
        "highlight": highlight, "around": around, "poll_ms": int(poll * 1000),
        "live_url": "/queue/rows?" + urlencode(keep),
        "order_urls": {o: "/queue?" + urlencode({**keep, "order": o}) for o in routing.QUEUE_ORDERS},
        "order_titles": ORDER_TITLES,
        "can_route": login_of(request).actor.may_route(),
    }


@page
def queue_page(request: Request) -> Response:
    return render(request, "queue.html", _context(request))


@page
def queue_rows(request: Request) -> Response:
    """The table alone: the page polls it, so new mail appears without a reload."""
    return render(request, "partials/queue_table.html", _context(request))


def _htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def _flash(request: Request, message: str, *, error: bool = False, headers: dict[str, str] | None = None,
           body: str = "") -> Response:
    return render(request, "partials/flash.html", {"message": message, "error": error, "body": body},
                  headers=headers)


def _decide(request: Request, team: str | None) -> Response:
    app, actor = desk(request), login_of(request).actor
    reference = request.path_params["reference"]
    try:
        done = (routing.correct(app, actor, reference, team or "") if team is not None
                else routing.approve(app, actor, reference))
    except DeskError as exc:
        if not _htmx(request):
            raise
        # Decided by someone else: the row leaves the queue. Anything else: the row stays.
        return _flash(request, str(exc), error=True,
                      headers=None if isinstance(exc, Conflict) else {"HX-Reswap": "none"})
    if not _htmx(request):
        return RedirectResponse("/queue", status_code=303)
    how = "accepted" if done["agreed"] else f"corrected from {done['suggested'] or 'no suggestion'}"
    return _flash(request, f"{done['reference']} routed to {done['team']} ({how})")


@page
def approve(request: Request) -> Response:
    return _decide(request, None)


@page
def correct(request: Request) -> Response:
    team = form(request).get("team")
    return _decide(request, team if isinstance(team, str) else "")


@page
def approve_confident(request: Request) -> Response:
    raw = form(request).get("min_confidence")
    try:
        threshold = float(raw) if isinstance(raw, str) else math.nan
    except ValueError:
        threshold = math.nan
    if not math.isfinite(threshold):
        raise Invalid("no confidence given", "give a number between 0 and 1, such as 0.9")
    filters, _ = _filters(request)  # the page's filters ride on the form's URL
    results = routing.approve_confident(desk(request), login_of(request).actor, threshold, filters=filters)
    failed = [r for r in results if "error" in r]
    message = f"{len(results) - len(failed)} approved at confidence ≥ {threshold:g}"
    if failed:
        message += f"; not approved: {', '.join(r['reference'] for r in failed)}"
    if not _htmx(request):
        return RedirectResponse(_here(request), status_code=303)
    return _flash(request, message, error=bool(failed), headers={"HX-Trigger": "queue-changed"})


def _here(request: Request) -> str:
    """The queue as the liaison left it: its filters, view and order."""
    return "/queue?" + request.url.query if request.url.query else "/queue"


routes = [
    Route("/queue", queue_page),
    Route("/queue/rows", queue_rows),
    Route("/queue/approve-confident", approve_confident, methods=["POST"]),
    Route("/queue/{reference}/approve", approve, methods=["POST"]),
    Route("/queue/{reference}/correct", correct, methods=["POST"]),
]
