"""Shared fixtures: a real database per test, on SQLite (a file) and on PostgreSQL (a schema).

PostgreSQL is the server on 127.0.0.1:5432 (override with TRIAGE_TEST_PG_URL); where no
server answers, the PostgreSQL variants skip with that reason, the SQLite ones still run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

import pytest
import structlog
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from triage.bootstrap import App, bootstrap
from triage.config import Settings, load_settings

pytest_plugins = ["tests.workbench"]

PG_URL = os.environ.get("TRIAGE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _pg_available() -> str | None:
    try:
        engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means: skip with this reason
        return f"PostgreSQL not reachable at {make_url(PG_URL).render_as_string(hide_password=True)}: {exc}"


_PG_SKIP: str | None | bool = False


def pg_skip_reason() -> str | None:
    global _PG_SKIP
    if _PG_SKIP is False:
        _PG_SKIP = _pg_available()
    return _PG_SKIP  # type: ignore[return-value]


@pytest.fixture(autouse=True)
def _structlog_defaults() -> Iterator[None]:
    """Each test starts with structlog's defaults: a command run in-process configures a level
    filter (`--quiet`: warnings only) that would otherwise hide info events from a later test's
    `capture_logs` in the same pytest worker."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A URL whose search_path is a fresh schema, dropped after the test."""
    reason = pg_skip_reason()
    if reason:
        pytest.skip(reason)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test that takes this runs on both engines."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'triage.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def settings(db_url: str) -> Settings:
    return load_settings(environ={"TRIAGE_DATABASE_URL": db_url})


@pytest.fixture
def app(settings: Settings) -> Iterator[App]:
    application = bootstrap(settings)
    yield application
    application.close()


class Clock:
    """A clock the test moves by hand, so no test sleeps."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 11, 2, 9, 0, tzinfo=UTC))


def make_mail(
    *,
    sender: str = "Ada Volunteer <ada@volunteers.example>",
    to: str = "liaison@example.org",
    subject: str = "Question about the logo",
    body: str = "Hello,\n\nmay our chapter use the logo on a banner?\n\nThanks, Ada\n",
    message_id: str | None = None,
    in_reply_to: str | None = None,
    references: list[str] | None = None,
    date: datetime | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    """A well-formed mail built with the standard library (never by string concatenation)."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date or datetime(2026, 11, 2, 8, 30, tzinfo=UTC))
    msg["Message-ID"] = message_id or make_msgid(domain="volunteers.example")
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = " ".join(references)
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    return msg.as_bytes()
