"""Queue outgoing mail: an `outbox` row and an outbound `messages` row, in the caller's transaction.

Every mail triage sends is decided somewhere (a new ticket, the liaison's routing approval,
the liaison's reply) and is queued in the same transaction as that decision: if the
decision rolls back, no mail is left behind, and if it commits, the mail will be delivered
(see `triage.outbox.sender`). The outbound `messages` row carries our Message-ID, so a
volunteer's reply to it threads onto the same ticket by In-Reply-To.

The use cases here:
- `acknowledge_new_tickets` (called by the ingest pipeline with a batch's outcomes);
- `enqueue_handoff` (called by the routing desk when the liaison approves a team);
- `build_reply` / `enqueue_reply` (the liaison's `triage reply`);
- `relay_staff_replies` (called by the ingest pipeline: a staff team's reply by mail, passed on).
Automatic mail is asked of `loops` first; a refusal is recorded on the ticket with its reasons.

Each ticket's mail is built in a savepoint of its own. Whatever goes wrong while building it
(a value composition refuses, a template error, any other exception) rolls back that savepoint
only and is recorded by `record_failed_mail`: a `failed` outbox row without bytes and a
`mail-failed` event on the ticket, both with the reason. The caller's transaction (an ingest
batch, a routing approval) goes on with every other ticket.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from functools import partial
from typing import Any, Protocol

import structlog
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from triage.ingest.signals import sender_authentication
from triage.outbox import loops
from triage.outbox.compose import AutoSubmitted, Party, compose, to_bytes
from triage.outbox.failures import record_failed_mail
from triage.outbox.language import choose_language
from triage.outbox.mails import TicketView, contact_with_addresses, context, load_view
from triage.outbox.render import Rendered
from triage.outbox.wiring import Wiring
from triage.store.blobs import put_blob
from triage.store.models import Contact, ContactAddress, Direction, Event, Message, Ticket, TicketStatus
from triage.store.outbox_models import Outbox, OutboxStatus
from triage.teams import Team

log = structlog.get_logger(__name__)

ACTOR = "system:outbox"


class OutboxError(Exception):
    """A mail cannot be queued; the message says why (unknown template, no recipient, bad header)."""


class _Outcome(Protocol):
    @property
    def status(self) -> str: ...
    @property
    def ticket_reference(self) -> str | None: ...
    @property
    def message_pk(self) -> int | None: ...
    @property
    def staff(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Queued:
    template: str
    to: str
    message_id: str
    outbox_id: int


@dataclass(frozen=True, slots=True)
class Skipped:
    template: str
    to: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class Failed:
    """A mail that could not be built; `outbox_id` is its failed row."""

    template: str
    to: str | None
    reason: str
    outbox_id: int


# -- the primitive -------------------------------------------------------------------------------


def _addresses(message: EmailMessage, header: str) -> list[str]:
    value = message[header]
    return [a.addr_spec.lower() for a in value.addresses] if value is not None else []


def enqueue(
    session: Session,
    message: EmailMessage,
    *,
    template: str,
    actor: str,
    now: datetime,
    ticket_id: int | None,
    auto_submitted: AutoSubmitted | None = None,
) -> Outbox:
    """Store `message` as an outbox row (pending) and an outbound messages row; no commit here."""
    raw = to_bytes(message)
    message_id = str(message["Message-ID"]).strip()
    sender = message["From"].addresses[0]
    to, cc = _addresses(message, "To"), _addresses(message, "Cc")
    recipients = list(dict.fromkeys(to + cc))
    if not recipients:
        raise OutboxError(f"{template}: the mail has no recipient")
    digest = put_blob(session, raw)
    plain = message.get_body(("plain",))
    body_text = plain.get_content() if isinstance(plain, EmailMessage) else ""
    references = str(message["References"]).split() if message["References"] else []
    stored = Message(
        ticket_id=ticket_id, direction=Direction.outbound, message_id=message_id,
        in_reply_to=str(message["In-Reply-To"]).strip() if message["In-Reply-To"] else None,
        references=references, from_addr=sender.addr_spec.lower(), from_name=sender.display_name or None,
        to_addrs=to, cc_addrs=cc, subject=str(message["Subject"]), date=now, received_at=now,
        body_text=body_text, new_text=body_text, quoted_text="", signature="", body_html=None,
        kind="normal", kind_reason=None, list_id=None, defects=[], size=len(raw), oversize=False,
        raw_sha256=digest, source=f"outbox:{template}", thread_reason=f"sent by triage ({template})",
        extra={"template": template, "auto_submitted": auto_submitted},
    )
    session.add(stored)
    session.flush()
    row = Outbox(
        message_id=message_id, ticket_id=ticket_id, message_pk=stored.id, template=template,
        auto_submitted=auto_submitted, envelope_from=sender.addr_spec.lower(), recipients=recipients,
        to_addr=recipients[0], subject=str(message["Subject"]), raw=raw, status=OutboxStatus.pending,
        attempts=0, next_attempt_at=now, refused=[], actor=actor, created_at=now, updated_at=now,
    )
    session.add(row)
    session.flush()
    session.add(Event(ticket_id=ticket_id, at=now, actor=actor, action="mail-queued", detail={
        "template": template, "to": recipients, "message_id": message_id, "outbox": row.id,
        "auto_submitted": auto_submitted,
    }))
    return row


def _failed(session: Session, ticket_id: int | None, now: datetime, template: str, to: str | None,
            error: BaseException, *, actor: str = ACTOR, auto_submitted: AutoSubmitted | None = None) -> Failed:
    row = record_failed_mail(session, template=template, ticket_id=ticket_id, to=to, error=error, actor=actor,
                             now=now, auto_submitted=auto_submitted)
    return Failed(template, to, row.last_error or "", row.id)


@dataclass(slots=True)
class _RecentAutomatic:
    """The automatic mails of the rate window, counted by mailbox (`loops.rate_key`) and, for
    acknowledgments, by domain: read once for a batch, then kept up to date as it queues mail."""

    by_mailbox: Counter[str]
    acknowledgments_by_domain: Counter[str]

    @classmethod
    def load(cls, session: Session, now: datetime) -> _RecentAutomatic:
        recent = cls(Counter(), Counter())
        for to_addr, template in session.execute(
            select(Outbox.to_addr, Outbox.template).where(
                Outbox.created_at > now - loops.RATE_WINDOW, Outbox.auto_submitted.is_not(None)
            )
        ):
            recent.add(to_addr, template)
        return recent

    def add(self, to_addr: str, template: str) -> None:
        self.by_mailbox[loops.rate_key(to_addr)] += 1
        if template == "acknowledgment":
            self.acknowledgments_by_domain[loops.rate_domain(to_addr)] += 1


def _recipient_facts(
    session: Session, party: Party, contact: Contact | None, recent: _RecentAutomatic
) -> loops.RecipientFacts:
    bouncing = contact.bouncing if contact is not None else bool(session.scalar(
        select(Contact.bouncing).join(ContactAddress, ContactAddress.contact_id == Contact.id)
        .where(func.lower(ContactAddress.address) == party.address.lower()).limit(1)
    ))
    return loops.RecipientFacts(
        party.address.lower(), bouncing,
        automatic_last_hour=recent.by_mailbox[loops.rate_key(party.address)],
        domain_acknowledgments_last_hour=recent.acknowledgments_by_domain[loops.rate_domain(party.address)],
    )


def _skip(session: Session, ticket_id: int | None, now: datetime, template: str, to: str | None,
          reason: str, codes: Sequence[str] = ()) -> Skipped:
    session.add(Event(ticket_id=ticket_id, at=now, actor=ACTOR, action="mail-skipped",
                      detail={"template": template, "to": to, "reasons": list(codes), "why": reason}))
    log.info("outbox.skipped", template=template, reasons=list(codes))  # the reason text can quote the mail
    return Skipped(template, to, reason)


def _render_compose(
    wiring: Wiring, name: str, data: dict[str, Any], *, language: str, to: Party, view: TicketView,
    auto_submitted: AutoSubmitted | None, now: datetime,
) -> tuple[Rendered, EmailMessage]:
    settings = wiring.settings
    rendered = wiring.renderer.render(name, data, language)
    message = compose(
        rendered, sender=Party(settings.mail.liaison_address, settings.outbox.desk_name), to=[to],
        reply_to=Party(settings.mail.liaison_address, settings.outbox.desk_name), thread=view.thread(),
        own_domain=settings.mail.own_domain, date=now, auto_submitted=auto_submitted,
    )
    return rendered, message


def _language(wiring: Wiring, name: str, contact: Contact | None, text: str,
              ticket_language: str | None = None) -> tuple[str, str]:
    return choose_language(
        contact_language=contact.language if contact is not None else None, text=text,
        available=wiring.renderer.languages(name), default=wiring.settings.outbox.default_language,
        ticket_language=ticket_language,
    )


# -- acknowledgment ------------------------------------------------------------------------------


def acknowledge_new_tickets(
    session: Session, outcomes: Sequence[_Outcome], *, now: datetime, wiring: Wiring
) -> list[Queued | Skipped | Failed]:
    """Queue the acknowledgment for each ticket a normal mail of this batch opened (outbox.auto_acknowledge).

    Runs in the ingest transaction. A mail that may not be answered (autoreply, bounce, list
    mail, our own mail back, a bouncing or rate-limited address, an old mail) gets a
    `mail-skipped` event with the reasons instead. A failure to build one acknowledgment (any
    exception) is rolled back to its savepoint and recorded on its ticket (`record_failed_mail`);
    it never fails the ingest.
    """
    if not wiring.settings.outbox.auto_acknowledge:
        return []
    pks = [o.message_pk for o in outcomes if o.status == "stored" and o.ticket_reference and o.message_pk]
    if not pks:
        return []
    pairs = list(session.execute(
        select(Message, Ticket).join(Ticket, Ticket.id == Message.ticket_id).where(Message.id.in_(pks))
    ))
    firsts = {ticket_id: first for ticket_id, first in session.execute(
        select(Message.ticket_id, func.min(Message.id))
        .where(Message.ticket_id.in_({t.id for _, t in pairs})).group_by(Message.ticket_id)
    )}
    recent = _RecentAutomatic.load(session, now)
    results: list[Queued | Skipped | Failed] = []
    for message, ticket in sorted(pairs, key=lambda pair: pair[0].id):
        if firsts.get(ticket.id) != message.id:
            continue  # a follow-up on an existing ticket: acknowledged when the ticket was opened
        ticket_id, to = ticket.id, message.from_addr  # read before a rollback can expire them
        result = _isolated(
            session, partial(_acknowledge, session, wiring, message, ticket, now, recent),
            partial(_failed, session, ticket_id, now, "acknowledgment", to, auto_submitted="auto-replied"))
        if isinstance(result, (Queued, Failed)) and result.to:
            recent.add(result.to, "acknowledgment")  # a failed row counts in the window too
        results.append(result)
    return results


def _acknowledge(
    session: Session, wiring: Wiring, message: Message, ticket: Ticket, now: datetime, recent: _RecentAutomatic
) -> Queued | Skipped:
    settings = wiring.settings
    contact = contact_with_addresses(session, ticket.contact_id)
    view = TicketView(ticket, contact, message, [message])
    volunteer = view.volunteer
    facts = _recipient_facts(session, volunteer, contact, recent) if volunteer is not None else None
    signals = tuple(str(s) for s in (message.extra or {}).get("signals", ()))
    verdict = loops.may_auto_answer(
        loops.InboundFacts(
            message.kind, message.from_addr, message.message_id, message.list_id, message.date, signals,
            sender_authentication(signals, message.from_addr, settings.mail.trusted_authserv_ids),
        ),
        facts, own_domain=settings.mail.own_domain, liaison_address=settings.mail.liaison_address,
        rate_limit_per_hour=settings.outbox.rate_limit_per_hour, now=now,
        max_age=timedelta(hours=settings.outbox.acknowledge_max_age_hours),
        domain_limit_per_hour=settings.outbox.rate_limit_per_domain_per_hour,
        require_authentication=not settings.outbox.acknowledge_unauthenticated,
    )
    if not verdict.allowed or volunteer is None:
        return _skip(session, ticket.id, now, "acknowledgment", message.from_addr, verdict.describe(), verdict.codes)
    language, why = _language(wiring, "acknowledgment", contact, f"{message.subject or ''}\n{message.new_text}",
                              ticket.language)
    _, composed = _render_compose(
        wiring, "acknowledgment", context(view, settings, language=language), language=language, to=volunteer,
        view=view, auto_submitted="auto-replied", now=now,
    )
    row = enqueue(session, composed, template="acknowledgment", actor=ACTOR, now=now, ticket_id=ticket.id,
                  auto_submitted="auto-replied")
    session.add(Event(ticket_id=ticket.id, at=now, actor=ACTOR, action="language",
                      detail={"language": language, "why": why, "mail": "acknowledgment"}))
    return Queued("acknowledgment", volunteer.address, row.message_id, row.id)


# -- hand-off ------------------------------------------------------------------------------------


def enqueue_handoff(
    session: Session, ticket: Ticket, team: str, actor: str, now: datetime, *, wiring: Wiring
) -> list[Queued | Skipped | Failed]:
    """The routing approval's mails, in its transaction: the introduction to `team` and the volunteer's notice.

    Called by the routing desk (its `on_routed` hook, `App.handoff`) with the team's key. With
    outbox.auto_handoff off, or a team without an address, nothing is queued and the ticket's
    log says why. The notice to the volunteer is automatic mail: loop-protected and rate-limited.
    Each mail is built in a savepoint of its own: a failure is recorded (`record_failed_mail`)
    and never undoes the approval.
    """
    ticket_id = ticket.id
    if not wiring.settings.outbox.auto_handoff:
        return [_skip(session, ticket_id, now, "handoff-team", None, "outbox.auto_handoff is off", ["off"])]
    info = wiring.teams.get(team)
    if info is None:
        return [_skip(session, ticket_id, now, "handoff-team", None,
                      f"team {team!r} has no address in the teams file", ["unknown-team"])]
    view = load_view(session, ticket)
    volunteer = view.volunteer
    return [
        _isolated(session, lambda: _handoff_team(session, wiring, view, info, actor, now),
                  lambda exc: _failed(session, ticket_id, now, "handoff-team", info.address, exc, actor=actor,
                                      auto_submitted="auto-generated")),
        _isolated(session, lambda: _handoff_volunteer(session, wiring, view, info, actor, now),
                  lambda exc: _failed(session, ticket_id, now, "handoff-volunteer",
                                      volunteer.address if volunteer else None, exc, actor=actor,
                                      auto_submitted="auto-generated")),
    ]


def _isolated(session: Session, build: Callable[[], Queued | Skipped],
              failed: Callable[[Exception], Failed]) -> Queued | Skipped | Failed:
    """`build()` in a savepoint; on any exception, roll the savepoint back and record the failure."""
    savepoint = session.begin_nested()
    try:
        result = build()
        savepoint.commit()
        return result
    except Exception as exc:  # noqa: BLE001 - one mail's failure is recorded, never raised into the decision
        savepoint.rollback()
        return failed(exc)


def _handoff_team(session: Session, wiring: Wiring, view: TicketView, info: Team, actor: str,
                  now: datetime) -> Queued:
    _, composed = _render_compose(
        wiring, "handoff-team", context(view, wiring.settings, team=info, actor=actor),
        language="en", to=Party(info.address, info.name), view=view, auto_submitted="auto-generated", now=now,
    )
    row = enqueue(session, composed, template="handoff-team", actor=actor, now=now, ticket_id=view.ticket.id,
                  auto_submitted="auto-generated")
    return Queued("handoff-team", info.address, row.message_id, row.id)


def _handoff_volunteer(session: Session, wiring: Wiring, view: TicketView, info: Team, actor: str,
                       now: datetime) -> Queued | Skipped:
    ticket_id = view.ticket.id
    volunteer = view.volunteer
    if volunteer is None:
        return _skip(session, ticket_id, now, "handoff-volunteer", None, "the ticket has no sender", ["no-sender"])
    verdict = loops.may_send_automatic(
        _recipient_facts(session, volunteer, view.contact, _RecentAutomatic.load(session, now)),
        rate_limit_per_hour=wiring.settings.outbox.rate_limit_per_hour,
        liaison_address=wiring.settings.mail.liaison_address,
    )
    if not verdict.allowed:
        return _skip(session, ticket_id, now, "handoff-volunteer", volunteer.address, verdict.describe(),
                     verdict.codes)
    last_text = view.last_inbound.new_text if view.last_inbound is not None else ""
    language, _ = _language(wiring, "handoff-volunteer", view.contact, last_text)
    _, composed = _render_compose(
        wiring, "handoff-volunteer", context(view, wiring.settings, team=info, language=language, actor=actor),
        language=language, to=volunteer, view=view, auto_submitted="auto-generated", now=now,
    )
    row = enqueue(session, composed, template="handoff-volunteer", actor=actor, now=now, ticket_id=ticket_id,
                  auto_submitted="auto-generated")
    return Queued("handoff-volunteer", volunteer.address, row.message_id, row.id)


# -- the liaison's reply -------------------------------------------------------------------------

STATUS_AFTER = {"resolution": TicketStatus.resolved}


def build_reply(
    session: Session, ticket: Ticket, *, template: str, body: str, now: datetime, wiring: Wiring,
    language: str | None = None,
) -> tuple[Rendered, EmailMessage]:
    """Render and compose the liaison's mail on `ticket` (for a preview or to queue); raises on bad input.

    `language` is the sender's choice; without it, the volunteer's (contact record, else detected)."""
    view = load_view(session, ticket)
    volunteer = view.volunteer
    if volunteer is None:
        raise OutboxError(f"{ticket.reference} has no sender address to reply to")
    team = wiring.teams.get(ticket.team) if ticket.team else None
    if language is None:
        last_text = view.last_inbound.new_text if view.last_inbound is not None else ""
        language, _ = _language(wiring, template, view.contact, last_text)
    return _render_compose(
        wiring, template, context(view, wiring.settings, team=team, language=language, body=body),
        language=language, to=volunteer, view=view, auto_submitted=None, now=now,
    )


def enqueue_reply(
    session: Session, ticket: Ticket, *, template: str, body: str, actor: str, now: datetime, wiring: Wiring,
    language: str | None = None,
) -> Outbox:
    """Queue the liaison's mail (a person's mail: no Auto-Submitted, no rate limit) and update the status."""
    _, message = build_reply(session, ticket, template=template, body=body, now=now, wiring=wiring,
                             language=language)
    row = enqueue(session, message, template=template, actor=actor, now=now, ticket_id=ticket.id)
    new_status = STATUS_AFTER.get(template, TicketStatus.waiting)
    if ticket.status != new_status:
        session.add(Event(ticket_id=ticket.id, at=now, actor=actor, action="status",
                          detail={"old": ticket.status.value, "new": new_status.value, "why": f"{template} sent"}))
        ticket.status = new_status
    ticket.updated_at = now
    return row


# -- a staff team's reply by mail ------------------------------------------------------------------

RELAY = "staff-reply"  # the outbox row's label; the mail is the liaison's `reply` template


def relay_staff_replies(
    session: Session, outcomes: Sequence[_Outcome], *, now: datetime, wiring: Wiring
) -> list[Queued | Skipped | Failed]:
    """Pass each staff reply of this ingest batch (`staff == "reply"`: a person-written mail from the
    team the ticket was handed to) on to the volunteer, from the desk, as the desk's reply.

    Runs in the ingest transaction, so the relay is queued exactly once with the stored mail (a
    second delivery of it is a duplicate, relayed no more). The mail answers the volunteer's own
    latest mail (In-Reply-To, References), so the volunteer sees one conversation with one desk.
    A failure to build it is recorded on the ticket (`record_failed_mail`), never fails the ingest.
    """
    pks = [o.message_pk for o in outcomes if o.status == "stored" and o.staff == "reply" and o.message_pk]
    if not pks:
        return []
    results: list[Queued | Skipped | Failed] = []
    pairs = session.execute(
        select(Message, Ticket).join(Ticket, Ticket.id == Message.ticket_id).where(Message.id.in_(pks))
    )
    for message, ticket in sorted(pairs, key=lambda pair: pair[0].id):
        actor, ticket_id = f"staff:{message.from_addr}", ticket.id
        results.append(_isolated(session, partial(_relay, session, wiring, message, ticket, actor, now),
                                 partial(_failed, session, ticket_id, now, RELAY, None, actor=actor)))
    return results


def _relay(session: Session, wiring: Wiring, message: Message, ticket: Ticket, actor: str,
           now: datetime) -> Queued | Skipped:
    body = (message.new_text or "").strip("\n")
    if not body.strip():
        return _skip(session, ticket.id, now, RELAY, None, "the team's reply has no text of its own", ["empty"])
    if load_view(session, ticket).volunteer is None:
        return _skip(session, ticket.id, now, RELAY, None, "the ticket has no sender", ["no-sender"])
    _, composed = build_reply(session, ticket, template="reply", body=body, now=now, wiring=wiring)
    row = enqueue(session, composed, template=RELAY, actor=actor, now=now, ticket_id=ticket.id)
    staff = dict((message.extra or {}).get("staff") or {})
    message.extra = {**(message.extra or {}), "staff": {**staff, "relayed_as": row.message_pk}}  # the ticket page links them
    return Queued(RELAY, row.to_addr, row.message_id, row.id)


__all__ = [
    "ACTOR", "RELAY", "Failed", "OutboxError", "Queued", "Skipped", "acknowledge_new_tickets",
    "build_reply", "enqueue", "enqueue_handoff", "enqueue_reply", "relay_staff_replies",
]
