"""The ticket page: headers of the mail frame and of downloads, roles (through Starlette's test
client), and hostile mail in every field in a real browser (Debian's chromium via Playwright)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import update
from starlette.testclient import TestClient

from tests.conftest import Clock
from tests.test_desk_tickets import handed_to_legal_with_staff_mail
from tests.ticket_mail import HOSTILE_HTML, workbench_mail
from tests.workbench import PASSWORD, Account, log_in
from triage.bootstrap import App
from triage.desk.actors import Actor
from triage.desk.presence import present, touch_presence
from triage.desk.tickets import TicketView, ticket_view
from triage.store.models import Ticket
from triage.store.web_models import Role
from triage.web.app import create_app
from triage.web.security import MAIL_CSP, MAIL_CSP_REMOTE_IMAGES
from triage.web.ticket import content_disposition

LIAISON = Actor("lia", Role.liaison)
# Every field a sender controls carries a payload.
SUBJECT = "<script>alert('subject')</script><img src=x onerror=alert('subject-img')>"
NAME = "<img src=x onerror=alert('name')>"
ADDRESS = "'onmouseover=alert`1`'@evil.example"
FILENAME = "<img src=x onerror=alert('file')>\".html"
BODY = "Hello <script>alert('body')</script> <a href=\"javascript:alert('body')\">x</a>\n"


def _store(app: App, raw: bytes) -> TicketView:
    ref = app.ingestor().ingest(raw, source="test").ticket_reference
    assert ref
    return ticket_view(app, LIAISON, ref)


def _hostile(app: App) -> TicketView:
    return _store(app, workbench_mail(
        name=NAME, address=ADDRESS, subject=SUBJECT, text=BODY, html=HOSTILE_HTML,
        attachments=[(FILENAME, "text/html", b"<script>alert('attachment')</script>")]))


@pytest.fixture
def client(app: App) -> Iterator[TestClient]:
    with TestClient(create_app(app), base_url="http://127.0.0.1") as test_client:
        yield test_client


def _login(client: TestClient, name: str) -> None:
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert token
    done = client.post("/login", data={"username": name, "password": PASSWORD, "csrf_token": token[1]},
                       follow_redirects=False)
    assert done.status_code == 303


def test_downloads_are_opaque_attachments_with_an_encoded_name(app: App, client: TestClient,
                                                              make_account: Callable[..., Account]) -> None:
    """Whatever type the sender claimed, an attachment is application/octet-stream, nosniff, a
    download, its name encoded (RFC 5987), never raw in the header."""
    view = _hostile(app)
    _login(client, make_account().name)
    att = view.messages[0].attachments[0]
    response = client.get(f"/attachments/{att.id}")
    assert response.status_code == 200 and response.content == b"<script>alert('attachment')</script>"
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["x-content-type-options"] == "nosniff"
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment; ") and "<" not in disposition
    assert "filename*=utf-8''%3Cimg%20src%3Dx%20onerror%3Dalert%28%27file%27%29%3E%22.html" in disposition
    assert "sandbox" in response.headers["content-security-policy"]


def test_a_filename_cannot_break_the_header() -> None:
    """Quotes, semicolons, line breaks and path separators stay inside the encoded value."""
    value = content_disposition('../../evil"; filename=x.html\r\nSet-Cookie: a=b;.pdf')
    assert "\r" not in value and "\n" not in value and value.count('"') == 2
    assert value.startswith('attachment; filename="')
    assert "filename*=utf-8''" in value and "/" not in value
    assert content_disposition("Звіт.pdf") == (
        "attachment; filename=\"____.pdf\"; filename*=utf-8''%D0%97%D0%B2%D1%96%D1%82.pdf")


def test_the_mail_frame_is_served_under_the_mail_csp(app: App, client: TestClient,
                                                     make_account: Callable[..., Account]) -> None:
    """The frame gets MAIL_CSP (framed only by our own pages), MAIL_CSP_REMOTE_IMAGES only with ?remote=1."""
    view = _hostile(app)
    _login(client, make_account().name)
    message = view.messages[0].id
    frame = client.get(f"/messages/{message}/html")
    assert frame.status_code == 200 and frame.headers["content-security-policy"] == MAIL_CSP
    assert frame.headers["x-frame-options"] == "SAMEORIGIN" and "<script" not in frame.text
    assert "tracker.example" not in frame.text
    remote = client.get(f"/messages/{message}/html?remote=1")
    assert remote.headers["content-security-policy"] == MAIL_CSP_REMOTE_IMAGES
    assert 'src="https://tracker.example/p.gif"' in remote.text
    page = client.get(f"/tickets/{view.reference}")
    assert page.status_code == 200 and "frame-ancestors 'none'" in page.headers["content-security-policy"]
    iframe = re.search(r"<iframe [^>]*>", page.text)
    assert iframe and re.search(r"\bsandbox\b(?!=)", iframe[0]) and "allow-" not in iframe[0]


def test_staff_of_another_team_get_404_everywhere(app: App, client: TestClient,
                                                  make_account: Callable[..., Account]) -> None:
    """The page, its presence poll, the mail frame and the attachment of another team's ticket are
    404, as for a ticket that does not exist; their own team's ticket opens."""
    view = _hostile(app)
    with app.sessions.begin() as session:
        session.execute(update(Ticket).where(Ticket.id == view.id).values(team="grants"))
    _login(client, make_account("sam", "staff", "comms").name)
    message, att = view.messages[0].id, view.messages[0].attachments[0].id
    for path in (f"/tickets/{view.reference}", f"/messages/{message}/html", f"/attachments/{att}",
                 "/tickets/T-2026-99999"):
        assert client.get(path).status_code == 404, path
    token = re.search(r'"X-CSRF-Token": "([^"]+)"', client.get("/queue").text)
    assert token
    poll = client.post(f"/tickets/{view.reference}/presence", headers={"X-CSRF-Token": token[1]})
    assert poll.status_code == 404
    with app.sessions.begin() as session:
        session.execute(update(Ticket).where(Ticket.id == view.id).values(team="comms"))
    assert client.get(f"/tickets/{view.reference}").status_code == 200


