"""The queue and ticket-list pages: the evidence marked in escaped mail text, refusals by role
and on a conflict (Starlette's test client), and the liaison's daily moves in a real browser:
approve with the keyboard, correct with the picker, bulk approve, new mail appearing live."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from tests.conftest import make_mail
from tests.test_desk_routing import DONATION, LIAISON, LOGO, VAGUE, ingest, use_router
from tests.test_routing_desk import fixture_model_dir
from tests.test_web_auth import _login
from tests.workbench import Account, log_in
from triage.bootstrap import App
from triage.desk import routing
from triage.ingest.pipeline import IncomingMail
from triage.routing.desk import Router
from triage.store.models import Decision, Ticket
from triage.web import queue as queue_pages
from triage.web.app import create_app
from triage.web.queue import highlight

__all__ = ["fixture_model_dir"]  # the module-scoped trained model (model_dir), shared with the service tests


@pytest.fixture
def router(app: App, model_dir: Path) -> Router:
    return use_router(app, model_dir)


@pytest.fixture
def client(app: App, router: Router) -> Iterator[TestClient]:
    with TestClient(create_app(app), base_url="http://127.0.0.1") as test_client:
        yield test_client


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found
    return found[1]


def team_of(app: App, reference: str) -> str | None:
    with app.reads() as session:
        return session.scalar(select(Ticket.team).where(Ticket.reference == reference))


def test_highlight_escapes_every_fragment() -> None:
    """Mail text is escaped around and inside each <mark>: matching works on the text, and the
    only markup in the result is our own <mark>."""
    marked = highlight('<img src=x onerror="alert(1)"> receipt & Receipts <mark>', ["receipt", "mark"])
    assert marked == ('&lt;img src=x onerror=&#34;alert(1)&#34;&gt; <mark>receipt</mark> &amp; '
                      '<mark>Receipt</mark>s &lt;<mark>mark</mark>&gt;')
    assert highlight("a <b>", []) == "a &lt;b&gt;"
    assert highlight("syntax tax", ["tax"]) == "syntax <mark>tax</mark>"  # whole words start a match


def test_queue_page_marks_evidence_in_hostile_mail(app: App, client: TestClient,
                                                   make_account: Callable[..., Account]) -> None:
    """The first mail's text is shown escaped with the evidence marked; nothing in it is markup."""
    ingest(app, {**DONATION, "body": DONATION["body"] + ' <script>alert("x")</script><b onclick=y>receipt</b>'})
    _login(client, make_account().name)
    html = client.get("/queue").text
    assert "<mark>receipt</mark>" in html and "<meter" in html and 'data-key="approve"' in html
    assert "<script>alert" not in html and "<b onclick" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert 'hx-trigger="every 10000ms' in html and 'hx-trigger="every 1000ms' in client.get("/queue?poll=1").text
    fragment = client.get("/queue/rows?view=flagged", headers={"HX-Request": "true"}).text
    assert "<html" not in fragment and "Nothing waits for a decision with these filters" in fragment


def test_viewer_cannot_decide_and_staff_cannot_reach_other_teams(app: App, client: TestClient,
                                                                 make_account: Callable[..., Account]) -> None:
    """A viewer's approval is refused (403) and changes nothing; staff asking for another team's
    ticket get 404, as for a missing one, and list only their own team's."""
    donation, logo = ingest(app, DONATION, LOGO)
    routing.correct(app, LIAISON, logo, "legal")
    _login(client, make_account("vic", "viewer").name)
    page = client.get("/queue").text
    assert 'data-key="approve"' not in page and donation in page
    refused = client.post(f"/queue/{donation}/approve", data={"csrf_token": _csrf(page)})
    assert refused.status_code == 403 and "cannot route" in refused.text
    assert team_of(app, donation) is None
    client.cookies.clear()
    _login(client, make_account("fay", "staff", "fundraising").name)
    assert client.get(f"/tickets?q={logo}", follow_redirects=False).status_code == 404
    assert logo not in client.get("/tickets").text
    routing.approve(app, LIAISON, donation)
    mine = client.get(f"/tickets?q={donation}", follow_redirects=False)
    assert mine.status_code == 303 and mine.headers["location"] == f"/tickets/{donation}"
    assert donation in client.get("/tickets?status=open").text


