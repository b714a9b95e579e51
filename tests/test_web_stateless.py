"""Two `triage web` processes on one PostgreSQL database behave as one workbench: whatever a
request needs (the session, its CSRF token, presence, the login throttle, the queue and its
suggestions) is in the database, so a load balancer may send each request to either process.

Each process is the installed command, started as an operator starts it (a triage.toml, a free
port), and is driven over HTTP with httpx; nothing in the test process is shared with them."""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx2
import pytest
from sqlalchemy import select

from tests.ticket_mail import workbench_mail
from triage.bootstrap import bootstrap
from triage.config import load_settings
from triage.desk.accounts import add_user
from triage.store.models import Suggestion, Ticket

pytestmark = pytest.mark.postgres

TRIAGE = shutil.which("triage", path=str(Path(sys.executable).parent)) or "triage"
ADDRESS = re.compile(r"^workbench at (http://127\.0\.0\.1:\d+)")
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
CSRF_HEADER = re.compile(r'"X-CSRF-Token": "([^"]+)"')
PASSWORD = "correct horse battery"
FAILURES_PER_ACCOUNT = 3


class Workbench:
    """`triage web --port 0` in `folder`; its address read from the line it prints."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen([TRIAGE, "web", "--port", "0"], cwd=folder, env=env, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: queue.Queue[str] = queue.Queue()
        self.errors: list[str] = []
        threading.Thread(target=lambda: [self.lines.put(line) for line in self.process.stdout or []],
                         daemon=True).start()
        threading.Thread(target=lambda: self.errors.extend(self.process.stderr or []), daemon=True).start()

    def address(self, timeout: float = 60) -> str:
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                self.process.kill()
                raise AssertionError(f"`triage web` printed no address: {self.errors[-20:]}") from None
            if found := ADDRESS.match(line):
                return found[1]

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def two_workbenches(pg_url: str, tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """(address of A, address of B, the waiting ticket's reference): one schema, one config file,
    two accounts and one ticket with a suggestion, as a worker would have left it."""
    config = tmp_path / "triage.toml"
    config.write_text(
        f'[database]\nurl = "{pg_url}"\n\n'
        f"[web]\nlogin_failures_per_account = {FAILURES_PER_ACCOUNT}\n", encoding="utf-8")
    app = bootstrap(load_settings(config, environ={}))
    try:
        add_user(app, "ada", "liaison", PASSWORD)
        add_user(app, "sam", "liaison", PASSWORD)
        reference = app.ingestor().ingest(workbench_mail(), source="test").ticket_reference
        assert reference
        with app.sessions.begin() as session:
            ticket_id = session.scalar(select(Ticket.id).where(Ticket.reference == reference))
            session.add(Suggestion(ticket_id=ticket_id, team="legal", confidence=0.97, model_version="worker-model-7",
                                   ranked=[["legal", 0.97]], evidence=[], created_at=datetime.now(UTC)))
    finally:
        app.close()
    env = {key: value for key, value in os.environ.items() if not key.startswith("TRIAGE_")}
    env["TRIAGE_CONFIG"] = str(config)
    processes = [Workbench(tmp_path, env), Workbench(tmp_path, env)]
    try:
        yield processes[0].address(), processes[1].address(), reference
    finally:
        for process in processes:
            process.stop()


def _log_in(form_from: httpx2.Client, post_to: httpx2.Client, name: str, password: str) -> httpx2.Response:
    """The login form read from one process and posted to another (its double-submit cookie with it)."""
    form = form_from.get("/login")
    token = CSRF_FIELD.search(form.text)
    assert token, form.text[:300]
    post_to.cookies.update(form_from.cookies)
    return post_to.post("/login", data={"username": name, "password": password, "csrf_token": token[1],
                                        "next": "/queue"}, follow_redirects=False)


def test_a_session_opened_on_one_process_works_on_the_other(two_workbenches: tuple[str, str, str],
                                                           tmp_path: Path) -> None:
    a_url, b_url, reference = two_workbenches
    assert a_url != b_url
    with httpx2.Client(base_url=a_url) as a, httpx2.Client(base_url=b_url) as b:
        # the login form from A, posted to B: the login CSRF token is no secret of A's
        done = _log_in(a, b, "ada", PASSWORD)
        assert done.status_code == 303, done.text[:300]
        a.cookies.update(b.cookies)  # the browser's one cookie jar, sent to whichever process
        assert "triage_session" in a.cookies

        # pages load on both, and both show the suggestion the worker stored
        for client in (a, b):
            page = client.get("/queue", follow_redirects=False)
            assert page.status_code == 200, (client.base_url, page.status_code)
            assert reference in page.text and "Legal" in page.text

        # the queue is the worker's suggestions: no web process loads or trains a model of its own
        # (routing.model_path is data/model in the processes' folder; auto_train is on)
        assert not (tmp_path / "data" / "model").exists()

        # a POST on B with the CSRF token of a page A rendered; without the token B refuses
        token = CSRF_FIELD.search(a.get("/queue").text)
        assert token
        assert b.post(f"/queue/{reference}/approve", follow_redirects=False).status_code == 403
        approved = b.post(f"/queue/{reference}/approve", data={"csrf_token": token[1]}, follow_redirects=False)
        assert approved.status_code == 303, approved.text[:300]
        assert reference not in a.get("/queue").text  # A sees B's decision at once

        # presence touched through A (ada opens the ticket) is shown to sam on B
        assert a.get(f"/tickets/{reference}").status_code == 200
        with httpx2.Client(base_url=b_url) as sam:
            assert _log_in(sam, sam, "sam", PASSWORD).status_code == 303
            ticket = sam.get(f"/tickets/{reference}")
            assert "ada is viewing" in ticket.text
            header = CSRF_HEADER.search(ticket.text)
            assert header
            ada_token = CSRF_HEADER.search(a.get(f"/tickets/{reference}").text)
            assert ada_token
            assert a.post(f"/tickets/{reference}/presence", data={"drafting": "1"},
                          headers={"X-CSRF-Token": ada_token[1]}).status_code == 200
            poll = sam.post(f"/tickets/{reference}/presence", headers={"X-CSRF-Token": header[1]})
            assert poll.status_code == 200 and "ada is drafting a reply" in poll.text

        # logout on B ends the session on A too
        out = b.post("/logout", data={"csrf_token": token[1]}, follow_redirects=False)
        assert out.status_code == 303
        after = a.get("/queue", follow_redirects=False)
        assert after.status_code == 303 and after.headers["location"].startswith("/login")


def test_the_login_throttle_counts_failures_on_every_process(two_workbenches: tuple[str, str, str]) -> None:
    a_url, b_url, _ = two_workbenches
    with httpx2.Client(base_url=a_url) as a, httpx2.Client(base_url=b_url) as b:
        for attempt in range(FAILURES_PER_ACCOUNT):
            client = (a, b)[attempt % 2]  # the failures alternate between the processes
            wrong = _log_in(client, client, "ada", "not the password")
            assert wrong.status_code == 400 and "wrong user name or password" in wrong.text
        for client in (a, b):  # now the right password is refused on both
            refused = _log_in(client, client, "ada", PASSWORD)
            assert refused.status_code == 429 and "too many failed logins" in refused.text
        # another account is not throttled by ada's failures
        assert _log_in(a, b, "sam", PASSWORD).status_code == 303
