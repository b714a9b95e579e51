#!/usr/bin/env python3
"""The workbench's pages on 100,000 tickets and 300,000 messages, next to the bare SQL that fetches
the same rows, in the same run.

It fills a fresh database with SQLAlchemy Core bulk inserts (not the ingest path): contacts with
about five tickets each, three messages per ticket (question, reply, follow-up, each with its raw
bytes' blob row), a suggestion and a few events per ticket, 60% of the tickets resolved and routed,
and `--waiting` of them (1% by default) still waiting for a routing decision. Then, logged in as
the liaison, it times each page in-process through the ASGI app (Starlette's TestClient: the
request goes through the middleware, the login check and the thread pool; the clock stops at the
response's last byte), N runs after a warm-up, against:

- queue (`/queue`): the waiting tickets, oldest first, each with its latest suggestion, as many
  rows as the page lists (counted in its HTML);
- ticket (`/tickets/<ref>`): the ticket and its contact, its messages with their attachments, its
  events, and the contact's other tickets;
- list (`/tickets?status=open&team=communications`): the open tickets of one team, newest first, with
  their contact and message count, as many rows as the page lists.

A page that reads nothing (`@page`, an empty response) is timed too: the floor every page pays.
Figures are the median, the 95th percentile and the best of the N runs; the ratio is page over
bare SQL, of the medians (and of the best times, which machine noise touches least). Goal (issue 12): within 3x of the bare query and under 100 ms.

    .venv/bin/python bench/bench_web.py [--tickets 100000] [--runs 30] [--pg URL]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import statistics
import sys
import tempfile
import time
import tomllib
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import Connection, Engine, create_engine, insert, text
from sqlalchemy.engine import make_url
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from triage.bootstrap import App, bootstrap
from triage.config import load_settings
from triage.desk.accounts import add_user
from triage.logging import configure_logging
from triage.store.models import Blob, Contact, ContactAddress, Event, Message, Suggestion, Ticket
from triage.web.app import create_app, page

ROOT = Path(__file__).resolve().parents[1]
TEAMS = sorted(tomllib.loads((ROOT / "data" / "teams.toml").read_text())["teams"])
START = datetime(2024, 1, 1, tzinfo=UTC)
PASSWORD = "bench password 1"
REFERENCE = re.compile(r"T-\d{4}-\d{5}")
CHUNK = 10_000

QUESTION = ("Hello, I am writing on behalf of our local chapter about the event we are planning next month. "
            "We would like to know whether the foundation can support the venue costs, and who we should "
            "contact about the logo on our banners. Thank you for your help, and kind regards.\n")
REPLY = ("Thank you for writing. I have passed your question to the team that looks after this; they will "
         "answer you within a few days. Kind regards, the Community Liaison desk.\n")
QUOTED = "".join(f"> {line}\n" for line in (QUESTION * 2).splitlines())


def insert_contacts(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Contact rows given with an "address": the person into `contacts`, the address (primary) into
    `contact_addresses`, as ingest stores them."""
    conn.execute(insert(Contact), [{k: v for k, v in row.items() if k != "address"} | {"uid": uuid.uuid4().hex}
                                   for row in rows])
    conn.execute(insert(ContactAddress), [{"contact_id": row["id"], "address": row["address"], "is_primary": True,
                                           "added_at": row["first_seen"], "source": "mail"} for row in rows])


