"""Who a person is to the desk: the one place that says which rows hold their data.

Export and erasure both start here, so whatever this module finds is what a person receives and
what is erased; a table that holds personal data and is not named here is a table that erasure
misses (tests/test_privacy_complete.py scans every column of every table to catch that).

Today a person is one `contacts` row (one address). When contacts become people with several
addresses (a `contact_addresses` table, merges, tags, notes, edit history), `person_scope` is the
function to extend: see its docstring.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.utils import getaddresses

from sqlalchemy import select
from sqlalchemy.orm import Session

from triage.store.blobs import BlobErased, get_blob_head
from triage.store.models import Contact, ImapLedgerEntry, Message, Quarantine, Ticket
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
    """A contact by id (digits) or by address (case-insensitive)."""
    ident = ref.strip()
    if ident.isascii() and ident.isdigit() and len(ident) <= 12:
        return session.get(Contact, int(ident))
    return session.scalar(select(Contact).where(Contact.address == ident.lower()))


def person_scope(session: Session, contact_ids: Iterable[int]) -> Scope:
    """Everything held about the people with these contact ids.

    To extend when contacts become people with several addresses: `addresses` must be every
    address of the person (`contact_addresses` rows, and those of contacts merged into them, so an
    undo of a merge cannot bring an address back), `contact_ids` every contact row merged into
    the person; the new tables holding the person's tags, notes and edit history must be listed
    (by contact id) and deleted by `triage.privacy.erase` and copied by `triage.privacy.export`.
    Searching rows by address already covers every address given here.
    """
    ids = frozenset(contact_ids)
    addresses = frozenset(a.lower() for a in session.scalars(select(Contact.address).where(Contact.id.in_(ids))))
    tickets = frozenset(session.scalars(select(Ticket.id).where(Ticket.contact_id.in_(ids)))) if ids else frozenset()
    return _scope(session, ids, addresses, tickets, with_quarantine=True)


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
