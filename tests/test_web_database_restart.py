"""The workbench outlives its database: a PostgreSQL restart, or minutes of it being down, costs
the requests made meanwhile (503 with Retry-After, a log line, no traceback) and nothing after;
the web process is never restarted. A throwaway PostgreSQL server of the test's own (initdb on a
free port), so the machine's shared server on 5432 is never touched."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tests.test_web_stateless import CSRF_FIELD, PASSWORD, Workbench
from triage.bootstrap import bootstrap
from triage.config import load_settings
from triage.desk.accounts import add_user

PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)), Path("/nonexistent"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A PostgreSQL cluster in `folder`, run as the `postgres` user when we are root (initdb refuses root)."""

    def __init__(self, folder: Path) -> None:
        self.data, self.port = folder / "data", _free_port()
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(folder, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self.as_user, str(PG_BIN / tool), *args], check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.data / "log"), "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"


@pytest.fixture
def own_postgres() -> Iterator[Server]:
    if not (PG_BIN / "initdb").exists():
        pytest.skip("no PostgreSQL server binaries (initdb) under /usr/lib/postgresql")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user to run initdb as")
    # not under tmp_path: pytest's folders are root's alone, and the server runs as postgres
    folder = Path(tempfile.mkdtemp(prefix="triage-own-pg-"))
    try:
        server = Server(folder)
        server.start()
        try:
            yield server
        finally:
            try:
                server.stop()
            except subprocess.CalledProcessError:
                pass  # stopped already
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_the_workbench_recovers_from_a_database_restart_and_an_outage(own_postgres: Server, tmp_path: Path) -> None:
    config = tmp_path / "triage.toml"
    config.write_text(f'[database]\nurl = "{own_postgres.url}"\n', encoding="utf-8")
    app = bootstrap(load_settings(config, environ={}))
    try:
        add_user(app, "ada", "liaison", PASSWORD)
    finally:
        app.close()
    env = {key: value for key, value in os.environ.items() if not key.startswith("TRIAGE_")}
    env["TRIAGE_CONFIG"] = str(config)
    web = Workbench(tmp_path, env)
    try:
        with httpx2.Client(base_url=web.address()) as client:
            token = CSRF_FIELD.search(client.get("/login").text)
            assert token
            assert client.post("/login", data={"username": "ada", "password": PASSWORD, "csrf_token": token[1]},
                               follow_redirects=False).status_code == 303
            assert client.get("/queue").status_code == 200  # the pool now holds connections

            own_postgres.stop()  # a restart: every pooled connection dies
            own_postgres.start()
            assert client.get("/queue").status_code == 200
            assert client.get("/readyz").status_code == 200

            own_postgres.stop()  # an outage: refused, said so, the process stays up
            for path in ("/queue", "/readyz"):
                down = client.get(path, follow_redirects=False)
                assert down.status_code == 503 and down.headers["retry-after"] == "5", (path, down.text[:200])
            assert client.get("/healthz").status_code == 200
            assert web.process.poll() is None

            own_postgres.start()
            back = client.get("/queue", follow_redirects=False)
            assert back.status_code == 200, back.text[:200]  # the same session: it lives in the database
            assert client.get("/readyz").status_code == 200
    finally:
        web.stop()
    errors = "".join(web.errors)
    assert "web.database_unavailable" in errors
    assert "Traceback" not in errors, errors[-2000:]
    assert not re.search(r"password|correct horse", errors)
