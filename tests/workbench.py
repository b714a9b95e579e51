"""Fixtures for the workbench: accounts, the real server on a free loopback port, and Debian's
chromium driven by Playwright (never a downloaded browser). Loaded by tests/conftest.py.

Browser tests skip with the reason where chromium is not installed (`.ci/install-system-packages`
installs it); everything else runs without it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest

from triage.bootstrap import App
from triage.desk.accounts import add_user

CHROMIUM = os.environ.get("TRIAGE_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class Account:
    name: str
    password: str
    role: str
    team: str | None = None


@pytest.fixture
def make_account(app: App) -> Callable[..., Account]:
    def make(name: str = "liaison", role: str = "liaison", team: str | None = None) -> Account:
        add_user(app, name, role, PASSWORD, team=team)
        return Account(name, PASSWORD, role, team)

    return make


@pytest.fixture
def live_server(app: App) -> Iterator[str]:
    """The workbench served by uvicorn from a thread, on a free port; its base URL."""
    from triage.web.server import address, bind, make_server, start_in_thread

    sock = bind("127.0.0.1", 0)
    server = make_server(app, sock)
    thread = start_in_thread(server)
    for _ in range(200):
        if server.started:
            break
        thread.join(0.025)
    assert server.started, "the workbench did not start"
    try:
        yield address(sock)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"chromium not installed at {CHROMIUM}: run .ci/install-system-packages")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield instance
        instance.close()


@dataclass
class Watch:
    """What a page did that a test about hostile mail must rule out."""

    dialogs: list[str]
    foreign_requests: list[str]
    console_errors: list[str]


@pytest.fixture
def page(browser: Any, live_server: str) -> Iterator[Any]:
    """A fresh browser context (no cookies) on the live server, watched for dialogs, console
    errors and requests to any host but the server's (which are also aborted)."""
    context = browser.new_context(base_url=live_server)
    context.set_default_timeout(10_000)
    tab = context.new_page()
    own = urlsplit(live_server).netloc
    watch = Watch([], [], [])

    def route(route: Any) -> None:
        netloc = urlsplit(route.request.url).netloc
        if route.request.url.startswith(("data:", "blob:", "about:")) or netloc == own:
            route.continue_()
        else:
            watch.foreign_requests.append(route.request.url)
            route.abort()

    context.route("**/*", route)
    tab.on("dialog", lambda dialog: (watch.dialogs.append(dialog.message), dialog.dismiss()))
    tab.on("console", lambda msg: watch.console_errors.append(msg.text) if msg.type == "error" else None)
    tab.watch = watch
    yield tab
    context.close()


def log_in(tab: Any, account: Account, *, next_path: str = "/queue") -> None:
    """Log in through the login form, as a person would."""
    tab.goto(f"/login?next={next_path}")
    tab.fill("input[name=username]", account.name)
    tab.fill("input[name=password]", account.password)
    tab.click("button[type=submit]")
    tab.wait_for_url(f"**{next_path}")
