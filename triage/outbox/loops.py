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
    signals: tuple[str, ...] = ()  # triage.ingest.signals: Return-Path, Precedence, List-*, suppression
    authentication: str = "none"  # signals.sender_authentication: pass, fail or none


@dataclass(frozen=True, slots=True)
class RecipientFacts:
    """What loop protection needs to know of the address an automatic mail would go to."""

    address: str
    bouncing: bool
    automatic_last_hour: int  # to this address, sub-addresses included (`rate_key`)
    domain_acknowledgments_last_hour: int = 0  # to any address of its domain


def _domain(value: str | None) -> str:
    if not value or "@" not in value:
        return ""
    return value.strip().strip("<>").rsplit("@", 1)[1].lower()


# Providers documented to ignore dots in the local part; elsewhere a dot tells two people apart.
_DOTLESS = {"gmail.com": "gmail.com", "googlemail.com": "gmail.com"}


def rate_key(address: str) -> str:
    """The mailbox an address delivers to, as far as a rate limit needs to know.

    Case is folded (RFC 5321 leaves the local part's case to the server; no real one tells
    Ada@ from ada@) and a `+tag` is dropped (the sub-address separator of Gmail, Outlook,
    Fastmail and Postfix's default), so victim+1@, victim+2@ ... share one limit. Dots are
    kept except at Gmail, which documents that it ignores them: elsewhere j.doe@ and jdoe@
    may well be two people, and merging them would only cost a legitimate acknowledgment;
    the per-domain limit caps what other spellings could still draw. A `-` separator
    (qmail's) is not assumed: too many real names contain one.
    """
    local, _, domain = address.strip().lower().rpartition("@")
    if not local:
        return address.strip().lower()
    local = local.split("+", 1)[0] or local
    domain = _DOTLESS.get(domain, domain)
    if domain == "gmail.com":
        local = local.replace(".", "") or local
    return f"{local}@{domain}"


def rate_domain(address: str) -> str:
    """The domain a per-domain limit counts an address under (`rate_key`'s)."""
    return rate_key(address).rpartition("@")[2]


# Header signals (triage.ingest.signals) that say: do not answer this mail automatically.
_SIGNAL_REASONS = {
    "null-return-path": ("null-return-path", "the mail has a null Return-Path <>: a robot sent it"),
    "precedence": ("bulk", "the mail says Precedence: {}"),
    "list-headers": ("list-headers", "the mail has a {} header: list or bulk mail"),
    "auto-response-suppress": ("suppress-auto-reply", "X-Auto-Response-Suppress: {} asks for no automatic reply"),
}


def _signal_reasons(signals: tuple[str, ...]) -> list[Reason]:
    reasons: dict[str, Reason] = {}
    for signal in signals:
        name, _, value = signal.partition(":")
        known = _SIGNAL_REASONS.get(name)
        if known is not None and known[0] not in reasons:
            reasons[known[0]] = Reason(known[0], known[1].format(value[:40]))
    return list(reasons.values())


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
    domain_limit_per_hour: int | None = None,
    require_authentication: bool = False,
) -> Verdict:
    """May triage answer this received mail automatically (RFC 3834 section 2)?

    Besides the kind: robot, bulk and list mail by its headers, mail without a Date, a From
    that failed DMARC at our server (or, with `require_authentication`, one that did not
    pass), and a domain that had `domain_limit_per_hour` acknowledgments in the last hour.
    """
    reasons = []
    if mail.kind == "autoreply":
        reasons.append(Reason("autoreply", "the mail is an automatic reply"))
    elif mail.kind == "bounce":
        reasons.append(Reason("bounce", "the mail is a bounce"))
    elif mail.kind != "normal":
        reasons.append(Reason("not-normal", f"the mail is of kind {mail.kind}"))
    if mail.list_id:
        reasons.append(Reason("mailing-list", f"the mail came through the mailing list {mail.list_id[:80]}"))
    reasons.extend(_signal_reasons(mail.signals))
    if mail.authentication == "fail":
        reasons.append(Reason("dmarc-fail", "the From failed DMARC at our own server: the sender is forged"))
    elif require_authentication and mail.authentication != "pass":
        reasons.append(Reason("unauthenticated", "the From has no DMARC pass from our own server "
                              "(outbox.acknowledge_unauthenticated is off)"))
    if own_domain and _domain(mail.message_id) == own_domain.lower():
        reasons.append(Reason("own-mail", f"the Message-ID is on our own domain {own_domain}: our mail came back"))
    if mail.date is None:
        reasons.append(Reason("no-date", "the mail has no valid Date (RFC 5322 requires one; robots omit it)"))
    elif now - mail.date > max_age:
        reasons.append(Reason("too-old", f"the mail is dated {mail.date.isoformat()}, older than {max_age}"))
    if not mail.from_addr or recipient is None:
        reasons.append(Reason("no-sender", "the mail has no sender address to answer"))
    else:
        reasons.extend(
            may_send_automatic(recipient, rate_limit_per_hour=rate_limit_per_hour, liaison_address=liaison_address)
            .reasons
        )
        count = recipient.domain_acknowledgments_last_hour
        if domain_limit_per_hour is not None and count >= domain_limit_per_hour:
            reasons.append(Reason(
                "domain-rate-limit",
                f"{rate_domain(recipient.address)} already had {count} acknowledgment(s) in the last hour "
                f"(limit {domain_limit_per_hour})",
            ))
    return Verdict(tuple(reasons))


__all__ = [
    "RATE_WINDOW", "InboundFacts", "Reason", "RecipientFacts", "Verdict", "may_auto_answer", "may_send_automatic",
    "rate_domain", "rate_key",
]
