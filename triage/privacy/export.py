"""A copy of everything a `Scope` names, for the person it is about: one JSON document (contact,
tickets with their events, suggestions and decisions, messages with headers and text, outbox
mails, bounces, quarantined mail) and each raw mail and attachment as a file.

Files are named by the desk (`mails/<id>.eml`, `attachments/<id>.<ext>`), never by the sender:
an attachment's own filename is data in the document, not a path. Read-only: the caller's
transaction only reads.
"""

from __future__ import annotations

import io
import json
import mimetypes
import re
import zipfile
import zlib
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from triage.privacy.scope import Scope, chunks
from triage.store.blobs import ERASED_CODEC
from triage.store.contact_models import ContactChange, ContactLabel
from triage.store.models import (
    Attachment,
    Blob,
    Contact,
    ContactAddress,
    Decision,
    Event,
    Message,
    Quarantine,
    Suggestion,
    Ticket,
)
from triage.store.outbox_models import Outbox

FORMAT = "triage-person-export/1"
_EXTENSION = re.compile(r"\.[a-z0-9]{1,8}")


@dataclass
class Export:
    """The document and the files that go with it (archive path -> bytes)."""

    document: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)

    def zip_bytes(self) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("person.json", json.dumps(self.document, indent=2, ensure_ascii=False, sort_keys=True))
            for name, data in sorted(self.files.items()):
                archive.writestr(name, data)
        return buffer.getvalue()


def safe_extension(content_type: str) -> str:
    """A file extension from the part's declared type (".bin" when none is known): the sender's
    filename never names a file here."""
    guessed = mimetypes.guess_extension(content_type.split(";")[0].strip().lower()) or ".bin"
    return guessed if _EXTENSION.fullmatch(guessed) else ".bin"


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _rows(session: Session, model: Any, column: Any, ids: frozenset[int]) -> Iterator[Any]:
    for part in chunks(ids):
        yield from session.scalars(select(model).where(column.in_(part)).order_by(model.id))


def _grouped(session: Session, model: Any, column: Any, ids: Iterable[int]) -> dict[int, list[Any]]:
    """`model` rows whose `column` is one of `ids`, by that id, in id order."""
    out: dict[int, list[Any]] = defaultdict(list)
    for row in _rows(session, model, column, frozenset(ids)):
        out[getattr(row, column.key)].append(row)
    return out


def _blobs(session: Session, digests: Iterable[str]) -> dict[str, bytes]:
    """The bytes of these blobs (an erased one is left out), a query per 200."""
    ordered = sorted(set(digests))
    found: dict[str, bytes] = {}
    for start in range(0, len(ordered), 200):
        for sha, codec, data in session.execute(select(Blob.sha256, Blob.codec, Blob.data)
                                                .where(Blob.sha256.in_(ordered[start:start + 200]))):
            if codec == ERASED_CODEC:
                continue
            found[sha] = zlib.decompress(data) if codec == "zlib" else bytes(data)
    return found