def chunks(rows: Iterator[dict[str, Any]], size: int = CHUNK) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def status_of(n: int, waiting: int, tickets: int) -> tuple[str, str | None]:
    """(status, team) of ticket n: the last `waiting` ones wait for routing; of the rest 60%
    are resolved, 25% open, 15% waiting on the volunteer, each routed to a team."""
    if n > tickets - waiting:
        return ("new" if n % 2 else "open"), None
    share = n % 20
    status = "resolved" if share < 12 else "open" if share < 17 else "waiting"
    return status, TEAMS[(n // 7) % len(TEAMS)]


def fill(engine: Engine, tickets: int, waiting: int) -> None:
    contacts = max(1, tickets // 5)

    def at(n: int) -> datetime:
        return START + timedelta(minutes=5 * n)

    def contact_rows() -> Iterator[dict[str, Any]]:
        for c in range(1, contacts + 1):
            yield {"id": c, "address": f"volunteer{c}@chapter{c % 97}.example", "name": f"Volunteer {c}",
                   "language": "en", "bouncing": False, "first_seen": at(c), "last_seen": at(c)}

    def ticket_rows() -> Iterator[dict[str, Any]]:
        for n in range(1, tickets + 1):
            status, team = status_of(n, waiting, tickets)
            yield {"id": n, "reference": f"T-2026-{n:05d}" if n < 100_000 else f"T-{2026 + n // 100_000}-{n % 100_000:05d}",
                   "subject": f"Question {n} about our chapter's event", "status": status, "team": team,
                   "contact_id": (n - 1) % contacts + 1, "created_at": at(n), "updated_at": at(n) + timedelta(hours=1),
                   "clock_stale_at": None}

    def blob_and_message_rows() -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        for n in range(1, tickets + 1):
            contact = (n - 1) % contacts + 1
            for k, direction in enumerate(("inbound", "outbound", "inbound")):
                m = 3 * (n - 1) + k + 1
                sha = hashlib.sha256(str(m).encode()).hexdigest()
                own = direction == "outbound"
                new_text = REPLY if own else QUESTION
                blob = {"sha256": sha, "size": 1, "codec": "raw", "data": b"x", "created_at": at(n)}
                yield blob, {
                    "id": m, "ticket_id": n, "direction": direction, "message_id": f"<{m}@bench.example>",
                    "in_reply_to": f"<{m - 1}@bench.example>" if k else None, "references": [],
                    "from_addr": "liaison@example.org" if own else f"volunteer{contact}@chapter{contact % 97}.example",
                    "from_name": "Community Liaison" if own else f"Volunteer {contact}",
                    "to_addrs": [], "cc_addrs": [], "subject": f"{'Re: ' if k else ''}Question {n}",
                    "date": at(n) + timedelta(hours=k), "received_at": at(n) + timedelta(hours=k),
                    "body_text": new_text + (QUOTED if k else ""), "new_text": new_text,
                    "quoted_text": QUOTED if k else "", "signature": "", "body_html": None, "kind": "normal",
                    "kind_reason": None, "list_id": None, "defects": [], "size": 2000, "oversize": False,
                    "raw_sha256": sha, "source": "bench", "thread_reason": "new thread" if not k else "in-reply-to",
                    "extra": {},
                }

    def suggestion_rows() -> Iterator[dict[str, Any]]:
        for n in range(1, tickets + 1):
            team = TEAMS[n % len(TEAMS)]
            yield {"ticket_id": n, "team": team, "confidence": 0.5 + (n % 50) / 100, "model_version": "bench",
                   "ranked": [[team, 0.8], [TEAMS[(n + 1) % len(TEAMS)], 0.1]],
                   "evidence": [["venue", 0.4], ["banner", 0.2]], "created_at": at(n)}

    def event_rows() -> Iterator[dict[str, Any]]:
        for n in range(1, tickets + 1):
            yield {"ticket_id": n, "at": at(n), "actor": "ingest", "action": "created", "detail": {}}
            yield {"ticket_id": n, "at": at(n), "actor": "model:bench", "action": "suggested",
                   "detail": {"team": TEAMS[n % len(TEAMS)]}}
            _, team = status_of(n, waiting, tickets)
            if team:
                yield {"ticket_id": n, "at": at(n) + timedelta(minutes=30), "actor": "liaison:bench",
                       "action": "routed", "detail": {"team": team}}

    with engine.begin() as conn:
        for batch in chunks(contact_rows()):
            insert_contacts(conn, batch)
        for batch in chunks(ticket_rows()):
            conn.execute(insert(Ticket), batch)
        pairs = blob_and_message_rows()
        while batch_pairs := [pair for _, pair in zip(range(CHUNK), pairs, strict=False)]:
            conn.execute(insert(Blob), [blob for blob, _ in batch_pairs])
            conn.execute(insert(Message), [message for _, message in batch_pairs])
        for batch in chunks(suggestion_rows()):
            conn.execute(insert(Suggestion), batch)
        for batch in chunks(event_rows()):
            conn.execute(insert(Event), batch)
        if engine.dialect.name == "postgresql":
            for table in ("contacts", "tickets", "messages", "suggestions", "events"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                  f"(SELECT max(id) FROM {table}))"))
    with engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        conn.commit()


# The bare SQL: what each page must read, as plain statements, rows fetched.
QUEUE_SQL = text(
    "SELECT t.id, t.reference, t.subject, t.flag, t.created_at, s.team, s.confidence, s.ranked, s.evidence, "
    "s.model_version FROM tickets t LEFT JOIN suggestions s ON s.id = "
    "(SELECT max(x.id) FROM suggestions x WHERE x.ticket_id = t.id) "
    "WHERE t.team IS NULL AND t.status <> 'resolved' ORDER BY t.id LIMIT :n"
)
TICKET_SQL = (
    text("SELECT t.*, a.address, c.name, c.language FROM tickets t LEFT JOIN contacts c ON c.id = t.contact_id "
         "LEFT JOIN contact_addresses a ON a.contact_id = c.id AND a.is_primary WHERE t.reference = :ref"),
    text("SELECT m.id, m.direction, m.from_addr, m.from_name, m.to_addrs, m.cc_addrs, m.subject, m.date, "
         "m.new_text, m.quoted_text, m.signature, m.body_html, m.kind, m.thread_reason, m.defects "
         "FROM messages m WHERE m.ticket_id = :id ORDER BY m.id"),
    text("SELECT a.id, a.message_pk, a.filename, a.content_type, a.size, a.inline FROM attachments a "
         "JOIN messages m ON m.id = a.message_pk WHERE m.ticket_id = :id"),
    text("SELECT e.at, e.actor, e.action, e.detail FROM events e WHERE e.ticket_id = :id ORDER BY e.id"),
    text("SELECT t.reference, t.subject, t.status, t.created_at FROM tickets t "
         "WHERE t.contact_id = :contact AND t.id <> :id ORDER BY t.id DESC LIMIT 20"),
)
LIST_SQL = text(
    "SELECT t.id, t.reference, t.subject, t.status, t.team, t.flag, t.updated_at, a.address, "
    "(SELECT count(*) FROM messages m WHERE m.ticket_id = t.id) AS messages FROM tickets t "
    "LEFT JOIN contact_addresses a ON a.contact_id = t.contact_id AND a.is_primary WHERE t.status = :status AND t.team = :team "
    "ORDER BY t.id DESC LIMIT :n"
)


def bare_ticket(engine: Engine, reference: str) -> Callable[[], int]:
    def run() -> int:
        with engine.connect() as conn:
            ticket = conn.execute(TICKET_SQL[0], {"ref": reference}).one()
            params = {"id": ticket.id, "contact": ticket.contact_id}
            return 1 + sum(len(conn.execute(sql, params).all()) for sql in TICKET_SQL[1:])
    return run


def bare(engine: Engine, sql: Any, params: dict[str, Any]) -> Callable[[], int]:
    def run() -> int:
        with engine.connect() as conn:
            return len(conn.execute(sql, params).all())
    return run


def timings(fn: Callable[[], Any], runs: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def figures(times: list[float]) -> tuple[float, float, float]:
    """Median, 95th percentile and best, in seconds."""
    ordered = sorted(times)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))], ordered[0]


