"""The tables: contacts, tickets, messages, attachments, blobs, events and quarantine.

Raw RFC 822 bytes and attachment contents live in `blobs`, addressed by sha256 and stored
once (zlib-compressed), in the same database as everything else so that a mail, its
ticket and its raw bytes commit or roll back together.
"""

from __future__ import annotations

import enum
import uuid
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Enum,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    select,
    text,
)
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column, relationship

from triage.store.db import Base, address, intpk, jsondict, jsonlist, sha256hex, utc, utcnow


class TicketStatus(str, enum.Enum):
    new = "new"
    open = "open"
    waiting = "waiting"
    resolved = "resolved"


class Direction(str, enum.Enum):
    inbound = "inbound"
    outbound = "outbound"


def new_uid() -> str:
    return uuid.uuid4().hex


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(cls, name=name, native_enum=False, length=16, validate_strings=True)


class Blob(Base):
    """Content-addressed bytes: a raw mail or an attachment, stored once whoever sends it again."""

    __tablename__ = "blobs"

    sha256: Mapped[sha256hex] = mapped_column(primary_key=True)
    size: Mapped[int]
    codec: Mapped[str] = mapped_column(String(16), default="zlib")
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[utc] = mapped_column(default=utcnow)


class Contact(Base):
    """A person who wrote to the desk (or whom the liaison keeps), known by one or more addresses.

    The addresses live in `contact_addresses` (one primary, where mail to them goes by default);
    labels (languages, projects, roles, tags), the edit history and merges in `contact_models`.
    A contact merged into another keeps its row, hidden, with `merged_into_id` set, so that the
    merge can be undone.
    """

    __tablename__ = "contacts"

    id: Mapped[intpk]
    uid: Mapped[str] = mapped_column(String(32), unique=True, default=new_uid)  # stable: the vCard UID
    name: Mapped[str | None]
    language: Mapped[str | None] = mapped_column(String(16))  # the language to write to them in
    bouncing: Mapped[bool] = mapped_column(default=False)
    first_seen: Mapped[utc]
    last_seen: Mapped[utc]
    notes: Mapped[str] = mapped_column(Text, default="")
    consent: Mapped[bool] = mapped_column(default=False)  # to be contacted beyond replies
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"), index=True)

    tickets: Mapped[list[Ticket]] = relationship(back_populates="contact", order_by="Ticket.id")
    addresses: Mapped[list[ContactAddress]] = relationship(
        back_populates="contact", order_by="(ContactAddress.is_primary.desc(), ContactAddress.id)",
        cascade="all, delete-orphan")

    @hybrid_property
    def address(self) -> str | None:
        """The primary address: where mail to this person goes unless a ticket says otherwise."""
        return next((a.address for a in self.addresses if a.is_primary), None)

    @address.inplace.setter
    def _address_setter(self, value: str | None) -> None:
        primary = next((a for a in self.addresses if a.is_primary), None)
        if value is None:
            if primary is not None:
                self.addresses.remove(primary)
        elif primary is not None:
            primary.address = value
        else:
            self.addresses.append(ContactAddress(address=value, is_primary=True, added_at=utcnow(), source="edit"))

    @address.inplace.expression
    @classmethod
    def _address_expression(cls) -> ColumnElement[str | None]:
        return (select(ContactAddress.address)
                .where(ContactAddress.contact_id == cls.id, ContactAddress.is_primary)
                .correlate_except(ContactAddress).limit(1).scalar_subquery())


class ContactAddress(Base):
    """One address of a contact; an address belongs to one contact at most (ingest finds the
    person by any of them)."""

    __tablename__ = "contact_addresses"
    __table_args__ = (
        # one primary address per contact (partial: the other addresses are not in it)
        Index("uq_contact_addresses_primary", "contact_id", unique=True,
              postgresql_where=text("is_primary"), sqlite_where=text("is_primary")),
    )

    id: Mapped[intpk]
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    address: Mapped[address] = mapped_column(unique=True)
    is_primary: Mapped[bool] = mapped_column(default=False)
    added_at: Mapped[utc] = mapped_column(default=utcnow)
    source: Mapped[str] = mapped_column(String(16), default="mail")  # mail, edit, import, migration

    contact: Mapped[Contact] = relationship(back_populates="addresses")