def test_bulk_form_posts_the_filters_and_the_queue_pages(app: App, client: TestClient,
                                                        make_account: Callable[..., Account]) -> None:
    """The bulk form carries the page's filters (only those tickets are approved, and a plain post
    comes back to them); past a page of rows, a "more" link leads to the next page."""
    donation, logo = ingest(app, DONATION, LOGO)
    _login(client, make_account().name)
    page = client.get("/queue?team=legal")
    assert 'action="/queue/approve-confident?team=legal&amp;order=oldest"' in page.text
    done = client.post("/queue/approve-confident?team=legal&order=oldest",
                       data={"csrf_token": _csrf(page.text), "min_confidence": "0"}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/queue?team=legal&order=oldest"
    assert team_of(app, logo) == "legal" and team_of(app, donation) is None
    ingest(app, LOGO, VAGUE)
    with patch.object(queue_pages, "PAGE_ROWS", 1):
        first = client.get("/queue").text
        assert "Showing 1–1 of 3." in first and 'href="/queue?order=oldest&amp;page=2" rel="next">more' in first
        second = client.get("/queue?page=2").text
        assert "Showing 2–2 of 3." in second and 'rel="prev"' in second and 'page=3" rel="next"' in second
    assert client.get("/queue?page=x").status_code == 400


def test_a_decision_someone_made_first_is_refused_with_who(app: App, client: TestClient,
                                                         make_account: Callable[..., Account]) -> None:
    """The page was loaded before another liaison decided: approving answers who routed it where
    (htmx: a status line, the row leaves; a plain post: 409), and nothing is decided twice."""
    donation, = ingest(app, DONATION)
    _login(client, make_account().name)
    token = _csrf(client.get("/queue").text)
    routing.correct(app, LIAISON, donation, "legal")
    htmx = client.post(f"/queue/{donation}/approve", data={"csrf_token": token}, headers={"HX-Request": "true"})
    assert htmx.status_code == 200 and "HX-Reswap" not in htmx.headers
    assert f"{donation} was already routed to legal by liaison:ana" in htmx.text and 'class="flash error"' in htmx.text
    plain = client.post(f"/queue/{donation}/approve", data={"csrf_token": token})
    assert plain.status_code == 409 and "already routed to legal" in plain.text
    with app.reads() as session:
        assert len(session.scalars(select(Decision)).all()) == 1


# -- in the browser -------------------------------------------------------------------------

def test_liaison_approves_with_the_keyboard(app: App, router: Router, page: Any,
                                            make_account: Callable[..., Account]) -> None:
    """j selects the first row, a approves it: the row leaves without a reload, the ticket is routed."""
    donation, vague = ingest(app, DONATION, VAGUE)
    log_in(page, make_account())
    page.evaluate("window.sameDocument = true")
    page.keyboard.press("j")
    assert page.locator("tr.selected").get_attribute("data-reference") == donation
    page.keyboard.press("a")
    page.locator(f"tr[data-reference='{donation}']").wait_for(state="detached")
    assert "routed to fundraising" in page.locator("#flash").inner_text()
    assert page.locator("tr.selected").get_attribute("data-reference") == vague  # the next one, for the next key
    assert page.evaluate("window.sameDocument") is True
    assert team_of(app, donation) == "fundraising"
    assert page.watch.console_errors == []


def test_liaison_corrects_with_the_team_picker(app: App, router: Router, page: Any,
                                              make_account: Callable[..., Account]) -> None:
    """e focuses the row's team picker; choosing a team and routing corrects the suggestion."""
    vague, = ingest(app, VAGUE)
    log_in(page, make_account())
    page.keyboard.press("j")
    page.keyboard.press("e")
    picker = page.locator(f"tr[data-reference='{vague}'] select[data-key=correct]")
    assert picker.evaluate("element => element === document.activeElement")
    picker.select_option("technology")
    page.locator(f"tr[data-reference='{vague}'] form.correct button").click()
    page.locator(f"tr[data-reference='{vague}']").wait_for(state="detached")
    assert "corrected from no suggestion" in page.locator("#flash").inner_text()
    assert team_of(app, vague) == "technology"


def test_liaison_approves_in_bulk_above_a_confidence(app: App, router: Router, page: Any,
                                                    make_account: Callable[..., Account]) -> None:
    """The bulk form approves every suggestion at or above the threshold; abstentions stay."""
    donation, vague = ingest(app, DONATION, VAGUE)
    log_in(page, make_account())
    page.fill("input[name=min_confidence]", "0.3")
    page.click("[data-key=bulk-approve]")
    page.locator(f"tr[data-reference='{donation}']").wait_for(state="detached")
    assert "1 approved" in page.locator("#flash").inner_text()
    assert page.locator(f"tr[data-reference='{vague}']").count() == 1
    assert team_of(app, donation) == "fundraising" and team_of(app, vague) is None


def test_new_mail_appears_in_the_open_queue(app: App, router: Router, page: Any,
                                           make_account: Callable[..., Account]) -> None:
    """With the queue open, mail that arrives shows up by itself (polled every second here)."""
    ingest(app, DONATION)
    log_in(page, make_account())
    page.goto("/queue?poll=1")
    page.evaluate("window.sameDocument = true")
    app.ingestor().ingest_many([IncomingMail(make_mail(subject="Press interview next week",
                                                       message_id="<live@v.example>"), source="test")])
    router.suggest_pending()  # the worker's routing runner, a few seconds later
    page.locator("table.queue", has_text="Press interview next week").wait_for(timeout=8000)
    assert page.locator("[data-count]").inner_text() == "2"
    assert page.evaluate("window.sameDocument") is True


def test_uncertain_first_is_an_order_the_liaison_chooses(app: App, client: TestClient,
                                                         make_account: Callable[..., Account]) -> None:
    """The default order is unchanged (oldest first); "uncertain first" puts the smallest lead of the
    suggested team first; each evidence term is shown with its sentence, escaped."""
    donation, vague, logo = ingest(app, {**DONATION, "body": DONATION["body"] + " <b>receipt</b> & more."}, VAGUE,
                                   LOGO)
    by_lead = sorted(routing.queue(app, LIAISON).items, key=lambda i: i.ranked[0][1] - i.ranked[1][1])
    assert [i.reference for i in by_lead] != [donation, vague, logo]  # else the order would prove nothing
    _login(client, make_account().name)
    html = client.get("/queue").text
    assert re.findall(r'data-reference="([^"]+)"', html) == [donation, vague, logo]
    assert re.search(r'<a href="/queue\?order=uncertain"[^>]*>uncertain first</a>', html)
    uncertain = client.get("/queue?order=uncertain").text
    assert re.findall(r'data-reference="([^"]+)"', uncertain) == [i.reference for i in by_lead]
    assert re.search(r'<strong>[^<]*\breceipt\b[^<]*</strong>: <q>[^<]*(<mark>\w+</mark>[^<]*)*<mark>receipt</mark>',
                     uncertain)
    assert "&lt;b&gt;" in uncertain and "<b>receipt" not in uncertain


def test_hostile_order_and_language_in_the_address_are_refused_or_escaped(
        app: App, client: TestClient, make_account: Callable[..., Account]) -> None:
    """A crafted link cannot inject markup: an unknown order is a 400 that names the choices, escaped;
    a language filter is shown back escaped and matches nothing."""
    ingest(app, DONATION)
    _login(client, make_account().name)
    bad = client.get("/queue", params={"order": "<script>alert(1)</script>"})
    assert bad.status_code == 400
    assert "<script>alert(1)" not in bad.text and "&lt;script&gt;" in bad.text and "uncertain" in bad.text
    language = client.get("/queue", params={"language": '"><img src=x onerror=alert(1)>'})
    assert language.status_code == 200
    assert "<img src=x" not in language.text and "data-reference=" not in language.text
