"""The database seen from the worker's health endpoint: the readings behind the shared metrics, and
whether the worker is ready (the database answers and its schema is the one this triage needs).

Both go through a small engine of their own, so a scrape never waits for a connection the runners
hold, and every read has a deadline (`worker.scrape_timeout_seconds`): PostgreSQL's statement and
connect timeouts, and on SQLite a progress handler that interrupts a statement past it. A deadline
that passes is an error like any other: the scrape reports it, the readiness check answers 503.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, and_, create_engine, func, inspect, select, text

from triage.failures import describe
from triage.observe.metrics import DeskReadings
from triage.schedule.run import due_clocks
from triage.store.db import READ_ONLY, core_table, make_engine, utcnow
from triage.store.lease_models import LeaseRow
from triage.store.models import ImapFolderState, Suggestion, Ticket, TicketStatus
from triage.store.outbox_models import Outbox, OutboxStatus
from triage.store.schedule_models import TicketClock
from triage.store.schema import head_revision

VERSION_TABLE = "alembic_version"
SQLITE_CHECK_EVERY = 100  # virtual machine instructions between two looks at the clock (a few microseconds)
MODEL_CARD = "model.json"  # classifiers.artefact.META_FILE, read without importing scikit-learn


def probe_engine(url: str, timeout: float) -> Engine:
    """A pool of one or two connections for the probes; PostgreSQL gives up connecting after `timeout`."""
    if url.startswith("sqlite"):
        return make_engine(url).execution_options(**{READ_ONLY: True})
    return create_engine(url, pool_size=1, max_overflow=1, pool_timeout=timeout, pool_pre_ping=True,
                         hide_parameters=True, connect_args={"connect_timeout": max(2, math.ceil(timeout))})


class DeskProbe:
    """Reads the shared state for /metrics and answers /readyz, each within `timeout` seconds."""

    def __init__(self, url: str, *, timeout: float, mailboxes: Sequence[tuple[str, str]] = (),
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.engine = probe_engine(url, timeout)
        self.timeout = timeout
        self.mailboxes = list(mailboxes)  # configured here; shown (at 0) before their first pass
        self.clock = clock
        self.head = head_revision()

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        with self.engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                with connection.begin():
                    connection.execute(text(f"SET LOCAL statement_timeout = {max(1, int(self.timeout * 1000))}"))
                    yield connection
                return
            raw: Any = connection.connection.driver_connection
            deadline = time.monotonic() + self.timeout
            raw.set_progress_handler(lambda: time.monotonic() > deadline, SQLITE_CHECK_EVERY)
            try:
                with connection.begin():
                    yield connection
            finally:
                raw.set_progress_handler(None, 0)

    def read(self, model_version: str | None) -> DeskReadings:
        now = self.clock()
        with self._reading() as connection:
            return read_desk(connection, now, self.mailboxes, model_version)

    def not_ready(self) -> str | None:
        """Why the worker cannot do its work now, or None: the database unreachable, or its schema
        not at the revision this triage needs."""
        try:
            with self._reading() as connection:
                revision = None
                if inspect(connection).has_table(VERSION_TABLE):
                    revision = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
        except Exception as exc:  # noqa: BLE001 - the reason is the answer
            return f"database unreachable: {describe(exc)}"
        if revision != self.head:
            return f"the database schema is at {revision or 'nothing'}, triage needs {self.head}"
        return None

    def close(self) -> None:
        self.engine.dispose()


def read_desk(connection: Connection, now: datetime, mailboxes: Sequence[tuple[str, str]],
              model_version: str | None) -> DeskReadings:
    """The readings as of `now`: each one an aggregate over an index, so a scrape costs milliseconds."""
    last_pass: dict[tuple[str, str], float | None] = dict.fromkeys(mailboxes)
    for account, folder, at in connection.execute(
            select(ImapFolderState.account, ImapFolderState.folder, ImapFolderState.last_pass_at)):
        last_pass[(account, folder)] = _as_utc(at).timestamp() if at is not None else None
    outbox = {state.value: 0 for state in OutboxStatus}
    for state, count in connection.execute(select(Outbox.status, func.count()).group_by(Outbox.status)):
        outbox[OutboxStatus(state).value] = int(count)
    oldest = connection.execute(select(func.min(Outbox.created_at)).where(
        Outbox.status == OutboxStatus.pending, Outbox.next_attempt_at <= now)).scalar()
    clocks, tickets = core_table(TicketClock), core_table(Ticket)
    overdue = connection.execute(select(func.min(clocks.c.next_at)).select_from(clocks).join(
        tickets, tickets.c.id == clocks.c.ticket_id).where(due_clocks(now))).scalar()
    suggested = [Suggestion.ticket_id == Ticket.id]
    if model_version is not None:
        suggested.append(Suggestion.model_version == model_version)
    waiting = connection.execute(
        select(func.count()).select_from(Ticket).outerjoin(Suggestion, and_(*suggested))
        .where(Ticket.team.is_(None), Ticket.status != TicketStatus.resolved, Suggestion.id.is_(None))
    ).scalar()
    leases = {
        name: (holder, int(generation), (_as_utc(expires_at) - now).total_seconds())
        for name, holder, generation, expires_at in connection.execute(
            select(LeaseRow.name, LeaseRow.holder, LeaseRow.generation, LeaseRow.expires_at))
    }
    return DeskReadings(last_pass=last_pass, outbox=outbox, oldest_due_age=_age(now, oldest),
                        reminder_lag=_age(now, overdue), suggestions_waiting=int(waiting or 0), leases=leases)


def _as_utc(value: datetime) -> datetime:
    """Aggregates of a UTC column come back aware on both engines; a naive one is UTC all the same."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _age(now: datetime, since: datetime | None) -> float:
    return max(0.0, (now - _as_utc(since)).total_seconds()) if since is not None else 0.0


def model_version_on_disk(model_path: str) -> str | None:
    """The version of the routing model in `routing.model_path` (its card), or None when there is none."""
    card = Path(model_path) / MODEL_CARD
    try:
        version = json.loads(card.read_text(encoding="utf-8")).get("version")
    except FileNotFoundError:
        return None
    return str(version) if version is not None else None


__all__ = ["DeskProbe", "model_version_on_disk", "probe_engine", "read_desk"]
