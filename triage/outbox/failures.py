"""A mail that could not be built, recorded where the liaison looks: the outbox and the ticket's log.

Building a mail runs in a savepoint of its own (see `triage.outbox.queue` and the reminder run).
When it fails, for whatever reason, the savepoint is rolled back and the failure is written
here: a `failed` outbox row without bytes, which `triage outbox` lists with the reason and the
sender never claims, and a `mail-failed` event on each ticket the mail was about. The values
are written as text any database takes (a poison value may be what failed).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import structlog
from sqlalchemy.orm import Session

from triage.failures import describe
from triage.ingest.charsets import clean_text
from triage.store.models import Event
from triage.store.outbox_models import Outbox, OutboxStatus

if TYPE_CHECKING:
    from triage.outbox.compose import AutoSubmitted

log = structlog.get_logger(__name__)


def storable(value: str | None, limit: int) -> str:
    """Text any database column takes (`clean_text`: no NUL, no lone surrogate), capped at `limit`."""
    text = clean_text(value or "", [])
    return text if len(text) <= limit else f"{text[:limit - 3]}..."


def record_failed_mail(
    session: Session,
    *,
    template: str,
    ticket_id: int | None,
    to: str | None,
    error: BaseException,
    actor: str,
    now: datetime,
    envelope_from: str = "",
    auto_submitted: AutoSubmitted | None = None,
    tickets: Sequence[int] = (),
) -> Outbox:
    """A mail that could not be built: a `failed` outbox row without bytes (the sender never claims
    it; `triage outbox` lists it with the reason) and a `mail-failed` event on its ticket (on each
    of `tickets`, for a mail about several). No commit here; call it after rolling back the
    savepoint in which building failed."""
    reason = storable(describe(error), 2000)
    address = storable(to, 320)
    row = Outbox(
        message_id=f"<unbuilt.{uuid.uuid4().hex}@triage.invalid>", ticket_id=ticket_id, message_pk=None,
        template=template, auto_submitted=auto_submitted, envelope_from=storable(envelope_from, 320),
        recipients=[address] if address else [], to_addr=address, subject="", raw=None,
        status=OutboxStatus.failed, attempts=0, next_attempt_at=now, refused=[],
        last_error=f"not built: {reason}", actor=actor, created_at=now, updated_at=now,
    )
    session.add(row)
    session.flush()
    for ticket in dict.fromkeys([*([ticket_id] if ticket_id is not None else []), *tickets]):
        session.add(Event(ticket_id=ticket, at=now, actor=actor, action="mail-failed", detail={
            "template": template, "to": address, "outbox": row.id, "stage": "build", "why": reason}))
    log.warning("outbox.not_built", template=template, ticket=ticket_id, outbox=row.id,
                error=type(error).__name__)
    return row


__all__ = ["record_failed_mail", "storable"]
