"""The data a mail template sees, read from a ticket: plain strings, numbers and dicts only.

Templates never receive ORM objects or anything with methods worth calling: the sandbox
stops a template from reaching Python internals, and the context gives it nothing to reach.
Every key every template uses is always present (StrictUndefined makes a missing one an error).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from triage.config import Settings
from triage.outbox.compose import Party, ThreadInfo, valid_msg_id
from triage.store.models import Contact, Direction, Message, Ticket
from triage.teams import Team

HISTORY_LIMIT = 20
QUOTE_LIMIT = 4000
SUBJECT_LIMIT = 120  # a sender's subject or name echoed in our mail: long enough to recognise, too short to carry a pitch
NAME_LIMIT = 64


def one_line(value: str | None, limit: int = SUBJECT_LIMIT) -> str | None:
    """A sender's subject or name as it may appear inside ours: whitespace (line breaks too) collapsed, capped.

    Anyone can choose the subject and name of a mail that reaches the desk, and the
    acknowledgment echoes them to the From address, which anyone can choose too: capped,
    they cannot carry a spammer's message to a third party.
    """
    if not value:
        return value
    text = " ".join(value[: limit * 4 + 64].split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _iso(value: Any) -> str | None:
    return value.isoformat(timespec="minutes") if value is not None else None


@dataclass(frozen=True, slots=True)
class TicketView:
    """What mails about one ticket are built from."""

    ticket: Ticket
    contact: Contact | None
    last_inbound: Message | None
    messages: list[Message]

    @property
    def volunteer(self) -> Party | None:
        """Whom mail to the volunteer goes to: the ticket's contact, never another sender on the ticket;
        at the address of the contact's mail answered (a person may write from several), else their
        primary address."""
        if self.contact is None:
            return None
        own = {a.address.lower(): a.address for a in self.contact.addresses}
        sender = (self.last_inbound.from_addr or "").lower() if self.last_inbound is not None else ""
        address = own.get(sender) or self.contact.address
        return Party(address, one_line(self.contact.name, NAME_LIMIT)) if address else None

    def thread(self) -> ThreadInfo:
        """Answer the volunteer's latest mail (`last_inbound`), chaining its References. Ids that
        `compose` would refuse (malformed, or a value the standard library chokes on) are left
        out, so the ticket can still be answered: the reference in the subject threads it."""
        last = self.last_inbound
        if last is None:
            return ThreadInfo(self.ticket.reference)
        answered = last.message_id if valid_msg_id(last.message_id) else None
        return ThreadInfo(self.ticket.reference, answered, tuple(r for r in last.references or () if valid_msg_id(r)))


def contact_with_addresses(session: Session, contact_id: int | None) -> Contact | None:
    """The contact with its addresses in the same query (whom mail goes to needs them)."""
    if contact_id is None:
        return None
    return session.get(Contact, contact_id, options=[joinedload(Contact.addresses)])


def load_view(session: Session, ticket: Ticket) -> TicketView:
    """The ticket, its contact, and the contact's own latest mail as `last_inbound`.

    What is quoted to a team and answered is the volunteer's own word: another sender's
    mail on the ticket (a bounce, an auto-reply, the staff team) is never taken for it. Where
    none is found (no contact: the opening mail had no From), the mail that opened the ticket,
    whose sender the contact is, stands for it.
    """
    messages = list(session.scalars(select(Message).where(Message.ticket_id == ticket.id).order_by(Message.id)))
    inbound = [m for m in messages if m.direction == Direction.inbound and m.kind == "normal"]
    contact = contact_with_addresses(session, ticket.contact_id)
    authors = {a.address.lower() for a in contact.addresses} if contact is not None else set()
    own = [m for m in inbound if m.from_addr and m.from_addr.lower() in authors]
    last = own[-1] if own else (inbound[0] if inbound else None)
    return TicketView(ticket, contact, last, messages)


def context(
    view: TicketView,
    settings: Settings,
    *,
    team: Team | None = None,
    language: str = "en",
    **extra: Any,
) -> dict[str, Any]:
    """The template context for a mail about `view.ticket` (extra keys: body, actor, waiting_days...)."""
    ticket, volunteer, last = view.ticket, view.volunteer, view.last_inbound
    signature = (team.signature if team is not None and team.signature else None) or settings.outbox.signature
    data: dict[str, Any] = {
        "desk": {"name": settings.outbox.desk_name, "address": settings.mail.liaison_address,
                 "comment_address": settings.mail.staff_comment_address},
        "ticket": {
            "reference": ticket.reference,
            "subject": one_line(ticket.subject),
            "status": ticket.status.value,
            "team": ticket.team,
            "created_at": _iso(ticket.created_at),
        },
        "volunteer": {"name": volunteer.name if volunteer else None,
                      "address": volunteer.address if volunteer else None},
        "team": {"key": team.key, "name": team.name, "address": team.address} if team is not None else None,
        "signature": signature,
        "language": language,
        "message": {
            "subject": one_line(last.subject),
            "text": (last.new_text or last.body_text or "")[:QUOTE_LIMIT],
            "date": _iso(last.date or last.received_at),
            "from_addr": last.from_addr,
            "from_name": one_line(last.from_name, NAME_LIMIT),
        } if last is not None else None,
        "history": [
            {"direction": m.direction.value, "date": _iso(m.date or m.received_at), "from_addr": m.from_addr,
             "subject": one_line(m.subject), "kind": m.kind}
            for m in view.messages[-HISTORY_LIMIT:]
        ],
        "body": None,
        "actor": None,
        "recipient_name": None,
        "waiting_days": None,
    }
    data.update(extra)
    return data


__all__ = ["TicketView", "context", "load_view", "one_line"]
