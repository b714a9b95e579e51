"""The address book: a contact is a person with several addresses, labels, notes and consent.

Use cases for the CLI (`triage contact`) and the workbench (/contacts): the list with a filter, one
contact's page (tickets, messages, teams, bounces, history), and edits, each change written to
`contact_changes` (who changed which field from what to what). Merges live in `contact_merge`,
files in `contact_files`.

Who may do what: the liaison edits; a viewer reads every contact; staff read only contacts who
have a ticket on their team (any other is NotFound, like a missing one).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, selectinload

from triage.contacts.exchange import MAX_LABEL, MAX_NAME, MAX_NOTES
from triage.desk.actors import Actor, visible
from triage.desk.errors import Conflict, Forbidden, Invalid, NotFound
from triage.ingest.boundary import address as valid_address
from triage.store.contact_models import LABEL_KINDS, ContactChange, ContactLabel, ContactMerge
from triage.store.db import utcnow
from triage.store.models import Contact, ContactAddress, Event, Message, Ticket
from triage.store.web_models import Role

if TYPE_CHECKING:
    from triage.bootstrap import App

CONTACT_LIMIT = 200
MESSAGE_LIMIT = 200
HINT_REF = "name a contact by its number or one of its addresses, e.g. 42 or ada@example.org"


# -- who may --------------------------------------------------------------------------------------


def require_contact_editor(actor: Actor) -> None:
    if actor.role is not Role.liaison:
        raise Forbidden(f"{actor.name} cannot change contacts", "only the liaison keeps the address book")


def readable_filter(actor: Actor) -> Any:
    """The condition on Contact for the contacts `actor` may read (None: all of them)."""
    if actor.role is not Role.staff:
        return None
    return visible(select(Ticket.id), actor).where(Ticket.contact_id == Contact.id).exists()


def may_read(session: Session, actor: Actor, contact: Contact) -> bool:
    if actor.role is not Role.staff:
        return True
    return bool(session.scalar(visible(select(Ticket.id), actor).where(Ticket.contact_id == contact.id).limit(1)))


def find_contact(session: Session, ref: str) -> Contact | None:
    """A contact by its number or any of its addresses (case does not matter)."""
    ref = ref.strip()
    if ref.isascii() and ref.isdigit() and len(ref) <= 12:
        return session.get(Contact, int(ref))
    if "@" in ref:
        return session.scalar(select(Contact).where(Contact.id.in_(_owner(ref))))
    return None


def _owner(address: str) -> Any:
    """The contact id owning `address`, by the unique index: every stored address is lower-case
    (ingest, edits and imports all go through `boundary.address`)."""
    return select(ContactAddress.contact_id).where(ContactAddress.address == address.strip().lower())


def readable_contact(session: Session, actor: Actor, ref: str) -> Contact:
    contact = find_contact(session, ref)
    if contact is None or not may_read(session, actor, contact):
        raise NotFound(f"no contact {ref[:80]}", HINT_REF)
    return contact


# -- reading --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContactRow:
    id: int
    name: str | None
    address: str | None
    addresses: int
    tags: tuple[str, ...]
    tickets: int
    consent: bool
    bouncing: bool
    last_seen: datetime


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def list_contacts(app: App, actor: Actor, text: str | None = None, *, tag: str | None = None,
                  limit: int | None = CONTACT_LIMIT) -> list[ContactRow]:
    """The contacts `actor` may read (merged ones are not listed: they live on in the survivor),
    newest contact first; `text` matches a name, an address or a label, `tag` one label exactly."""
    query = select(Contact).where(Contact.merged_into_id.is_(None)).options(selectinload(Contact.addresses))
    if (mine := readable_filter(actor)) is not None:
        query = query.where(mine)
    text = (text or "").strip()
    if text:
        pattern = _like(text.lower())
        query = query.where(or_(
            func.lower(Contact.name).like(pattern, escape="\\"),
            Contact.id.in_(select(ContactAddress.contact_id).where(
                func.lower(ContactAddress.address).like(pattern, escape="\\"))),
            Contact.id.in_(select(ContactLabel.contact_id).where(
                func.lower(ContactLabel.value).like(pattern, escape="\\"))),
        ))
    if tag:
        query = query.where(Contact.id.in_(select(ContactLabel.contact_id).where(ContactLabel.value == tag.strip())))
    query = query.order_by(Contact.last_seen.desc(), Contact.id.desc())
    with app.reads() as session:
        contacts = list(session.scalars(query if limit is None else query.limit(limit)))
        ids = [c.id for c in contacts]
        tags: dict[int, list[str]] = {}
        for contact_id, value in session.execute(
                select(ContactLabel.contact_id, ContactLabel.value)
                .where(ContactLabel.contact_id.in_(ids), ContactLabel.kind.in_(("role", "tag")))
                .order_by(ContactLabel.kind, ContactLabel.value)):
            tags.setdefault(contact_id, []).append(value)
        counted: Any = visible(select(Ticket.contact_id, func.count()), actor)  # type: ignore[type-var]
        counts: dict[int, int] = {cid: n for cid, n in session.execute(
            counted.where(Ticket.contact_id.in_(ids)).group_by(Ticket.contact_id))}
        return [ContactRow(c.id, c.name, c.address, len(c.addresses), tuple(tags.get(c.id, [])),
                           int(counts.get(c.id, 0)), c.consent, c.bouncing, c.last_seen) for c in contacts]


@dataclass(frozen=True)
class AddressView:
    address: str
    primary: bool
    source: str
    added_at: datetime


@dataclass(frozen=True)
class TicketLine:
    reference: str
    subject: str | None
    status: str
    team: str | None
    created_at: datetime


@dataclass(frozen=True)
class MessageLine:
    ticket: str | None
    direction: str
    from_addr: str | None
    subject: str | None
    kind: str
    at: datetime


@dataclass(frozen=True)
class BounceLine:
    ticket: str | None
    at: datetime
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class ChangeLine:
    at: datetime
    actor: str
    action: str
    field: str | None
    old: str | None
    new: str | None


@dataclass(frozen=True)
class MergedFrom:
    id: int
    name: str | None
    at: datetime


@dataclass(frozen=True)
class ContactPage:
    id: int
    uid: str
    name: str | None
    language: str | None
    notes: str
    consent: bool
    bouncing: bool
    first_seen: datetime
    last_seen: datetime
    merged_into: int | None
    addresses: list[AddressView]
    labels: dict[str, list[str]]
    tickets: list[TicketLine] = field(default_factory=list)
    messages: list[MessageLine] = field(default_factory=list)
    teams: list[str] = field(default_factory=list)
    bounces: list[BounceLine] = field(default_factory=list)
    history: list[ChangeLine] = field(default_factory=list)
    merged_from: list[MergedFrom] = field(default_factory=list)

    @property
    def address(self) -> str | None:
        return next((a.address for a in self.addresses if a.primary), None)


def labels_of(session: Session, contact_id: int) -> dict[str, list[str]]:
    labels: dict[str, list[str]] = {kind: [] for kind in LABEL_KINDS}
    for kind, value in session.execute(select(ContactLabel.kind, ContactLabel.value)
                                       .where(ContactLabel.contact_id == contact_id).order_by(ContactLabel.id)):
        labels.setdefault(kind, []).append(value)
    return labels


def contact_page(app: App, actor: Actor, ref: str) -> ContactPage:
    """Everything the desk holds about one contact, as far as `actor` may see it."""
    with app.reads() as session:
        contact = readable_contact(session, actor, ref)
        addresses = {a.address.lower() for a in contact.addresses}
        tickets = list(session.scalars(visible(select(Ticket), actor).where(Ticket.contact_id == contact.id)
                                       .order_by(Ticket.id.desc())))
        ticket_ids = [t.id for t in tickets]
        references = {t.id: t.reference for t in tickets}
        messages: list[Message] = list(session.scalars(
            select(Message).where(Message.ticket_id.in_(ticket_ids))
            .order_by(Message.id.desc()).limit(MESSAGE_LIMIT))) if ticket_ids else []
        bounces = []
        for ticket_id, at, detail in session.execute(
                select(Event.ticket_id, Event.at, Event.detail)
                .where(Event.ticket_id.in_(ticket_ids), Event.action == "bounced").order_by(Event.id.desc())):
            hit = tuple(a for a in (detail or {}).get("addresses", []) if str(a).lower() in addresses)
            bounces.append(BounceLine(references.get(ticket_id or 0), at, hit))
        history = [ChangeLine(c.at, c.actor, c.action, c.field, c.old, c.new) for c in session.scalars(
            select(ContactChange).where(ContactChange.contact_id == contact.id).order_by(ContactChange.id.desc()))]
        merged_from = [MergedFrom(m.merged_id, name, m.at) for m, name in session.execute(
            select(ContactMerge, Contact.name).join(Contact, Contact.id == ContactMerge.merged_id)
            .where(ContactMerge.survivor_id == contact.id, ContactMerge.undone_at.is_(None)))]
        return ContactPage(
            id=contact.id, uid=contact.uid, name=contact.name, language=contact.language, notes=contact.notes,
            consent=contact.consent, bouncing=contact.bouncing, first_seen=contact.first_seen,
            last_seen=contact.last_seen, merged_into=contact.merged_into_id,
            addresses=[AddressView(a.address, a.is_primary, a.source, a.added_at) for a in contact.addresses],
            labels=labels_of(session, contact.id),
            tickets=[TicketLine(t.reference, t.subject, t.status.value, t.team, t.created_at) for t in tickets],
            messages=[MessageLine(references.get(m.ticket_id or 0), m.direction.value, m.from_addr, m.subject,
                                  m.kind, m.date or m.received_at) for m in messages],
            teams=sorted({t.team for t in tickets if t.team}),
            bounces=bounces, history=history, merged_from=merged_from,
        )


# -- editing --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContactEdit:
    """What to change; None (or empty) leaves a field as it is. `name` "" clears the name."""

    name: str | None = None
    language: str | None = None
    notes: str | None = None
    consent: bool | None = None
    add_labels: tuple[tuple[str, str], ...] = ()
    remove_labels: tuple[tuple[str, str], ...] = ()
    add_addresses: tuple[str, ...] = ()
    remove_addresses: tuple[str, ...] = ()
    primary: str | None = None


def _yes_no(value: bool) -> str:
    return "yes" if value else "no"


def _clean(value: str, what: str, limit: int, *, lines: bool = False) -> str:
    value = value.strip() if not lines else value.replace("\r\n", "\n").strip()
    bad = [c for c in value if (ord(c) < 32 and not (lines and c in "\n\t")) or ord(c) == 127]
    if bad:
        raise Invalid(f"the {what} holds control characters", "type it again without them")
    if len(value) > limit:
        raise Invalid(f"the {what} is longer than {limit} characters", "shorten it")
    return value


def record(session: Session, contact: Contact, actor: Actor, action: str, now: datetime,
           changes: Iterable[tuple[str, str | None, str | None]], **detail: Any) -> int:
    """Write one history row per (field, old, new); returns how many."""
    count = 0
    for name, old, new in changes:
        session.add(ContactChange(contact_id=contact.id, at=now, actor=actor.label, action=action, field=name,
                                  old=old, new=new, detail=detail))
        count += 1
    return count


def apply_edit(session: Session, contact: Contact, edit: ContactEdit, now: datetime,
               *, source: str = "edit") -> list[tuple[str, str | None, str | None]]:
    """Change `contact` as `edit` says, in the caller's session; the (field, old, new) changed."""
    changes: list[tuple[str, str | None, str | None]] = []
    if edit.name is not None:
        name = _clean(edit.name, "name", MAX_NAME) or None
        if name != contact.name:
            changes.append(("name", contact.name, name))
            contact.name = name
    if edit.language is not None:
        language = _clean(edit.language, "language", 16) or None
        if language != contact.language:
            changes.append(("language", contact.language, language))
            contact.language = language
    if edit.notes is not None:
        notes = _clean(edit.notes, "notes", MAX_NOTES, lines=True)
        if notes != contact.notes:
            changes.append(("notes", contact.notes or None, notes or None))
            contact.notes = notes
    if edit.consent is not None and edit.consent != contact.consent:
        changes.append(("consent", _yes_no(contact.consent), _yes_no(edit.consent)))
        contact.consent = edit.consent
    have = {(label.kind, label.value): label for label in session.scalars(
        select(ContactLabel).where(ContactLabel.contact_id == contact.id))}
    for kind, value in edit.remove_labels:
        label = have.pop((kind, value.strip()), None)
        if label is not None:
            session.delete(label)
            changes.append((kind, value.strip(), None))
    for kind, value in edit.add_labels:
        if kind not in LABEL_KINDS:
            raise Invalid(f"no such label kind: {kind}", f"use one of {', '.join(LABEL_KINDS)}")
        value = _clean(value, kind, MAX_LABEL)
        if value and (kind, value) not in have:
            have[(kind, value)] = label = ContactLabel(contact_id=contact.id, kind=kind, value=value)
            session.add(label)
            changes.append((kind, None, value))
    changes += _edit_addresses(session, contact, edit, now, source)
    return changes


