"""The ticket's actions on the web: the reply composer (template picker, preview, send with its
collision warning), the internal note, status buttons, hand-off, merge and its undo.

Each POST calls one use case of `triage.desk.actions` as the logged-in user and goes back to the
ticket (303; `HX-Redirect` for htmx). The composer's Preview and Send are htmx requests answered
with a fragment: the mail in a <pre>, or the warning that mail arrived since the page was read,
with a button that sends anyway. Without JavaScript the same forms post normally, and the
warning is a page of its own that still holds the text.

The panel is `_ticket_actions.html`. The ticket page includes it with `ticket` in its context;
it renders at once when the page also put `actions_context(request, reference)` there, and
otherwise loads itself from /tickets/<reference>/actions.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from triage.desk.actions import (
    Collision,
    add_note,
    hand_off,
    merge,
    preview_reply,
    send_reply,
    set_status,
    templates_for,
    ticket_actions,
    unmerge,
)
from triage.desk.errors import DeskError, Invalid
from triage.web.app import desk, form, login_of, number, page, render


def _htmx(request: Request) -> bool:
    return "hx-request" in request.headers


def _reference(request: Request) -> str:
    return str(request.path_params["reference"])


def _text(data: FormData, name: str) -> str:
    value = data.get(name)
    return value if isinstance(value, str) else ""


def _seen(data: FormData, name: str) -> int | None:
    value = _text(data, name).strip()
    if not value:
        return None
    return number(value, name, "reload the ticket and write again")


def ticket_url(reference: str) -> str:
    return f"/tickets/{quote(reference, safe='')}"


def back_to_ticket(request: Request, reference: str) -> Response:
    """The ticket page again: a 303 after a form, a client-side redirect after an htmx request."""
    url = ticket_url(reference)
    if _htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def actions_context(request: Request, reference: str) -> dict[str, Any]:
    """What `_ticket_actions.html` renders from, for a page that includes it."""
    return {"actions": ticket_actions(desk(request), login_of(request).actor, reference)}


@page
def actions_panel(request: Request) -> Response:
    reference = _reference(request)
    context = actions_context(request, reference)
    return render(request, "_ticket_actions.html", {"ticket": {"reference": context["actions"].reference},
                                                     **context})


@page
def template_options(request: Request) -> Response:
    language = request.query_params.get("language") or None
    templates = templates_for(desk(request), login_of(request).actor, _reference(request), language=language)
    return render(request, "_template_options.html", {"templates": templates})


def _reply_fields(data: FormData) -> dict[str, Any]:
    return {"template": _text(data, "template").strip() or "reply", "body": _text(data, "body"),
            "language": _text(data, "language").strip() or None}


@page
def preview(request: Request) -> Response:
    fields = _reply_fields(form(request))
    try:
        shown = preview_reply(desk(request), login_of(request).actor, _reference(request), fields["template"],
                              fields["body"], fields["language"])
    except DeskError as exc:
        if not _htmx(request):
            raise
        return render(request, "_reply_result.html", {"error": exc, "collision": False})
    return render(request, "_mail_preview.html", {"preview": shown})


@page
def reply(request: Request) -> Response:
    data, reference = form(request), _reference(request)
    fields = _reply_fields(data)
    try:
        send_reply(desk(request), login_of(request).actor, reference, fields["template"], fields["body"],
                   language=fields["language"], seen_message_id=_seen(data, "seen_message_id"),
                   seen_event_id=_seen(data, "seen_event_id"), confirm=_text(data, "confirm") == "1")
    except Collision as exc:
        if _htmx(request):
            return render(request, "_reply_result.html", {"error": exc, "collision": True,
                                                          "ticket_url": ticket_url(reference),
                                                          "reply_url": f"{ticket_url(reference)}/reply"})
        return render(request, "reply_conflict.html", {"error": exc, "reference": reference, **fields,
                                                       "ticket_url": ticket_url(reference)}, status=exc.status)
    except DeskError as exc:
        if not _htmx(request):
            raise
        return render(request, "_reply_result.html", {"error": exc, "collision": False})
    return back_to_ticket(request, reference)


@page
def note(request: Request) -> Response:
    reference = _reference(request)
    add_note(desk(request), login_of(request).actor, reference, _text(form(request), "text"))
    return back_to_ticket(request, reference)


@page
def status(request: Request) -> Response:
    data, reference = form(request), _reference(request)
    set_status(desk(request), login_of(request).actor, reference, _text(data, "status"),
               expected=_text(data, "expected").strip() or None)
    return back_to_ticket(request, reference)


@page
def handoff(request: Request) -> Response:
    reference = _reference(request)
    hand_off(desk(request), login_of(request).actor, reference)
    return back_to_ticket(request, reference)


@page
def merge_into(request: Request) -> Response:
    reference = _reference(request)
    into = _text(form(request), "into").strip()
    if not into:
        raise Invalid("no ticket to merge into", "write the reference of the ticket to keep, e.g. T-2026-00042")
    merge(desk(request), login_of(request).actor, reference, into)
    return back_to_ticket(request, reference)


@page
def undo_merge(request: Request) -> Response:
    """On the merged ticket's page: undo its merge; on the survivor's (with `source`): undo that one's."""
    reference = _reference(request)
    source = _text(form(request), "source").strip()
    if source:
        unmerge(desk(request), login_of(request).actor, source, reference)
    else:
        unmerge(desk(request), login_of(request).actor, reference)
    return back_to_ticket(request, reference)


routes = [
    Route("/tickets/{reference}/actions", actions_panel),
    Route("/tickets/{reference}/templates", template_options),
    Route("/tickets/{reference}/preview", preview, methods=["POST"]),
    Route("/tickets/{reference}/reply", reply, methods=["POST"]),
    Route("/tickets/{reference}/note", note, methods=["POST"]),
    Route("/tickets/{reference}/status", status, methods=["POST"]),
    Route("/tickets/{reference}/handoff", handoff, methods=["POST"]),
    Route("/tickets/{reference}/merge", merge_into, methods=["POST"]),
    Route("/tickets/{reference}/unmerge", undo_merge, methods=["POST"]),
]

__all__ = ["actions_context", "back_to_ticket", "routes", "ticket_url"]