class Ticket(Base):
    __tablename__ = "tickets"

    id: Mapped[intpk]
    reference: Mapped[str] = mapped_column(String(32), unique=True)
    subject: Mapped[str | None]
    status: Mapped[TicketStatus] = mapped_column(_enum(TicketStatus, "ticket_status"))
    team: Mapped[str | None] = mapped_column(String(64), index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"), index=True)
    linked_ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    flag: Mapped[str | None] = mapped_column(String(200))
    # Set when the liaison merged this ticket into another: later mail lands on the survivor.
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    # ISO 639-1 code of the first mail's language (triage.language), detected when the ticket opened;
    # None: too short or unclear to tell, or opened before detection (`triage tickets detect-language`).
    language: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[utc]
    updated_at: Mapped[utc]
    # Set when the ticket's facts change (status, team, a reply): its reminder clock
    # (schedule_models.TicketClock) is recomputed by the next reminder run. None: up to date.
    clock_stale_at: Mapped[utc | None] = mapped_column(default=utcnow)

    contact: Mapped[Contact | None] = relationship(back_populates="tickets")
    messages: Mapped[list[Message]] = relationship(back_populates="ticket", order_by="Message.id")
    events: Mapped[list[Event]] = relationship(back_populates="ticket", order_by="Event.id")


class Message(Base):
    """One inbound or outbound mail. `message_id` is unique: a mail delivered twice is stored once."""

    __tablename__ = "messages"

    id: Mapped[intpk]
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    direction: Mapped[Direction] = mapped_column(_enum(Direction, "direction"))
    message_id: Mapped[str | None] = mapped_column(String(998), unique=True)
    in_reply_to: Mapped[str | None] = mapped_column(String(998))
    references: Mapped[jsonlist]
    from_addr: Mapped[str | None] = mapped_column(String(320), index=True)
    from_name: Mapped[str | None]
    to_addrs: Mapped[jsonlist]
    cc_addrs: Mapped[jsonlist]
    subject: Mapped[str | None] = mapped_column(Text)
    date: Mapped[utc | None]
    received_at: Mapped[utc]
    body_text: Mapped[str] = mapped_column(Text, default="")
    new_text: Mapped[str] = mapped_column(Text, default="")
    quoted_text: Mapped[str] = mapped_column(Text, default="")
    signature: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16))
    kind_reason: Mapped[str | None]
    list_id: Mapped[str | None]
    defects: Mapped[jsonlist]
    size: Mapped[int]
    oversize: Mapped[bool] = mapped_column(default=False)
    raw_sha256: Mapped[sha256hex] = mapped_column(ForeignKey("blobs.sha256"), unique=True)
    source: Mapped[str | None] = mapped_column(String(500))
    thread_reason: Mapped[str] = mapped_column(String(500))
    extra: Mapped[jsondict]

    ticket: Mapped[Ticket | None] = relationship(back_populates="messages")
    attachments: Mapped[list[Attachment]] = relationship(back_populates="message", order_by="Attachment.id")


class Attachment(Base):
    """A part of a message. The sender's filename is data for display, never a filesystem path."""

    __tablename__ = "attachments"

    id: Mapped[intpk]
    message_pk: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    blob_sha256: Mapped[sha256hex] = mapped_column(ForeignKey("blobs.sha256"))
    filename: Mapped[str | None]
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int]
    inline: Mapped[bool] = mapped_column(default=False)
    content_id: Mapped[str | None]

    message: Mapped[Message] = relationship(back_populates="attachments")


class Event(Base):
    """The log of every change: who did what to which ticket, and when."""

    __tablename__ = "events"

    id: Mapped[intpk]
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    at: Mapped[utc]
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    detail: Mapped[jsondict]

    ticket: Mapped[Ticket | None] = relationship(back_populates="events")


class Quarantine(Base):
    """A mail that could not be parsed or stored, kept raw with the reason until it is re-run."""

    __tablename__ = "quarantine"
    __table_args__ = (UniqueConstraint("raw_sha256"),)

    id: Mapped[intpk]
    raw_sha256: Mapped[sha256hex] = mapped_column(ForeignKey("blobs.sha256"))
    source: Mapped[str | None] = mapped_column(String(500))
    stage: Mapped[str] = mapped_column(String(16))
    error: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[utc]
    updated_at: Mapped[utc]
    released_at: Mapped[utc | None]


class ImapFolderState(Base):
    """Where the poller stands in one (account, folder): its UIDVALIDITY and the highest UID done."""

    __tablename__ = "imap_folders"
    __table_args__ = (UniqueConstraint("account", "folder"),)

    id: Mapped[intpk]
    account: Mapped[str] = mapped_column(String(100))
    folder: Mapped[str] = mapped_column(String(500))
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger)
    first_contact_at: Mapped[utc]
    start_policy: Mapped[str] = mapped_column(String(32))
    updated_at: Mapped[utc]
    last_pass_at: Mapped[utc | None]  # the end of the last pass that read the folder through (metrics)


