"""Merge two contacts that are the same person, and undo it exactly.

The merged contact's addresses and tickets move to the survivor, whose empty fields it fills and
whose labels it adds to; the merged row stays, hidden, pointing at the survivor. Later mail from
any moved address lands on the survivor, because ingest finds a person by address. The
`contact_merges` row records what moved (address and ticket ids, labels added, the survivor's
fields before and after), so `unmerge` puts back exactly what belonged to whom: also the tickets
opened after the merge by mail from a moved address.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update

from triage.desk.actors import Actor
from triage.desk.contacts import readable_contact, record, require_contact_editor
from triage.desk.errors import Conflict, Invalid, NotFound
from triage.store.contact_models import ContactLabel, ContactMerge
from triage.store.db import utcnow
from triage.store.models import Contact, ContactAddress, Direction, Message, Ticket

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from triage.bootstrap import App

_FILLED = ("name", "language", "notes")


def _stamp(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def merge_contacts(app: App, actor: Actor, source_ref: str, into_ref: str, *,
                   now: datetime | None = None) -> dict[str, Any]:
    """Merge contact `source_ref` into `into_ref` (the survivor); `unmerge_contact` undoes it."""
    require_contact_editor(actor)
    now = now or utcnow()
    with app.sessions.begin() as session:
        source = readable_contact(session, actor, source_ref)
        into = readable_contact(session, actor, into_ref)
        if source.id == into.id:
            raise Invalid(f"contact #{source.id} cannot be merged into itself", "name the contact to keep")
        for contact in (source, into):
            if contact.merged_into_id is not None:
                raise Conflict(f"contact #{contact.id} was already merged into #{contact.merged_into_id}",
                               f"use #{contact.merged_into_id}")
        if held := list(session.scalars(select(ContactMerge.merged_id).where(
                ContactMerge.survivor_id == source.id, ContactMerge.undone_at.is_(None)))):
            raise Conflict(f"contact{'s' * (len(held) > 1)} {', '.join(f'#{i}' for i in held)} "
                           f"{'are' if len(held) > 1 else 'is'} merged into #{source.id}",
                           f"merge #{into.id} into #{source.id} instead, or undo those merges first")
        moved = [(a.id, a.is_primary) for a in source.addresses]
        tickets = list(session.scalars(select(Ticket.id).where(Ticket.contact_id == source.id).order_by(Ticket.id)))
        before: dict[str, list[Any]] = {}
        for name in _FILLED:
            if not getattr(into, name) and getattr(source, name):
                before[name] = [getattr(into, name), getattr(source, name)]
                setattr(into, name, getattr(source, name))
        if source.first_seen < into.first_seen:
            before["first_seen"] = [_stamp(into.first_seen), _stamp(source.first_seen)]
            into.first_seen = source.first_seen
        if source.last_seen > into.last_seen:
            before["last_seen"] = [_stamp(into.last_seen), _stamp(source.last_seen)]
            into.last_seen = source.last_seen
        have = {(kind, value) for kind, value in session.execute(
            select(ContactLabel.kind, ContactLabel.value).where(ContactLabel.contact_id == into.id))}
        added = []
        for kind, value in session.execute(select(ContactLabel.kind, ContactLabel.value)
                                           .where(ContactLabel.contact_id == source.id)
                                           .order_by(ContactLabel.id)):
            if (kind, value) not in have:
                session.add(ContactLabel(contact_id=into.id, kind=kind, value=value))
                added.append([kind, value])
        session.execute(update(ContactAddress).where(ContactAddress.contact_id == source.id)
                        .values(contact_id=into.id, is_primary=False))
        session.execute(update(Ticket).where(Ticket.contact_id == source.id).values(contact_id=into.id))
        source.merged_into_id = into.id
        merge = ContactMerge(survivor_id=into.id, merged_id=source.id, at=now, actor=actor.label,
                             address_ids=[[i, p] for i, p in moved], ticket_ids=tickets, labels_added=added,
                             survivor_before=before)
        session.add(merge)
        session.flush()
        session.expire_all()
        record(session, source, actor, "merge", now, [("merged_into", None, f"#{into.id}")], merge=merge.id)
        record(session, into, actor, "merge", now, [("merged_from", None, f"#{source.id}")], merge=merge.id,
               addresses=len(moved), tickets=len(tickets))
        return {"merge": merge.id, "source": source.id, "into": into.id, "addresses": len(moved),
                "tickets": len(tickets)}


def _active_merge(session: Session, actor: Actor, ref: str) -> ContactMerge:
    """The merge to undo: of the contact `ref` names, or of the merged contact owning address `ref`
    (which now lives on the survivor)."""
    contact = readable_contact(session, actor, ref)
    query = select(ContactMerge).where(ContactMerge.undone_at.is_(None)).order_by(ContactMerge.id.desc())
    merge = session.scalar(query.where(ContactMerge.merged_id == contact.id).limit(1))
    if merge is None and "@" in ref:
        address_id = session.scalar(select(ContactAddress.id).where(ContactAddress.address == ref.strip().lower()))
        for candidate in session.scalars(query.where(ContactMerge.survivor_id == contact.id)):
            if any(i == address_id for i, _ in candidate.address_ids):
                merge = candidate
                break
    if merge is None:
        raise NotFound(f"contact {ref[:80]} is not merged into another", "name the contact that was merged")
    return merge


def unmerge_contact(app: App, actor: Actor, ref: str, *, now: datetime | None = None) -> dict[str, Any]:
    """Undo the merge of contact `ref` (its number, or an address it brought to the merge)."""
    require_contact_editor(actor)
    now = now or utcnow()
    with app.sessions.begin() as session:
        merge = _active_merge(session, actor, ref)
        source = session.get_one(Contact, merge.merged_id)
        into = session.get_one(Contact, merge.survivor_id)
        moved = {int(i): bool(p) for i, p in merge.address_ids}
        addresses = {a.id: a.address.lower() for a in session.scalars(
            select(ContactAddress).where(ContactAddress.id.in_(list(moved)), ContactAddress.contact_id == into.id))}
        for address_id in sorted(addresses, key=lambda i: moved[i]):  # the primary last: one per contact
            session.execute(update(ContactAddress).where(ContactAddress.id == address_id)
                            .values(contact_id=source.id, is_primary=moved[address_id]))
        tickets = {int(i) for i in merge.ticket_ids} | _opened_since(session, merge, into.id, set(addresses.values()))
        if tickets:
            session.execute(update(Ticket).where(Ticket.id.in_(tickets), Ticket.contact_id == into.id)
                            .values(contact_id=source.id))
        for name, (old, new) in merge.survivor_before.items():
            current = _stamp(getattr(into, name))
            if current == new:  # unless someone changed it since
                setattr(into, name, datetime.fromisoformat(old) if name.endswith("_seen") else old)
        for kind, value in merge.labels_added:
            label = session.scalar(select(ContactLabel).where(
                ContactLabel.contact_id == into.id, ContactLabel.kind == kind, ContactLabel.value == value))
            if label is not None:
                session.delete(label)
        source.merged_into_id = None
        merge.undone_at, merge.undone_by = now, actor.label
        session.flush()
        session.expire_all()
        record(session, source, actor, "unmerge", now, [("merged_into", f"#{into.id}", None)], merge=merge.id)
        record(session, into, actor, "unmerge", now, [("merged_from", f"#{source.id}", None)], merge=merge.id)
        return {"merge": merge.id, "source": source.id, "into": into.id, "addresses": len(addresses),
                "tickets": len(tickets)}


def _opened_since(session: Session, merge: ContactMerge, survivor: int, addresses: set[str]) -> set[int]:
    """The survivor's tickets opened after the merge by mail from an address the merge moved: they
    would have been the merged contact's had the merge not happened."""
    if not addresses:
        return set()
    since = select(Ticket.id).where(Ticket.contact_id == survivor, Ticket.created_at >= merge.at)
    first = (select(Message.ticket_id, func.min(Message.id).label("first"))
             .where(Message.ticket_id.in_(since), Message.direction == Direction.inbound)
             .group_by(Message.ticket_id).subquery())
    found = session.execute(
        select(Ticket.id, Message.from_addr)
        .join(first, first.c.ticket_id == Ticket.id).join(Message, Message.id == first.c.first)
        .where(Ticket.contact_id == survivor, Ticket.created_at >= merge.at))
    return {ticket_id for ticket_id, sender in found if (sender or "").lower() in addresses}


__all__ = ["merge_contacts", "unmerge_contact"]