def collect(session: Session, scope: Scope, *, now: datetime) -> Export:
    """Read everything in `scope` into an Export, a few queries per 500 rows."""
    out = Export({"format": FORMAT, "exported_at": now.isoformat()})
    addresses = _grouped(session, ContactAddress, ContactAddress.contact_id, scope.contact_ids)
    labels = _grouped(session, ContactLabel, ContactLabel.contact_id, scope.contact_ids)
    changes = _grouped(session, ContactChange, ContactChange.contact_id, scope.contact_ids)
    out.document["contacts"] = [
        {"id": c.id, "uid": c.uid, "address": c.address, "name": c.name, "language": c.language,
         "bouncing": c.bouncing,
         "first_seen": _when(c.first_seen), "last_seen": _when(c.last_seen), "notes": c.notes,
         "consent": c.consent, "merged_into": c.merged_into_id,
         "addresses": [{"address": a.address, "primary": a.is_primary, "added_at": _when(a.added_at),
                        "source": a.source} for a in addresses[c.id]],
         "labels": [{"kind": label.kind, "value": label.value} for label in labels[c.id]],
         "history": [{"at": _when(h.at), "actor": h.actor, "action": h.action, "field": h.field,
                      "old": h.old, "new": h.new} for h in changes[c.id]]}
        for c in _rows(session, Contact, Contact.id, scope.contact_ids)]
    events = _grouped(session, Event, Event.ticket_id, scope.ticket_ids)
    suggestions = _grouped(session, Suggestion, Suggestion.ticket_id, scope.ticket_ids)
    decisions = _grouped(session, Decision, Decision.ticket_id, scope.ticket_ids)
    references: dict[int, str] = {}
    tickets = []
    for t in _rows(session, Ticket, Ticket.id, scope.ticket_ids):
        references[t.id] = t.reference
        tickets.append({
            "reference": t.reference, "subject": t.subject, "status": t.status.value, "team": t.team,
            "created_at": _when(t.created_at), "updated_at": _when(t.updated_at),
            "events": [{"at": _when(e.at), "actor": e.actor, "action": e.action, "detail": e.detail}
                       for e in events[t.id]],
            "suggestions": [{"team": s.team, "confidence": s.confidence, "model_version": s.model_version,
                             "ranked": s.ranked, "evidence": s.evidence, "created_at": _when(s.created_at)}
                            for s in suggestions[t.id]],
            "decisions": [{"team": d.team, "suggested_team": d.suggested_team, "agreed": d.agreed,
                           "actor": d.actor, "decided_at": _when(d.decided_at)} for d in decisions[t.id]],
        })
    out.document["tickets"] = tickets
    attachments = _grouped(session, Attachment, Attachment.message_pk, scope.message_ids)
    messages: list[dict[str, Any]] = []
    for part in chunks(scope.message_ids):
        rows = list(session.scalars(select(Message).where(Message.id.in_(part)).order_by(Message.id)))
        data = _blobs(session, [m.raw_sha256 for m in rows]
                      + [a.blob_sha256 for m in rows for a in attachments[m.id]])
        for m in rows:
            raw = data.get(m.raw_sha256)
            if raw is not None:
                out.files[f"mails/{m.id}.eml"] = raw
            parts = []
            for a in attachments[m.id]:
                name = f"attachments/{a.id}{safe_extension(a.content_type)}"
                content = data.get(a.blob_sha256)
                if content is not None:
                    out.files[name] = content
                parts.append({"filename": a.filename, "content_type": a.content_type, "size": a.size,
                              "inline": a.inline, "file": name if content is not None else None})
            messages.append({
                "id": m.id, "ticket": references.get(m.ticket_id or 0), "direction": m.direction.value,
                "message_id": m.message_id, "in_reply_to": m.in_reply_to, "references": m.references,
                "from": m.from_addr, "from_name": m.from_name, "to": m.to_addrs, "cc": m.cc_addrs,
                "subject": m.subject, "date": _when(m.date), "received_at": _when(m.received_at), "kind": m.kind,
                "list_id": m.list_id, "body_text": m.body_text, "new_text": m.new_text,
                "quoted_text": m.quoted_text, "signature": m.signature, "body_html": m.body_html, "extra": m.extra,
                "raw": f"mails/{m.id}.eml" if raw is not None else None, "attachments": parts,
            })
    out.document["messages"] = messages
    out.document["bounces"] = [
        {"message": m["id"], "ticket": m["ticket"], "received_at": m["received_at"],
         "bounced_recipients": (m["extra"] or {}).get("bounced_recipients", [])}
        for m in messages if m["kind"] == "bounce"]
    outbox = []
    for o in _rows(session, Outbox, Outbox.id, scope.outbox_ids):
        if o.raw:
            out.files[f"outbox/{o.id}.eml"] = o.raw
        outbox.append({"id": o.id, "ticket": references.get(o.ticket_id or 0), "template": o.template,
                       "to": o.recipients, "subject": o.subject, "status": o.status.value,
                       "created_at": _when(o.created_at), "sent_at": _when(o.sent_at),
                       "raw": f"outbox/{o.id}.eml" if o.raw else None})
    out.document["outbox"] = outbox
    quarantined = []
    held = list(_rows(session, Quarantine, Quarantine.id, scope.quarantine_ids))
    kept = _blobs(session, [q.raw_sha256 for q in held])
    for q in held:
        raw = kept.get(q.raw_sha256)
        if raw is not None:
            out.files[f"quarantine/{q.id}.eml"] = raw
        quarantined.append({"id": q.id, "stage": q.stage, "error": q.error, "created_at": _when(q.created_at),
                            "raw": f"quarantine/{q.id}.eml" if raw is not None else None})
    out.document["quarantine"] = quarantined
    return out


__all__ = ["FORMAT", "Export", "collect", "safe_extension"]
