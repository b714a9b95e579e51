"""Who a person is to the desk: the one place that says which rows hold their data.

Export and erasure both start here, so whatever this module finds is what a person receives and
what is erased; a table that holds personal data and is not named here is a table that erasure
misses (tests/test_privacy_complete.py scans every column of every table to catch that).

A person is a `contacts` row with every contact merged into it (rows kept, hidden, so that a
merge can be undone) and every address of all of them (`contact_addresses`); their labels, notes,
edit history and merges belong to those contact rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.utils import getaddresses

from sqlalchemy import select
from sqlalchemy.orm import Session

from triage.store.blobs import BlobErased, get_blob_head
from triage.store.models import Contact, ContactAddress, ImapLedgerEntry, Message, Quarantine, Ticket
from triage.store.outbox_models import Outbox

HEAD_BYTES = 16_384  # enough of a quarantined mail to read its From header


@dataclass(frozen=True)
class Scope:
    """The rows of one person (or, for retention, of some tickets), by primary key.

    `messages` holds every message on their tickets (theirs, the desk's replies, bounces, staff
    mail relayed) and their own mail on anyone's ticket or on none; `outbox` every mail queued on
    their tickets or to their address; `ledger` the IMAP ledger rows of those messages.
    """

    contact_ids: frozenset[int]
    addresses: frozenset[str]
    ticket_ids: frozenset[int]
    message_ids: frozenset[int]
    outbox_ids: frozenset[int]
    quarantine_ids: frozenset[int]
    ledger_ids: frozenset[int]

    @property
    def empty(self) -> bool:
        return not (self.contact_ids or self.ticket_ids or self.message_ids or self.outbox_ids
                    or self.quarantine_ids)


def chunks(values: Iterable[int], size: int = 500) -> Iterable[list[int]]:
    """Sorted id lists small enough for one IN (...) on either engine."""
    ordered = sorted(values)
    for start in range(0, len(ordered), size):
        yield ordered[start:start + size]


def find_contact(session: Session, ref: str) -> Contact | None:
    """A contact by id (digits) or by any of its addresses (case-insensitive)."""
    ident = ref.strip()
    if ident.isascii() and ident.isdigit() and len(ident) <= 12:
        return session.get(Contact, int(ident))
    return session.scalar(select(Contact).join(ContactAddress, ContactAddress.contact_id == Contact.id)
                          .where(ContactAddress.address == ident.lower()))


def person_scope(session: Session, contact_ids: Iterable[int]) -> Scope:
    """Everything held about the people with these contact ids.

    `contact_ids` grows by every contact merged into them (at any depth), and `addresses` is every
    address of all those rows, so that undoing a merge cannot bring an erased address back. The
    contacts' labels, edit history and merges are found by these ids (`triage.privacy.erase`
    deletes them, `triage.privacy.export` copies them).
    """
    ids = set(contact_ids)
    frontier = set(ids)
    while frontier:
        merged = set(session.scalars(select(Contact.id).where(Contact.merged_into_id.in_(sorted(frontier))))) - ids
        ids |= merged
        frontier = merged
    addresses: set[str] = set()
    tickets: set[int] = set()
    for part in chunks(ids):
        addresses.update(a.lower() for a in session.scalars(
            select(ContactAddress.address).where(ContactAddress.contact_id.in_(part))))
        tickets.update(session.scalars(select(Ticket.id).where(Ticket.contact_id.in_(part))))
    return _scope(session, frozenset(ids), frozenset(addresses), frozenset(tickets), with_quarantine=True)


def tickets_scope(session: Session, ticket_ids: Iterable[int]) -> Scope:
    """The content of these tickets only (the retention run): no contact, no address."""
    return _scope(session, frozenset(), frozenset(), frozenset(ticket_ids), with_quarantine=False)


def _scope(session: Session, contact_ids: frozenset[int], addresses: frozenset[str], ticket_ids: frozenset[int],
           *, with_quarantine: bool) -> Scope:
    messages: set[int] = set()
    outbox: set[int] = set()
    for part in chunks(ticket_ids):
        messages.update(session.scalars(select(Message.id).where(Message.ticket_id.in_(part))))
        outbox.update(session.scalars(select(Outbox.id).where(Outbox.ticket_id.in_(part))))
    if addresses:
        messages.update(session.scalars(select(Message.id).where(Message.from_addr.in_(addresses))))
        outbox.update(session.scalars(select(Outbox.id).where(Outbox.to_addr.in_(addresses))))
    for part in chunks(outbox):
        messages.update(m for m in session.scalars(select(Outbox.message_pk).where(Outbox.id.in_(part))) if m)
    ledger: set[int] = set()
    for part in chunks(messages):
        ledger.update(session.scalars(select(ImapLedgerEntry.id).where(ImapLedgerEntry.message_pk.in_(part))))
    quarantine = _quarantined_from(session, addresses) if with_quarantine and addresses else frozenset()
    return Scope(contact_ids, addresses, ticket_ids, frozenset(messages), frozenset(outbox), quarantine,
                 frozenset(ledger))


def _quarantined_from(session: Session, addresses: frozenset[str]) -> frozenset[int]:
    """Quarantined mail whose From names one of `addresses` (read from its stored header)."""
    found = set()
    for row_id, digest in session.execute(select(Quarantine.id, Quarantine.raw_sha256)):
        try:
            head = get_blob_head(session, digest, HEAD_BYTES)
        except BlobErased:
            continue
        try:
            headers = BytesHeaderParser().parsebytes(head)
            senders = {addr.lower() for _, addr in getaddresses([str(v) for v in headers.get_all("From", [])])}
        except Exception:  # noqa: BLE001, S112 - a header too broken to read names nobody
            continue
        if senders & addresses:
            found.add(row_id)
    return frozenset(found)


__all__ = ["Scope", "chunks", "find_contact", "person_scope", "tickets_scope"]
