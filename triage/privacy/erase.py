"""Erase what a `Scope` names, in the caller's transaction, and write the tombstone.

What goes, and what stays (so that reports still count tickets and mail, and ingest does not
bring the person back):

- messages: every text taken from the mail (subject, bodies, quote, signature, HTML, names and
  addresses, headers' ids, defects, source, threading reason, extra) is emptied. The row stays as
  a shell (direction, dates, size, kind, ticket). Its Message-ID becomes a one-way fingerprint
  (triage.privacy.fingerprint), and the IMAP ledger's copy of it too.
- raw mail and attachments: attachment rows are deleted; a blob is deleted when nothing else
  refers to it, kept whole when another person's mail still does (a shared attachment), and a raw
  mail's blob becomes an empty marker (codec `erased`, no bytes) keyed by its sha256: the same
  bytes delivered again are recognised as erased, not stored again.
- outbox: the mail's bytes, subject, recipients, the server's reply and refusals go; a mail still
  waiting is failed ("erased"), so it is never sent.
- events on their tickets: the row stays (who did what, when: the reminder history and reports
  read it), its detail keeps numbers, flags, statuses, teams and ticket references only. Notes by
  the desk about the person are their personal data too: a note's text goes, the fact that a
  note was written stays.
- routing suggestions keep team and confidence, lose their evidence (words of the mail).
  Decisions hold no mail text and stay.
- tickets stay as shells (reference, team, status, dates); their subject and flag go; for a
  person, the contact row is deleted. Quarantined mail from their address is deleted.
- the tombstone (`erasures`) keeps counts, the ticket references, when, by whom and why.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Executable, bindparam, delete, or_, select, text, update
from sqlalchemy.orm import Session

from triage.privacy.fingerprint import erased_message_id
from triage.privacy.scope import Scope, chunks
from triage.search.kinds import purge_deleted
from triage.store.blobs import ERASED_CODEC
from triage.store.contact_models import ContactChange, ContactLabel, ContactMerge
from triage.store.db import core_table
from triage.store.models import (
    Attachment,
    Blob,
    Contact,
    ContactAddress,
    Event,
    ImapLedgerEntry,
    Message,
    Quarantine,
    Suggestion,
    Ticket,
)
from triage.store.outbox_models import Outbox, OutboxStatus
from triage.store.privacy_models import ErasedTicket, Erasure

ERASED = "erased"
# Event detail kept after erasure: the values of these keys are statuses, teams, templates, kinds.
KEPT_DETAIL_KEYS = frozenset({"old", "new", "status", "status_before", "team", "kind", "template", "auto_submitted",
                              "into", "outbox", "message", "messages", "level"})
_REFERENCE = re.compile(r"[A-Z]{1,5}-[0-9]{4}-[0-9]{1,12}")
_PLAIN = re.compile(r"[A-Za-z0-9_.:-]{0,64}")

# The messages row of an erased mail: everything read from the mail, emptied.
MESSAGE_SHELL: Mapping[str, Any] = {
    "in_reply_to": None, "references": [], "from_addr": None, "from_name": None, "to_addrs": [], "cc_addrs": [],
    "subject": None, "body_text": "", "new_text": "", "quoted_text": "", "signature": "", "body_html": None,
    "kind_reason": None, "list_id": None, "defects": [], "source": None, "thread_reason": ERASED, "extra": {},
}


def scrub_detail(detail: Any) -> dict[str, Any]:
    """An event's detail without anything a person wrote or is named by (pure)."""
    kept: dict[str, Any] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            plain = isinstance(value, bool | int | float) or value is None
            if plain or (isinstance(value, str) and (
                    _REFERENCE.fullmatch(value) or (key in KEPT_DETAIL_KEYS and _PLAIN.fullmatch(value)))):
                kept[key] = value
    kept[ERASED] = True
    return kept


@contextmanager
def scrubbing(session: Session, *, purge: bool = True) -> Iterator[None]:
    """Erase in this block so that nothing stays behind in the database's own structures: on
    SQLite, pages freed by the block are overwritten with zeros (PRAGMA secure_delete), and the
    search index is merged without the erased text at its end (`purge_deleted`). PostgreSQL
    keeps old row versions until VACUUM (autovacuum, or the operator's VACUUM after an erasure)."""
    sqlite = session.get_bind().dialect.name == "sqlite"
    before = session.execute(text("PRAGMA secure_delete")).scalar_one() if sqlite else None
    if sqlite:
        session.execute(text("PRAGMA secure_delete = ON"))
    try:
        yield
        if purge:
            purge_deleted(session.connection())
    finally:
        if sqlite:
            session.execute(text(f"PRAGMA secure_delete = {int(before or 0)}"))


