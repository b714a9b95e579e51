"""Schema versioning through Alembic: upgrade an old database, or refuse to start; never silently."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

MIGRATIONS = Path(__file__).with_name("migrations")


class SchemaError(Exception):
    """The database schema does not match this version of triage; the message says what to run."""


def _config(engine: Engine | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


MIGRATION_LOCK = 0x7472_6961_6765  # "triage": one number all triage processes agree on


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate under a lock, so workers starting together migrate once and the others wait.

    PostgreSQL takes a transaction-level advisory lock; SQLite's BEGIN IMMEDIATE (see db.py)
    already serialises writers. Alembic re-reads the revision inside the lock.

    SQLite runs the migrations with foreign keys off, as its documented table rebuild needs: a
    batch migration recreates a table (contacts, in 0013), and dropping the old one would count
    every referencing row (tickets) as a violation. The pragma is a no-op inside a transaction,
    so it is set on the raw connection before BEGIN; `foreign_key_check` then proves nothing
    dangles before the migration commits.
    """
    config = _config(engine)
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        raw: Any = connection.connection.driver_connection if sqlite else None
        if sqlite:
            raw.execute("PRAGMA foreign_keys=OFF")
        try:
            with connection.begin():
                if connection.dialect.name == "postgresql":
                    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
                config.attributes["connection"] = connection
                command.upgrade(config, revision)
                if sqlite and (dangling := connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()):
                    raise SchemaError(f"the migration left rows that refer to nothing: {dangling[:5]}")
        finally:
            if sqlite:
                raw.execute("PRAGMA foreign_keys=ON")


def ensure_schema(engine: Engine, *, auto_migrate: bool) -> str:
    """Bring the schema to head (if allowed) and return the revision; raise SchemaError otherwise."""
    script = ScriptDirectory.from_config(_config())
    head = script.get_current_head()
    current = current_revision(engine)
    if current is not None and current == head:
        return current
    known = {rev.revision for rev in script.walk_revisions()}
    if current is not None and current not in known:
        raise SchemaError(
            f"the database is at schema revision {current}, which this version of triage does not know "
            "(it was written by a newer triage); upgrade triage or point database.url elsewhere"
        )
    if not auto_migrate:
        raise SchemaError(
            f"the database schema is at {current or 'nothing (empty database)'} but triage needs {head}; "
            "run `triage db upgrade` (or set database.auto_migrate = true)"
        )
    upgrade(engine)
    return str(head)
