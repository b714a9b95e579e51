"""The address book in and out: import a CSV or vCard file (a preview first, then --apply),
export all of it (CSV, vCard, JSON), and the suggested merges of `triage.contacts.duplicates`.

An import row whose address the desk knows is merged into that contact (new addresses, labels,
an empty name or notes filled); a row naming addresses of two different contacts is refused, as
is a row repeating an address of an earlier row, and every bad row says why. The preview and
the apply run the same plan, so what the liaison saw is what is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from triage.contacts.duplicates import ContactFacts, Duplicate, find_duplicates
from triage.contacts.exchange import Card, FileRefused, Record, read_file
from triage.desk.actors import Actor
from triage.desk.contacts import (
    ContactEdit,
    apply_edit,
    readable_filter,
    record,
    require_contact_editor,
)
from triage.desk.errors import Invalid
from triage.store.contact_models import ContactLabel
from triage.store.db import utcnow
from triage.store.models import Contact, ContactAddress, Direction, Message, Ticket

if TYPE_CHECKING:
    from triage.bootstrap import App


@dataclass(frozen=True)
class ImportLine:
    line: int
    outcome: str  # create, merge, unchanged, refuse
    addresses: tuple[str, ...] = ()
    name: str | None = None
    contact: int | None = None  # the contact merged into (or created, once applied)
    reason: str = ""


@dataclass(frozen=True)
class ImportReport:
    applied: bool
    lines: list[ImportLine] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(1 for line in self.lines if line.outcome == outcome)


def _edit_for(card: Card, contact: Contact | None, known: set[str]) -> ContactEdit:
    """What a card changes on `contact` (None: a new one): it fills, never overwrites."""
    return ContactEdit(
        name=card.name if card.name and (contact is None or not contact.name) else None,
        language=card.language if card.language and (contact is None or not contact.language) else None,
        notes=card.notes if card.notes and (contact is None or not contact.notes) else None,
        consent=card.consent,
        add_labels=card.labels,
        add_addresses=tuple(a for a in card.addresses if a not in known),
    )


def _plan(session: Session, cards: list[tuple[int, Card]]) -> list[tuple[int, Card, int | None, str]]:
    """Per card: (line, card, the existing contact it merges into or None, refusal reason or "")."""
    wanted = {a for _, card in cards for a in card.addresses}
    owners: dict[str, tuple[int, int | None]] = {}
    for address, contact_id, merged_into in session.execute(
            select(ContactAddress.address, ContactAddress.contact_id, Contact.merged_into_id)
            .join(Contact, Contact.id == ContactAddress.contact_id)
            .where(ContactAddress.address.in_(wanted))):
        owners[address.lower()] = (contact_id, merged_into)
    claimed: dict[str, int] = {}
    plan: list[tuple[int, Card, int | None, str]] = []
    for line, card in cards:
        targets = {owners[a][0] for a in card.addresses if a in owners}
        earlier = sorted({claimed[a] for a in card.addresses if a in claimed})
        if earlier:
            plan.append((line, card, None, f"an address already in line {earlier[0]} of this file"))
        elif len(targets) > 1:
            listed = ", ".join(f"#{t}" for t in sorted(targets))
            plan.append((line, card, None, f"its addresses belong to different contacts ({listed}): merge them first"))
        else:
            plan.append((line, card, targets.pop() if targets else None, ""))
        for address in card.addresses:
            claimed.setdefault(address, line)
    return plan


def import_contacts(app: App, actor: Actor, data: bytes, filename: str = "", *, apply: bool = False,
                    now: datetime | None = None) -> ImportReport:
    """Read a CSV or vCard file and report per row what it would do (create, merge into an existing
    contact by address, or refuse with the reason); with `apply`, do it, in one transaction."""
    require_contact_editor(actor)
    now = now or utcnow()
    try:
        rows = read_file(data, filename)
    except FileRefused as exc:
        raise Invalid(f"the file is refused: {exc}", "export a CSV with a header row (name, email, tags) "
                      "or a vCard file, UTF-8, at most 5 MB") from None
    factory = app.sessions.begin if apply else app.reads
    with factory() as session:
        cards = [(row.line, row.card) for row in rows if row.card is not None]
        planned = {line: (card, target, why) for line, card, target, why in _plan(session, cards)}
        lines: list[ImportLine] = []
        for row in rows:
            if row.card is None:
                lines.append(ImportLine(row.line, "refuse", reason=row.refused or "unreadable"))
                continue
            card, target, why = planned[row.line]
            if why:
                lines.append(ImportLine(row.line, "refuse", card.addresses, card.name, reason=why))
                continue
            contact = session.get(Contact, target) if target is not None else None
            if contact is not None and contact.merged_into_id is not None:
                contact = session.get_one(Contact, contact.merged_into_id)
            known = {a.address.lower() for a in contact.addresses} if contact is not None else set()
            edit = _edit_for(card, contact, known)
            outcome = "create" if contact is None else "merge"
            if apply:
                if contact is None:
                    contact = Contact(name=None, first_seen=now, last_seen=now, notes="", consent=False,
                                      bouncing=False)
                    session.add(contact)
                    session.flush()
                changes = apply_edit(session, contact, edit, now, source="import")
                session.flush()
                if not changes:
                    outcome = "unchanged"
                record(session, contact, actor, "import", now, changes, line=row.line, file=filename[:200])
            elif contact is not None and _no_change(session, contact, edit):
                outcome = "unchanged"
            lines.append(ImportLine(row.line, outcome, card.addresses, card.name,
                                    contact.id if contact is not None else None))
        return ImportReport(apply, lines)


def _no_change(session: Session, contact: Contact, edit: ContactEdit) -> bool:
    labels = {(kind, value) for kind, value in session.execute(
        select(ContactLabel.kind, ContactLabel.value).where(ContactLabel.contact_id == contact.id))}
    return (edit.name is None and edit.language is None and edit.notes is None and not edit.add_addresses
            and (edit.consent is None or edit.consent == contact.consent)
            and all(label in labels for label in edit.add_labels))


def export_records(app: App, actor: Actor) -> list[Record]:
    """Every contact `actor` may read (merged ones live on in their survivor), oldest first."""
    query = (select(Contact).where(Contact.merged_into_id.is_(None)).order_by(Contact.id)
             .options(selectinload(Contact.addresses)))
    if (mine := readable_filter(actor)) is not None:
        query = query.where(mine)
    with app.reads() as session:
        contacts = list(session.scalars(query))
        labels: dict[int, dict[str, list[str]]] = {}
        for contact_id, kind, value in session.execute(
                select(ContactLabel.contact_id, ContactLabel.kind, ContactLabel.value).order_by(ContactLabel.id)):
            labels.setdefault(contact_id, {}).setdefault(kind, []).append(value)
        return [Record(c.id, c.uid, c.name, tuple(a.address for a in c.addresses), c.language,
                       labels.get(c.id, {}), c.notes, c.consent, c.first_seen, c.last_seen) for c in contacts]


@dataclass(frozen=True)
class DuplicateView:
    keep: int
    keep_name: str | None
    keep_address: str | None
    merge: int
    merge_name: str | None
    merge_address: str | None
    reasons: tuple[str, ...]


def duplicate_contacts(app: App, actor: Actor) -> list[DuplicateView]:
    """The suggested merges among the contacts `actor` may read."""
    query = select(Contact).where(Contact.merged_into_id.is_(None)).options(selectinload(Contact.addresses))
    if (mine := readable_filter(actor)) is not None:
        query = query.where(mine)
    with app.reads() as session:
        contacts = {c.id: c for c in session.scalars(query)}
        signatures: dict[int, list[str]] = {}
        for contact_id, signature in session.execute(
                select(Ticket.contact_id, Message.signature).join(Message, Message.ticket_id == Ticket.id)
                .where(Message.direction == Direction.inbound, Message.signature.contains("@"))):
            # filtered here, not by an IN list of every contact id (SQLite caps bound parameters)
            if contact_id in contacts:
                signatures.setdefault(contact_id, []).append(signature)
        facts = [ContactFacts(c.id, c.name, tuple(a.address for a in c.addresses), tuple(signatures.get(c.id, ())))
                 for c in contacts.values()]
        found: list[Duplicate] = find_duplicates(facts)
        return [DuplicateView(d.keep, contacts[d.keep].name, contacts[d.keep].address, d.merge,
                              contacts[d.merge].name, contacts[d.merge].address, d.reasons) for d in found]


__all__ = ["DuplicateView", "ImportLine", "ImportReport", "duplicate_contacts", "export_records", "import_contacts"]
