"""/privacy/{id} on the workbench: the liaison's export download and the erase with its
confirmation step (the address typed), CSRF on the POSTs, staff and viewers refused, the person's
name escaped; once in a real browser."""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Callable, Iterator
from email.utils import formataddr
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from tests.privacy_people import ADDRESS, populate
from tests.test_web_actions import field, logged_in
from tests.workbench import Account, log_in
from triage.bootstrap import App
from triage.ingest.pipeline import IncomingMail
from triage.store.models import Contact
from triage.web.app import create_app


@pytest.fixture
def client(app: App) -> Iterator[TestClient]:
    with TestClient(create_app(app), base_url="http://127.0.0.1") as test_client:
        yield test_client


def contact_exists(app: App, contact_id: int) -> bool:
    with app.reads() as session:
        return session.get(Contact, contact_id) is not None


def test_liaison_exports_and_erases_after_confirming(client: TestClient, app: App,
                                                     make_account: Callable[..., Account]) -> None:
    """The page shows what is held; Export data is a zip; Erase asks first, refuses a wrong address,
    and erases with the right one, showing the tombstone."""
    people = populate(app)
    logged_in(client, make_account())
    found = client.get("/privacy", params={"ref": ADDRESS}, follow_redirects=False)
    assert (found.status_code, found.headers["location"]) == (303, f"/privacy/{people.contact_id}")
    assert client.get("/privacy", params={"ref": "nobody@x.example"}).status_code == 404
    page = client.get(f"/privacy/{people.contact_id}")
    assert page.status_code == 200 and ADDRESS in page.text and "3 messages" in page.text
    download = client.get(f"/privacy/{people.contact_id}/export")
    assert download.headers["content-type"] == "application/zip"
    assert download.headers["content-disposition"] == f'attachment; filename="contact-{people.contact_id}.zip"'
    document = json.loads(zipfile.ZipFile(io.BytesIO(download.content)).read("person.json"))
    assert document["contacts"][0]["address"] == ADDRESS
    token = field(page.text, "csrf_token")
    url = f"/privacy/{people.contact_id}/erase"
    asking = client.post(url, data={"csrf_token": token})
    assert asking.status_code == 200 and "Erase permanently" in asking.text and contact_exists(app, people.contact_id)
    wrong = client.post(url, data={"csrf_token": token, "confirm": "1", "address": "someone@else.example"})
    assert wrong.status_code == 400 and contact_exists(app, people.contact_id)
    done = client.post(url, data={"csrf_token": token, "confirm": "1", "address": ADDRESS.upper()})
    assert done.status_code == 200 and "Erasure #" in done.text and people.reference in done.text
    assert ADDRESS not in done.text and not contact_exists(app, people.contact_id)
    gone = client.get(f"/privacy/{people.contact_id}")
    assert gone.status_code == 404 and "was erased" in gone.text
    shell = client.get(f"/tickets/{people.reference}")  # the ticket page still opens on the empty shell
    assert shell.status_code == 200 and "Brindlewick" not in shell.text


def test_csrf_roles_and_escaping(client: TestClient, app: App, make_account: Callable[..., Account]) -> None:
    """Without the token nothing is erased (403); staff and viewers get 403 on every route; a hostile
    name is shown as text."""
    raw_name = '<script>alert(1)</script> "Mallory"'
    from tests.privacy_people import mail

    app.ingestor().ingest_many([IncomingMail(mail(formataddr((raw_name, "m@x.example")), "hi", "hi",
                                                  message_id="<m@x.example>"), source="test")])
    with app.reads() as session:
        contact_id = session.scalars(select(Contact.id).where(Contact.address == "m@x.example")).one()
    logged_in(client, make_account())
    page = client.get(f"/privacy/{contact_id}")
    assert "<script>alert(1)" not in page.text and "&lt;script&gt;" in page.text
    refused = client.post(f"/privacy/{contact_id}/erase", data={"confirm": "1", "address": "m@x.example"})
    assert refused.status_code == 403 and contact_exists(app, contact_id)
    client.cookies.clear()
    for role in ("staff", "viewer"):
        client.cookies.clear()
        logged_in(client, make_account(name=role, role=role, team="events" if role == "staff" else None))
        assert client.get(f"/privacy/{contact_id}").status_code == 403
        assert client.get("/privacy", params={"ref": "m@x.example"}).status_code == 403
        assert 'href="/privacy"' not in client.get("/queue").text
        assert client.get(f"/privacy/{contact_id}/export").status_code == 403
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/queue").text)
        assert token
        post = client.post(f"/privacy/{contact_id}/erase", data={"csrf_token": token[1], "confirm": "1",
                                                                 "address": "m@x.example"})
        assert post.status_code == 403 and contact_exists(app, contact_id)
    assert client.get("/privacy/99999999999999").status_code == 404


def test_the_liaison_erases_a_person_in_the_browser(app: App, page: Any, make_account: Callable[..., Account]) -> None:
    """Privacy (in the menu): find by address, Erase…, type the address, Erase permanently: the
    tombstone shows, the contact is gone."""
    people = populate(app)
    log_in(page, make_account(), next_path="/privacy")
    assert page.locator("header.top a[href='/privacy']").inner_text() == "Privacy"
    page.fill("input[name=ref]", ADDRESS.upper())
    page.click("form.filters button[type=submit]")
    page.wait_for_url(f"**/privacy/{people.contact_id}")
    assert ADDRESS in page.locator("dd.address").all_inner_texts()
    assert page.locator("a.export").get_attribute("href") == f"/privacy/{people.contact_id}/export"
    page.click("text=Erase…")
    page.fill("input[name=address]", ADDRESS)
    page.click("text=Erase permanently")
    page.wait_for_selector("section.erased")
    assert people.reference in page.locator("section.erased").inner_text()
    assert not contact_exists(app, people.contact_id)
    assert page.watch.console_errors == [] and page.watch.foreign_requests == []
