"""/contacts in the workbench: the list and its filter, the contact page (escaped), the edit form
(CSRF, liaison only, history shown), merge and undo, suggested merges, import preview/apply and
the downloads; roles and 404s. Through Starlette's test client on both engines, and in a real
browser: edit a contact and see the history; merge then undo."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.test_desk_contacts import contact_of, mail, owners
from tests.test_web_actions import field, logged_in
from tests.workbench import Account, log_in
from triage.bootstrap import App
from triage.desk.actors import Actor
from triage.desk.contacts import contact_page
from triage.store.web_models import Role
from triage.web.app import create_app

LIAISON = Actor("ada", Role.liaison)


@pytest.fixture
def client(app: App) -> Iterator[TestClient]:
    with TestClient(create_app(app), base_url="http://127.0.0.1") as test_client:
        yield test_client


def test_contact_page_edit_and_history(client: TestClient, app: App, make_account: Callable[..., Account]) -> None:
    """The liaison edits through the form (CSRF checked); the page shows the change in its history,
    and the mail's hostile name escaped; the ticket page links to the contact."""
    ref = mail(app, '"<script>alert(1)</script>" <ada@v.example>', "<p1@v.example>")
    cid = contact_of(app, ref)
    logged_in(client, make_account())
    shown = client.get(f"/contacts/{cid}")
    assert shown.status_code == 200 and "&lt;script&gt;alert(1)" in shown.text and "<script>alert" not in shown.text
    assert f'href="/contacts/{cid}"' in client.get(f"/tickets/{ref}").text
    assert 'href="/contacts"' in shown.text
    token = field(shown.text, "csrf_token")
    data = {"name": "Ada Lovelace", "language": "de", "labels_tag": "press; eyes and ears", "labels_role": "",
            "labels_project": "", "labels_language": "", "consent_shown": "1", "consent": "yes", "notes": "Met her",
            "add_address": "", "csrf_token": token}
    assert client.post(f"/contacts/{cid}", data={**data, "csrf_token": "wrong"}).status_code == 403
    saved = client.post(f"/contacts/{cid}", data=data, follow_redirects=False)
    assert (saved.status_code, saved.headers["location"]) == (303, f"/contacts/{cid}?changed=6")
    page = client.get(saved.headers["location"]).text
    assert "6 changes saved" in page and "eyes and ears" in page and "Ada Lovelace" in page
    assert re.search(r"<td>liaison:liaison</td><td>edit</td><td>consent</td>\s*<td class=\"old\">no</td>", page)
    listed = client.get("/contacts", params={"tag": "press"})
    assert f'href="/contacts/{cid}"' in listed.text
    assert f'href="/contacts/{cid}"' not in client.get("/contacts", params={"q": "nobody"}).text
    bad = client.post(f"/contacts/{cid}", data={**data, "add_address": "not an address"})
    assert bad.status_code == 400 and "not an address" in bad.text
    assert client.get("/contacts/99999999").status_code == 404


def test_roles_on_contact_pages(client: TestClient, app: App, make_account: Callable[..., Account]) -> None:
    """Staff read contacts of their team only (else 404); viewers read but cannot edit (403)."""
    ref = mail(app, "Ada <ada@v.example>", "<r1@v.example>", team="legal")
    cid = contact_of(app, ref)
    make_account("sam", "staff", "legal")
    make_account("tom", "staff", "technology")
    make_account("vic", "viewer")
    for name, status in (("sam", 200), ("tom", 404), ("vic", 200)):
        with TestClient(create_app(app), base_url="http://127.0.0.1") as other:
            logged_in(other, Account(name, "correct horse battery", ""))
            page = other.get(f"/contacts/{cid}")
            assert page.status_code == status, name
            if status == 200:
                assert 'name="labels_tag"' not in page.text
                token = field(page.text, "csrf_token")
                assert other.post(f"/contacts/{cid}", data={"name": "X", "csrf_token": token}).status_code == 403
                assert other.get("/contacts/export.csv").status_code == 403
    assert client.get(f"/contacts/{cid}", follow_redirects=False).status_code == 303  # not logged in


