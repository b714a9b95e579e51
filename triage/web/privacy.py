"""/privacy/{id}: one person's data on request, the liaison's page (/privacy finds them by address). What the desk holds about
contact `id` (counts), "Export data" (a zip download of everything), and "Erase" with a
confirmation step: the first POST shows what will go and asks for the contact's address to be
typed; only the second, with the address, erases. The contact page links here."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from triage.desk.errors import Invalid
from triage.desk.privacy import erase_person, export_person, find_person, person_view, require_liaison
from triage.web.app import desk, form, login_of, page, render


@page
def lookup_page(request: Request) -> Response:
    """/privacy?ref=ADDRESS-or-ID: find the person, then their page."""
    app, actor = desk(request), login_of(request).actor
    require_liaison(actor)
    ref = request.query_params.get("ref", "").strip()
    if ref:
        return RedirectResponse(f"/privacy/{find_person(app, actor, ref[:320])}", status_code=303)
    return render(request, "privacy_lookup.html")


@page
def privacy_page(request: Request) -> Response:
    contact_id = int(request.path_params["contact_id"])
    view = person_view(desk(request), login_of(request).actor, str(contact_id))
    return render(request, "privacy.html", {"view": view, "confirming": False, "done": None})


@page
def export_download(request: Request) -> Response:
    contact_id = int(request.path_params["contact_id"])
    export = export_person(desk(request), login_of(request).actor, str(contact_id))
    return Response(export.zip_bytes(), media_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="contact-{contact_id}.zip"', "Cache-Control": "no-store"})


@page
def erase_action(request: Request) -> Response:
    app, actor = desk(request), login_of(request).actor
    require_liaison(actor)
    contact_id = int(request.path_params["contact_id"])
    data = form(request)
    typed = str(data.get("address", "")).strip().lower()
    if not data.get("confirm"):
        view = person_view(app, actor, str(contact_id))
        return render(request, "privacy.html", {"view": view, "confirming": True, "done": None})
    view = person_view(app, actor, str(contact_id))
    if typed not in view.addresses:
        raise Invalid("the address typed is not this contact's; nothing was erased",
                      "type one of the contact's addresses exactly to confirm the erasure")
    done = erase_person(app, actor, str(contact_id))
    return render(request, "privacy.html", {"view": None, "confirming": False, "done": done})


routes = [
    Route("/privacy", lookup_page),
    Route("/privacy/{contact_id:id}", privacy_page),
    Route("/privacy/{contact_id:id}/export", export_download),
    Route("/privacy/{contact_id:id}/erase", erase_action, methods=["POST"]),
]
