"""The ticket's actions on the web: the composer's preview and send (with the collision warning),
internal notes, status, merge, CSRF on every POST, roles. Through Starlette's test client on both
engines, and once in a real browser on a page that includes the panel."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from tests.test_desk_actions import outbox, ticket
from tests.workbench import Account, log_in
from triage.bootstrap import App
from triage.store.models import Event, Ticket, TicketStatus
from triage.web.app import create_app


def actions_of(app: App, action: str) -> list[Event]:
    with app.reads() as session:
        return list(session.scalars(select(Event).where(Event.action == action).order_by(Event.id)))


@pytest.fixture
def client(app: App) -> Iterator[TestClient]:
    with TestClient(create_app(app), base_url="http://127.0.0.1") as test_client:
        yield test_client


def logged_in(client: TestClient, account: Account) -> None:
    form = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token
    response = client.post("/login", data={"username": account.name, "password": account.password,
                                           "csrf_token": token[1], "next": "/queue"}, follow_redirects=False)
    assert response.status_code == 303


def field(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, html
    return found[1]


def test_composer_previews_and_sends_once_then_warns(client: TestClient, app: App,
                                                     make_account: Callable[..., Account]) -> None:
    """The panel's preview shows the mail escaped; Send queues it and goes back to the ticket; the same
    form again meets a warning with 'send anyway' (htmx) or a page that keeps the text (no htmx)."""
    ref = ticket(app, "<w1@v.example>")
    logged_in(client, make_account())
    panel = client.get(f"/tickets/{ref}/actions")
    assert panel.status_code == 200
    assert 'data-key="reply"' in panel.text and 'class="note"' in panel.text
    assert "Internal note — never sent" in panel.text and '<option value="reply"' in panel.text
    assert '<option value="reply"' in client.get(f"/tickets/{ref}/templates", params={"language": "en"}).text
    assert "<option" not in client.get(f"/tickets/{ref}/templates", params={"language": "de"}).text
    token = field(panel.text, "csrf_token")
    seen = {"seen_message_id": field(panel.text, "seen_message_id"),
            "seen_event_id": field(panel.text, "seen_event_id")}
    mail = {"csrf_token": token, "template": "reply", "body": "Yes <script>alert(1)</script>", **seen}
    shown = client.post(f"/tickets/{ref}/preview", data=mail, headers={"HX-Request": "true"})
    assert shown.status_code == 200 and "<pre>" in shown.text
    assert "Yes &lt;script&gt;alert(1)&lt;/script&gt;" in shown.text and "<script>alert" not in shown.text
    assert f"Subject: [{ref}] Re: Logo on a banner" in shown.text and outbox(app) == []
    sent = client.post(f"/tickets/{ref}/reply", data=mail, follow_redirects=False)
    assert (sent.status_code, sent.headers["location"]) == (303, f"/tickets/{ref}")
    assert len(outbox(app)) == 1 and outbox(app)[0].actor == "liaison:liaison"
    warned = client.post(f"/tickets/{ref}/reply", data=mail, headers={"HX-Request": "true"})
    assert warned.status_code == 200 and "another reply was queued" in warned.text and "Send anyway" in warned.text
    page_again = client.post(f"/tickets/{ref}/reply", data=mail, follow_redirects=False)
    assert page_again.status_code == 409 and "Yes &lt;script&gt;" in page_again.text
    assert 'name="confirm" value="1"' in page_again.text
    assert len(outbox(app)) == 1
    confirmed = client.post(f"/tickets/{ref}/reply", data={**mail, "confirm": "1"}, headers={"HX-Request": "true"})
    assert confirmed.headers["hx-redirect"] == f"/tickets/{ref}" and len(outbox(app)) == 2
    empty = client.post(f"/tickets/{ref}/reply", data={**mail, "body": " ", "confirm": "1"},
                        headers={"HX-Request": "true"})
    assert "the reply is empty" in empty.text and len(outbox(app)) == 2


def test_note_status_merge_and_unmerge(client: TestClient, app: App, make_account: Callable[..., Account]) -> None:
    """Each form posts, acts as the user and goes back to the ticket (303)."""
    ref = ticket(app, "<w2@v.example>")
    other = ticket(app, "<w3@v.example>", subject="Banner, again")
    logged_in(client, make_account())
    token = field(client.get(f"/tickets/{ref}/actions").text, "csrf_token")

    def post(path: str, **data: str) -> Any:
        response = client.post(f"/tickets/{ref}/{path}", data={"csrf_token": token, **data}, follow_redirects=False)
        assert (response.status_code, response.headers.get("location")) == (303, f"/tickets/{ref}"), response.text
        return response

    post("note", text="internal <b>only</b>")
    assert [(e.actor, e.detail) for e in actions_of(app, "note")] == [("liaison:liaison", {"text": "internal <b>only</b>"})]
    post("status", status="waiting", expected="new")
    stale = client.post(f"/tickets/{ref}/status", data={"csrf_token": token, "status": "resolved", "expected": "new"})
    assert stale.status_code == 409 and "no longer new" in stale.text
    post("merge", into=other)
    panel = client.get(f"/tickets/{ref}/actions").text
    assert f"merged into <a href=\"/tickets/{other}\">{other}</a>" in panel and 'data-key="reply"' not in panel
    assert f"Merged here: <a href=\"/tickets/{ref}\">" in client.get(f"/tickets/{other}/actions").text
    response = client.post(f"/tickets/{other}/unmerge", data={"csrf_token": token, "source": ref},
                           follow_redirects=False)
    assert response.status_code == 303
    with app.reads() as session:
        assert session.execute(select(Ticket.status, Ticket.merged_into_id).where(Ticket.reference == ref)).one() \
            == (TicketStatus.waiting, None)


def test_every_action_needs_the_csrf_token(client: TestClient, app: App, make_account: Callable[..., Account]) -> None:
    """A POST without the session's token (or with a forged one) is refused with 403 and changes nothing."""
    ref = ticket(app, "<w4@v.example>")
    other = ticket(app, "<w5@v.example>", subject="Other")
    logged_in(client, make_account())
    forms = {"reply": {"body": "x", "confirm": "1"}, "preview": {"body": "x"}, "note": {"text": "x"},
             "status": {"status": "resolved"}, "merge": {"into": other}, "unmerge": {}, "handoff": {}}
    for path, data in forms.items():
        for token in ({}, {"csrf_token": "forged"}):
            response = client.post(f"/tickets/{ref}/{path}", data={**data, **token}, follow_redirects=False)
            assert response.status_code == 403, path
    with app.reads() as session:
        assert session.scalars(select(Event.action).where(Event.actor.like("liaison:%"))).all() == []
    assert outbox(app) == []