class ImapLedgerEntry(Base):
    """One server message (account, folder, UIDVALIDITY, UID) and what became of it.

    Written in the same transaction as the message it produced, so a UID is either done
    (ledger row and message both committed) or not done at all.
    """

    __tablename__ = "imap_ledger"
    __table_args__ = (
        UniqueConstraint("account", "folder", "uidvalidity", "uid"),
        Index("ix_imap_ledger_unmarked", "account", "folder", "marked_at"),
    )

    id: Mapped[intpk]
    account: Mapped[str] = mapped_column(String(100))
    folder: Mapped[str] = mapped_column(String(500))
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    uid: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[str | None] = mapped_column(String(998))
    raw_sha256: Mapped[sha256hex | None]
    outcome: Mapped[str] = mapped_column(String(16))
    message_pk: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    seen_at: Mapped[utc]
    marked_at: Mapped[utc | None]


class Suggestion(Base):
    """A routing proposal for a ticket: the team (None when the model abstained), its confidence
    and the evidence the liaison sees. One per ticket and model version."""

    __tablename__ = "suggestions"
    __table_args__ = (UniqueConstraint("ticket_id", "model_version"),)

    id: Mapped[intpk]
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    team: Mapped[str | None] = mapped_column(String(64))
    confidence: Mapped[float]
    model_version: Mapped[str] = mapped_column(String(100))
    ranked: Mapped[jsonlist]
    evidence: Mapped[jsonlist]
    created_at: Mapped[utc]


class Decision(Base):
    """The liaison's routing decision: accepted or corrected. Every one is a labelled example."""

    __tablename__ = "decisions"

    id: Mapped[intpk]
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    suggestion_id: Mapped[int | None] = mapped_column(ForeignKey("suggestions.id"))
    suggested_team: Mapped[str | None] = mapped_column(String(64))
    team: Mapped[str] = mapped_column(String(64))
    agreed: Mapped[bool]
    actor: Mapped[str] = mapped_column(String(200))
    decided_at: Mapped[utc] = mapped_column(index=True)


class RoutingModel(Base):
    """A promotion of a routing model: the latest row is the model in use, everywhere.

    `folder` is its artefact under `<routing.model_path>.versions/`. `replaces` is the row it
    replaced (0 for the first), unique: of two promotions measured against the same model, one
    is recorded, whatever the lock around promotion does (triage.routing.model_store)."""

    __tablename__ = "routing_models"

    id: Mapped[intpk]
    version: Mapped[str] = mapped_column(String(100))
    folder: Mapped[str] = mapped_column(String(200), unique=True)
    replaces: Mapped[int] = mapped_column(unique=True)
    promoted_at: Mapped[utc]
    promoted_by: Mapped[str] = mapped_column(String(200))
    scores: Mapped[jsondict]


Index("ix_tickets_status_team", Ticket.status, Ticket.team)
# Search's date filter (triage.search): PostgreSQL ANDs a range of these with the full-text GIN bitmap,
# SQLite reads from it the id range of a window to bound its FTS5 walk.
Index("ix_messages_received_at", Message.received_at)
Index("ix_tickets_created_at", Ticket.created_at)
# Partial: only the few tickets whose reminder clock is stale are in it.
Index("ix_tickets_clock_stale", Ticket.id, postgresql_where=Ticket.clock_stale_at.is_not(None),
      sqlite_where=Ticket.clock_stale_at.is_not(None))
# Partial: the tickets no team owns yet (the queue's), in id order. Without it PostgreSQL finds the
# oldest waiting tickets by walking the primary key through every routed one (bench/bench_web.py:
# 21 ms at 100,000 tickets, 0.3 ms with it). Only `team IS NULL`, a literal the queries repeat:
# a condition on a bound parameter (status) could not prove that the index applies.
Index("ix_tickets_unrouted", Ticket.id, postgresql_where=Ticket.team.is_(None), sqlite_where=Ticket.team.is_(None))
# The reports read every ticket's arrival, team and contact (tickets not merged away, in a
# period): this covering index serves them without reading the table (bench/bench_reports.py).
Index("ix_tickets_reports", Ticket.merged_into_id, Ticket.created_at, Ticket.team, Ticket.contact_id)
# Covering indexes for the reports' mail per kind and suggestions per day: without them a report
# reads every message's row (bodies included) and every suggestion's evidence.
Index("ix_messages_reports", Message.direction, Message.received_at, Message.kind, Message.ticket_id)
Index("ix_suggestions_reports", Suggestion.created_at, Suggestion.team, Suggestion.ticket_id)
# The corrections (suggested team against team chosen) group in this index's order: no sort.
Index("ix_decisions_pairs", Decision.suggested_team, Decision.team, Decision.decided_at)

__all__: list[Any] = [
    "Attachment",
    "Blob",
    "Contact",
    "ContactAddress",
    "Decision",
    "Direction",
    "Event",
    "ImapFolderState",
    "ImapLedgerEntry",
    "Message",
    "Quarantine",
    "RoutingModel",
    "Suggestion",
    "Ticket",
    "TicketStatus",
]
