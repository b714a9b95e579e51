#!/usr/bin/env python3
"""The reminder run on 1,000,000 tickets (1% due), next to a bare indexed SELECT of the due rows.

For each engine (an SQLite file; a fresh PostgreSQL schema when the server answers) it fills
`tickets` in SQL (97% resolved, 2% open but too young, 1% open and overdue: level 1 passed
and level 2 due at `now`, so the run sends level-2 escalations). Every
open ticket starts with a stale reminder clock, as ingest leaves a new ticket; an untimed first
run computes the clocks (its time is reported: it is what ingest-time changes cost the run,
spread over the day). Then it times, in the same process:

- baseline: `SELECT t.id, t.reference, t.team FROM ticket_clocks c JOIN tickets t ON t.id =
  c.ticket_id WHERE c.next_at <= now` (index ix_ticket_clocks_next_at), rows fetched: the bare
  indexed SELECT of the due rows;
- decide: `run_reminders(..., dry_run=True)`;
- write floor: INSERT ... SELECT of one plain row per due ticket into an unindexed table, and
  commit: the least any run that records its reminders must write;
- statement floor: the three statements the run cannot do without (the due select with its
  checks, the keyed reminders insert, the clock move), in raw SQL, rolled back: what the
  design costs before any Python, ORM or mail around it;
- run: the real run: a reminder row per due ticket, one digest mail per team, clocks moved;
- nothing due: the same run again (every due ticket now reminded).

    .venv/bin/python bench/bench_remind.py [--tickets 1000000] [--only sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from triage.bootstrap import bootstrap
from triage.config import load_settings
from triage.logging import configure_logging
from triage.schedule.run import run_reminders

NOW = datetime(2026, 11, 4, 12, tzinfo=UTC)  # a Wednesday, in business hours
OLD = NOW - timedelta(days=2)  # Monday 12:00: level 1 due Tuesday 12:00, level 2 due at NOW
YOUNG = NOW - timedelta(hours=1)
PG_URL = os.environ.get("TRIAGE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


COLUMNS = "id, reference, subject, status, team, created_at, updated_at, clock_stale_at"


def fill(engine: Any, n: int) -> None:
    """n tickets: every 100th open and old (due), every 100th+1 and +2 open and young, the rest resolved."""
    status = "CASE WHEN x % 100 IN (0, 1, 2) THEN 'open' ELSE 'resolved' END"
    created = "CASE WHEN x % 100 IN (1, 2) THEN :young ELSE :old END"
    stale = "CASE WHEN x % 100 IN (0, 1, 2) THEN :stale ELSE NULL END"  # open: clock to compute, as ingest leaves it
    body = (f"SELECT x, 'T-' || x, 'Question ' || x, {status}, 'legal', {created}, {created}, {stale} FROM cnt")
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            sql = ("WITH RECURSIVE cnt(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM cnt WHERE x < :n) "
                   f"INSERT INTO tickets ({COLUMNS}) " + body)
            conn.execute(text(sql), {"n": n, "old": OLD.strftime("%Y-%m-%d %H:%M:%S.000000"),
                                     "young": YOUNG.strftime("%Y-%m-%d %H:%M:%S.000000"),
                                     "stale": OLD.strftime("%Y-%m-%d %H:%M:%S.000000")})
        else:
            sql = (f"INSERT INTO tickets ({COLUMNS}) "
                   "WITH cnt AS (SELECT generate_series(1, :n) AS x) " + body)
            conn.execute(text(sql), {"n": n, "old": OLD, "young": YOUNG, "stale": OLD})
            conn.execute(text("SELECT setval(pg_get_serial_sequence('tickets', 'id'), :n)"), {"n": n})
        conn.execute(text("ANALYZE"))


def write_floor(engine: Any, unique: bool = False) -> float:
    """The least a run that records each due reminder must do: INSERT ... SELECT one narrow row
    per due ticket, and commit; with `unique`, under the (ticket, level, due time) key the
    issue asks for, with ON CONFLICT DO NOTHING. (The run writes a reminder row under that
    key and moves the clock: two indexed rows per ticket.)"""
    stamp = "TIMESTAMP WITH TIME ZONE" if engine.dialect.name == "postgresql" else "TEXT"
    key = ", UNIQUE (ticket_id, level, due_at)" if unique else ""
    with engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE bench_floor (ticket_id INTEGER, level INTEGER, due_at {stamp}{key})"))
    try:
        start = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO bench_floor SELECT c.ticket_id, 1, c.next_at FROM ticket_clocks c "
                              "WHERE c.next_at <= :now" + (" ON CONFLICT DO NOTHING" if unique else "")), {"now": NOW})
        return time.perf_counter() - start
    finally:
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE bench_floor"))


LEVEL = "CASE WHEN c.due_3 <= :now THEN 3 WHEN c.due_2 <= :now THEN 2 ELSE 1 END"
DUE = "CASE WHEN c.due_3 <= :now THEN c.due_3 WHEN c.due_2 <= :now THEN c.due_2 ELSE c.due_1 END"
NEXT = "CASE WHEN c.due_3 <= :now THEN NULL WHEN c.due_2 <= :now THEN c.due_3 ELSE c.due_2 END"
FLOOR_STATEMENTS = (
    # 1. the due rows, with the checks the run makes on the tickets (still running, not answered)
    ("select", (f"SELECT t.id, t.reference, t.team, {LEVEL}, {DUE} FROM ticket_clocks c JOIN tickets t "
               "ON t.id = c.ticket_id WHERE c.next_at <= :now AND t.status IN ('new', 'open') AND NOT EXISTS "
               "(SELECT 1 FROM outbox o WHERE o.ticket_id = t.id AND o.auto_submitted IS NULL "
               "AND o.status <> 'failed')")),
    # 2. one reminders row per due ticket under the (ticket, level, due time) key
    ("insert", (f"INSERT INTO reminders (ticket_id, level, due_at, team, fired_at) SELECT c.ticket_id, {LEVEL}, "
               f"{DUE}, c.team, :now FROM ticket_clocks c WHERE c.next_at <= :now ON CONFLICT DO NOTHING")),
    # 3. each due ticket out of the due set: its clock moves to the next level
    ("move", (f"UPDATE ticket_clocks SET reminded_level = {LEVEL.replace('c.', '')}, "
             f"next_at = {NEXT.replace('c.', '')} WHERE next_at <= :now")),
)


def statement_floor(engine: Any) -> dict[str, float]:
    """The three statements any run of this design must make, in raw SQL with no Python around
    them, timed one by one in a transaction that is rolled back (so the commit is not counted)."""
    times: dict[str, float] = {}
    with engine.connect() as conn, conn.begin() as transaction:
        for name, sql in FLOOR_STATEMENTS:
            start = time.perf_counter()
            conn.execute(text(sql), {"now": NOW}).all() if name == "select" else conn.execute(text(sql), {"now": NOW})
            times[name] = time.perf_counter() - start
        transaction.rollback()
    return times


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def bench(name: str, url: str, n: int) -> None:
    settings = load_settings(environ={"TRIAGE_DATABASE_URL": url, "TRIAGE_LOG_LEVEL": "warning"})
    configure_logging(settings.log)
    app = bootstrap(settings)
    try:
        t_fill, _ = timed(lambda: fill(app.engine, n))
        print(f"[{name}] filled {n:,} tickets in {t_fill:.1f} s", flush=True)
        bare = text("SELECT t.id, t.reference, t.team FROM ticket_clocks c JOIN tickets t ON t.id = c.ticket_id "
                    "WHERE c.next_at <= :now")

        def baseline() -> int:
            with app.engine.connect() as conn:
                return len(conn.execute(bare, {"now": NOW}).all())

        settings = app.settings
        t_clocks, first = timed(lambda: run_reminders(app.sessions, settings, now=OLD))  # nothing due yet
        print(f"[{name}] first run: {first.refreshed:,} stale clocks computed in {t_clocks:.2f} s "
              f"({t_clocks / max(1, first.refreshed) * 1e6:.0f} us per ticket)")
        t_base, rows = min(timed(baseline) for _ in range(3))
        # A dry run changes nothing, so it is timed like the baseline: best of three.
        t_dry, dry = min((timed(lambda: run_reminders(app.sessions, settings, now=NOW, dry_run=True))
                          for _ in range(3)), key=lambda pair: pair[0])
        t_floor, t_keyed = write_floor(app.engine), write_floor(app.engine, unique=True)
        floors = min((statement_floor(app.engine) for _ in range(3)), key=lambda f: sum(f.values()))
        t_run, report = timed(lambda: run_reminders(app.sessions, settings, now=NOW))
        t_none, none = timed(lambda: run_reminders(app.sessions, settings, now=NOW + timedelta(minutes=5)))
        mails = len({f.outbox_id for f in report.fired})
        print(f"[{name}] baseline SELECT: {rows:,} rows in {t_base:.3f} s")
        print(f"[{name}] decide (dry run): {len(dry.fired):,} due in {t_dry:.3f} s = {t_dry / t_base:.1f}x baseline")
        print(f"[{name}] write floor: {rows:,} plain rows inserted and committed in {t_floor:.3f} s "
              f"= {t_floor / t_base:.1f}x baseline; under the unique key: {t_keyed:.3f} s = "
              f"{t_keyed / t_base:.1f}x baseline")
        t_statements = sum(floors.values())
        print(f"[{name}] statement floor (the run's three statements in raw SQL, no commit): {t_statements:.3f} s = "
              f"{t_statements / t_base:.1f}x baseline ("
              + ", ".join(f"{key} {value:.3f} s" for key, value in floors.items()) + ")")
        print(f"[{name}] run: {len(report.fired):,} fired ({mails} digest mail{'s' if mails != 1 else ''}) "
              f"in {t_run:.3f} s = {t_run / t_base:.1f}x baseline = {t_run / t_statements:.1f}x the statement floor")
        print(f"[{name}] nothing due: {len(none.fired)} fired in {t_none:.3f} s = {t_none / t_base:.1f}x baseline; "
              f"skip reasons {none.reasons}", flush=True)
    finally:
        app.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    args = parser.parse_args()
    if args.only != "postgresql":
        with tempfile.TemporaryDirectory() as folder:
            bench("sqlite", f"sqlite:///{Path(folder) / 'bench.db'}", args.tickets)
    if args.only != "sqlite":
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(PG_URL)
        try:
            with admin.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        except Exception as exc:  # noqa: BLE001 - no server: say so and stop
            print(f"[postgresql] skipped: {exc}")
            return 0
        url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
        try:
            bench("postgresql", url.render_as_string(hide_password=False), args.tickets)
        finally:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