def test_roles_on_the_web(client: TestClient, app: App, make_account: Callable[..., Account]) -> None:
    """Another team's ticket is not found (404); a viewer's panel is read-only and a viewer's POST is 403."""
    ref = ticket(app, "<w6@v.example>", team="legal")
    logged_in(client, make_account("tom", "staff", "technology"))
    assert client.get(f"/tickets/{ref}/actions").status_code == 404
    token = field(client.get("/tickets/T-1999-00001/actions").text, "csrf_token")  # the error page's logout form
    assert client.post(f"/tickets/{ref}/note", data={"csrf_token": token, "text": "x"}).status_code == 404
    client.cookies.clear()
    logged_in(client, make_account("vic", "viewer"))
    panel = client.get(f"/tickets/{ref}/actions")
    assert panel.status_code == 200 and "You can read this ticket" in panel.text and "<textarea" not in panel.text
    token = field(client.get("/tickets/T-1999-00001/actions").text, "csrf_token")
    assert client.post(f"/tickets/{ref}/note", data={"csrf_token": token, "text": "x"}).status_code == 403
    assert actions_of(app, "note") == []


# -- in a browser, on the ticket page -------------------------------------------------------------


def test_composer_in_the_browser(app: App, page: Any, make_account: Callable[..., Account]) -> None:
    """r focuses the reply; Preview shows the mail (markup as text); mail arriving meanwhile makes Send warn, and
    'Send anyway' queues it; the internal note is yellow and labelled as never sent."""
    ref = ticket(app, "<b1@v.example>")
    log_in(page, make_account(), next_path=f"/tickets/{ref}")
    page.wait_for_selector("textarea[data-key=reply]")
    page.keyboard.press("r")
    text = 'Yes, the banner is fine. <img src="https://evil.example/p.png" onerror="alert(1)">'
    page.keyboard.type(text)
    assert page.eval_on_selector("textarea[data-key=reply]", "el => el.value") == text
    page.get_by_role("button", name="Preview").click()
    assert text in page.locator("#reply-preview pre").first.inner_text()  # shown as text, never as markup
    ticket(app, "<b2@v.example>", subject=f"Re: [{ref}] Logo", in_reply_to="<b1@v.example>")
    page.get_by_role("button", name="Send", exact=True).click()
    page.wait_for_selector("#reply-result .warning")
    assert "new mail arrived since you opened the ticket" in page.locator("#reply-result").inner_text()
    assert outbox(app) == []
    page.get_by_role("button", name="Send anyway").click()
    page.wait_for_function("() => !document.querySelector('#reply-result .warning')")
    assert [row.template for row in outbox(app)] == ["reply"]
    note = page.locator("form.note")
    assert "Internal note — never sent" in note.inner_text()
    assert note.evaluate("el => getComputedStyle(el).backgroundColor") == "rgb(255, 246, 214)"
    assert page.watch.console_errors == [] and page.watch.dialogs == [] and page.watch.foreign_requests == []