def test_the_presence_poll_records_drafting_and_answers_who_else_is_there(
        app: App, client: TestClient, make_account: Callable[..., Account]) -> None:
    """The poll needs the CSRF token, touches the reader's presence (drafting when the composer
    holds text) and lists the others."""
    view = _store(app, workbench_mail())
    make_account("ada")
    sam = make_account("sam", "liaison")
    _login(client, sam.name)
    token = re.search(r'"X-CSRF-Token": "([^"]+)"', client.get(f"/tickets/{view.reference}").text)
    assert token
    assert client.post(f"/tickets/{view.reference}/presence").status_code == 403
    from triage.desk.accounts import log_in
    ada = log_in(app, "ada", PASSWORD, client="test").actor
    touch_presence(app, ada, view.id)
    poll = client.post(f"/tickets/{view.reference}/presence", data={"drafting": "1"},
                       headers={"X-CSRF-Token": token[1]})
    assert poll.status_code == 200 and "ada is viewing" in poll.text
    assert [(p.name, p.drafting) for p in present(app, ada, view.id)] == [("sam", True)]


# -- in the browser --

def test_hostile_mail_is_inert_and_remote_images_load_only_when_asked(
        app: App, page: Any, make_account: Callable[..., Account]) -> None:
    """Payloads in subject, name, address, filename, text and HTML: shown as text, nothing runs,
    no dialog, no request to another host; "load remote images" fetches that one message's tracker."""
    view = _hostile(app)
    other = _store(app, workbench_mail(  # a second HTML mail on the ticket, with its own tracker
        message_id="<m2@volunteers.example>", in_reply_to="<m1@volunteers.example>", address=ADDRESS, name=NAME,
        subject="Re: x", text="second\n", html='<p>second</p><img src="https://tracker.example/second.gif">'))
    assert other.id == view.id
    log_in(page, make_account(), next_path=f"/tickets/{view.reference}")
    assert page.locator("h1 .subject").inner_text() == SUBJECT
    first = page.locator(".message").first
    assert NAME in first.locator(".from").inner_text() and ADDRESS in first.locator(".from").inner_text()
    assert "<script>alert('body')</script>" in first.locator(".new-text").inner_text()
    assert first.locator(".attachments a").inner_text() == FILENAME
    for summary in page.locator(".html-part summary").all():
        summary.click()
    frame = page.frame_locator(f"iframe[name=mail-{view.messages[0].id}]")
    assert "Dear desk," in frame.locator("body").inner_text()
    assert frame.locator("a#js-link, a[href^=javascript]").count() == 0
    page.wait_for_timeout(300)
    assert page.watch.dialogs == [] and page.watch.foreign_requests == []

    with page.expect_request("https://tracker.example/p.gif"):
        page.click(f"#m-{view.messages[0].id} .load-remote")
    page.wait_for_timeout(300)
    assert page.watch.foreign_requests == ["https://tracker.example/p.gif"]  # not the other message's
    assert page.watch.dialogs == []


