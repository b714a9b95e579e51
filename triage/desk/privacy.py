"""A person's data on request: see it (the privacy page), take a copy (export), erase it.

The liaison's alone (staff and viewers are Forbidden): a person's whole history crosses teams,
and erasure cannot be undone. Who the person is comes from `triage.privacy.scope`; export and
erase read and write exactly what it names. Erasure is one transaction; asked again for a
contact id already erased, it reports the earlier tombstone and changes nothing (an erased
address is not recognisable any more: nothing keeps it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from triage.desk.actors import Actor
from triage.desk.errors import Forbidden, NotFound
from triage.privacy.erase import erase, scrubbing
from triage.privacy.export import Export, collect
from triage.privacy.scope import Scope, chunks, find_contact, person_scope
from triage.store.db import utcnow
from triage.store.models import Attachment, Contact
from triage.store.privacy_models import Erasure
from triage.store.web_models import Role

if TYPE_CHECKING:
    from triage.bootstrap import App

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class PersonView:
    """What the privacy page shows before anything is done."""

    contact_id: int
    address: str  # the primary address (one of `addresses`)
    addresses: tuple[str, ...]  # every address of the person, those merged into them included
    name: str | None
    first_seen: datetime
    last_seen: datetime
    tickets: int
    messages: int
    attachments: int
    outbox: int
    quarantine: int


@dataclass(frozen=True)
class Erased:
    """An erasure done now, or found done earlier (`already`)."""

    erasure_id: int
    at: datetime
    actor: str
    tickets: tuple[str, ...]
    counts: dict[str, Any] = field(default_factory=dict)
    already: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"erasure": self.erasure_id, "at": self.at.isoformat(), "actor": self.actor,
                "tickets": list(self.tickets), "counts": self.counts, "already": self.already}


def require_liaison(actor: Actor) -> None:
    if actor.role is not Role.liaison:
        raise Forbidden(f"{actor.name} cannot export or erase a person's data",
                        "only the liaison handles requests for a person's data")


def _earlier(session: Session, ref: str) -> Erasure | None:
    ident = ref.strip()
    if not (ident.isascii() and ident.isdigit() and len(ident) <= 12):
        return None
    return session.scalar(select(Erasure).where(Erasure.contact_id == int(ident), Erasure.reason == "request")
                          .order_by(Erasure.id.desc()).limit(1))


def _contact(session: Session, ref: str, *, lock: bool = False) -> Contact:
    contact = find_contact(session, ref)
    if contact is not None and lock:
        session.refresh(contact, with_for_update=True)
    if contact is None:
        earlier = _earlier(session, ref)
        if earlier is not None:
            raise NotFound(f"contact {ref.strip()} was erased on {earlier.at:%Y-%m-%d %H:%M} UTC by {earlier.actor}",
                           "nothing of them is held any more")
        raise NotFound(f"no contact {ref.strip()!r}", "give a contact id or an address the desk has mail from")
    return contact


def _attachments(session: Session, scope: Scope) -> int:
    return sum(session.scalar(select(func.count()).where(Attachment.message_pk.in_(part))) or 0
               for part in chunks(scope.message_ids))


def find_person(app: App, actor: Actor, ref: str) -> int:
    """The contact id of REF (a contact id or an address), or NotFound (saying so if it was erased)."""
    require_liaison(actor)
    with app.reads() as session:
        return _contact(session, ref).id


def person_view(app: App, actor: Actor, ref: str) -> PersonView:
    require_liaison(actor)
    with app.reads() as session:
        contact = _contact(session, ref)
        scope = person_scope(session, [contact.id])
        addresses = tuple(sorted(scope.addresses))
        return PersonView(contact.id, contact.address or (addresses[0] if addresses else ""), addresses,
                          contact.name, contact.first_seen, contact.last_seen,
                          len(scope.ticket_ids), len(scope.message_ids), _attachments(session, scope),
                          len(scope.outbox_ids), len(scope.quarantine_ids))


def export_person(app: App, actor: Actor, ref: str, *, now: datetime | None = None) -> Export:
    """Everything held about the person REF (a contact id or address), read in one transaction."""
    require_liaison(actor)
    now = now or utcnow()
    with app.reads() as session:
        contact = _contact(session, ref)
        export = collect(session, person_scope(session, [contact.id]), now=now)
    log.info("privacy.exported", contact=contact.id, messages=len(export.document["messages"]), files=len(export.files))
    return export


def erase_person(app: App, actor: Actor, ref: str, *, now: datetime | None = None) -> Erased:
    """Erase the person REF (contact id or address) in one transaction; see triage.privacy.erase.
    For a contact id erased before, the earlier tombstone is returned and nothing changes."""
    require_liaison(actor)
    now = now or utcnow()
    with app.sessions.begin() as session:
        try:
            contact = _contact(session, ref, lock=True)
        except NotFound:
            earlier = _earlier(session, ref)
            if earlier is None:
                raise
            return Erased(earlier.id, earlier.at, earlier.actor, tuple(earlier.tickets), dict(earlier.counts),
                          already=True)
        with scrubbing(session):
            tombstone = erase(session, person_scope(session, [contact.id]), actor=actor.label, reason="request",
                              now=now)
        result = Erased(tombstone.id, tombstone.at, tombstone.actor, tuple(tombstone.tickets), dict(tombstone.counts))
    log.info("privacy.erased", erasure=result.erasure_id, **result.counts)
    return result


__all__ = ["Erased", "PersonView", "erase_person", "export_person", "find_person", "person_view", "require_liaison"]
