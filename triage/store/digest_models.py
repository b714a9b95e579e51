"""The weekly digests sent: one row per team and ISO week, the digest run's idempotency key.

The run inserts the row with ON CONFLICT DO NOTHING in the same transaction as the digest's
outbox row, and queues the mail only if its insert won: two runs, two workers at once or a run
after a crash send exactly one digest per team and week. The row also keeps what the digest
said in numbers (`summary`), for the workbench's /digests page.
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from triage.store.db import Base, intpk, jsondict, utc


class Digest(Base):
    __tablename__ = "digests"
    __table_args__ = (UniqueConstraint("team", "week"),)

    id: Mapped[intpk]
    team: Mapped[str] = mapped_column(String(64))
    week: Mapped[str] = mapped_column(String(8))  # ISO week, 2026-W48
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id"))  # the mail (or its failed row)
    to_addr: Mapped[str] = mapped_column(String(320))
    actor: Mapped[str] = mapped_column(String(200))
    sent_at: Mapped[utc]  # when it was queued
    summary: Mapped[jsondict]  # counts and rising terms, for the page


__all__ = ["Digest"]