def test_others_on_the_ticket_are_shown_and_the_banner_refreshes(
        app: App, browser: Any, page: Any, live_server: str, make_account: Callable[..., Account]) -> None:
    """Sam opening the ticket sees that Ada is viewing it; within a poll Sam sees her drafting."""
    view = _store(app, workbench_mail())
    ada_account, sam_account = make_account("ada"), make_account("sam")
    ada = browser.new_context(base_url=live_server)
    try:
        ada_page = ada.new_page()
        log_in(ada_page, ada_account, next_path=f"/tickets/{view.reference}")
        page.clock.install()
        log_in(page, sam_account, next_path=f"/tickets/{view.reference}")
        assert page.locator("#presence").inner_text() == "ada is viewing"
        from triage.desk.accounts import log_in as desk_log_in
        touch_presence(app, desk_log_in(app, "ada", PASSWORD, client="test").actor, view.id, drafting=True)
        with page.expect_response(lambda r: r.url.endswith("/presence")):
            page.clock.fast_forward("00:11")
        page.wait_for_function("document.querySelector('#presence').innerText.includes('drafting')")
        assert page.locator("#presence .present.drafting").inner_text() == "ada is drafting a reply"
        # Sam types into the composer (s2b's; a stand-in field here): the next poll says so
        page.evaluate("document.querySelector('.ticket-actions').innerHTML = '<textarea data-key=reply></textarea>'")
        page.locator("textarea[data-key=reply]").fill("Dear Ada,")
        with page.expect_response(lambda r: r.url.endswith("/presence") and r.status == 200):
            page.clock.fast_forward("00:11")
        ada_actor = desk_log_in(app, "ada", PASSWORD, client="test").actor
        assert [(p.name, p.doing) for p in present(app, ada_actor, view.id)] == [("sam", "is drafting a reply")]
        assert page.watch.console_errors == []
    finally:
        ada.close()


def test_staff_mail_shows_as_a_relayed_reply_and_as_an_internal_note(
        app: App, client: TestClient, clock: Clock, make_account: Callable[..., Account]) -> None:
    """Rosa's reply names her team and links the desk's mail that relayed it; her comment is an
    internal note by her address; what she wrote stays escaped text."""
    view = ticket_view(app, LIAISON, handed_to_legal_with_staff_mail(app, clock))
    [reply] = [m for m in view.messages if m.message_id == "<r1@example.org>"]
    [note] = [m for m in view.messages if m.message_id == "<n1@example.org>"]
    assert reply.staff is not None
    _login(client, make_account().name)
    page = client.get(f"/tickets/{view.reference}").text
    reply_html = page.split(f'id="m-{reply.id}"', 1)[1].split("</article>", 1)[0]
    note_html = page.split(f'id="m-{note.id}"', 1)[1].split("</article>", 1)[0]
    assert "Legal team (rosa.counsel@example.org)</span> — relayed to the volunteer" in reply_html
    assert f'<a href="#m-{reply.staff.relayed_message_id}">' in reply_html and "(pending)" in reply_html
    assert "Yes, &lt;b&gt;the logo&lt;/b&gt; is fine." in reply_html and "<b>" not in reply_html
    assert f'class="message message-inbound staff-mail staff-note" id="m-{note.id}"' in page
    assert '<span class="note-label">Internal note</span> by <span class="who">rosa.counsel@example.org</span>' in note_html
    assert "&lt;i&gt;trademark&lt;/i&gt;" in note_html and "relayed" not in note_html
