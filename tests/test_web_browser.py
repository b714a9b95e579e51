"""The workbench in a real browser (Debian's chromium through Playwright) against the real server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.conftest import make_mail
from tests.workbench import Account, log_in
from triage.bootstrap import App
from triage.ingest.pipeline import IncomingMail


def test_the_liaison_logs_in_and_sees_the_queue(app: App, page: Any, make_account: Callable[..., Account]) -> None:
    app.ingestor().ingest_many([IncomingMail(make_mail(subject="Banner for our edit-a-thon"), source="test")])
    log_in(page, make_account())
    assert page.locator("table.queue").inner_text().count("Banner for our edit-a-thon") == 1
    page.keyboard.press("j")
    assert page.locator("tr.selected").count() == 1
    page.keyboard.press("?")
    assert page.locator("#cheatsheet").is_visible()
    page.click("text=Log out")
    page.wait_for_url("**/login")
    assert page.watch.console_errors == [] and page.watch.foreign_requests == []
