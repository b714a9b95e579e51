"""The outbox: one row per outgoing mail, written in the transaction of the decision that caused it.

The row holds the final RFC 822 bytes, so what the sender delivers is exactly what was
decided, and a retry resends the same bytes under the same Message-ID. A mail that could not
be built (composition refused a value) is a `failed` row without bytes, its reason in
`last_error`: listed by `triage outbox`, never claimed or retried by the sender. The Message-ID is
unique: it is the idempotency key. `smtp_phase` records how far a delivery got, which is
what lets a restarted worker tell a mail that certainly did not leave from one that may
have (see `triage.outbox.sender`).
"""

from __future__ import annotations

import enum

from sqlalchemy import Enum, ForeignKey, Index, LargeBinary, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from triage.store.db import Base, address, intpk, jsonlist, utc


class OutboxStatus(str, enum.Enum):
    pending = "pending"  # waiting for its next attempt
    sending = "sending"  # claimed by a worker (claimed_by), delivery in progress
    sent = "sent"  # the server accepted it (smtp_reply, smtp_queue_id)
    failed = "failed"  # permanent failure or attempts exhausted; the liaison may retry it
    uncertain = "uncertain"  # the server may have accepted it; never resent without the liaison


class SmtpPhase(str, enum.Enum):
    claimed = "claimed"  # committed before connecting: the server has not seen the end of DATA
    data_end = "data_end"  # committed just before the final "." is written: acceptance possible


class Outbox(Base):
    """One outgoing mail and the record of its SMTP transaction."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_outbox_created_at", "created_at"),  # the rate limits read the last hour across addresses
        # A person's mail per ticket in time order, covering: a report's first response (MIN
        # created_at per ticket) and "answered by a person" are one index seek a ticket. Partial
        # on a literal (`auto_submitted IS NULL`) the queries repeat, so both engines can use it.
        Index("ix_outbox_answers", "ticket_id", "created_at", "status", "auto_submitted",
              postgresql_where=text("auto_submitted IS NULL"), sqlite_where=text("auto_submitted IS NULL")),
    )

    id: Mapped[intpk]
    message_id: Mapped[str] = mapped_column(String(998), unique=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    message_pk: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    template: Mapped[str] = mapped_column(String(64))
    auto_submitted: Mapped[str | None] = mapped_column(String(32))
    envelope_from: Mapped[address]
    recipients: Mapped[jsonlist]
    to_addr: Mapped[address]
    subject: Mapped[str] = mapped_column(Text)
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)  # None: the mail could not be built; never sent
    status: Mapped[OutboxStatus] = mapped_column(
        Enum(OutboxStatus, name="outbox_status", native_enum=False, length=16, validate_strings=True)
    )
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[utc]
    last_error: Mapped[str | None] = mapped_column(Text)
    smtp_phase: Mapped[SmtpPhase | None] = mapped_column(
        Enum(SmtpPhase, name="smtp_phase", native_enum=False, length=16, validate_strings=True)
    )
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    claimed_at: Mapped[utc | None]
    smtp_server: Mapped[str | None] = mapped_column(String(300))
    smtp_reply: Mapped[str | None] = mapped_column(Text)
    smtp_queue_id: Mapped[str | None] = mapped_column(String(200))
    refused: Mapped[jsonlist]
    sent_at: Mapped[utc | None]
    sent_copy: Mapped[str | None] = mapped_column(String(500))
    actor: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[utc]
    updated_at: Mapped[utc]


__all__ = ["Outbox", "OutboxStatus", "SmtpPhase"]