def erase(session: Session, scope: Scope, *, actor: str, reason: str, now: datetime) -> Erasure:
    """Erase everything in `scope` and return the tombstone (flushed). Running it again on what
    it already erased changes nothing but writes a new tombstone: callers check first."""
    counts: dict[str, int] = {"messages": len(scope.message_ids), "outbox": len(scope.outbox_ids),
                              "tickets": len(scope.ticket_ids), "contacts": len(scope.contact_ids),
                              "quarantine": len(scope.quarantine_ids), "ledger": len(scope.ledger_ids)}
    candidates = _blob_candidates(session, scope)
    counts["attachments"] = _erase_messages(session, scope)
    _erase_outbox(session, scope, now)
    counts["events"], counts["notes"] = _erase_events(session, scope)
    counts["suggestions"] = _erase_suggestions(session, scope)
    for part in chunks(scope.quarantine_ids):
        session.execute(delete(Quarantine).where(Quarantine.id.in_(part)))
    references = _erase_tickets(session, scope)
    _erase_contacts(session, scope)
    counts["blobs_deleted"], counts["blobs_kept_shared"], counts["raw_emptied"] = _erase_blobs(session, candidates)
    tombstone = Erasure(at=now, actor=actor, reason=reason,
                        contact_id=min(scope.contact_ids) if scope.contact_ids else None,
                        tickets=references, counts=counts)
    session.add(tombstone)
    session.flush()
    _mark_tickets(session, scope, tombstone.id, now)
    return tombstone


def _erase_contacts(session: Session, scope: Scope) -> None:
    """The contact rows and all they hold: addresses, labels, notes, the edit history (its old and
    new values are names and addresses) and the merges between them."""
    for part in chunks(scope.contact_ids):
        session.execute(delete(ContactMerge).where(or_(ContactMerge.survivor_id.in_(part),
                                                        ContactMerge.merged_id.in_(part))))
        session.execute(delete(ContactChange).where(ContactChange.contact_id.in_(part)))
        session.execute(delete(ContactLabel).where(ContactLabel.contact_id.in_(part)))
        session.execute(delete(ContactAddress).where(ContactAddress.contact_id.in_(part)))
        session.execute(update(Contact).where(Contact.id.in_(part)).values(merged_into_id=None))
    for part in chunks(scope.contact_ids):
        session.execute(delete(Contact).where(Contact.id.in_(part)))


def _changed(session: Session, statement: Executable) -> int:
    """Rows an UPDATE or DELETE changed."""
    result = cast("CursorResult[Any]", session.execute(statement))
    return int(result.rowcount or 0)


def _blob_candidates(session: Session, scope: Scope) -> set[str]:
    found: set[str] = set()
    for part in chunks(scope.message_ids):
        found.update(session.scalars(select(Message.raw_sha256).where(Message.id.in_(part))))
        found.update(session.scalars(select(Attachment.blob_sha256).where(Attachment.message_pk.in_(part))))
    for part in chunks(scope.quarantine_ids):
        found.update(session.scalars(select(Quarantine.raw_sha256).where(Quarantine.id.in_(part))))
    return found


def _erase_messages(session: Session, scope: Scope) -> int:
    attachments = 0
    messages = core_table(Message)
    ledger = core_table(ImapLedgerEntry)
    for part in chunks(scope.message_ids):
        rows = session.execute(select(Message.id, Message.message_id).where(Message.id.in_(part))).all()
        session.execute(
            update(messages).where(messages.c.id == bindparam("pk")).values(
                message_id=bindparam("fingerprint"), **MESSAGE_SHELL),
            [{"pk": pk, "fingerprint": erased_message_id(mid) if mid else None} for pk, mid in rows],
        )
        attachments += _changed(session, delete(Attachment).where(Attachment.message_pk.in_(part)))
    for part in chunks(scope.ledger_ids):
        rows = session.execute(select(ImapLedgerEntry.id, ImapLedgerEntry.message_id)
                               .where(ImapLedgerEntry.id.in_(part))).all()
        session.execute(
            update(ledger).where(ledger.c.id == bindparam("pk")).values(message_id=bindparam("fingerprint")),
            [{"pk": pk, "fingerprint": erased_message_id(mid) if mid else None} for pk, mid in rows],
        )
    return attachments


