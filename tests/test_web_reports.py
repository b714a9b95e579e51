"""/reports: charts as same-origin SVG, tables, CSV downloads, period and team filters; staff see
their own team only, a viewer reads; hostile labels are escaped (Starlette's test client), and in
a real browser every chart loads and a CSV downloads."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.report_desk import NOW, add_contact, add_ticket, seed
from tests.test_web_auth import _login
from tests.workbench import Account, log_in
from triage.bootstrap import App
from triage.reports import charts
from triage.web.app import create_app


@pytest.fixture
def client(app: App) -> Iterator[TestClient]:
    with TestClient(create_app(app), base_url="http://127.0.0.1") as test_client:
        yield test_client


def _rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_reports_page_for_the_liaison_with_hostile_labels(app: App, client: TestClient,
                                                          make_account: Callable[..., Account]) -> None:
    """The page lists a chart <img> per chart and every table with its CSV link, values escaped;
    a chart is image/svg+xml under its own CSP; a CSV is an attachment, formulas quoted."""
    seed(app)
    add_ticket(app, team="<script>alert(1)</script>", created=NOW,
               contact=add_contact(app, "evil@v.example", "=1+2<b>"))
    assert client.get("/reports", follow_redirects=False).status_code == 303  # a login first
    _login(client, make_account().name)
    html = client.get("/reports").text
    assert '<a href="/reports">Reports</a>' in html
    for name in charts.CHARTS:
        assert f'<img src="/reports/charts/{name}.svg"' in html
    assert 'href="/reports/tables/corrections.csv" download' in html
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "=1+2&lt;b&gt;" in html and "<b>" not in html.split("<main>")[1]
    svg = client.get("/reports/charts/volume.svg")
    assert svg.status_code == 200 and svg.headers["content-type"] == "image/svg+xml"
    assert "default-src 'none'" in svg.headers["content-security-policy"] and "<script" not in svg.text
    assert client.get("/reports/charts/nope.svg").status_code == 404
    download = client.get("/reports/tables/volume_by_language.csv")
    assert download.headers["content-type"] == "text/csv; charset=utf-8"
    assert download.headers["content-disposition"] == 'attachment; filename="triage-volume_by_language.csv"'
    assert ["2026-W50", "'=1+2<b>", "1"] in _rows(download.text)
    period = _rows(client.get("/reports/tables/volume_by_week.csv?since=2026-11-09&until=2026-11-30").text)
    assert period == [["week", "tickets"], ["2026-W46", "1"]]
    assert 'value="2026-11-09"' in client.get("/reports?since=2026-11-09").text
    assert client.get("/reports?since=2026-99-01").status_code == 400
    assert client.get("/reports/tables/nothing.csv").status_code == 404


def test_staff_read_their_own_team_and_a_viewer_reads_all(app: App, client: TestClient,
                                                          make_account: Callable[..., Account]) -> None:
    """Staff of legal get legal's figures (no team picker), and another team's are refused (403),
    in the page, the charts and the CSV alike; a viewer reads every team's."""
    seed(app)
    _login(client, make_account("lee", "staff", "legal").name)
    html = client.get("/reports").text
    assert '<select name="team">' not in html and "<td>fundraising</td><td>3</td>" not in html
    assert _rows(client.get("/reports/tables/volume_by_team.csv").text) == [
        ["week", "team", "tickets"], ["2026-W45", "legal", "1"], ["2026-W46", "legal", "1"]]
    for path in ("/reports?team=fundraising", "/reports/charts/volume.svg?team=fundraising",
                 "/reports/tables/overdue.csv?team=fundraising"):
        assert client.get(path).status_code == 403, path
    client.cookies.clear()
    _login(client, make_account("vic", "viewer").name)
    teams = {row[1] for row in _rows(client.get("/reports/tables/volume_by_team.csv").text)[1:]}
    assert teams == {"fundraising", "legal", "(unrouted)"}
    assert _rows(client.get("/reports/tables/volume_by_team.csv?team=fundraising").text)[1:] == [
        ["2026-W45", "fundraising", "3"]]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_browser_charts_load_and_a_csv_downloads(app: App, page: Any, make_account: Callable[..., Account]) -> None:
    """In chromium every chart image loads (naturalWidth > 0) under the page's CSP, and the CSV
    link downloads the table."""
    seed(app)
    log_in(page, make_account(), next_path="/reports")
    images = page.locator("figure.chart img")
    assert images.count() == len(charts.CHARTS)
    for i in range(images.count()):
        images.nth(i).scroll_into_view_if_needed()
        page.wait_for_function("img => img.complete", arg=images.nth(i).element_handle())
        assert images.nth(i).evaluate("img => img.naturalWidth") > 0
    with page.expect_download() as info:
        page.click("#table-corrections a.csv")
    path = info.value.path()
    assert info.value.suggested_filename == "triage-corrections.csv"
    assert _rows(Path(path).read_text(encoding="utf-8"))[0] == ["suggested", "chosen", "decisions"]
    assert not page.watch.console_errors and not page.watch.dialogs
