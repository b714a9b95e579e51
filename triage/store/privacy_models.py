"""The erasure tables: `erasures`, the tombstone of each erasure (what was erased, when, by whom,
never the personal data itself), and `erased_tickets`, the tickets whose content an erasure
removed (so the retention run does not erase the same shell again, and pages can say why a
ticket is empty).

An erased message keeps its row as a shell (direction, dates, size, ticket) so that reports
still count it; its Message-ID is replaced by a one-way fingerprint (triage.privacy.fingerprint)
and its raw blob by an empty marker, which is what lets ingest recognise the same mail when a
mailbox is read again and refuse it instead of storing the person anew.
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from triage.store.db import Base, intpk, jsondict, jsonlist, utc


class Erasure(Base):
    """One erasure: by request (`triage contact erase`, the workbench) or by the retention run."""

    __tablename__ = "erasures"

    id: Mapped[intpk]
    at: Mapped[utc] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(String(16))  # "request" or "retention"
    contact_id: Mapped[int | None] = mapped_column(index=True)  # the erased contact's id (the row is gone)
    tickets: Mapped[jsonlist]  # the references of the tickets emptied
    counts: Mapped[jsondict]  # what was erased, by kind: messages, attachments, blobs, outbox, notes...


class ErasedTicket(Base):
    """A ticket emptied by an erasure, and when: retention skips it unless it changed since."""

    __tablename__ = "erased_tickets"

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), primary_key=True)
    erasure_id: Mapped[int] = mapped_column(ForeignKey("erasures.id"), index=True)
    erased_at: Mapped[utc]


__all__ = ["ErasedTicket", "Erasure"]
