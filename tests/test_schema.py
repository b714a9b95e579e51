"""Schema versioning: upgrade an old database, or refuse to start; never silently."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text

from triage.store.db import make_engine
from triage.store.schema import SchemaError, current_revision, ensure_schema, head_revision


def test_empty_database_is_upgraded_to_head(db_url: str) -> None:
    """auto_migrate brings an empty database to the head revision with every table."""
    engine = make_engine(db_url)
    try:
        assert ensure_schema(engine, auto_migrate=True) == head_revision()
        tables = set(inspect(engine).get_table_names())
        assert {"contacts", "tickets", "messages", "attachments", "blobs", "events", "quarantine"} <= tables
    finally:
        engine.dispose()


def test_without_auto_migrate_an_old_schema_refuses_to_start(db_url: str) -> None:
    """With auto_migrate off, an empty database stops start-up and says what to run."""
    engine = make_engine(db_url)
    try:
        with pytest.raises(SchemaError, match="triage db upgrade"):
            ensure_schema(engine, auto_migrate=False)
        assert current_revision(engine) is None
    finally:
        engine.dispose()


def test_unknown_newer_revision_refuses(db_url: str) -> None:
    """A database written by a newer triage is refused rather than touched."""
    engine = make_engine(db_url)
    try:
        ensure_schema(engine, auto_migrate=True)
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = 'ffff_future'"))
        with pytest.raises(SchemaError, match="newer triage"):
            ensure_schema(engine, auto_migrate=True)
    finally:
        engine.dispose()


def test_sqlite_runs_in_wal_mode(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """SQLite databases use write-ahead logging."""
    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        engine.dispose()


def test_old_schema_is_upgraded_in_place(db_url: str) -> None:
    """A database at the first revision, holding data, is upgraded to head and keeps its rows."""
    from triage.store.schema import upgrade

    engine = make_engine(db_url)
    try:
        upgrade(engine, "0001")
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO contacts (address, bouncing, first_seen, last_seen) "
                              "VALUES ('a@v.example', false, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
        assert current_revision(engine) == "0001"
        assert ensure_schema(engine, auto_migrate=True) == head_revision() != "0001"
        with engine.connect() as conn:  # since 0013 a contact's addresses have their own table
            assert conn.execute(text("SELECT c.uid IS NOT NULL, a.address, a.is_primary FROM contacts c "
                                     "JOIN contact_addresses a ON a.contact_id = c.id")).one() == (
                True, "a@v.example", True)
    finally:
        engine.dispose()


def test_workers_starting_together_migrate_once(db_url: str) -> None:
    """Several processes' start-ups racing on an empty database all succeed (migrations are locked)."""
    import threading

    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def start() -> None:
        engine = make_engine(db_url)
        try:
            barrier.wait()
            ensure_schema(engine, auto_migrate=True)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_an_open_reader_never_blocks_a_writer(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A read session left open (a page, a listing) does not hold SQLite's write lock."""
    from sqlalchemy import select

    from tests.conftest import make_mail
    from triage.bootstrap import bootstrap
    from triage.config import load_settings
    from triage.store.models import Ticket

    app = bootstrap(load_settings(environ={"TRIAGE_DATABASE_URL": f"sqlite:///{tmp_path / 'r.db'}"}))
    try:
        reader = app.reads()
        assert reader.scalars(select(Ticket)).all() == []  # a transaction is now open
        outcome = app.ingestor().ingest(make_mail(message_id="<rw@v.example>"))
        assert outcome.status == "stored"
        reader.close()
    finally:
        app.close()


def test_migrations_build_the_schema_the_models_describe(db_url: str) -> None:
    """No table, column or index of the models is missing from (or extra in) the migrated database."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from triage.search.kinds import include_name
    from triage.store import tables  # noqa: F401 - every table on Base.metadata
    from triage.store.db import Base

    engine = make_engine(db_url)
    try:
        ensure_schema(engine, auto_migrate=True)
        with engine.connect() as conn:
            # the search index (FTS5 tables, tsvector columns) is built by migration DDL, not by the models
            opts = {"compare_type": False, "include_name": include_name}
            diff = compare_metadata(MigrationContext.configure(conn, opts=opts), Base.metadata)
        assert diff == []
    finally:
        engine.dispose()


def test_reminders_keep_their_rows_through_0007_and_back(db_url: str) -> None:
    """0007 narrows the reminders table to its key and drops the events rows it duplicated;
    the rows survive the upgrade and a downgrade."""
    from alembic import command

    from triage.store.schema import _config, upgrade

    engine = make_engine(db_url)
    try:
        upgrade(engine, "0006")
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO tickets (id, reference, subject, status, created_at, updated_at) "
                              "VALUES (1, 'T-1', 'Question', 'open', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
            conn.execute(text("INSERT INTO reminders (ticket_id, level, due_at, team, to_addr, fired_at) "
                              "VALUES (1, 1, '2026-11-03 09:00:00', 'legal', 'legal@example.org', CURRENT_TIMESTAMP)"))
            for actor, action in (("system:remind", "reminded"), ("liaison:ada", "status")):
                conn.execute(text("INSERT INTO events (ticket_id, at, actor, action, detail) "
                                  "VALUES (1, CURRENT_TIMESTAMP, :actor, :action, '{}')"),
                             {"actor": actor, "action": action})
        upgrade(engine, "0007")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT ticket_id, level, team FROM reminders")).all() == [(1, 1, "legal")]
            assert conn.execute(text("SELECT action FROM events")).scalars().all() == ["status"]
        with engine.begin() as conn:
            config = _config(engine)
            config.attributes["connection"] = conn
            command.downgrade(config, "0006")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT ticket_id, level, id IS NOT NULL FROM reminders")).all() == [(1, 1, True)]
    finally:
        engine.dispose()