def ms(times: tuple[float, float, float]) -> str:
    median, p95, best = (t * 1000 for t in times)
    return f"{median:7.2f} ms median, {p95:7.2f} p95, {best:7.2f} best"


@page
def floor(request: Request) -> Response:
    """A page that reads nothing: what every page pays (middleware, login check, thread pool)."""
    return PlainTextResponse("")


def logged_in(app: App) -> TestClient:
    add_user(app, "bench", "liaison", PASSWORD)
    client = TestClient(create_app(app, extra_routes=[Route("/bench-floor", floor)]), base_url="http://127.0.0.1")
    form = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token, form.text
    done = client.post("/login", data={"username": "bench", "password": PASSWORD, "csrf_token": token[1],
                                       "next": "/queue"}, follow_redirects=False)
    assert done.status_code == 303, done.text
    return client


def bench(name: str, url: str, tickets: int, waiting: int, runs: int, model_path: str) -> None:
    settings = load_settings(environ={"TRIAGE_DATABASE_URL": url, "TRIAGE_LOG_LEVEL": "warning",
                                      "TRIAGE_ROUTING_MODEL_PATH": model_path})
    configure_logging(settings.log)
    app = bootstrap(settings)
    try:
        start = time.perf_counter()
        fill(app.engine, tickets, waiting)
        print(f"[{name}] filled {tickets:,} tickets, {3 * tickets:,} messages ({waiting:,} waiting for routing) "
              f"in {time.perf_counter() - start:.1f} s", flush=True)
        client = logged_in(app)
        client.get("/queue")  # loads (or trains) the routing model once, outside the timings
        team = TEAMS[0]
        floor_times = figures(timings(lambda: client.get("/bench-floor").content, runs))
        print(f"[{name}] floor  (a logged-in page that reads nothing): {ms(floor_times)}", flush=True)
        middle = tickets // 2
        reference = f"T-2026-{middle:05d}"
        pages: list[tuple[str, str, Callable[[int], Callable[[], int]]]] = [
            ("queue", "/queue", lambda n: bare(app.engine, QUEUE_SQL, {"n": n})),
            ("ticket", f"/tickets/{reference}", lambda n: bare_ticket(app.engine, reference)),
            ("list", f"/tickets?status=open&team={team}",
             lambda n: bare(app.engine, LIST_SQL, {"status": "open", "team": team, "n": n})),
        ]
        for label, path, baseline in pages:
            response = client.get(path)
            shown = len(set(REFERENCE.findall(response.text)))
            note = "" if response.status_code == 200 else f"  (answered {response.status_code}: page not built yet?)"
            rows = shown or 50
            page_times = timings(lambda path=path: client.get(path).content, runs)  # type: ignore[misc]
            sql = baseline(rows)
            fetched = sql()
            sql_times = timings(sql, runs)
            page_figures, sql_figures = figures(page_times), figures(sql_times)
            print(f"[{name}] {label:6} {path}: {len(response.content) / 1024:.0f} kB, {shown} references shown{note}")
            print(f"[{name}] {label:6}   page     {ms(page_figures)}")
            print(f"[{name}] {label:6}   bare SQL {ms(sql_figures)} ({fetched} rows)")
            print(f"[{name}] {label:6}   page = {page_figures[0] / sql_figures[0]:.1f}x bare SQL (medians), "
                  f"{page_figures[2] / sql_figures[2]:.1f}x (best)", flush=True)
        client.close()
    finally:
        app.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100_000, help="tickets to fill (3 messages each)")
    parser.add_argument("--waiting", type=int, help="tickets waiting for routing (default: 1%% of --tickets)")
    parser.add_argument("--runs", type=int, default=30, help="timed requests per page (after 3 untimed)")
    parser.add_argument("--pg", metavar="URL", help="PostgreSQL instead of SQLite: a fresh schema in this "
                        "database, dropped afterwards (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)")
    args = parser.parse_args()
    waiting = args.waiting if args.waiting is not None else max(1, args.tickets // 100)
    with tempfile.TemporaryDirectory() as folder:
        model_path = str(Path(folder) / "model")
        if not args.pg:
            bench("sqlite", f"sqlite:///{Path(folder) / 'bench.db'}", args.tickets, waiting, args.runs, model_path)
            return 0
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(args.pg)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(args.pg).update_query_dict({"options": f"-csearch_path={schema}"})
        try:
            bench("postgresql", url.render_as_string(hide_password=False), args.tickets, waiting, args.runs,
                  model_path)
        finally:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TRIAGE_LOG_LEVEL", "warning")
    sys.exit(main())
