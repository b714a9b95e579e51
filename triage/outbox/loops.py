"""Should triage answer this mail automatically, or send this automatic mail? Verdicts with reasons. Pure.

Deciding only: nothing here sends or stores. Each refusal names its reason (a short code
and a sentence), so the liaison sees why no acknowledgment went out, the way Mailman's
rules answer yes or no with a reason and leave the action to others. The store side
(`triage.outbox.queue`) looks up the facts (is the address bouncing, how many automatic
mails it had this hour) and asks here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

RATE_WINDOW = timedelta(hours=1)

_ROBOT = re.compile(
    r"^(?:mailer[-_.]?daemon|postmaster|no[-_.]?reply|do[-_.]?not[-_.]?reply|bounces?|"
    r"notifications?|listserv|majordomo|owner-.*|.*-(?:owner|request|bounces))@",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    text: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """Yes or no, with the reasons for no (empty when yes)."""

    reasons: tuple[Reason, ...] = ()

    @property
    def allowed(self) -> bool:
        return not self.reasons

    @property
    def codes(self) -> list[str]:
        return [reason.code for reason in self.reasons]

    def describe(self) -> str:
        return "; ".join(reason.text for reason in self.reasons) or "allowed"


@dataclass(frozen=True, slots=True)
class InboundFacts:
    """What loop protection needs to know of a received mail."""

    kind: str
    from_addr: str | None
    message_id: str | None
    list_id: str | None
    date: datetime | None


@dataclass(frozen=True, slots=True)
class RecipientFacts:
    """What loop protection needs to know of the address an automatic mail would go to."""

    address: str
    bouncing: bool
    automatic_last_hour: int


def _domain(value: str | None) -> str:
    if not value or "@" not in value:
        return ""
    return value.strip().strip("<>").rsplit("@", 1)[1].lower()


def may_send_automatic(recipient: RecipientFacts, *, rate_limit_per_hour: int, liaison_address: str) -> Verdict:
    """May an automatic mail (acknowledgment, notice, reminder) go to this address now?"""
    reasons = []
    if recipient.address.lower() == liaison_address.lower():
        reasons.append(Reason("own-address", "the recipient is the liaison address itself"))
    if _ROBOT.match(recipient.address):
        reasons.append(Reason("robot-address", f"{recipient.address} is a robot's address (no-reply, daemon, list)"))
    if recipient.bouncing:
        reasons.append(Reason("bouncing", f"{recipient.address} is marked bouncing"))
    if recipient.automatic_last_hour >= rate_limit_per_hour:
        reasons.append(Reason(
            "rate-limit",
            f"{recipient.address} already had {recipient.automatic_last_hour} automatic mail(s) in the last hour "
            f"(limit {rate_limit_per_hour})",
        ))
    return Verdict(tuple(reasons))


def may_auto_answer(
    mail: InboundFacts,
    recipient: RecipientFacts | None,
    *,
    own_domain: str,
    liaison_address: str,
    rate_limit_per_hour: int,
    now: datetime,
    max_age: timedelta,
) -> Verdict:
    """May triage answer this received mail automatically (RFC 3834 section 2)?"""
    reasons = []
    if mail.kind == "autoreply":
        reasons.append(Reason("autoreply", "the mail is an automatic reply"))
    elif mail.kind == "bounce":
        reasons.append(Reason("bounce", "the mail is a bounce"))
    elif mail.kind != "normal":
        reasons.append(Reason("not-normal", f"the mail is of kind {mail.kind}"))
    if mail.list_id:
        reasons.append(Reason("mailing-list", f"the mail came through the mailing list {mail.list_id}"))
    if own_domain and _domain(mail.message_id) == own_domain.lower():
        reasons.append(Reason("own-mail", f"the Message-ID is on our own domain {own_domain}: our mail came back"))
    if mail.date is not None and now - mail.date > max_age:
        reasons.append(Reason("too-old", f"the mail is dated {mail.date.isoformat()}, older than {max_age}"))
    if not mail.from_addr or recipient is None:
        reasons.append(Reason("no-sender", "the mail has no sender address to answer"))
    else:
        reasons.extend(
            may_send_automatic(recipient, rate_limit_per_hour=rate_limit_per_hour, liaison_address=liaison_address)
            .reasons
        )
    return Verdict(tuple(reasons))


__all__ = [
    "RATE_WINDOW", "InboundFacts", "Reason", "RecipientFacts", "Verdict", "may_auto_answer", "may_send_automatic",
]
