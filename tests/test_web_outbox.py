"""/outbox and /quarantine: the liaison's decisions in a real browser, hostile quarantined mail shown
only as escaped text, the raw mail only as a download, and who may see or change what."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from tests.conftest import make_mail
from tests.mail_states import (  # noqa: F401 - fixture_acknowledging_settings: the settings fixture
    acknowledged_tickets,
    fixture_acknowledging_settings,
    quarantine_mail,
    set_outbox_states,
)
from tests.test_web_auth import _csrf, _login
from tests.workbench import Account, log_in
from triage.bootstrap import App
from triage.store.models import Quarantine
from triage.store.outbox_models import Outbox, OutboxStatus
from triage.web.app import create_app

SUBJECT = '<script>alert("subject")</script><img src=x onerror=alert(2)>'
REASON = '<script>alert("reason")</script> <svg onload=alert(3)>'


@pytest.fixture
def client(app: App) -> Iterator[TestClient]:
    with TestClient(create_app(app), base_url="http://127.0.0.1") as test_client:
        yield test_client


def status_of(app: App, row_id: int) -> OutboxStatus:
    with app.reads() as session:
        return session.get_one(Outbox, row_id).status


def released(app: App, row_id: int) -> bool:
    with app.reads() as session:
        return session.scalar(select(Quarantine.released_at).where(Quarantine.id == row_id)) is not None


def test_the_liaison_marks_uncertain_mail_sent_and_retries_failed_mail(
        app: App, page: Any, make_account: Callable[..., Account]) -> None:
    """Uncertain and failed mail is listed first with its last error and SMTP reply and a link to its
    ticket; ticking a row and pressing Mark sent or Retry applies the decision."""
    pending, failed, uncertain = acknowledged_tickets(app, 3)
    set_outbox_states(app, {failed: OutboxStatus.failed, uncertain: OutboxStatus.uncertain})
    log_in(page, make_account(), next_path="/outbox")
    assert page.locator("table.outbox tbody tr").evaluate_all("rows => rows.map(r => r.id)") == [
        f"outbox-{uncertain}", f"outbox-{failed}", f"outbox-{pending}"]
    failed_row = page.locator(f"#outbox-{failed}")
    assert "550 5.1.1" in failed_row.locator(".last-error").inner_text()
    assert failed_row.locator("a").get_attribute("href") == "/tickets/T-2026-00002"
    assert page.locator(f"#outbox-{pending} input[type=checkbox]").count() == 0  # nothing to decide

    page.check(f"#outbox-{uncertain} input[name=id]")
    with page.expect_navigation():
        page.click("button[value=mark-sent]")
    assert page.locator("section.notice").inner_text().startswith(f"Marked sent: #{uncertain}")
    page.check(f"#outbox-{failed} input[name=id]")
    with page.expect_navigation():
        page.click("button[value=retry]")
    assert page.locator("section.notice").inner_text().startswith(f"Queued again: #{failed}")
    assert (status_of(app, uncertain), status_of(app, failed)) == (OutboxStatus.sent, OutboxStatus.pending)
    assert page.watch.console_errors == [] and page.watch.foreign_requests == []


def test_hostile_quarantined_mail_is_shown_escaped_and_retried(
        app: App, page: Any, make_account: Callable[..., Account]) -> None:
    """A quarantined mail whose subject, sender and reason carry markup shows them as text (no
    element, no script, no dialog) and is released by its Retry button."""
    held = quarantine_mail(app, make_mail(subject=SUBJECT, sender='"<b onmouseover=alert(4)>Eve</b>" <eve@x.example>',
                                          message_id="<hostile@x.example>"), REASON)
    log_in(page, make_account(), next_path="/quarantine")
    row = page.locator(f"#quarantine-{held}")
    assert row.locator(".subject").inner_text() == SUBJECT
    assert REASON in row.locator(".reason").inner_text()
    assert "<b onmouseover=alert(4)>Eve</b>" in row.locator(".sender").inner_text()
    assert page.locator("main script, main img, main svg, main b").count() == 0
    assert row.locator("a[download]").get_attribute("href") == f"/quarantine/{held}/raw"
    with page.expect_navigation():
        row.locator("button", has_text="Retry").click()
    assert "1 of 1 released" in page.locator("section.notice").inner_text()
    assert page.locator("section.notice a").get_attribute("href") == "/tickets/T-2026-00001"
    assert released(app, held)
    assert page.watch.dialogs == [] and page.watch.foreign_requests == []


def test_staff_see_neither_page(client: TestClient, app: App, make_account: Callable[..., Account]) -> None:
    """Staff get 403 on the outbox, the quarantine and a raw mail; nothing changes."""
    (row,) = acknowledged_tickets(app, 1)
    set_outbox_states(app, {row: OutboxStatus.uncertain})
    held = quarantine_mail(app, make_mail(message_id="<held@x.example>"), "broken on purpose")
    make_account("sam", "staff", "events")
    _login(client, "sam")
    for path in ("/outbox", "/quarantine", f"/quarantine/{held}/raw"):
        assert client.get(path).status_code == 403, path
    token = _csrf(client.get("/queue").text)
    assert client.post("/outbox", data={"csrf_token": token, "action": "mark-sent", "id": row}).status_code == 403
    assert client.post("/quarantine", data={"csrf_token": token, "all": "1"}).status_code == 403
    assert status_of(app, row) is OutboxStatus.uncertain and not released(app, held)


def test_a_decision_without_the_csrf_token_is_refused(client: TestClient, app: App,
                                                     make_account: Callable[..., Account]) -> None:
    """A POST to /outbox or /quarantine without the session's CSRF token is 403 and changes nothing;
    with it, the same request is applied."""
    (row,) = acknowledged_tickets(app, 1)
    set_outbox_states(app, {row: OutboxStatus.uncertain})
    held = quarantine_mail(app, make_mail(message_id="<held@x.example>"), "broken on purpose")
    _login(client, make_account().name)
    for data in ({}, {"csrf_token": "forged"}):
        assert client.post("/outbox", data={**data, "action": "mark-sent", "id": row}).status_code == 403
        assert client.post("/quarantine", data={**data, "id": held}).status_code == 403
    assert status_of(app, row) is OutboxStatus.uncertain and not released(app, held)
    token = _csrf(client.get("/outbox").text)
    for junk in ("²", "1 OR 1=1", ""):  # a chosen id is digits, or the request is refused as invalid
        assert client.post("/outbox", data={"csrf_token": token, "action": "retry", "id": junk}).status_code == 400
    assert client.post("/outbox", data={"csrf_token": token, "action": "mark-sent", "id": row}).status_code == 200
    assert client.post("/quarantine", data={"csrf_token": token, "id": held}).status_code == 200
    assert status_of(app, row) is OutboxStatus.sent and released(app, held)


def test_the_raw_mail_is_only_a_download(client: TestClient, app: App,
                                        make_account: Callable[..., Account]) -> None:
    """The raw bytes of a quarantined mail come as an octet-stream attachment named by id, for the
    liaison only; a viewer reads the lists without any button or download link."""
    raw = make_mail(subject=SUBJECT, message_id="<raw@x.example>")
    held = quarantine_mail(app, raw, REASON)
    _login(client, make_account().name)
    response = client.get(f"/quarantine/{held}/raw")
    assert response.status_code == 200 and response.content == raw
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"] == f'attachment; filename="quarantine-{held}.eml"'
    assert response.headers["x-content-type-options"] == "nosniff"
    assert client.get("/quarantine/999/raw").status_code == 404
    viewer = TestClient(create_app(app), base_url="http://127.0.0.1")
    make_account("vic", "viewer")
    _login(viewer, "vic")
    page = viewer.get("/quarantine")
    assert page.status_code == 200 and f"#{held}" in page.text
    assert "<button" not in page.text.split("<main>")[1] and "/raw" not in page.text
    assert viewer.get(f"/quarantine/{held}/raw").status_code == 403
    assert "Mark sent" not in viewer.get("/outbox").text
