"""The ticket page, the sandboxed frame of a message's HTML, attachment downloads and presence.

A mail's HTML is served on its own URL, sanitised, under `MAIL_CSP` (no script, no remote
content, framed only by our pages), into an `<iframe sandbox>` without scripts or same-origin;
`?remote=1` loads that one message's remote images when the liaison asks. An attachment is
always a download of opaque bytes: whatever type the sender claimed, the browser gets
`application/octet-stream`, `nosniff` and a filename encoded per RFC 6266/5987, never raw.
"""

from __future__ import annotations

import re
from email.utils import encode_rfc2231

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from triage.desk.presence import present, touch_presence
from triage.desk.tickets import attachment, message_html, ticket_id, ticket_view
from triage.web.actions import actions_context
from triage.web.app import desk, form, login_of, page, render
from triage.web.security import MAIL_CSP, MAIL_CSP_REMOTE_IMAGES

_UNSAFE_IN_NAME = re.compile(r"[\x00-\x1f\x7f/\\]")
_NOT_PLAIN_ASCII = re.compile(r"[^A-Za-z0-9._ ()+-]")
DOWNLOAD_CSP = "default-src 'none'; frame-ancestors 'none'; sandbox"


def content_disposition(filename: str) -> str:
    """`attachment` with the name twice: a plain-ASCII fallback, and the exact name as RFC 5987's
    `filename*` (percent-encoded UTF-8, by the standard library), so no quote, semicolon or line
    break of the sender's can reach the header as syntax."""
    name = _UNSAFE_IN_NAME.sub("_", filename).strip() or "attachment"
    fallback = _NOT_PLAIN_ASCII.sub("_", name)
    return f'attachment; filename="{fallback}"; filename*={encode_rfc2231(name, "utf-8")}'


@page
def ticket_page(request: Request) -> Response:
    app, actor = desk(request), login_of(request).actor
    view = ticket_view(app, actor, request.path_params["reference"])
    touch_presence(app, actor, view.id)
    return render(request, "ticket.html", {"ticket": view, "present": present(app, actor, view.id),
                                           **actions_context(request, view.reference)})


@page
def presence_fragment(request: Request) -> Response:
    """Polled by the open page: records that its reader is still there (drafting or not) and
    answers with who else is."""
    app, actor = desk(request), login_of(request).actor
    ident = ticket_id(app, actor, request.path_params["reference"])
    touch_presence(app, actor, ident, drafting=form(request).get("drafting") == "1")
    return render(request, "_presence.html", {"present": present(app, actor, ident)})


@page
def message_frame(request: Request) -> Response:
    remote = request.query_params.get("remote") == "1"
    html = message_html(desk(request), login_of(request).actor, request.path_params["message_id"],
                        remote_images=remote)
    return HTMLResponse(html, headers={"Content-Security-Policy": MAIL_CSP_REMOTE_IMAGES if remote else MAIL_CSP})


@page
def attachment_download(request: Request) -> Response:
    filename, data = attachment(desk(request), login_of(request).actor, request.path_params["attachment_id"])
    return Response(data, media_type="application/octet-stream", headers={
        "Content-Disposition": content_disposition(filename),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": DOWNLOAD_CSP,
    })


routes = [
    Route("/tickets/{reference}", ticket_page),
    Route("/tickets/{reference}/presence", presence_fragment, methods=["POST"]),
    Route("/messages/{message_id:id}/html", message_frame),
    Route("/attachments/{attachment_id:id}", attachment_download),
]

__all__ = ["content_disposition", "routes"]