def _erase_outbox(session: Session, scope: Scope, now: datetime) -> None:
    for part in chunks(scope.outbox_ids):
        session.execute(update(Outbox).where(Outbox.id.in_(part), Outbox.status.in_(
            [OutboxStatus.pending, OutboxStatus.sending])).values(status=OutboxStatus.failed, updated_at=now))
        session.execute(update(Outbox).where(Outbox.id.in_(part)).values(
            recipients=[], to_addr="", subject="", raw=None, last_error=ERASED, smtp_reply=None, refused=[]))


def _erase_events(session: Session, scope: Scope) -> tuple[int, int]:
    events = core_table(Event)
    count = notes = 0
    for part in chunks(scope.ticket_ids):
        rows = session.execute(select(Event.id, Event.action, Event.actor, Event.detail)
                               .where(Event.ticket_id.in_(part))).all()
        if not rows:
            continue
        count += len(rows)
        notes += sum(1 for row in rows if row.action == "note")
        session.execute(
            update(events).where(events.c.id == bindparam("pk")).values(
                detail=bindparam("scrubbed"), actor=bindparam("who")),
            [{"pk": row.id, "scrubbed": scrub_detail(row.detail),
              "who": ERASED if any(a in row.actor.lower() for a in scope.addresses) else row.actor} for row in rows],
        )
    return count, notes


def _erase_suggestions(session: Session, scope: Scope) -> int:
    count = 0
    for part in chunks(scope.ticket_ids):
        count += _changed(session, update(Suggestion).where(Suggestion.ticket_id.in_(part)).values(evidence=[]))
    return count


def _erase_tickets(session: Session, scope: Scope) -> list[str]:
    references: list[str] = []
    for part in chunks(scope.ticket_ids):
        references += session.scalars(select(Ticket.reference).where(Ticket.id.in_(part)))
        values: dict[str, Any] = {"subject": None, "flag": None}
        if scope.contact_ids:
            values["contact_id"] = None
        session.execute(update(Ticket).where(Ticket.id.in_(part)).values(**values)
                        .execution_options(synchronize_session=False))
    return sorted(references)


def _mark_tickets(session: Session, scope: Scope, erasure_id: int, now: datetime) -> None:
    for part in chunks(scope.ticket_ids):
        session.execute(delete(ErasedTicket).where(ErasedTicket.ticket_id.in_(part)))
        session.execute(core_table(ErasedTicket).insert(),
                        [{"ticket_id": t, "erasure_id": erasure_id, "erased_at": now} for t in part])


def _erase_blobs(session: Session, candidates: set[str]) -> tuple[int, int, int]:
    """Delete what nothing refers to any more; keep what a remaining attachment, quarantined mail
    or unerased message refers to; empty (keep the key of) an erased message's raw blob. A few
    set-based statements per 500 blobs."""
    deleted = shared = emptied = 0
    for part in _string_chunks(candidates):
        used = set(session.scalars(select(Attachment.blob_sha256).where(Attachment.blob_sha256.in_(part))))
        used.update(session.scalars(select(Quarantine.raw_sha256).where(Quarantine.raw_sha256.in_(part))))
        shells: set[str] = set()
        for sha, reason in session.execute(select(Message.raw_sha256, Message.thread_reason)
                                           .where(Message.raw_sha256.in_(part))):
            (shells if reason == ERASED else used).add(sha)
        shared += len(used)
        if empty := sorted(shells - used):
            emptied += _changed(session, update(Blob).where(Blob.sha256.in_(empty), Blob.codec != ERASED_CODEC)
                                .values(codec=ERASED_CODEC, data=b"", size=0))
        if gone := sorted(set(part) - used - shells):
            deleted += _changed(session, delete(Blob).where(Blob.sha256.in_(gone)))
    return deleted, shared, emptied


def _string_chunks(values: set[str], size: int = 500) -> list[list[str]]:
    ordered = sorted(values)
    return [ordered[i:i + size] for i in range(0, len(ordered), size)]


__all__ = ["KEPT_DETAIL_KEYS", "MESSAGE_SHELL", "erase", "scrub_detail", "scrubbing"]
