"""Leases with fencing tokens: one worker at a time on a mailbox folder or a periodic job.

A worker takes a lease by a conditional UPDATE of its row (free, expired, or already its own),
renews it well before it lapses, and gives it back when it stops. Taking over a lease that
another worker held bumps `generation`, the fencing token. A write made under a lease calls
`fence(session)` inside the write's own transaction: the UPDATE there matches only while the
generation and holder are still ours, and it keeps the row locked until the commit, so a worker
that another has replaced (because it froze past its lease and woke up) cannot commit, and a
worker taking over waits for a commit in flight instead of racing it.

Time is the database's clock on PostgreSQL (`clock_timestamp()`), so workers on several
machines need no synchronised clocks; SQLite runs one worker on one machine (`single_worker`).

A worker frozen inside a transaction would keep its row locks, and with them every taker,
waiting: the worker's connections carry PostgreSQL's `idle_in_transaction_session_timeout`
(`triage.coordination.workers`), so the server ends such a session after half a lease.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import structlog
from sqlalchemy import CursorResult, case, func, literal, or_, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from triage.store.db import upsert_insert, utcnow
from triage.store.lease_models import LeaseRow

if TYPE_CHECKING:
    from triage.coordination.share import MailboxShare

log = structlog.get_logger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TAKE_LOCK_TIMEOUT_MS = 2000  # a taker waits this long for a holder's commit in flight, then tries later


class LeaseLost(RuntimeError):
    """The lease changed hands (or was never held): the work under it must not be committed."""

    def __init__(self, name: str, generation: int | None) -> None:
        super().__init__(f"lease {name} (generation {generation}) is no longer held by this worker")
        self.name = name
        self.generation = generation


@dataclass(frozen=True)
class Lease:
    name: str
    holder: str
    generation: int
    expires_at: datetime


class Leases:
    """Take, renew, give back and fence named leases for one worker (`holder`)."""

    def __init__(self, sessions: sessionmaker[Session], holder: str, ttl_seconds: float) -> None:
        self.sessions = sessions
        self.holder = holder
        self.ttl = timedelta(seconds=ttl_seconds)

    def now(self, session: Session, plus: timedelta = timedelta(0)) -> ColumnElement[datetime]:
        """The time leases are judged by, shifted by `plus`: the database's clock on PostgreSQL."""
        if session.get_bind().dialect.name == "postgresql":
            return cast("ColumnElement[datetime]", func.clock_timestamp() + plus)
        return literal(utcnow() + plus, LeaseRow.expires_at.type)

    def acquire(self, name: str) -> Lease | None:
        """The lease, if it is free, expired or ours (renewed then); None while another worker holds it."""
        try:
            with self.sessions.begin() as session:
                if session.get_bind().dialect.name == "postgresql":
                    session.execute(select(func.set_config("lock_timeout", f"{TAKE_LOCK_TIMEOUT_MS}ms", True)))
                session.execute(upsert_insert(session)(LeaseRow).values(
                    name=name, holder=None, generation=0, expires_at=EPOCH,
                ).on_conflict_do_nothing(index_elements=["name"]))
                now = self.now(session)
                taken = session.execute(
                    update(LeaseRow)
                    .where(LeaseRow.name == name,
                           or_(LeaseRow.holder.is_(None), LeaseRow.holder == self.holder, LeaseRow.expires_at < now))
                    .values(
                        generation=case((LeaseRow.holder == self.holder, LeaseRow.generation),
                                        else_=LeaseRow.generation + 1),
                        acquired_at=case((LeaseRow.holder == self.holder, LeaseRow.acquired_at), else_=now),
                        holder=self.holder, renewed_at=now, expires_at=self.now(session, self.ttl),
                    )
                    .returning(LeaseRow.generation, LeaseRow.expires_at)
                ).one_or_none()
        except OperationalError as exc:
            if "lock timeout" not in str(exc).lower():
                raise
            return None  # the holder is committing under it right now: it is alive
        if taken is None:
            return None
        return Lease(name, self.holder, int(taken.generation), taken.expires_at)

    def renew(self, lease: Lease) -> Lease:
        """The lease with a new expiry; LeaseLost if it changed hands (an expired lease nobody took renews)."""
        with self.sessions.begin() as session:
            return self._extend(session, lease)

    def fence(self, session: Session, lease: Lease) -> Lease:
        """In the caller's transaction: raise LeaseLost unless `lease` is still ours, and extend it.
        The row stays locked until that transaction ends, so no one takes the lease meanwhile."""
        return self._extend(session, lease)

    def _extend(self, session: Session, lease: Lease) -> Lease:
        row = session.execute(
            update(LeaseRow)
            .where(LeaseRow.name == lease.name, LeaseRow.holder == self.holder,
                   LeaseRow.generation == lease.generation)
            .values(renewed_at=self.now(session), expires_at=self.now(session, self.ttl))
            .returning(LeaseRow.expires_at)
        ).one_or_none()
        if row is None:
            raise LeaseLost(lease.name, lease.generation)
        return Lease(lease.name, self.holder, lease.generation, row.expires_at)

    def release(self, lease: Lease) -> bool:
        """Give the lease back (another worker may take it at once); False if it was no longer ours."""
        with self.sessions.begin() as session:
            result = cast("CursorResult[Any]", session.execute(
                update(LeaseRow)
                .where(LeaseRow.name == lease.name, LeaseRow.holder == self.holder,
                       LeaseRow.generation == lease.generation)
                .values(holder=None, expires_at=self.now(session))
            ))
        return result.rowcount == 1


