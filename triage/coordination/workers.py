"""What a worker process does before its runners start, so that several can share one database.

On PostgreSQL: every runner that needs one gets its lease (`Runner.use_leases`), and the
worker's connections carry `idle_in_transaction_session_timeout` (see `leases`). On an SQLite
file: the worker takes the database's single-worker lock, or is refused (`single_worker`).

`worker.lease_seconds` is the operator's promise: another worker takes a dead holder's work over
within it. So a lease lapses three quarters of it after its last renewal (the holder renews every
quarter), and a worker without the lease tries to take it every 3/16 of it: the lapse plus one
try, 15/16, stays under `lease_seconds`, with a sixteenth to spare for a slow query.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import Engine, event

from triage.coordination.identity import worker_identity
from triage.coordination.leases import Leases
from triage.coordination.share import MailboxShare
from triage.coordination.single_worker import WorkerLock, claim_sqlite_database
from triage.runners.base import Runner

log = structlog.get_logger(__name__)

LAPSE_SHARE = 0.75  # of worker.lease_seconds: when an unrenewed lease lapses (see the module docstring)


@dataclass
class Coordination:
    worker: str
    leases: Leases | None = None
    lock: WorkerLock | None = None
    share: MailboxShare | None = None

    def release(self) -> None:
        if self.share is not None:
            self.share.release()
        if self.lock is not None:
            self.lock.release()
            self.lock = None


def coordinate(engine: Engine, sessions: Any, url: str, lease_seconds: float, runners: Sequence[Runner],
               *, worker: str | None = None) -> Coordination:
    """Make `runners` safe beside other workers on the same database (see the module docstring)."""
    worker = worker or worker_identity()
    if engine.dialect.name != "postgresql":
        return Coordination(worker, lock=claim_sqlite_database(url, me=worker))
    timeout_ms = max(1000, int(lease_seconds * 500))

    def limit_idle_transactions(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"SET idle_in_transaction_session_timeout = {timeout_ms}")
        dbapi_connection.commit()

    event.listen(engine, "connect", limit_idle_transactions)
    engine.dispose()  # connections opened before (the schema check) are made again with the setting
    leases = Leases(sessions, worker, lease_seconds * LAPSE_SHARE)
    for runner in runners:
        runner.use_leases(leases)
    mailbox_claims = [claim for runner in runners for claim in getattr(runner, "claims", {}).values()]
    share = MailboxShare(leases, len(mailbox_claims)) if mailbox_claims else None
    for claim in mailbox_claims:
        claim.share = share
    log.info("worker.coordinated", lease_holder=worker, lease_seconds=lease_seconds, leased=[
        r.name for r in runners if r.claim is not None or getattr(r, "claims", None)
    ])
    return Coordination(worker, leases=leases, share=share)


__all__ = ["Coordination", "coordinate"]
