"""The quarantine as the liaison sees it: mail that could not be parsed or stored, with the
reason, and the decision to run it again after a fix.

A quarantined mail is hostile by definition: its sender and subject are read only from its
header section (at most `oversize.HEAD_CAP` bytes, through the desk's own parser, and only
where that succeeds), and its raw bytes are handed out only for download, never shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from triage.desk.actors import Actor
from triage.desk.errors import Invalid, NotFound
from triage.desk.mail_roles import require_mail_operator, require_mail_reader
from triage.ingest import oversize
from triage.ingest.parse import parse_mail
from triage.store.blobs import get_blob, get_blob_head
from triage.store.db import utcnow
from triage.store.models import Blob, Event, Quarantine, Ticket

if TYPE_CHECKING:
    from triage.bootstrap import App

QUARANTINE = "the quarantine"


@dataclass
class Retried:
    """A retry's outcome: per mail run again its status, reason and ticket; why the others were not run."""

    results: list[dict[str, Any]]
    refused: dict[int, str]

    @property
    def released(self) -> int:
        return sum(r["status"] != "quarantined" for r in self.results)


def headline(head: bytes) -> tuple[str | None, str | None]:
    """(sender, subject) of a mail's header section, each None where it cannot be read."""
    try:
        parsed = parse_mail(oversize.header_section(head))
    except Exception:  # noqa: BLE001 - an unreadable header is why many of these mails are here
        return None, None
    sender = parsed.from_addr
    if sender and parsed.from_name:
        sender = f"{parsed.from_name} <{sender}>"
    return sender or None, parsed.subject or None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def list_quarantine(app: App, actor: Actor, include_released: bool = False) -> list[dict[str, Any]]:
    """Quarantined mail by id (released ones too with `include_released`), with its size, sender and
    subject where known, and whether it can be run again (a mail refused for its size cannot)."""
    require_mail_reader(actor, QUARANTINE)
    query = select(Quarantine).order_by(Quarantine.id)
    if not include_released:
        query = query.where(Quarantine.released_at.is_(None))
    with app.reads() as session:
        rows: list[dict[str, Any]] = [
            {
                "id": q.id, "raw_sha256": q.raw_sha256, "source": q.source, "stage": q.stage, "error": q.error,
                "attempts": q.attempts, "created_at": _iso(q.created_at), "released_at": _iso(q.released_at),
            }
            for q in session.scalars(query)
        ]
        digests = [row["raw_sha256"] for row in rows]
        sizes = {sha: size for sha, size in session.execute(select(Blob.sha256, Blob.size)
                                                            .where(Blob.sha256.in_(digests)))}
        for row in rows:
            row["sender"], row["subject"] = headline(get_blob_head(session, row["raw_sha256"], oversize.HEAD_CAP))
            row["size"] = sizes.get(row["raw_sha256"])
            row["retryable"] = row["released_at"] is None and row["stage"] != oversize.STAGE
    return rows


def _refusals(app: App, ids: Sequence[int]) -> dict[int, str]:
    with app.reads() as session:
        found = {q.id: q for q in session.scalars(select(Quarantine).where(Quarantine.id.in_(ids)))}
    refused = {}
    for row_id in ids:
        row = found.get(row_id)
        if row is None:
            refused[row_id] = "no such mail"
        elif row.released_at is not None:
            refused[row_id] = "already released"
        elif row.stage == oversize.STAGE:
            refused[row_id] = "refused for its size: only its header was kept, so there is nothing to run again"
    return refused


def retry_quarantined(app: App, actor: Actor, ids: Sequence[int] | None = None) -> Retried:
    """Run quarantined mails (these ids, or all with None) through ingest again; those that now store are
    released. Each run is logged: on the mail's ticket where it found one, else on no ticket."""
    require_mail_operator(actor, QUARANTINE)
    if ids is not None and not ids:
        raise Invalid("no mail chosen", "choose the mails by their quarantine id, or retry them all")
    refused = _refusals(app, ids) if ids else {}
    runnable = [i for i in dict.fromkeys(ids or []) if i not in refused]
    outcomes = [] if ids and not runnable else app.ingestor().retry_quarantined(runnable or None)
    results = [{"id": row_id, "status": o.status, "reason": o.reason, "ticket": o.ticket_reference}
               for row_id, o in outcomes]
    now = utcnow()
    with app.sessions.begin() as session:
        for result in results:
            ticket_id = (session.scalar(select(Ticket.id).where(Ticket.reference == result["ticket"]))
                         if result["ticket"] else None)
            session.add(Event(ticket_id=ticket_id, at=now, actor=actor.label, action="quarantine-retried",
                              detail={"quarantine": result["id"], "status": result["status"]}))
    return Retried(results, refused)


def quarantined_raw(app: App, actor: Actor, row_id: int) -> bytes:
    """The raw bytes of a quarantined mail, for the liaison to download (never to show)."""
    require_mail_operator(actor, QUARANTINE)
    with app.reads() as session:
        digest = session.scalar(select(Quarantine.raw_sha256).where(Quarantine.id == row_id))
        if digest is None:
            raise NotFound(f"no quarantined mail #{row_id}", "the quarantine page lists them")
        return get_blob(session, digest)


__all__ = ["Retried", "headline", "list_quarantine", "quarantined_raw", "retry_quarantined"]
