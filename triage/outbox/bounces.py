"""A bounce of one of our mails: attach it to that mail's ticket and mark the address bouncing.

Called by the ingest pipeline (`Ingestor.ingest_many`) in the batch's transaction, after the
mails are stored. The bounce is matched by the Message-ID of the original mail it reports
(`ParsedMail.bounce_original_message_id`) against the outbox; a bounce of mail triage did not
send is left as the pipeline stored it. A contact marked bouncing gets no automatic mail
(`loops.may_send_automatic`) until the liaison clears the mark. Each bounce is handled in a
savepoint: one that fails is recorded on its ticket (a `bounce-failed` event) and never fails
the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import structlog
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from triage.failures import describe
from triage.ingest.parsed import ParsedMail
from triage.outbox.failures import storable
from triage.store.models import Contact, ContactAddress, Event, Message
from triage.store.outbox_models import Outbox

log = structlog.get_logger(__name__)

ACTOR = "system:outbox"


class _Outcome(Protocol):
    @property
    def status(self) -> str: ...
    @property
    def message_pk(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class BounceMatch:
    outbox_id: int
    ticket_id: int | None
    addresses: list[str]


def handle_bounces(
    session: Session, parsed: Sequence[ParsedMail | BaseException], outcomes: Sequence[_Outcome], *, now: datetime
) -> list[BounceMatch]:
    """Match this batch's stored bounces to our outbox; attach and mark. No commit here."""
    bounces = [
        (mail, outcome) for mail, outcome in zip(parsed, outcomes, strict=True)
        if isinstance(mail, ParsedMail) and mail.kind == "bounce" and mail.bounce_original_message_id
        and outcome.status == "stored" and outcome.message_pk is not None
    ]
    if not bounces:
        return []
    ids = {mail.bounce_original_message_id for mail, _ in bounces}
    ours = {row.message_id: row for row in session.scalars(select(Outbox).where(Outbox.message_id.in_(ids)))}
    matches = []
    for mail, outcome in bounces:
        sent = ours.get(mail.bounce_original_message_id or "")
        if sent is None:
            continue
        sent_id, ticket_id = sent.id, sent.ticket_id  # read before a rollback can expire them
        savepoint = session.begin_nested()
        try:
            matches.append(_handle_one(session, mail, outcome, sent, now))
            savepoint.commit()
        except Exception as exc:  # noqa: BLE001 - one bounce's failure never fails the ingest batch
            savepoint.rollback()
            reason = storable(describe(exc), 2000)
            session.add(Event(ticket_id=ticket_id, at=now, actor=ACTOR, action="bounce-failed", detail={
                "outbox": sent_id, "message": outcome.message_pk, "why": reason}))
            log.warning("outbox.bounce_failed", outbox=sent_id, message=outcome.message_pk, error=type(exc).__name__)
    return matches


def _handle_one(session: Session, mail: ParsedMail, outcome: _Outcome, sent: Outbox, now: datetime) -> BounceMatch:
    """Attach one bounce of our mail `sent` to its ticket and mark the addresses it reports."""
    reported = [a.lower() for a in mail.bounced_recipients]
    addresses = [a for a in reported if a in sent.recipients]
    if not addresses and len(sent.recipients) == 1:
        addresses = list(sent.recipients)  # the report names a forwarded address, or none
    stored = session.get_one(Message, outcome.message_pk)
    if stored.ticket_id is None and sent.ticket_id is not None:
        stored.ticket_id = sent.ticket_id
        stored.thread_reason = f"bounce of our mail {sent.message_id}"
    for contact in session.scalars(select(Contact).join(ContactAddress, ContactAddress.contact_id == Contact.id)
                                   .where(func.lower(ContactAddress.address).in_(addresses))):
        contact.bouncing = True
    sent.last_error = f"bounced for {', '.join(addresses) or 'an unknown recipient'} (bounce {mail.message_id})"
    sent.updated_at = now
    session.add(Event(ticket_id=sent.ticket_id, at=now, actor=ACTOR, action="bounced", detail={
        "outbox": sent.id, "message_id": sent.message_id, "addresses": addresses,
        "bounce": mail.message_id, "reported": reported,
    }))
    log.info("outbox.bounced", outbox=sent.id, addresses=addresses)
    return BounceMatch(sent.id, sent.ticket_id, addresses)


__all__ = ["BounceMatch", "handle_bounces"]
