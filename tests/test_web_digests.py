"""/digests: each team's opt-in, last digest and a preview of this week's; staff see their team's
only; mail text shown escaped; and one browser test of the page."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.digest_data import add_ticket, env
from tests.test_web_auth import _csrf, _login
from tests.workbench import Account, log_in
from triage.bootstrap import App
from triage.config import Settings, load_settings
from triage.digest.run import run_digests
from triage.digest.weeks import last_complete_week
from triage.store.db import utcnow
from triage.web.app import create_app

HOSTILE = '<script>alert("digest")</script><img src=x onerror=alert(2)>'


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    """The test desk's teams file: legal and events asked for the digest, technology did not."""
    return load_settings(environ=env(db_url, tmp_path))


@pytest.fixture
def client(app: App) -> Iterator[TestClient]:
    with TestClient(create_app(app), base_url="http://127.0.0.1") as test_client:
        yield test_client


def last_week_tickets(app: App) -> None:
    """Three legal tickets a week ago (always in the last complete week), one with a hostile subject."""
    ago = utcnow() - timedelta(days=7)
    add_ticket(app, 1, team="legal", created=ago, subject=HOSTILE, text="Takedown of our photos.")
    add_ticket(app, 2, team="legal", created=ago, subject="Logo on a banner", text="May we?")
    add_ticket(app, 3, team="technology", created=ago, subject="Login broken", text="Help.")


def test_the_liaison_sees_every_team_and_staff_only_their_own(
        app: App, client: TestClient, make_account: Callable[..., Account]) -> None:
    """The liaison (and a viewer) see the three teams with their opt-in; staff of legal see legal
    alone; a hostile ticket subject in the preview is text, never markup."""
    last_week_tickets(app)
    make_account("ada", "liaison")
    make_account("sam", "staff", team="legal")
    make_account("vic", "viewer")
    assert client.get("/digests", follow_redirects=False).status_code == 303  # a login first
    _login(client, "ada")
    page = client.get("/digests")
    assert page.status_code == 200
    assert [key for key in ("events", "legal", "technology") if f'id="digest-{key}"' in page.text] == [
        "events", "legal", "technology"]
    assert "on, Wednesday 09:00 (UTC)" in page.text and "off (not asked for)" in page.text
    assert HOSTILE not in page.text and "&lt;script&gt;alert(" in page.text
    assert 'href="/digests"' in page.text
    client.post("/logout", data={"csrf_token": _csrf(page.text)})
    _login(client, "sam")
    staff = client.get("/digests")
    assert 'id="digest-legal"' in staff.text and 'id="digest-technology"' not in staff.text
    assert "Login broken" not in staff.text
    client.post("/logout", data={"csrf_token": _csrf(staff.text)})
    _login(client, "vic")
    assert 'id="digest-technology"' in client.get("/digests").text


def test_the_page_previews_the_digest_and_shows_the_last_one_sent(
        app: App, page: Any, make_account: Callable[..., Account]) -> None:
    """Browser: the liaison follows the Digests link, opens legal's preview (the mail as it will be
    sent), and after the run sees it listed as the last digest sent."""
    last_week_tickets(app)
    log_in(page, make_account())
    page.click("nav >> text=Digests")
    page.wait_for_url("**/digests")
    legal = page.locator("#digest-legal")
    assert legal.locator(".opt-in").inner_text() == "on, Monday 08:00 (UTC)"
    assert legal.locator(".last").inner_text() == "never"
    legal.locator("details.digest-preview > summary").click()
    preview = legal.locator(".mail-preview pre").first.inner_text()
    assert "To: Legal <legal@example.org>" in preview and "Subject: Weekly digest for Legal" in preview
    assert HOSTILE in preview  # shown as the text it is
    week = last_complete_week(utcnow(), "UTC")
    run_digests(app.sessions, app.wiring, now=utcnow(), week=week, reads=app.reads)
    page.reload()
    assert page.locator("#digest-legal .last").inner_text().startswith(f"{week}, queued ")
    assert "(pending): 2 new, 2 open" in page.locator("#digest-legal .last").inner_text()
    assert page.watch.dialogs == [] and page.watch.console_errors == [] and page.watch.foreign_requests == []
