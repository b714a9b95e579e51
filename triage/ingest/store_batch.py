"""The one ingest writer: store a batch of parsed mails with a fixed number of statements.

At IMAP speeds statement overhead, not the database, is the bottleneck. Here every lookup is
one IN query for the whole batch, the threading decisions (the pure `threading.decide`) run in
memory in arrival order (a reply later in the batch finds a ticket opened earlier in it), and
rows are written with one executemany per table. If anything in here fails, the caller
(`pipeline.Ingestor`) rolls the batch's savepoint back and stores the mails again as batches
of one, which isolates the mail at fault: every threading and status rule lives here only.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Table, bindparam, func, or_, select, update
from sqlalchemy.orm import Session

from triage.config import MailSettings
from triage.ingest import threading
from triage.ingest.parsed import ParsedMail
from triage.ingest.signals import sender_authentication
from triage.ingest.threading import StaffPath
from triage.language import Detected, mail_language
from triage.privacy.fingerprint import ERASED_REASON, erased_message_id, is_erased
from triage.store.codec import encode
from triage.store.db import core_table, upsert_insert
from triage.store.models import (
    Attachment,
    Blob,
    Contact,
    ContactAddress,
    Direction,
    Event,
    Message,
    Ticket,
    TicketStatus,
)

ACTOR = "system:ingest"


@dataclass(frozen=True, slots=True)
class StoredMail:
    """What the batch did with one mail (the pipeline turns it into an IngestOutcome)."""

    status: Literal["stored", "duplicate"]
    reason: str
    ticket_reference: str | None
    message_pk: int | None
    staff: StaffPath | None = None  # the team's mail: a reply to relay to the volunteer, or a note


@dataclass(eq=False)
class _TicketState:
    id: int  # 0 for a ticket this batch opens, until its row is inserted
    reference: str
    status: TicketStatus
    participants: set[str] = field(default_factory=set)
    changed: bool = False
    team: str | None = None  # the team the ticket was handed to
    merged_into: _TicketState | None = None  # the liaison merged this ticket into that one

    def survivor(self) -> tuple[_TicketState, list[_TicketState]]:
        """The ticket mail that matches this one lands on (the end of its merge chain), and the
        merged tickets passed on the way (none: this ticket was not merged)."""
        chain: list[_TicketState] = []
        state = self
        while state.merged_into is not None and state not in chain:
            chain.append(state)
            state = state.merged_into
        return state, chain

    def facts(self, staff: Mapping[str, frozenset[str]]) -> threading.TicketFacts:
        """What threading sees of this ticket (`staff`: each team's addresses). A merged ticket is judged
        as its survivor (its id, status and team, the participants of every ticket merged into it)
        under the reference the mail cited."""
        survivor, chain = self.survivor()
        participants = frozenset().union(survivor.participants, *(merged.participants for merged in chain))
        return threading.TicketFacts(
            survivor.id, self.reference, participants, survivor.status == TicketStatus.resolved,
            staff.get(survivor.team or "", frozenset()),
        )


def message_values(
    parsed: ParsedMail, digest: str, *, ticket_id: int | None, now: datetime, source: str | None, reason: str
) -> dict[str, Any]:
    """The messages row for an inbound mail."""
    return {
        "ticket_id": ticket_id,
        "direction": Direction.inbound,
        "message_id": parsed.message_id,
        "in_reply_to": parsed.in_reply_to,
        "references": parsed.references,
        "from_addr": parsed.from_addr,
        "from_name": parsed.from_name,
        "to_addrs": parsed.to,
        "cc_addrs": parsed.cc,
        "subject": parsed.subject,
        "date": parsed.date,
        "received_at": now,
        "body_text": parsed.body_text,
        "new_text": parsed.new_text,
        "quoted_text": parsed.quoted_text,
        "signature": parsed.signature,
        "body_html": parsed.body_html,
        "kind": parsed.kind,
        "kind_reason": parsed.kind_reason,
        "list_id": parsed.list_id,
        "defects": parsed.defects,
        "size": parsed.size,
        "oversize": parsed.oversize,
        "raw_sha256": digest,
        "source": source,
        "thread_reason": reason,
        "extra": {
            **({"bounced_recipients": parsed.bounced_recipients} if parsed.bounced_recipients else {}),
            **({"signals": list(parsed.header_signals)} if parsed.header_signals else {}),
        },
    }


def _upsert_contacts(session: Session, mails: Sequence[ParsedMail], now: datetime) -> dict[str, int]:
    """The contact of each sender address, found by any of a person's addresses (a merged
    contact's addresses belong to the survivor), or created. Known senders cost one lookup and
    one executemany; new ones one INSERT ... RETURNING of contacts and one insert of their addresses."""
    senders: dict[str, str | None] = {}
    for mail in mails:
        if mail.from_addr:
            senders[mail.from_addr] = senders.get(mail.from_addr) or mail.from_name
    if not senders:
        return {}
    addresses = core_table(ContactAddress)
    found: dict[str, int] = dict(session.execute(
        select(addresses.c.address, addresses.c.contact_id).where(addresses.c.address.in_(list(senders)))).all())
    contacts = core_table(Contact)
    if found:
        names: dict[int, str | None] = {}
        for sender, contact_id in found.items():
            names[contact_id] = names.get(contact_id) or senders[sender]
        latest = func.greatest if session.get_bind().dialect.name == "postgresql" else func.max
        session.execute(
            update(contacts).where(contacts.c.id == bindparam("cid")).values(
                last_seen=latest(contacts.c.last_seen, bindparam("seen", type_=contacts.c.last_seen.type)),
                name=func.coalesce(contacts.c.name, bindparam("n", type_=contacts.c.name.type))),
            [{"cid": cid, "seen": now, "n": name} for cid, name in sorted(names.items())],  # fixed lock order
        )
    new = sorted(a for a in senders if a not in found)
    if new:
        uids = [uuid.uuid4().hex for _ in new]
        rows = [{"uid": uid, "name": senders[a], "first_seen": now, "last_seen": now, "bouncing": False,
                 "notes": "", "consent": False} for a, uid in zip(new, uids, strict=True)]
        by_uid: dict[str, int] = dict(session.execute(
            contacts.insert().returning(contacts.c.uid, contacts.c.id), rows).all())
        ids = [by_uid[uid] for uid in uids]
        session.execute(
            upsert_insert(session)(addresses).on_conflict_do_nothing(index_elements=["address"]),
            [{"contact_id": cid, "address": a, "is_primary": True, "added_at": now, "source": "mail"}
             for a, cid in zip(new, ids, strict=True)],
        )
        owners = dict(zip(new, ids, strict=True))
        if session.get_bind().dialect.name == "postgresql":
            # another worker may have stored the same new address first (SQLite's writers take turns
            # under BEGIN IMMEDIATE, so only PostgreSQL can see this): its contact wins, ours goes
            owners = dict(session.execute(
                select(addresses.c.address, addresses.c.contact_id).where(addresses.c.address.in_(new))).all())
            if orphans := [cid for a, cid in zip(new, ids, strict=True) if owners.get(a) != cid]:
                session.execute(contacts.delete().where(contacts.c.id.in_(orphans)))
        found.update(owners)
    return found


def _load_tickets(session: Session, ticket_ids: set[int], references: set[str]) -> dict[int, _TicketState]:
    if not ticket_ids and not references:
        return {}
    states: dict[int, _TicketState] = {}
    merges: dict[int, int] = {}
    where = or_(Ticket.id.in_(ticket_ids), Ticket.reference.in_(references))
    while True:  # the tickets asked for, then the survivors of those merged, until every chain ends
        for tid, ref, status, address, team, merged_into in session.execute(
            select(Ticket.id, Ticket.reference, Ticket.status, ContactAddress.address, Ticket.team,
                   Ticket.merged_into_id)  # one row per address of the ticket's contact: all are participants
            .outerjoin(ContactAddress, ContactAddress.contact_id == Ticket.contact_id).where(where)
        ):
            state = states.get(tid)
            if state is None:
                state = states[tid] = _TicketState(tid, ref, status, set(), team=team)
            if address:
                state.participants.add(address.lower())
            if merged_into is not None:
                merges[tid] = merged_into
        missing = set(merges.values()) - set(states)
        if not missing:
            break
        where = Ticket.id.in_(missing)
    for tid, survivor in merges.items():
        states[tid].merged_into = states[survivor]
    if states:  # participants: the contact and whom our own mail went to (never an inbound sender)
        for owner, to_addrs, cc_addrs in session.execute(
            select(Message.ticket_id, Message.to_addrs, Message.cc_addrs)
            .where(Message.ticket_id.in_(list(states)), Message.direction == Direction.outbound)
        ):
            if owner is not None:
                states[owner].participants.update(a.lower() for a in [*(to_addrs or []), *(cc_addrs or [])])
    return states


def store_batch(
    session: Session,
    mails: Sequence[tuple[bytes, str, ParsedMail, str | None]],
    *,
    settings: MailSettings,
    now: datetime,
    encoded: Mapping[str, tuple[str, bytes]] | None = None,
    staff: Mapping[str, frozenset[str]] | None = None,
    detected: Mapping[str, Detected] | None = None,
) -> list[StoredMail]:
    """Thread and store (raw, sha256, parsed, source) mails in the caller's transaction.

    `encoded` holds blobs a parse worker already compressed (sha256 -> codec, bytes), `detected` the
    languages it detected (sha256 -> Detected; a new ticket's mail not in it is detected here);
    `staff`, each team's addresses (`Team.addresses`): their mail on a ticket handed to them is the staff's.
    """
    encoded = encoded or {}
    detected = detected or {}
    staff = staff or {}
    comment_address = settings.staff_comment_address
    prefix = settings.reference_prefix
    ids = {p.message_id for _, _, p, _ in mails if p.message_id}
    digests = {d for _, d, _, _ in mails}
    # An erased mail keeps only a fingerprint of its Message-ID (and an empty marker of its raw
    # blob): one read again is recognised by either and refused, never stored anew.
    fingerprints = {erased_message_id(i): i for i in ids}
    known: dict[str, tuple[int, str, int | None]] = {}  # message_id or sha256 -> (pk, sha256, ticket)
    erased: set[int] = set()
    for pk, message_id, sha, ticket_id in session.execute(
        select(Message.id, Message.message_id, Message.raw_sha256, Message.ticket_id)
        .where(or_(Message.message_id.in_(ids | fingerprints.keys()), Message.raw_sha256.in_(digests)))
    ):
        known[sha] = (pk, sha, ticket_id)
        if is_erased(message_id):
            erased.add(pk)
        if message_id:
            known[fingerprints.get(message_id, message_id)] = (pk, sha, ticket_id)

    references = {r for _, _, p, _ in mails if (r := threading.subject_reference(p.subject, prefix))}
    candidates = {c for _, _, p, _ in mails for c in threading.header_candidates(p)}
    by_header_id: dict[str, int] = {}
    if candidates:
        for message_id, ticket_id in session.execute(
            select(Message.message_id, Message.ticket_id)
            .where(Message.message_id.in_(candidates), Message.ticket_id.is_not(None))
        ):
            if message_id is not None and ticket_id is not None:
                by_header_id[message_id] = ticket_id
    tickets = _load_tickets(
        session, {t for _, _, t in known.values() if t} | set(by_header_id.values()), references
    )
    by_reference = {state.reference: state for state in tickets.values()}
    fresh = [p for _, d, p, _ in mails if d not in known and not (p.message_id and p.message_id in known)]
    contact_ids = _upsert_contacts(session, fresh, now)

    results: list[StoredMail | None] = [None] * len(mails)
    copies: dict[int, int] = {}  # index of a second copy -> index of the first, both in this batch
    pending_messages: list[tuple[int, dict[str, Any], ParsedMail, _TicketState | None, threading.ThreadDecision]] = []
    events: list[tuple[_TicketState | int | None, dict[str, Any]]] = []
    opened: list[tuple[_TicketState, dict[str, Any]]] = []
    blobs: dict[str, bytes] = {}
    seen: dict[str, tuple[int, str, _TicketState | None]] = {}  # id or sha256 -> (index, sha256, ticket)
    by_header_state: dict[str, _TicketState] = {}  # Message-IDs of mails this batch put on a ticket

    def insert_opened() -> None:
        """Give the tickets opened so far their ids and references (one executemany)."""
        waiting = [(state, row) for state, row in opened if state.id == 0]
        if not waiting:
            return
        new_ids = _insert_keyed(session, core_table(Ticket), [row for _, row in waiting], "reference")
        for (state, _), ticket_id in zip(waiting, new_ids, strict=True):
            state.id, state.reference = ticket_id, f"{prefix}-{now.year}-{ticket_id:05d}"
            tickets[ticket_id] = state
            by_reference[state.reference] = state

    for index, (raw, digest, parsed, source) in enumerate(mails):
        prior = known.get(parsed.message_id or "") or known.get(digest)
        if prior is not None:
            pk, prior_sha, ticket_id = prior
            if pk in erased:  # no blob, no event: nothing of the erased person comes back
                results[index] = StoredMail("duplicate", ERASED_REASON, None, None)
                continue
            if prior_sha != digest:
                blobs[digest] = raw
                events.append(_event(ticket_id, now, "duplicate-delivery", message_id=parsed.message_id,
                                     raw_sha256=digest, source=source))
            reference = tickets[ticket_id].reference if ticket_id in tickets else None
            results[index] = StoredMail("duplicate", "Message-ID or bytes already stored", reference, pk)
            continue
        earlier = seen.get(parsed.message_id or "") or seen.get(digest)
        if earlier is not None:
            first_index, first_sha, first_state = earlier
            if first_sha != digest:
                blobs[digest] = raw
                events.append(_event(first_state, now, "duplicate-delivery",
                                     message_id=parsed.message_id, raw_sha256=digest, source=source))
            copies[index] = first_index
            continue

        reference = threading.subject_reference(parsed.subject, prefix)
        if reference and reference not in by_reference:
            insert_opened()  # it may cite a ticket opened earlier in this batch (a backfill does)
        cited = by_reference.get(reference) if reference else None
        header_state: _TicketState | None = None
        header_hit = None
        for header_id in threading.header_candidates(parsed):
            ticket_id = by_header_id.get(header_id)
            header_state = by_header_state.get(header_id) or (tickets.get(ticket_id) if ticket_id else None)
            if header_state is not None:
                if header_state.id == 0:  # a reply to a ticket opened earlier in this batch: it needs its id
                    insert_opened()
                header_hit = (header_id, header_state.facts(staff))
                break
        cited_facts = cited.facts(staff) if cited else None
        authentication = sender_authentication(parsed.header_signals, parsed.from_addr, settings.trusted_authserv_ids)
        decision = threading.decide(
            parsed, reference=reference, by_reference=cited_facts, by_header=header_hit, authentication=authentication,
            comment_address=comment_address,
        )
        matched = cited if cited_facts is not None and decision.ticket is cited_facts else header_state
        if matched is not None and decision.ticket is not None and matched.merged_into is not None:
            survivor = matched.survivor()[0]
            decision = dataclasses.replace(decision, reason=(
                f"{decision.reason}; {matched.reference} was merged into {survivor.reference}, so it lands there"))
        state: _TicketState | None = None
        if decision.placement == threading.Placement.append:
            assert matched is not None
            state = matched.survivor()[0]
            state.changed = True
            if decision.staff == "note":
                events.append(_event(state, now, "note", actor=f"staff:{parsed.from_addr}",
                                     text=(parsed.new_text or parsed.body_text).strip("\n")))
            elif decision.staff == "reply":  # relayed to the volunteer (outbox.queue.relay_staff_replies)
                if state.status != TicketStatus.waiting:
                    events.append(_event(state, now, "status", actor=f"staff:{parsed.from_addr}",
                                         old=state.status.value, new="waiting", why="the team answered by mail"))
                    state.status = TicketStatus.waiting
            elif decision.reopen:
                state.status = TicketStatus.open
                events.append(_event(state, now, "reopened", by=parsed.from_addr))
            elif state.status == TicketStatus.waiting and parsed.kind == "normal":
                state.status = TicketStatus.open
                events.append(_event(state, now, "status", old="waiting", new="open", why="volunteer replied"))
        elif decision.placement in (threading.Placement.new, threading.Placement.new_linked):
            linked = decision.ticket.id if decision.placement == threading.Placement.new_linked and decision.ticket else None
            state = _TicketState(0, "", TicketStatus.new, {parsed.from_addr.lower()} if parsed.from_addr else set(),
                                 changed=True)
            opened.append((state, {
                "reference": f"~{uuid.uuid4().hex[:24]}", "subject": parsed.subject, "status": TicketStatus.new,
                "contact_id": contact_ids.get(parsed.from_addr or ""), "linked_ticket_id": linked,
                "flag": decision.flag if linked else None, "created_at": now, "updated_at": now,
                "language": language.language if (language := detected.get(digest)) is not None
                else mail_language(parsed.subject, parsed.new_text or parsed.body_text),
            }))
            events.append(_event(state, now, "created", by=parsed.from_addr))
            if linked is not None:
                assert decision.ticket is not None
                events.append(_event(state, now, "flagged", flag=decision.flag, linked=decision.ticket.reference))
        seen[digest] = (index, digest, state)
        if parsed.message_id:
            seen[parsed.message_id] = (index, digest, state)
            if state is not None:
                by_header_state[parsed.message_id] = state
        blobs[digest] = raw
        for part in parsed.attachments:
            blobs.setdefault(part.sha256, part.content)
        values = message_values(parsed, digest, ticket_id=None, now=now, source=source, reason=decision.reason)
        if decision.staff is not None and state is not None:
            values["extra"]["staff"] = {"path": decision.staff, "team": state.team}
        pending_messages.append((index, values, parsed, state, decision))

    insert_opened()
    for _, values, _, state, _ in pending_messages:
        values["ticket_id"] = state.id if state else None
    if blobs:
        session.execute(
            upsert_insert(session)(core_table(Blob)).on_conflict_do_nothing(index_elements=["sha256"]),
            [{"sha256": sha, "size": len(data), "codec": codec, "data": packed, "created_at": now}
             for sha, data in sorted(blobs.items()) for codec, packed in [encoded.get(sha) or encode(data)]],
        )
    if pending_messages:
        message_pks = _insert_keyed(
            session, core_table(Message), [values for _, values, _, _, _ in pending_messages], "raw_sha256"
        )
        attachments: list[dict[str, Any]] = []
        for (index, _, parsed, state, decision), pk in zip(pending_messages, message_pks, strict=True):
            reason = decision.reason
            results[index] = StoredMail("stored", reason, state.reference if state else None, pk, decision.staff)
            attachments.extend(
                {"message_pk": pk, "blob_sha256": a.sha256, "filename": a.filename, "content_type": a.content_type,
                 "size": a.size, "inline": a.inline, "content_id": a.content_id}
                for a in parsed.attachments
            )
            if state is not None:
                events.append(_event(state, now, "message", message=pk, kind=parsed.kind, reason=reason))
        if attachments:
            session.execute(core_table(Attachment).insert(), attachments)
    changed = [s for s in tickets.values() if s.changed]
    if changed:
        tickets_table = core_table(Ticket)
        session.execute(
            update(tickets_table)
            .where(tickets_table.c.id == bindparam("tid"))
            .values(reference=bindparam("ref"), status=bindparam("st"), updated_at=bindparam("at"),
                    clock_stale_at=now),  # its facts changed: the reminder run recomputes its clock
            [{"tid": s.id, "ref": s.reference, "st": s.status, "at": now} for s in changed],
        )
    if events:
        session.execute(core_table(Event).insert(), [{"ticket_id": _ticket_id(t), **row} for t, row in events])

    for index, first_index in copies.items():
        first = results[first_index]
        assert first is not None
        results[index] = StoredMail(
            "duplicate", "Message-ID or bytes already stored", first.ticket_reference, first.message_pk
        )
    assert all(item is not None for item in results)
    return [item for item in results if item is not None]


def _insert_keyed(session: Session, table: Table, rows: list[dict[str, Any]], key: str) -> list[int]:
    """Insert `rows` in one executemany and return their ids, in order, read back by a unique `key`.

    RETURNING in parameter order costs one statement per row on SQLite; reading the ids back
    by a unique column costs one query for the batch.
    """
    session.execute(table.insert(), rows)
    keys = [row[key] for row in rows]
    found = dict(session.execute(select(table.c[key], table.c.id).where(table.c[key].in_(keys))).all())
    return [found[k] for k in keys]


def _event(
    ticket: _TicketState | int | None, now: datetime, action: str, *, actor: str = ACTOR, **detail: Any
) -> tuple[_TicketState | int | None, dict[str, Any]]:
    """An events row whose ticket may be one this batch opens (its id is known only after insert)."""
    return ticket, {"at": now, "actor": actor, "action": action, "detail": detail}


def _ticket_id(ticket: _TicketState | int | None) -> int | None:
    return ticket.id if isinstance(ticket, _TicketState) else ticket
