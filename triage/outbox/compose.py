"""Build the `EmailMessage` for a rendered template: headers that thread and do not loop. Pure.

- From the liaison address (with the desk's name), Reply-To the liaison address;
- a Message-ID on our own domain (`email.utils.make_msgid`), so a reply to it is ours to thread;
- In-Reply-To the volunteer's mail and References chained from theirs, so every client threads it;
- the ticket reference in the subject, so a reply threads even where a client drops the headers;
- `Auto-Submitted: auto-replied` on automatic answers and `auto-generated` on reminders and
  notifications (RFC 3834), so well-behaved robots do not answer us.

Headers are set only through `EmailMessage` and `email.headerregistry` (never by joining
strings), and a carriage return or line feed inside any value is refused with
`HeaderInjectionError` before anything is built.
"""

from __future__ import annotations

import email.policy
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Literal

from triage.outbox.render import Rendered

AutoSubmitted = Literal["auto-replied", "auto-generated"]

MAX_REFERENCES = 20  # RFC 5322 3.6.4 allows trimming; keep the first and the newest


class ComposeError(ValueError):
    """The mail cannot be built from these values; the message says which value and why."""


class HeaderInjectionError(ComposeError):
    """A header value holds a CR or LF: it would start a header of its own. Refused, never cleaned."""


@dataclass(frozen=True, slots=True)
class Party:
    """A mailbox: an address and an optional display name (data, never parsed from a string)."""

    address: str
    name: str | None = None


@dataclass(frozen=True, slots=True)
class ThreadInfo:
    """Where the mail belongs: the ticket reference and the mail it answers (if any)."""

    reference: str
    in_reply_to: str | None = None
    references: Sequence[str] = field(default_factory=tuple)


def _single_line(what: str, value: str | None) -> str | None:
    if value is not None and ("\r" in value or "\n" in value):
        raise HeaderInjectionError(f"{what} contains a line break (CR or LF); refused: {value[:60]!r}")
    return value


def _address(what: str, party: Party) -> Address:
    _single_line(f"{what} address", party.address)
    _single_line(f"{what} name", party.name)
    if party.address.count("@") != 1 or any(c in party.address for c in " <>,;\"\t"):
        raise ComposeError(f"{what} address {party.address!r} is not a bare address such as ana@example.org")
    local, domain = party.address.rsplit("@", 1)
    if not local or not domain:
        raise ComposeError(f"{what} address {party.address!r} is not a bare address such as ana@example.org")
    try:
        return Address(display_name=party.name or "", username=local, domain=domain)
    except (ValueError, TypeError) as exc:
        raise ComposeError(f"{what} address {party.address!r}: {exc}") from None


def _msg_id(what: str, value: str) -> str:
    _single_line(what, value)
    value = value.strip()
    if not (value.startswith("<") and value.endswith(">") and "@" in value) or any(c in value[1:-1] for c in " <>"):
        raise ComposeError(f"{what} {value!r} is not a Message-ID such as <id@example.org>")
    return value


def subject_with_reference(subject: str, reference: str) -> str:
    """The subject, with `[reference] ` in front unless it already names the reference."""
    return subject if reference in subject else f"[{reference}] {subject}".rstrip()


def chain_references(in_reply_to: str | None, references: Sequence[str]) -> list[str]:
    """The References of a reply: theirs, then the mail we answer; trimmed to the first and the newest."""
    chain: list[str] = []
    for item in [*references, *([in_reply_to] if in_reply_to else [])]:
        if item not in chain:
            chain.append(item)
    if len(chain) > MAX_REFERENCES:
        chain = [chain[0], *chain[-(MAX_REFERENCES - 1):]]
    return chain


def compose(
    rendered: Rendered,
    *,
    sender: Party,
    to: Sequence[Party],
    thread: ThreadInfo,
    own_domain: str,
    date: datetime,
    cc: Sequence[Party] = (),
    reply_to: Party | None = None,
    auto_submitted: AutoSubmitted | None = None,
    message_id: str | None = None,
) -> EmailMessage:
    """The mail, ready to be queued. Raises HeaderInjectionError or ComposeError for bad values."""
    if not to:
        raise ComposeError("a mail needs at least one recipient")
    _single_line("own_domain", own_domain)
    subject = _single_line("subject", subject_with_reference(rendered.subject, thread.reference))
    assert subject is not None
    _single_line("ticket reference", thread.reference)
    from_addr = _address("From", sender)
    to_addrs = [_address("To", party) for party in to]
    cc_addrs = [_address("Cc", party) for party in cc]
    reply = _address("Reply-To", reply_to or Party(sender.address))
    in_reply_to = _msg_id("In-Reply-To", thread.in_reply_to) if thread.in_reply_to else None
    references = chain_references(in_reply_to, [_msg_id("References", r) for r in thread.references])
    own_id = _msg_id("Message-ID", message_id) if message_id else make_msgid(domain=own_domain)
    _single_line("language", rendered.language)

    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = from_addr
    message["To"] = to_addrs
    if cc_addrs:
        message["Cc"] = cc_addrs
    message["Reply-To"] = reply
    message["Subject"] = subject
    message["Date"] = format_datetime(date)
    message["Message-ID"] = own_id
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
    if references:
        message["References"] = " ".join(references)  # validated msg-ids, one header value
    if auto_submitted:
        message["Auto-Submitted"] = auto_submitted
        message["X-Auto-Response-Suppress"] = "All"  # Exchange's out-of-office: do not answer this
    if thread.reference:  # a digest about several tickets belongs to none of them
        message["X-Triage-Ticket"] = thread.reference
    message.set_content(rendered.text, cte="quoted-printable")
    if rendered.html is not None:
        message.add_alternative(rendered.html, subtype="html", cte="quoted-printable")
    message["Content-Language"] = rendered.language  # after set_content, which replaces Content-* headers
    return message


def to_bytes(message: EmailMessage) -> bytes:
    """The wire form: CRLF line ends, non-ASCII headers RFC 2047-encoded, 7-bit clean."""
    return message.as_bytes(policy=email.policy.SMTP)


__all__ = [
    "AutoSubmitted", "ComposeError", "HeaderInjectionError", "Party", "ThreadInfo",
    "chain_references", "compose", "subject_with_reference", "to_bytes",
]
