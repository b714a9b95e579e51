#!/usr/bin/env python3
"""Full-text search on 1,000,000 messages, next to the bare index query in the same run; and what
keeping the index costs the ingest.

Search: a fresh database is filled with SQLAlchemy Core bulk inserts (the search triggers index
every row as it goes in, as they do for the ingest): a contact per 15 messages (a third of them
writing English, so PostgreSQL stems theirs too), a ticket per 3 messages, varied synthetic text
(a 20,000-word vocabulary drawn with a Zipf-like law, so some words are in most messages and most
are rare), quotes in replies, a note per 10 tickets. Then a fixed set of queries (a rare word, a
common one, two words, a phrase, OR, an exclusion, a sender, a ticket reference, with and without
team, status, date filters) runs N times each:

- search: `triage.search.service.search` as the liaison (parse, the three kinds' queries with the
  ticket join, filters and snippets, the hits merged), 20 hits;
- bare: the bare index query for each of the three kinds (ids, newest first, LIMIT 20, no join,
  no filter, no snippet), on the same index in the same process.

Figures are the median and 95th percentile over all runs of all queries, and the ratio of the
medians. Goal (issue 13): search within 2x of the bare query, p95 under 200 ms.

Ingest (`--ingest N`, default 5,000; 0 skips it): `triage ingest` of bench_ingest.py's synthetic
mbox into a fresh migrated database, with the search triggers and with them dropped, alternately,
best of `--rounds`; the ratio is the time with over the time without. Goal: at most 1.2.

    .venv/bin/python bench/bench_search.py [--messages 1000000] [--runs 10] [--ingest 5000] [--pg URL]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ingest import build_mbox, run_child
from bench_web import insert_contacts
from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url

from triage.bootstrap import App, bootstrap
from triage.config import load_settings
from triage.desk.actors import Actor
from triage.logging import configure_logging
from triage.search.kinds import KINDS, triggers
from triage.search.query import parse
from triage.search.service import SearchFilters, backend_for, search
from triage.store.db import make_engine
from triage.store.models import Blob, Event, Message, Ticket
from triage.store.schema import ensure_schema
from triage.store.web_models import Role

START = datetime(2024, 1, 1, tzinfo=UTC)
TEAMS = ["communications", "events", "grants", "legal", "technology", "trust-and-safety"]
CHUNK = 10_000
LIAISON = Actor("bench", Role.liaison)
REAL = ["volunteer", "chapter", "logo", "banner", "grant", "report", "venue", "travel", "scholarship",
        "trademark", "press", "interview", "donation", "receipt", "board", "election", "bylaws", "account",
        "password", "outage", "privacy", "request", "deletion", "meetup", "conference", "budget", "translation",
        "community", "resources", "harassment", "policy", "license", "copyright", "organising", "projector"]


def vocabulary(rng: random.Random, size: int = 20_000) -> tuple[list[str], list[float]]:
    """Made-up words (syllables) plus real ones, with cumulative Zipf-like weights (rank ** -1.07)."""
    syllables = ["ka", "lo", "mi", "ne", "ra", "tu", "vo", "shi", "den", "par", "quel", "ost", "an", "ber", "cy"]
    words = list(REAL)
    seen = set(words)
    while len(words) < size:
        word = "".join(rng.choices(syllables, k=rng.randint(2, 4)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    rng.shuffle(words)
    total, cumulative = 0.0, []
    for rank in range(1, size + 1):
        total += rank ** -1.07
        cumulative.append(total)
    return words, cumulative


def fill(app: App, messages: int, seed: int = 7) -> None:
    """`messages` messages (3 per ticket), their tickets, contacts, blobs and some notes."""
    rng = random.Random(seed)
    words, weights = vocabulary(rng)
    tickets = max(1, messages // 3)
    contacts = max(1, messages // 15)

    def sentence(low: int, high: int) -> str:
        return " ".join(rng.choices(words, cum_weights=weights, k=rng.randint(low, high))).capitalize() + "."

    def at(n: int) -> datetime:
        return START + timedelta(minutes=n)

    def contact_rows() -> Iterator[dict[str, Any]]:
        for c in range(1, contacts + 1):
            yield {"id": c, "address": f"volunteer{c}@chapter{c % 97}.example", "name": f"Volunteer {c}",
                   "language": "en" if c % 3 == 0 else None, "bouncing": False, "first_seen": at(c),
                   "last_seen": at(c)}

    def ticket_rows() -> Iterator[dict[str, Any]]:
        for n in range(1, tickets + 1):
            share = n % 20
            yield {"id": n, "reference": f"T-{2026 + n // 100_000}-{n % 100_000:05d}", "subject": sentence(3, 8),
                   "status": "resolved" if share < 12 else "open" if share < 17 else "waiting",
                   "team": TEAMS[n % len(TEAMS)], "contact_id": (n - 1) % contacts + 1, "created_at": at(3 * n),
                   "updated_at": at(3 * n), "clock_stale_at": None}

    def message_rows() -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        for m in range(1, messages + 1):
            n = (m - 1) // 3 + 1
            k = (m - 1) % 3
            contact = (n - 1) % contacts + 1
            own = k == 1
            new_text = "\n\n".join(sentence(8, 30) for _ in range(rng.randint(1, 4)))
            quoted = "".join(f"> {line}\n" for line in sentence(10, 30).split(". ")) if k else ""
            sha = hashlib.sha256(str(m).encode()).hexdigest()
            yield {"sha256": sha, "size": 1, "codec": "raw", "data": b"x", "created_at": at(m)}, {
                "id": m, "ticket_id": min(n, tickets), "direction": "outbound" if own else "inbound",
                "message_id": f"<{m}@bench.example>", "in_reply_to": None, "references": [],
                "from_addr": "liaison@example.org" if own else f"volunteer{contact}@chapter{contact % 97}.example",
                "from_name": "Community Liaison" if own else f"Volunteer {contact}", "to_addrs": [], "cc_addrs": [],
                "subject": f"{'Re: ' if k else ''}{sentence(3, 6)}", "date": at(m), "received_at": at(m),
                "body_text": new_text + quoted, "new_text": new_text, "quoted_text": quoted, "signature": "",
                "body_html": None, "kind": "normal", "kind_reason": None, "list_id": None, "defects": [],
                "size": 2000, "oversize": False, "raw_sha256": sha, "source": "bench",
                "thread_reason": "bench", "extra": {}}

    def note_rows() -> Iterator[dict[str, Any]]:
        for n in range(1, tickets + 1, 10):
            yield {"ticket_id": n, "at": at(3 * n + 2), "actor": "liaison:bench", "action": "note",
                   "detail": {"text": sentence(5, 25)}}
            yield {"ticket_id": n, "at": at(3 * n), "actor": "ingest", "action": "created", "detail": {}}

    def chunks(rows: Iterator[Any]) -> Iterator[list[Any]]:
        while batch := [row for _, row in zip(range(CHUNK), rows, strict=False)]:
            yield batch

    engine = app.engine
    with engine.begin() as conn:
        for batch in chunks(contact_rows()):
            insert_contacts(conn, batch)
        for batch in chunks(ticket_rows()):
            conn.execute(insert(Ticket), batch)
    done = 0
    for batch in chunks(message_rows()):  # a transaction per chunk, like a long ingest
        with engine.begin() as conn:
            conn.execute(insert(Blob), [blob for blob, _ in batch])
            conn.execute(insert(Message), [message for _, message in batch])
        done += len(batch)
        if done % 100_000 == 0:
            print(f"  ... {done:,} messages", flush=True)
    with engine.begin() as conn:
        for batch in chunks(note_rows()):
            conn.execute(insert(Event), batch)
        if engine.dialect.name == "postgresql":
            for table in ("contacts", "tickets", "messages", "events"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                  f"(SELECT max(id) FROM {table}))"))
    with engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        conn.commit()


def queries(words: list[str], tickets: int) -> list[tuple[str, SearchFilters]]:
    """The fixed set: by frequency rank in the vocabulary (0 is the commonest word)."""
    common, middling, rare = words[2], words[300], words[15_000]
    middle = START + timedelta(minutes=3 * tickets // 2)
    return [
        (rare, SearchFilters()),
        (middling, SearchFilters()),
        (common, SearchFilters()),
        (f"{middling} {words[40]}", SearchFilters()),
        (f'"{words[0]} {words[1]}"', SearchFilters()),
        (f"{rare} OR {words[14_000]}", SearchFilters()),
        (f"{middling} -{words[5]}", SearchFilters()),
        ("projector", SearchFilters()),
        (f"volunteer4242@chapter{4242 % 97}.example", SearchFilters()),
        (f"T-2026-{min(tickets, 99_999) // 2:05d}", SearchFilters()),
        (middling, SearchFilters(team="legal", status="open")),
        (common, SearchFilters(team="grants", since=middle, until=middle + timedelta(days=30))),
        (middling, SearchFilters(language="en")),
    ]


def timed(fn: Callable[[], Any], runs: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def figures(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def bench_search(name: str, url: str, messages: int, runs: int) -> None:
    settings = load_settings(environ={"TRIAGE_DATABASE_URL": url, "TRIAGE_LOG_LEVEL": "warning"})
    configure_logging(settings.log)
    app = bootstrap(settings)
    try:
        start = time.perf_counter()
        fill(app, messages)
        print(f"[{name}] filled {messages:,} messages (indexed as they went in) in "
              f"{time.perf_counter() - start:.0f} s", flush=True)
        words, _ = vocabulary(random.Random(7))
        search_times: list[float] = []
        bare_times: list[float] = []
        for text_, filters in queries(words, messages // 3):
            query = parse(text_)
            hits = search(app, LIAISON, text_, filters)

            def bare(query: Any = query) -> int:
                with app.reads() as session:
                    backend = backend_for(session.get_bind().dialect.name)
                    return sum(len(backend.bare(session, kind, query, 20)) for kind in KINDS)

            mine = timed(lambda text_=text_, filters=filters: search(app, LIAISON, text_, filters), runs)  # type: ignore[misc]
            base = timed(bare, runs)
            search_times += mine
            bare_times += base
            print(f"[{name}] {text_[:40]!r:44} {len(hits.hits):3} hits  search {statistics.median(mine) * 1000:7.2f} ms"
                  f"  bare {statistics.median(base) * 1000:7.2f} ms  ({bare()} ids)", flush=True)
        s_median, s_p95 = figures(search_times)
        b_median, b_p95 = figures(bare_times)
        print(f"[{name}] search: {s_median * 1000:.2f} ms median, {s_p95 * 1000:.2f} ms p95")
        print(f"[{name}] bare:   {b_median * 1000:.2f} ms median, {b_p95 * 1000:.2f} ms p95")
        print(f"[{name}] search = {s_median / b_median:.2f}x bare (medians), {s_p95 / b_p95:.2f}x (p95)", flush=True)
    finally:
        app.close()


def drop_triggers(url: str) -> None:
    engine = make_engine(url)
    try:
        ensure_schema(engine, auto_migrate=True)
        with engine.begin() as conn:
            for trigger, table in triggers(KINDS, conn.dialect.name):
                on = f" ON {table}" if conn.dialect.name == "postgresql" else ""
                conn.exec_driver_sql(f"DROP TRIGGER {trigger}{on}")
    finally:
        engine.dispose()


def bench_ingest(name: str, urls: Callable[[], Any], count: int, rounds: int) -> None:
    """`triage ingest` with and without the index triggers, alternately; best of `rounds`."""
    with tempfile.TemporaryDirectory() as folder:
        mbox = Path(folder) / "bench.mbox"
        build_mbox(mbox, count, None)
        best: dict[str, float] = {}
        for _ in range(rounds):
            for indexed in (True, False):
                with urls() as url:
                    if not indexed:
                        drop_triggers(url)
                    env = {**os.environ, "TRIAGE_DATABASE_URL": url, "TRIAGE_CONFIG": "",
                           "TRIAGE_LOG_LEVEL": "warning"}
                    elapsed, _ = run_child([sys.executable, "-m", "triage", "ingest", str(mbox)], env=env)
                label = "with index" if indexed else "without"
                best[label] = min(best.get(label, elapsed), elapsed)
        with_index, without = best["with index"], best["without"]
        print(f"[{name}] ingest {count:,} mails: {count / with_index:.0f} msg/s with the search index, "
              f"{count / without:.0f} msg/s without; time ratio {with_index / without:.3f} (best of {rounds})",
              flush=True)


def sqlite_urls(folder: Path) -> Callable[[], Any]:
    @contextmanager
    def make() -> Iterator[str]:
        path = folder / f"{uuid.uuid4().hex[:8]}.db"
        try:
            yield f"sqlite:///{path}"
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
    return make


def pg_urls(base: str) -> Callable[[], Any]:
    @contextmanager
    def make() -> Iterator[str]:
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(base)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            yield make_url(base).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
                hide_password=False)
        finally:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
    return make


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000, help="messages to fill (0: skip the search part)")
    parser.add_argument("--runs", type=int, default=10, help="timed runs per query (after one untimed)")
    parser.add_argument("--ingest", type=int, default=5_000, help="mails for the ingest comparison (0 skips it)")
    parser.add_argument("--rounds", type=int, default=3, help="ingest runs with and without the index")
    parser.add_argument("--pg", metavar="URL", help="PostgreSQL instead of SQLite: fresh schemas in this "
                        "database, dropped afterwards (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        name = "postgresql" if args.pg else "sqlite"
        urls = pg_urls(args.pg) if args.pg else sqlite_urls(Path(folder))
        if args.messages:
            with urls() as url:
                bench_search(name, url, args.messages, args.runs)
        if args.ingest:
            bench_ingest(name, urls, args.ingest, args.rounds)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TRIAGE_LOG_LEVEL", "warning")
    sys.exit(main())
