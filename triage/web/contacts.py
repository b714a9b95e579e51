"""/contacts: the address book in the workbench. The list with a filter and the downloads, one
contact's page (tickets, messages, teams, bounces, history, the edit form), merge and undo, the
suggested merges, and an import with its preview.

Reads call `triage.desk.contacts`; every write is a POST through `@page` (login and CSRF) to one
use case, which checks the role (the liaison edits). An import's file is read once on upload;
the preview page carries its text in the form that applies it (at most `WEB_IMPORT_BYTES`;
larger files: `triage contact import`), so what is applied is what was previewed.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from triage.contacts.exchange import write_csv, write_vcard
from triage.desk.contact_files import duplicate_contacts, export_records, import_contacts
from triage.desk.contact_merge import merge_contacts, unmerge_contact
from triage.desk.contacts import (
    ContactEdit,
    ContactPage,
    contact_page,
    edit_contact,
    list_contacts,
    require_contact_editor,
)
from triage.desk.errors import Invalid, NotFound
from triage.store.contact_models import LABEL_KINDS
from triage.web.app import desk, form, login_of, number, page, render

WEB_IMPORT_BYTES = 700_000  # the form field that carries it back must stay under the parser's 1 MB
_SPLIT = re.compile(r"[;\n]")


def _field(request: Request, name: str) -> str:
    value = form(request).get(name)
    return value if isinstance(value, str) else ""


def _labels(value: str) -> list[str]:
    return [item.strip() for item in _SPLIT.split(value) if item.strip()]


def edit_from_form(current: ContactPage, values: dict[str, str]) -> ContactEdit:
    """The form shows every field; only what differs from `current` becomes the edit (labels as
    sets: a label left out is removed)."""
    add: list[tuple[str, str]] = []
    remove: list[tuple[str, str]] = []
    for kind in LABEL_KINDS:
        if f"labels_{kind}" not in values:
            continue
        wanted = _labels(values[f"labels_{kind}"])
        have = current.labels.get(kind, [])
        add += [(kind, v) for v in wanted if v not in have]
        remove += [(kind, v) for v in have if v not in wanted]
    return ContactEdit(
        name=values.get("name"), language=values.get("language"), notes=values.get("notes"),
        consent=values.get("consent") == "yes" if "consent_shown" in values else None,
        add_labels=tuple(add), remove_labels=tuple(remove),
        add_addresses=tuple(a for a in [values.get("add_address", "").strip()] if a),
        remove_addresses=tuple(a for a in [values.get("remove_address", "").strip()] if a),
        primary=values.get("primary") or None,
    )


@page
def contacts_page(request: Request) -> Response:
    app, actor, params = desk(request), login_of(request).actor, request.query_params
    text, tag = (params.get("q") or "").strip(), (params.get("tag") or "").strip()
    rows = list_contacts(app, actor, text or None, tag=tag or None)
    return render(request, "contacts.html", {"rows": rows, "q": text, "tag": tag})


@page
def contact_view(request: Request) -> Response:
    app, actor = desk(request), login_of(request).actor
    contact_id = str(request.path_params["contact_id"])
    if request.method == "POST":
        current = contact_page(app, actor, contact_id)
        values = {key: value for key, value in form(request).items() if isinstance(value, str)}
        changed = edit_contact(app, actor, contact_id, edit_from_form(current, values))
        return RedirectResponse(f"/contacts/{contact_id}?changed={changed}", status_code=303)
    saved = request.query_params.get("changed")
    return render(request, "contact.html", {
        "contact": contact_page(app, actor, contact_id), "kinds": LABEL_KINDS,
        "changed": number(saved, "changed", "") if saved else None,
    })


@page
def merge_action(request: Request) -> Response:
    app, actor = desk(request), login_of(request).actor
    into = number(_field(request, "into").strip().lstrip("#"), "the contact to merge into",
                  "give its number, e.g. 42")
    merge_contacts(app, actor, str(request.path_params["contact_id"]), str(into))
    return RedirectResponse(f"/contacts/{into}", status_code=303)


@page
def unmerge_action(request: Request) -> Response:
    app, actor = desk(request), login_of(request).actor
    done = unmerge_contact(app, actor, str(request.path_params["contact_id"]))
    return RedirectResponse(f"/contacts/{done['source']}", status_code=303)


@page
def duplicates_page(request: Request) -> Response:
    app, actor = desk(request), login_of(request).actor
    return render(request, "contact_duplicates.html", {"rows": duplicate_contacts(app, actor)})


def _upload(request: Request) -> tuple[bytes, str]:
    data = form(request)
    upload = data.get("file")
    if isinstance(upload, UploadFile) and upload.filename:
        content = upload.file.read(WEB_IMPORT_BYTES + 1)
        name = upload.filename
    else:
        content = _field(request, "content").encode("utf-8")
        name = _field(request, "filename")
    if not content:
        raise Invalid("no file chosen", "choose a CSV or vCard file")
    if len(content) > WEB_IMPORT_BYTES:
        raise Invalid(f"the file is larger than {WEB_IMPORT_BYTES // 1000} kB",
                      "import it at the server: triage contact import FILE --apply")
    return content, name[:200]


@page
def import_page(request: Request) -> Response:
    app, actor = desk(request), login_of(request).actor
    require_contact_editor(actor)
    context: dict[str, Any] = {"report": None, "content": "", "filename": ""}
    if request.method == "POST":
        content, name = _upload(request)
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise Invalid("the file is not UTF-8 text", "save it as UTF-8 and upload it again") from None
        apply = _field(request, "apply") == "1"
        report = import_contacts(app, actor, content, name, apply=apply)
        context = {"report": report, "content": "" if apply else text, "filename": name}
    return render(request, "contact_import.html", context)


@page
def export_download(request: Request) -> Response:
    app, actor = desk(request), login_of(request).actor
    require_contact_editor(actor)  # the whole address book leaves the desk: the liaison's call
    kind = request.path_params["format"]
    if kind not in ("csv", "vcf"):
        raise NotFound(f"no export as {kind[:10]}", "download contacts.csv or contacts.vcf")
    records = export_records(app, actor)
    if kind == "csv":
        return Response(write_csv(records), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="contacts.csv"'})
    return Response(write_vcard(records), media_type="text/vcard; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="contacts.vcf"'})


routes = [
    Route("/contacts", contacts_page),
    Route("/contacts/duplicates", duplicates_page),
    Route("/contacts/import", import_page, methods=["GET", "POST"]),
    Route("/contacts/export.{format:str}", export_download),
    Route("/contacts/{contact_id:id}", contact_view, methods=["GET", "POST"]),
    Route("/contacts/{contact_id:id}/merge", merge_action, methods=["POST"]),
    Route("/contacts/{contact_id:id}/unmerge", unmerge_action, methods=["POST"]),
]
