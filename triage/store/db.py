"""Engine, session factory and the declarative base with its typed-column vocabulary.

Nothing here connects at import time: `make_engine(url)` is called by bootstrap, and
tests call it with their own URLs (an SQLite file, a PostgreSQL schema).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

import structlog
from sqlalchemy import JSON, DateTime, Engine, MetaData, String, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Session, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator

log = structlog.get_logger(__name__)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every engine (SQLite stores naive text, so we re-attach UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; pass an aware datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def upsert_insert(session: Session) -> Callable[..., Any]:
    """The dialect's INSERT, which has ON CONFLICT DO NOTHING / DO UPDATE (SQLite and PostgreSQL)."""
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def core_table(model: type[Any]) -> Table:
    """A mapped class's Core table: set-based writes use it, skipping the ORM's per-row bookkeeping."""
    table = model.__table__
    assert isinstance(table, Table)
    return table



intpk = Annotated[int, mapped_column(primary_key=True)]
utc = Annotated[datetime, mapped_column(UTCDateTime())]
sha256hex = Annotated[str, mapped_column(String(64))]
address = Annotated[str, mapped_column(String(320))]
jsonlist = Annotated[list[Any], mapped_column(JSON, default=list)]
jsondict = Annotated[dict[str, Any], mapped_column(JSON, default=dict)]

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), str: String(1000)}


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets readers work while a writer writes; foreign keys are off by default in SQLite.

    The driver's own transaction handling is switched off so that `_sqlite_begin` decides.
    """
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        _switch_to_wal(cursor)
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _switch_to_wal(cursor: Any, *, attempts: int = 300) -> None:
    """WAL mode is stored in the file, so only a new database needs switching. The switch needs
    the database to itself, and SQLite reports "locked" at once, without its busy timeout, when
    several processes open a new database together: so wait and retry here (up to 30 s)."""
    for attempt in range(attempts):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.1)


READ_ONLY = "triage_read_only"


def _sqlite_begin(connection: Any) -> None:
    """BEGIN IMMEDIATE takes the write lock up front, so two workers queue (busy_timeout)
    instead of one failing when its read transaction tries to become a write. Sessions made
    by `make_read_session_factory` begin DEFERRED instead: in WAL mode they read a snapshot
    and never hold up a writer, however long they stay open."""
    if connection.get_execution_options().get(READ_ONLY):
        connection.exec_driver_sql("BEGIN DEFERRED")
    else:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


BUSY_TIMEOUT_SECONDS = 30.0
PRIVATE_FILE = 0o600


def _create_private(path: str) -> None:
    """Create the SQLite file readable by its owner only, before SQLite creates it with the umask's
    mode: it holds every mail. SQLite gives its -wal and -shm files the database file's mode."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
    except FileExistsError:
        if os.stat(path).st_mode & 0o077 and path not in _warned:
            _warned.add(path)
            log.warning("database.readable_by_others", path=path, fix=f"chmod 600 {path}")
    except OSError:
        pass  # a missing folder or no permission: SQLite's own error says so when it connects


_warned: set[str] = set()


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine that never puts statement parameters (mail bodies) into errors or logs.

    SQLite waits up to 30 s for another process's write lock, or the `timeout` the URL gives
    (`sqlite:///triage.db?timeout=5`), and creates a new database file with mode 0600.
    """
    if url.startswith("sqlite"):
        parsed = make_url(url)
        timeout = {} if "timeout" in parsed.query else {"timeout": BUSY_TIMEOUT_SECONDS}
        engine = create_engine(url, echo=echo, connect_args=timeout, hide_parameters=True)
        path = parsed.database
        if path and path != ":memory:" and not path.startswith("file:") and not parsed.query.get("uri"):
            event.listen(engine, "do_connect", lambda *_: _create_private(path))
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, echo=echo, pool_pre_ping=True, hide_parameters=True)


def make_session_factory(engine: Engine) -> sessionmaker[Any]:
    return sessionmaker(engine, expire_on_commit=False)


def make_read_session_factory(engine: Engine) -> sessionmaker[Any]:
    """Sessions for pages and listings: they never take SQLite's write lock (no effect on PostgreSQL)."""
    return sessionmaker(engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False)