class Claim:
    """One lease this worker wants: taken when free, renewed a third of the way into it, given back
    on `release()`. `hold()` is cheap to call often while the lease is held (it renews only when due);
    while another worker holds it, each call tries to take it: callers wait `retry` between calls."""

    def __init__(self, leases: Leases, name: str, *, clock: Any = time.monotonic) -> None:
        self.leases = leases
        self.name = name
        self.lease: Lease | None = None
        self._clock = clock
        self._checked_at = float("-inf")
        self.share: MailboxShare | None = None  # when this is a mailbox's lease (triage.coordination.share)
        self.every = leases.ttl.total_seconds() / 3  # renewal period
        self.retry = leases.ttl.total_seconds() / 4  # how long a worker without the lease waits between tries

    @property
    def generation(self) -> int | None:
        return None if self.lease is None else self.lease.generation

    def hold(self) -> bool:
        """Whether this worker holds the lease now: renew it when due, or try to take it."""
        now = self._clock()
        if self.lease is not None and now - self._checked_at < self.every:
            return True
        self._checked_at = now
        if self.lease is not None:
            if self.share is not None and self.share.should_give_back(self.name):
                log.info("lease.given_back", lease=self.name, reason="more than this worker's share")
                self.release()
                return False
            try:
                self.lease = self.leases.renew(self.lease)
                return True
            except LeaseLost:
                log.warning("lease.lost", lease=self.name, generation=self.lease.generation)
                self._set(None)
        if self.share is not None and not self.share.may_take(self.name):
            return False
        self._set(self.leases.acquire(self.name))
        if self.lease is not None:
            log.info("lease.acquired", lease=self.name, generation=self.lease.generation)
        elif self.share is not None:
            self.share.want(self.name)  # under its share, and another worker has it
        return self.lease is not None

    def _set(self, lease: Lease | None) -> None:
        self.lease = lease
        if self.share is not None:
            self.share.note(self.name, lease is not None)

    def fence(self, session: Session) -> None:
        """In the caller's transaction: raise LeaseLost unless this worker still holds the lease."""
        if self.lease is None:
            raise LeaseLost(self.name, None)
        try:
            self.lease = self.leases.fence(session, self.lease)
        except LeaseLost:
            log.warning("lease.fenced_off", lease=self.name, generation=self.lease.generation)
            self._set(None)
            raise

    def release(self) -> None:
        if self.lease is not None:
            lease = self.lease
            self._set(None)
            try:
                if self.leases.release(lease):
                    log.info("lease.released", lease=self.name, generation=lease.generation)
            except Exception as exc:  # noqa: BLE001 - leaving anyway: the lease lapses by itself
                log.warning("lease.release_failed", lease=self.name, error=type(exc).__name__)


__all__ = ["Claim", "Lease", "LeaseLost", "Leases"]
