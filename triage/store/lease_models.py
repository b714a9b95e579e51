"""The `leases` table: which worker holds a mailbox folder or a periodic job, and until when.

A lease is a row, not a PostgreSQL advisory lock: an advisory lock lives as long as its
connection, and a frozen worker (SIGSTOP, a long GC pause, a suspended VM) keeps its connection
open, so the lock would never pass to another worker. A row with an expiry passes on by time.
`generation` is the fencing token: it grows by one each time the lease changes hands, and every
write made under the lease checks it in the write's own transaction (`triage.coordination.leases`).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from triage.store.db import Base, utc


class LeaseRow(Base):
    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(400), primary_key=True)  # imap:<account>/<folder>, job:remind, ...
    holder: Mapped[str | None] = mapped_column(String(200))  # host:pid:token of the worker; NULL: released
    generation: Mapped[int] = mapped_column(BigInteger, default=0)
    acquired_at: Mapped[utc | None]
    renewed_at: Mapped[utc | None]
    expires_at: Mapped[utc]


__all__ = ["LeaseRow"]
