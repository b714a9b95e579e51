"""/search on the workbench: hits link to their tickets with escaped, <mark>ed snippets; filters; a
bad query is a 400 page with the form kept; staff find only their team's tickets; the header's box
is reached with the `/` key in a real browser."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.test_search import store
from tests.test_web_actions import logged_in
from tests.workbench import Account, log_in
from triage.bootstrap import App
from triage.web.app import create_app


@pytest.fixture
def client(app: App) -> Iterator[TestClient]:
    with TestClient(create_app(app), base_url="http://127.0.0.1") as test_client:
        yield test_client


def test_search_page_marks_matches_and_escapes_mail(client: TestClient, app: App,
                                                    make_account: Callable[..., Account]) -> None:
    """A hit shows its ticket link and the matched word in <mark>; mail markup stays text."""
    ref = store(app, "<w1@v.example>", subject="<img src=x onerror=alert(1)>",
                body="<script>alert(1)</script> the zeppelin <b>lands</b>\n")
    logged_in(client, make_account())
    assert client.get("/search").status_code == 200
    page = client.get("/search", params={"q": "zeppelin"})
    assert page.status_code == 200
    assert f'href="/tickets/{ref}"' in page.text and "<mark>zeppelin</mark>" in page.text
    assert "<script>alert" not in page.text and "<img src=x" not in page.text and "<b>lands" not in page.text
    assert "&lt;img src=x" in page.text  # the subject, shown as text
    assert 'action="/search"' in page.text and 'data-key="search"' in page.text  # the header's box
    none = client.get("/search", params={"q": "zeppelin", "status": "resolved"})
    assert "Nothing found" in none.text and f"/tickets/{ref}" not in none.text


BAD = [{"q": '"((NEAR'}, {"q": "x" * 10_000}, {"q": "logo", "since": "2026-13-45"}, {"q": "logo", "status": "gone"},
       {"q": "logo\x00"}, {"q": "logo", "kind": "x"}, {"q": "logo", "until": "²"}, {"q": "-"}]


def test_bad_searches_are_a_400_page_never_a_500(client: TestClient, app: App,
                                                make_account: Callable[..., Account]) -> None:
    """Hostile input answers with results or a 400 that keeps the form and says what to do."""
    store(app, "<w2@v.example>")
    logged_in(client, make_account())
    statuses = []
    for params in BAD:
        response = client.get("/search", params=params)
        statuses.append(response.status_code)
        assert 'name="q"' in response.text
        if response.status_code == 400:
            assert 'class="error"' in response.text
    assert statuses == [200, 400, 400, 400, 200, 400, 400, 400]


def test_staff_find_only_their_team_and_anonymous_is_sent_to_log_in(client: TestClient, app: App,
                                                                    make_account: Callable[..., Account]) -> None:
    """Staff of legal do not find technology's ticket; nobody logged out searches."""
    assert client.get("/search?q=x", follow_redirects=False).status_code == 303
    legal = store(app, "<w3@v.example>", body="trademark\n", team="legal")
    tech = store(app, "<w4@v.example>", body="trademark\n", team="technology")
    logged_in(client, make_account("sam", "staff", "legal"))
    page = client.get("/search", params={"q": "trademark"})
    assert f"/tickets/{legal}" in page.text and f"/tickets/{tech}" not in page.text


def test_slash_opens_the_search_and_a_hit_opens_its_ticket(app: App, page: Any,
                                                            make_account: Callable[..., Account]) -> None:
    """In a browser: `/` focuses the header's box, Enter searches, the hit's link opens the ticket."""
    ref = store(app, "<w5@v.example>", body="Our edit-a-thon needs a projector\n")
    log_in(page, make_account(), next_path="/tickets")  # not the queue: it loads the routing model
    page.keyboard.press("/")
    page.keyboard.type("projector")
    page.keyboard.press("Enter")
    page.wait_for_url("**/search?q=projector")
    assert page.locator("ol.hits mark").first.inner_text() == "projector"
    page.click(f"ol.hits a[href='/tickets/{ref}']")
    page.wait_for_url(f"**/tickets/{ref}")
    assert page.watch.console_errors == [] and page.watch.foreign_requests == []
