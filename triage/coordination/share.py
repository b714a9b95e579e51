"""Mailboxes shared out evenly among the workers that poll: no worker holds more than its share.

A lease alone is first come, first served: the first worker to start takes every mailbox and
keeps it, and the others stand by (bench_workers.py saw exactly that). So each polling worker
also holds a presence lease, `poller:<holder>`, and counts the live ones: its share is the
configured mailboxes divided by the live pollers, rounded up. A worker under its share that finds
a mailbox taken says it wants it (a short lease `want:<mailbox lease>`); the holder gives a
mailbox back at a renewal only while it holds more than its share and another worker wants that
one, and a worker at or over its share takes no mailbox another worker wants. So a second worker that starts
gets its half within a few renewals; a mailbox that only one worker is configured for is never
given back into the void; and when a worker dies its presence lapses with its mailboxes and the
others' shares grow to take them.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

import structlog
from sqlalchemy import delete, func, select

from triage.coordination.leases import Claim, Leases
from triage.failures import describe
from triage.store.lease_models import LeaseRow

log = structlog.get_logger(__name__)

PRESENCE = "poller:"
WANT = "want:"
FORGET_AFTER_LEASES = 20  # a presence row lapsed this many lease periods ago is deleted


class MailboxShare:
    """This worker's share of `mailboxes` mailbox leases; the claims report what they hold (`note`)."""

    def __init__(self, leases: Leases, mailboxes: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.leases = leases
        self.mailboxes = mailboxes
        self.presence = Claim(leases, PRESENCE + leases.holder)
        self.limit = mailboxes  # until the first count: alone
        self.pollers = 1
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self._counting = threading.Lock()
        self._clock = clock
        self._counted_at = float("-inf")

    def note(self, name: str, held: bool) -> None:
        with self._lock:
            (self._held.add if held else self._held.discard)(name)

    def may_take(self, name: str) -> bool:
        """Whether to try to take `name`: under this worker's share, or over it while no other worker
        wants that mailbox (one only this worker reads, say, or a free one no one else asked for)."""
        self._refresh()
        with self._lock:
            if len(self._held) < self.limit:
                return True
        return not self._wanted_by_another(name)

    def should_give_back(self, name: str) -> bool:
        """Whether to give `name` back now: this worker holds more than its share and another worker wants
        it. Noted at once, so that two of its runners asking together do not both give one back."""
        self._refresh()
        with self._lock:
            if not (len(self._held) > self.limit and name in self._held):
                return False
        if not self._wanted_by_another(name):
            return False
        with self._lock:
            if len(self._held) > self.limit and name in self._held:
                self._held.discard(name)
                return True
            return False

    def want(self, name: str) -> None:
        """Say that this worker, under its share, would read `name` (held by another worker)."""
        try:
            self.leases.acquire(WANT + name)
        except Exception as exc:  # noqa: BLE001 - only a hint to the holder: the next try says it again
            log.warning("lease.want_failed", lease=name, error=describe(exc))

    def _wanted_by_another(self, name: str) -> bool:
        try:
            with self.leases.sessions() as session:
                return session.scalar(select(func.count()).select_from(LeaseRow).where(
                    LeaseRow.name == WANT + name, LeaseRow.holder.is_not(None),
                    LeaseRow.holder != self.leases.holder, LeaseRow.expires_at > self.leases.now(session))) == 1
        except Exception as exc:  # noqa: BLE001 - unknown: keep what is held, take nothing more
            log.warning("lease.want_unknown", lease=name, error=describe(exc))
            return name not in self._held

    def _refresh(self) -> None:
        """Renew this worker's presence and count the live pollers, at most every renewal period.
        One thread counts; the others wait for its count (at start, none takes a mailbox before it)."""
        with self._counting:
            if self._clock() - self._counted_at >= self.presence.retry:
                self._count()
                self._counted_at = self._clock()

    def _count(self) -> None:
        try:
            self.presence.hold()
            with self.leases.sessions.begin() as session:
                db_now = self.leases.now(session)
                live = session.scalar(select(func.count()).select_from(LeaseRow).where(
                    LeaseRow.name.startswith(PRESENCE), LeaseRow.holder.is_not(None), LeaseRow.expires_at > db_now))
                # Presence rows of workers gone long ago (killed: nobody gave them back) would pile up.
                session.execute(delete(LeaseRow).where(
                    LeaseRow.name.startswith(PRESENCE), LeaseRow.expires_at < self.leases.now(session, -self.leases.ttl * FORGET_AFTER_LEASES)))
        except Exception as exc:  # noqa: BLE001 - the database is away: keep the share we had
            log.warning("lease.share_unknown", error=describe(exc))
            return
        pollers = max(1, int(live or 0))
        limit = math.ceil(self.mailboxes / pollers)
        if (pollers, limit) != (self.pollers, self.limit):
            log.info("lease.share", pollers=pollers, mailboxes=self.mailboxes, share=limit)
        self.pollers, self.limit = pollers, limit

    def release(self) -> None:
        """Leave: this worker's presence row and its wants go, so the others' shares grow at once."""
        self.presence.release()
        try:
            with self.leases.sessions.begin() as session:
                session.execute(delete(LeaseRow).where(LeaseRow.name == self.presence.name, LeaseRow.holder.is_(None)))
                session.execute(delete(LeaseRow).where(LeaseRow.name.startswith(WANT),
                                                       LeaseRow.holder == self.leases.holder))
        except Exception as exc:  # noqa: BLE001 - leaving anyway: the row is forgotten by the others later
            log.warning("lease.presence_cleanup_failed", error=describe(exc))


__all__ = ["PRESENCE", "WANT", "MailboxShare"]
