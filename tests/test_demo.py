"""`triage demo`, the newcomer's first minute, run as a newcomer runs it: the installed command in
a folder of its own, its address and password read from what it prints, a login over HTTP, the
sample tickets in the queue, Ctrl-C (SIGINT) to stop; and a second run that adds nothing."""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx2
import pytest

from triage.bootstrap import App
from triage.desk import accounts
from triage.desk.errors import Invalid
from triage.web.demo import liaison_password

TRIAGE = shutil.which("triage", path=str(Path(sys.executable).parent)) or "triage"
ADDRESS = re.compile(r"^workbench at (http://127\.0\.0\.1:\d+)/")
PASSWORD = re.compile(r"password: (\S+)")
SAMPLE_TICKETS = 21  # data/sample-mailbox/README.md: 19 questions, the leak mail, the list mail


class Demo:
    """`triage demo --port 0` in `folder`; its standard output read line by line as it comes."""

    def __init__(self, folder: Path, env: dict[str, str], *extra: str) -> None:
        self.process = subprocess.Popen([TRIAGE, "demo", "--port", "0", *extra], cwd=folder, env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self.errors: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=lambda: self.errors.extend(self.process.stderr or []), daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout or []:
            self.lines.put(line.rstrip("\n"))

    def until(self, pattern: re.Pattern[str], timeout: float = 120) -> re.Match[str]:
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                self.process.kill()
                raise AssertionError(f"no line matching {pattern.pattern}: {self.output} {self.errors[-20:]}")
            self.output.append(line)
            if found := pattern.search(line):
                return found

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)
        try:
            status = self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        while not self.lines.empty():
            self.output.append(self.lines.get())
        return status


def log_in(client: httpx2.Client, password: str) -> None:
    """The login form's double-submit dance, as a browser does it."""
    form = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token, form.text
    done = client.post("/login", data={"username": "liaison", "password": password, "csrf_token": token[1],
                                       "next": "/queue"})
    assert done.status_code == 200 and done.url.path == "/queue", (done.status_code, done.text[:500])


def queued_references(client: httpx2.Client) -> set[str]:
    page = client.get("/queue")
    assert page.status_code == 200
    return set(re.findall(r"T-2026-\d{5}", page.text))


@pytest.mark.slow
def test_demo_serves_the_sample_mailbox_and_a_second_run_adds_nothing(tmp_path: Path) -> None:
    """A fresh folder and database: the demo loads the sample mailbox, prints a password once that
    logs the liaison in, serves a queue holding the sample tickets and stops with status 0 on
    SIGINT; run again, it stores no ticket twice and prints no password."""
    folder = tmp_path / "newcomer"
    folder.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIAGE_")}
    env["TRIAGE_DATABASE_URL"] = f"sqlite:///{tmp_path / 'demo.db'}"

    first = Demo(folder, env)
    try:
        password = first.until(PASSWORD)[1]
        base = first.until(ADDRESS)[1]
        with httpx2.Client(base_url=base, timeout=30, follow_redirects=True) as client:
            log_in(client, password)
            references = queued_references(client)
    finally:
        status = first.stop()
    assert status == 0, (first.output, first.errors[-20:])
    assert "stopped" in first.output
    assert {"T-2026-00001", "T-2026-00019"} <= references  # the sample mailbox's first and last question
    assert not (folder / "triage.toml").exists() and (folder / "data" / "model").is_dir()

    second = Demo(folder, env)
    try:
        base = second.until(ADDRESS)[1]
        with httpx2.Client(base_url=base, timeout=30, follow_redirects=True) as client:
            log_in(client, password)  # the first password still holds
            assert queued_references(client) == references
    finally:
        status = second.stop()
    assert status == 0, (second.output, second.errors[-20:])
    assert not any(PASSWORD.search(line) for line in second.output), second.output
    assert any("exists" in line and "--reset-password" in line for line in second.output)
    listing = subprocess.run([TRIAGE, "tickets", "--json"], cwd=folder, env=env, capture_output=True, text=True,
                             check=True, timeout=60)
    tickets = [row["reference"] for row in json.loads(listing.stdout)]
    assert len(tickets) == len(set(tickets)) == SAMPLE_TICKETS


def test_the_liaison_password_is_made_once_and_reset_only_when_asked(app: App) -> None:
    """The demo's account: a password the first time; none (and the old one kept) later; a new
    one with --reset-password, which also ends the sessions opened with the old one."""
    first = liaison_password(app, reset=False)
    assert first is not None
    old = accounts.log_in(app, "liaison", first, client="127.0.0.1")
    assert liaison_password(app, reset=False) is None
    accounts.log_in(app, "liaison", first, client="127.0.0.1")  # unchanged
    second = liaison_password(app, reset=True)
    assert second is not None and second != first
    assert accounts.session_for(app, old.token) is None
    accounts.log_in(app, "liaison", second, client="127.0.0.1")
    with pytest.raises(Invalid):
        accounts.log_in(app, "liaison", first, client="127.0.0.1")


def test_a_taken_port_fails_before_anything_is_written(tmp_path: Path) -> None:
    """A port in use is a one-line error with the fix (exit 2), before the database is touched."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIAGE_")}
    env["TRIAGE_DATABASE_URL"] = f"sqlite:///{tmp_path / 'demo.db'}"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([TRIAGE, "demo", "--port", str(port)], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=60, check=False)
    assert done.returncode == 2 and "--port 0" in done.stderr, done.stderr
    assert not (tmp_path / "demo.db").exists()