def test_merge_undo_duplicates_and_downloads(client: TestClient, app: App,
                                             make_account: Callable[..., Account]) -> None:
    """A suggested merge's button merges; the merged contact's page undoes it; the CSV download
    neutralises formulas."""
    a = contact_of(app, mail(app, "Ada Lovelace <ada@wiki.example>", "<u1@v.example>"))
    b = contact_of(app, mail(app, "Ada Lovelace <lovelace@wiki.example>", "<u2@v.example>"))
    before = owners(app)
    logged_in(client, make_account())
    suggested = client.get("/contacts/duplicates")
    assert f'id="duplicate-{b}-{a}"' in suggested.text
    token = field(suggested.text, "csrf_token")
    merged = client.post(f"/contacts/{b}/merge", data={"into": str(a), "csrf_token": token}, follow_redirects=False)
    assert (merged.status_code, merged.headers["location"]) == (303, f"/contacts/{a}")
    assert set(owners(app).values()) == {a} and "Undo the merge of #" in client.get(f"/contacts/{a}").text
    undone = client.post(f"/contacts/{b}/unmerge", data={"csrf_token": token}, follow_redirects=False)
    assert undone.status_code == 303 and owners(app) == before
    client.post(f"/contacts/{a}", data={"name": "=HYPERLINK(\"http://x\")", "csrf_token": token})
    csv = client.get("/contacts/export.csv")
    assert csv.status_code == 200 and csv.headers["content-disposition"] == 'attachment; filename="contacts.csv"'
    assert "'=HYPERLINK" in csv.text
    assert "BEGIN:VCARD" in client.get("/contacts/export.vcf").text
    assert client.get("/contacts/export.exe").status_code == 404


def test_import_preview_then_apply_on_the_web(client: TestClient, app: App,
                                              make_account: Callable[..., Account]) -> None:
    """The upload shows the preview (nothing written); 'Import these' applies exactly that file."""
    logged_in(client, make_account())
    form = client.get("/contacts/import")
    token = field(form.text, "csrf_token")
    book = b"name,email,tags\n<b>Bold</b>,new@v.example,press\nBad,nope,\n"
    preview = client.post("/contacts/import", data={"csrf_token": token},
                          files={"file": ("book.csv", book, "text/csv")})
    assert preview.status_code == 200 and "Preview (nothing written yet)" in preview.text
    assert "&lt;b&gt;Bold&lt;/b&gt;" in preview.text and "not an address" in preview.text
    assert owners(app) == {}
    content = re.search(r'<textarea name="content" hidden>(.*?)</textarea>', preview.text, re.DOTALL)
    assert content
    applied = client.post("/contacts/import", data={"csrf_token": token, "apply": "1", "filename": "book.csv",
                                                    "content": html.unescape(content[1])})
    assert applied.status_code == 200 and "Imported" in applied.text
    assert contact_page(app, LIAISON, "new@v.example").name == "<b>Bold</b>"
    assert client.post("/contacts/import", data={"csrf_token": token}).status_code == 400


def test_browser_edit_a_contact_and_see_the_history(app: App, page: Any,
                                                    make_account: Callable[..., Account]) -> None:
    """In chromium: open the contact from the ticket page, edit it, see the change in the history."""
    ref = mail(app, "Ada <ada@v.example>", "<b1@v.example>")
    log_in(page, make_account(), next_path=f"/tickets/{ref}")
    page.click("a.contact")
    page.fill("input[name=name]", "Ada Lovelace")
    page.fill("input[name=labels_tag]", "eyes and ears")
    page.check("input[name=consent]")
    page.click("form.contact-edit button[type=submit]")
    page.wait_for_selector("#saved")
    assert page.inner_text("h1.contact-name").startswith("Ada Lovelace")
    history = page.inner_text("table.history")
    assert "Ada Lovelace" in history and "eyes and ears" in history and "consent" in history
    assert page.watch.console_errors == []


def test_browser_merge_then_undo(app: App, page: Any, make_account: Callable[..., Account]) -> None:
    """In chromium: merge a suggested duplicate, then undo it from the survivor's page."""
    a = contact_of(app, mail(app, "Ada Lovelace <ada@wiki.example>", "<b2@v.example>"))
    b = contact_of(app, mail(app, "Ada Lovelace <lovelace@wiki.example>", "<b3@v.example>"))
    before = owners(app)
    log_in(page, make_account(), next_path="/contacts/duplicates")
    page.click(f"#duplicate-{b}-{a} button[type=submit]")
    page.wait_for_url(f"**/contacts/{a}")
    assert "lovelace@wiki.example" in page.inner_text("ul.addresses")
    page.click("button.unmerge")
    page.wait_for_url(f"**/contacts/{b}")
    assert owners(app) == before
    assert "lovelace@wiki.example" in page.inner_text("ul.addresses")
