#!/usr/bin/env python3
"""The reports (`triage.reports`) on a generated desk of 100,000 tickets, next to the bare SQL of the
same statements, in the same run.

The desk is deterministic (random.Random(13)): tickets arrive over 26 weeks from contacts with a
language (en, de, fr, es or unknown), one or two inbound mails each (a few autoreplies and
bounces), an acknowledgment, and for 85% a person's reply after a log-normal delay (median about
6 hours); each has a suggestion (12% abstain) and, once routed, the liaison's decision (80% agree);
the open unanswered ones have a reminder clock due two days after arrival. Filled with Core bulk
inserts, not the ingest path.

Timed, N runs after a warm-up:
- report: every table (`triage.desk.reports.report`: the grouped queries and the pure maths);
- bare SQL: the statements that report sent (captured from the engine), run again on the raw
  DBAPI cursor, rows fetched, nothing else: the floor for reading the same figures;
- charts: the five charts rendered to SVG from a report (matplotlib only, no database);
- page: /reports through the ASGI app as the liaison (report, tables, HTML).

`--keep FILE` (SQLite only) keeps the database, so `triage stats --plot` can draw from it; the
README's chart is made that way from `--tickets 3000`.

    .venv/bin/python bench/bench_reports.py [--tickets 100000] [--runs 10] [--pg URL] [--keep FILE]
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import Engine, create_engine, event, insert, text
from sqlalchemy.engine import make_url

from bench.bench_web import chunks, figures, insert_contacts, logged_in, ms, timings
from triage.bootstrap import bootstrap
from triage.config import load_settings
from triage.desk.actors import cli_actor
from triage.desk.reports import filters_for, report
from triage.logging import configure_logging
from triage.reports import charts
from triage.store.models import Blob, Decision, Message, Suggestion, Ticket
from triage.store.outbox_models import Outbox
from triage.store.schedule_models import TicketClock

TEAMS = ["communications", "events", "fundraising", "grants", "legal", "technology"]
LANGUAGES = ["en", "en", "en", "de", "fr", "es", None]
START = datetime(2026, 5, 4, tzinfo=UTC)  # a Monday
WEEKS = 26


def fill(engine: Engine, tickets: int) -> None:
    """The generated desk (see the module's docstring)."""
    rng = random.Random(13)
    contacts = max(1, tickets // 4)
    span = WEEKS * 7 * 86400
    plan = []
    for n in range(1, tickets + 1):
        created = START + timedelta(seconds=int(span * (n - 1) / tickets) + rng.randrange(0, 600))
        weight = [3, 1, 2, 1, 1, 2]
        team = rng.choices(TEAMS, weight)[0]
        routed = rng.random() < 0.97
        answered = rng.random() < 0.85
        delay = timedelta(hours=min(24 * 30, math.exp(rng.gauss(math.log(6 if team != "legal" else 20), 1.0))))
        suggested = None if rng.random() < 0.12 else (team if rng.random() < 0.8 else rng.choice(TEAMS))
        status = ("resolved" if answered and rng.random() < 0.7 else "waiting" if rng.random() < 0.15
                  else "open") if routed else "new"
        kinds = ["normal"] + (["autoreply"] if rng.random() < 0.05 else []) + (["bounce"] if rng.random() < 0.02
                                                                                else [])
        plan.append((n, created, team if routed else None, answered, delay, suggested, status, kinds))

    def contact_rows() -> Iterator[dict[str, Any]]:
        for c in range(1, contacts + 1):
            yield {"id": c, "address": f"v{c}@chapter{c % 89}.example", "name": None,
                   "language": LANGUAGES[c % len(LANGUAGES)], "bouncing": False, "first_seen": START,
                   "last_seen": START}

    def ticket_rows() -> Iterator[dict[str, Any]]:
        for n, created, team, _, _, _, status, _ in plan:
            yield {"id": n, "reference": f"T-{2026 + n // 100_000}-{n % 100_000:05d}", "subject": f"Question {n}",
                   "status": status, "team": team, "contact_id": (n - 1) % contacts + 1, "created_at": created,
                   "updated_at": created + timedelta(hours=1), "clock_stale_at": None}

    def mail_rows() -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        m = 0
        for n, created, _, _, _, _, _, kinds in plan:
            for k, kind in enumerate(kinds):
                m += 1
                sha = hashlib.sha256(f"r{m}".encode()).hexdigest()
                yield ({"sha256": sha, "size": 1, "codec": "raw", "data": b"x", "created_at": created},
                       {"id": m, "ticket_id": n, "direction": "inbound", "message_id": f"<{m}@gen.example>",
                        "references": [], "to_addrs": [], "cc_addrs": [], "received_at": created + timedelta(minutes=k),
                        "kind": kind, "defects": [], "size": 1, "raw_sha256": sha, "thread_reason": "new thread",
                        "extra": {}, "body_text": "", "new_text": ""})

    def outbox_rows() -> Iterator[dict[str, Any]]:
        o = 0
        for n, created, _, answered, delay, _, _, _ in plan:
            for auto, at in (("auto-replied", created + timedelta(minutes=1)), (None, created + delay)):
                if auto is None and not answered:
                    continue
                o += 1
                yield {"message_id": f"<o{o}@desk.example>", "ticket_id": n, "template": "reply" if auto is None
                       else "acknowledgment", "auto_submitted": auto, "envelope_from": "liaison@example.org",
                       "recipients": ["v@v.example"], "to_addr": "v@v.example", "subject": "Re", "status": "sent",
                       "attempts": 1, "next_attempt_at": at, "refused": [], "actor": "liaison:gen",
                       "created_at": at, "updated_at": at}

    def routing_rows() -> Iterator[tuple[dict[str, Any], dict[str, Any] | None]]:
        for n, created, team, _, _, suggested, _, _ in plan:
            decision = None if team is None else {
                "ticket_id": n, "suggestion_id": n, "suggested_team": suggested, "team": team,
                "agreed": suggested == team, "actor": "liaison:gen", "decided_at": created + timedelta(minutes=40)}
            yield ({"id": n, "ticket_id": n, "team": suggested, "confidence": 0.7, "model_version": "gen",
                    "ranked": [], "evidence": [], "created_at": created}, decision)

    def clock_rows() -> Iterator[dict[str, Any]]:
        for n, created, team, answered, _, _, status, _ in plan:
            if status in ("new", "open") and not answered:
                due = created + timedelta(days=2)
                yield {"ticket_id": n, "team": team, "due_1": due, "due_2": due + timedelta(days=2),
                       "due_3": due + timedelta(days=5), "reminded_level": 0, "next_at": due, "stopped": None}

    with engine.begin() as conn:
        for batch in chunks(contact_rows()):
            insert_contacts(conn, batch)
        for batch in chunks(ticket_rows()):
            conn.execute(insert(Ticket), batch)
        pairs = mail_rows()
        while batch_pairs := [pair for _, pair in zip(range(10_000), pairs, strict=False)]:
            conn.execute(insert(Blob), [blob for blob, _ in batch_pairs])
            conn.execute(insert(Message), [message for _, message in batch_pairs])
        for batch in chunks(outbox_rows()):
            conn.execute(insert(Outbox), batch)
        routing = routing_rows()
        while batch_pairs := [pair for _, pair in zip(range(10_000), routing, strict=False)]:  # type: ignore[misc]
            conn.execute(insert(Suggestion), [s for s, _ in batch_pairs])
            decided = [d for _, d in batch_pairs if d is not None]
            if decided:
                conn.execute(insert(Decision), decided)
        for batch in chunks(clock_rows()):
            conn.execute(insert(TicketClock), batch)
        if engine.dialect.name == "postgresql":
            for table in ("contacts", "tickets", "messages", "suggestions", "decisions", "outbox"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                  f"(SELECT max(id) FROM {table}))"))
    with engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        conn.commit()


def captured_statements(engine: Engine, run: Any) -> list[tuple[str, Any]]:
    """The SQL statements (and parameters) `run()` sends through `engine`."""
    seen: list[tuple[str, Any]] = []

    def listen(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", listen)
    try:
        run()
    finally:
        event.remove(engine, "before_cursor_execute", listen)
    return [(s, p) for s, p in seen if s.lstrip().upper().startswith("SELECT")]


def bare(engine: Engine, statements: list[tuple[str, Any]]) -> Any:
    def run() -> int:
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            rows = 0
            for statement, parameters in statements:
                cursor.execute(statement, parameters)
                rows += len(cursor.fetchall())
            cursor.close()
            raw.rollback()
            return rows
        finally:
            raw.close()
    return run


def bench(name: str, url: str, tickets: int, runs: int) -> None:
    settings = load_settings(environ={"TRIAGE_DATABASE_URL": url, "TRIAGE_LOG_LEVEL": "warning"})
    configure_logging(settings.log)
    app = bootstrap(settings)
    try:
        start = time.perf_counter()
        fill(app.engine, tickets)
        print(f"[{name}] filled {tickets:,} tickets in {time.perf_counter() - start:.1f} s", flush=True)
        if runs <= 0:
            return
        actor = cli_actor("bench")
        filters = filters_for(actor)
        now = datetime(2026, 11, 20, tzinfo=UTC)

        def whole() -> Any:
            return report(app, actor, filters, now=now)

        statements = captured_statements(app.engine, whole)
        sample = whole()
        rows = bare(app.engine, statements)()
        report_times = figures(timings(whole, runs))
        bare_times = figures(timings(bare(app.engine, statements), runs))
        chart_times = figures(timings(lambda: [charts.chart(sample, c) for c in charts.CHARTS], runs))
        client = logged_in(app)
        assert client.get("/reports").status_code == 200
        page_times = figures(timings(lambda: client.get("/reports").content, runs))
        client.close()
        print(f"[{name}] report    {ms(report_times)}")
        print(f"[{name}] bare SQL  {ms(bare_times)} ({len(statements)} statements, {rows:,} rows)")
        print(f"[{name}] report = {report_times[0] / bare_times[0]:.2f}x bare SQL (medians)")
        print(f"[{name}] 5 charts  {ms(chart_times)} (SVG)")
        print(f"[{name}] /reports  {ms(page_times)}")
        print(f"[{name}] load average {' / '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores",
              flush=True)
    finally:
        app.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=10, help="timed runs of each (after 3 untimed); 0: only fill")
    parser.add_argument("--pg", metavar="URL", help="PostgreSQL instead of SQLite: a fresh schema, dropped after")
    parser.add_argument("--keep", metavar="FILE", type=Path, help="SQLite: keep the filled database as FILE")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        if not args.pg:
            path = Path(folder) / "bench.db"
            bench("sqlite", f"sqlite:///{path}", args.tickets, args.runs)
            if args.keep:
                shutil.copyfile(path, args.keep)
                print(f"kept the database as {args.keep}")
            return 0
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(args.pg)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(args.pg).update_query_dict({"options": f"-csearch_path={schema}"})
        try:
            bench("postgresql", url.render_as_string(hide_password=False), args.tickets, args.runs)
        finally:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TRIAGE_LOG_LEVEL", "warning")
    sys.exit(main())