def _address(value: str) -> str:
    address = valid_address(value)
    if address is None:
        raise Invalid(f"not an address: {value[:80]!r}", "write it as name@example.org")
    return address


def _edit_addresses(session: Session, contact: Contact, edit: ContactEdit, now: datetime,
                    source: str) -> list[tuple[str, str | None, str | None]]:
    changes: list[tuple[str, str | None, str | None]] = []
    for value in edit.add_addresses:
        address = _address(value)
        owner = session.scalar(select(ContactAddress).where(ContactAddress.address == address))
        if owner is not None:
            if owner.contact_id != contact.id:
                raise Conflict(f"{address} belongs to contact #{owner.contact_id}",
                               f"merge the two contacts instead: triage contact merge {owner.contact_id} {contact.id}")
            continue
        contact.addresses.append(ContactAddress(address=address, is_primary=not contact.addresses, added_at=now,
                                                source=source))
        changes.append(("address", None, address))
    for value in edit.remove_addresses:
        address = value.strip().lower()
        row = next((a for a in contact.addresses if a.address.lower() == address), None)
        if row is None:
            raise Invalid(f"{value[:80]} is not an address of contact #{contact.id}", "see its addresses")
        if len(contact.addresses) == 1:
            raise Invalid(f"{address} is the only address of contact #{contact.id}", "add another one first")
        contact.addresses.remove(row)
        session.flush()  # the row is gone before another becomes primary (one primary per contact)
        if row.is_primary:
            contact.addresses[0].is_primary = True
        changes.append(("address", row.address, None))
    if edit.primary:
        address = edit.primary.strip().lower()
        chosen = next((a for a in contact.addresses if a.address.lower() == address), None)
        if chosen is None:
            raise Invalid(f"{edit.primary[:80]} is not an address of contact #{contact.id}", "add it first")
        current = next((a for a in contact.addresses if a.is_primary), None)
        if current is not chosen:
            if current is not None:
                current.is_primary = False
                session.flush()
            chosen.is_primary = True
            changes.append(("primary", current.address if current else None, chosen.address))
    return changes


def edit_contact(app: App, actor: Actor, ref: str, edit: ContactEdit, *, now: datetime | None = None) -> int:
    """Apply `edit` to contact `ref` and log each change; returns how many fields changed."""
    require_contact_editor(actor)
    now = now or utcnow()
    with app.sessions.begin() as session:
        contact = readable_contact(session, actor, ref)
        if contact.merged_into_id is not None:
            raise Conflict(f"contact #{contact.id} was merged into #{contact.merged_into_id}",
                           f"edit #{contact.merged_into_id}, or undo the merge first")
        changes = apply_edit(session, contact, edit, now)
        session.flush()
        return record(session, contact, actor, "edit", now, changes)


__all__ = [
    "ContactEdit", "ContactPage", "ContactRow", "apply_edit", "contact_page", "edit_contact", "find_contact",
    "list_contacts", "readable_contact", "readable_filter", "record", "require_contact_editor",
]
