"""Build the `EmailMessage` for a rendered template: headers that thread and do not loop. Pure.

- From the liaison address (with the desk's name), Reply-To the liaison address;
- a Message-ID on our own domain (`email.utils.make_msgid`), so a reply to it is ours to thread;
- In-Reply-To the volunteer's mail and References chained from theirs, so every client threads it;
- the ticket reference in the subject, so a reply threads even where a client drops the headers;
- `Auto-Submitted: auto-replied` on automatic answers and `auto-generated` on reminders and
  notifications (RFC 3834), so well-behaved robots do not answer us.

Headers are set only through `EmailMessage` and `email.headerregistry` (never by joining
strings). Every value is checked by the rules the standard library itself applies, before and
after: a value `str.splitlines()` breaks (CR, LF, VT, FF, FS/GS/RS, NEL, U+2028, U+2029) is
refused with `HeaderInjectionError`; each address and msg-id is parsed back by
`email.headerregistry` and must come back unchanged and without defects; and the finished mail
is written and read back, every header compared with what was meant. So `compose` and
`to_bytes` return a mail that says what we meant, or raise `ComposeError` naming the value:
the standard library's own errors (ValueError, AttributeError, IndexError...) never escape.
"""

from __future__ import annotations

import email.policy
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.errors import ObsoleteHeaderDefect
from email.headerregistry import Address, BaseHeader, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import Policy
from email.utils import format_datetime, make_msgid
from typing import Any, Literal

from triage.outbox.render import Rendered

AutoSubmitted = Literal["auto-replied", "auto-generated"]

MAX_REFERENCES = 20  # RFC 5322 3.6.4 allows trimming; keep the first and the newest
MAX_MSG_ID = 900  # a msg-id must fit on one header line (998 octets, RFC 5322 2.1.1) to be folded, not encoded
ADDRESS_HEADERS = ("From", "To", "Cc", "Reply-To")
MSG_ID_HEADERS = ("Message-ID", "In-Reply-To", "References")


class ComposeError(ValueError):
    """The mail cannot be built from these values; the message says which value and why."""


class HeaderInjectionError(ComposeError):
    """A header value holds a line break: it would start a header of its own. Refused, never cleaned."""


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


class _MsgIdsHeader(UnstructuredHeader, BaseHeader):
    """In-Reply-To and References, which the standard library treats as free text: folded only
    between ids, never RFC 2047-encoded (a long id would otherwise arrive as an encoded word that
    no client matches). Their ids are checked by `valid_msg_id` first."""

    def fold(self, *, policy: Policy) -> str:
        longest = max((len(token) for token in str(self).split()), default=0)
        width = max(policy.max_line_length or 78, len(self.name) + 2 + longest)
        return str(super().fold(policy=policy.clone(max_line_length=width)))


def _header_registry() -> HeaderRegistry:
    registry = HeaderRegistry()
    registry.map_to_type("in-reply-to", _MsgIdsHeader)
    registry.map_to_type("references", _MsgIdsHeader)
    return registry


POLICY = email.policy.SMTP.clone(header_factory=_header_registry())  # what we write
_READ = email.policy.default  # how a receiving client reads it


def _show(value: str) -> str:
    return repr(value if len(value) <= 80 else f"{value[:77]}...")


def _single_line(what: str, value: str | None) -> str | None:
    """`value`, unless `str.splitlines()` would break it: the rule `email.policy` applies to header values."""
    if value is not None and "".join(value.splitlines()) != value:
        breaks = sorted({f"U+{ord(c):04X}" for c in value if "".join(f"a{c}b".splitlines()) == "ab"})
        raise HeaderInjectionError(f"{what} contains a line break ({', '.join(breaks)}); refused: {_show(value)}")
    return value


def _address(what: str, party: Party) -> Address:
    """The mailbox, if `email.headerregistry` reads it back as given (the name up to whitespace) and
    without defects."""
    _single_line(f"{what} address", party.address)
    _single_line(f"{what} name", party.name)
    bare = f"{what} address {_show(party.address)} is not a bare address such as ana@example.org"
    if party.address.count("@") != 1 or any(c in party.address for c in " <>,;\"\t"):
        raise ComposeError(bare)
    local, domain = party.address.rsplit("@", 1)
    if not local or not domain:
        raise ComposeError(bare)
    if not party.address.isascii():
        raise ComposeError(f"{what} address {_show(party.address)} is not ASCII (SMTP without SMTPUTF8 cannot carry it)")
    try:
        mailbox = Address(display_name=party.name or "", username=local, domain=domain)
        header = POLICY.header_factory(what, str(mailbox))
        parsed = [(a.display_name, a.addr_spec) for a in header.addresses]
    except Exception as exc:  # noqa: BLE001 - the standard library's parser raises many kinds on bad input
        raise ComposeError(f"{what} address {_show(party.address)}: {type(exc).__name__}: {exc}") from None
    if header.defects or len(parsed) != 1 or parsed[0][1] != party.address or not _same_text(
            parsed[0][0], party.name or ""):  # the address exactly; the name up to whitespace (see _same_text)
        why = "; ".join(str(d) for d in header.defects) or f"read back as {parsed}"
        raise ComposeError(f"{what} {_show(str(mailbox))} is not a valid mailbox: {why}")
    return mailbox


def msg_id_problem(value: str) -> str | None:
    """Why `value` is not a msg-id we can write (`<left@right>`, printable ASCII, as
    `email.headerregistry` parses it), or None if it is one."""
    if "".join(value.splitlines()) != value:
        return "it contains a line break"
    if not value or len(value) > MAX_MSG_ID or not all("!" <= c <= "~" for c in value):
        return f"a msg-id is 1 to {MAX_MSG_ID} printable ASCII characters without spaces"
    try:
        header = POLICY.header_factory("Message-ID", value)
        read = str(header)
    except Exception as exc:  # noqa: BLE001 - the standard library's parser raises many kinds on bad input
        return f"{type(exc).__name__}: {exc}"
    if header.defects or read != value or not (value.startswith("<") and value.endswith(">") and "@" in value):
        return "; ".join(str(d) for d in header.defects) or "not of the form <left@right>"
    return None


def valid_msg_id(value: str | None) -> bool:
    """Is `value` a msg-id that `compose` accepts (for callers that drop what it would refuse)?"""
    return value is not None and msg_id_problem(value.strip()) is None


def _msg_id(what: str, value: str) -> str:
    _single_line(what, value)
    value = value.strip()
    problem = msg_id_problem(value)
    if problem is not None:
        raise ComposeError(f"{what} {_show(value)} is not a Message-ID such as <id@example.org>: {problem}")
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
    subject = _single_line("Subject", subject_with_reference(rendered.subject, thread.reference))
    assert subject is not None
    _single_line("ticket reference", thread.reference)
    _single_line("language", rendered.language)
    from_addr = _address("From", sender)
    to_addrs = [_address("To", party) for party in to]
    cc_addrs = [_address("Cc", party) for party in cc]
    reply = _address("Reply-To", reply_to or Party(sender.address))
    in_reply_to = _msg_id("In-Reply-To", thread.in_reply_to) if thread.in_reply_to else None
    references = chain_references(in_reply_to, [_msg_id("References", r) for r in thread.references])
    try:
        own_id = make_msgid(domain=own_domain)
    except Exception as exc:  # noqa: BLE001 - a domain the standard library cannot use
        raise ComposeError(f"own_domain {_show(own_domain)}: {type(exc).__name__}: {exc}") from None
    own_id = _msg_id("Message-ID", message_id or own_id)

    meant: dict[str, Any] = {
        "From": [from_addr], "To": to_addrs, "Cc": cc_addrs, "Reply-To": [reply], "Subject": subject,
        "Date": format_datetime(date), "Message-ID": [own_id], "In-Reply-To": [in_reply_to] if in_reply_to else [],
        "References": references, "Auto-Submitted": auto_submitted,
        "X-Auto-Response-Suppress": "All" if auto_submitted else None,  # Exchange's out-of-office: do not answer
        "X-Triage-Ticket": thread.reference or None,  # a digest about several tickets belongs to none of them
    }
    try:
        message = EmailMessage(policy=POLICY)
        for name, value in meant.items():
            if value:
                message[name] = " ".join(value) if name in MSG_ID_HEADERS else value
        message.set_content(rendered.text, cte="quoted-printable")
        if rendered.html is not None:
            message.add_alternative(rendered.html, subtype="html", cte="quoted-printable")
        message["Content-Language"] = rendered.language  # after set_content, which replaces Content-* headers
    except ComposeError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the standard library refuses is a value we cannot send
        raise ComposeError(f"the mail cannot be built: {type(exc).__name__}: {exc}") from None
    _check_round_trip(to_bytes(message), {**meant, "Content-Language": rendered.language})
    return message


def _same_text(read: str, meant: str) -> bool:
    """Free text read back is the text meant up to whitespace: a reader keeps the space of a header
    folded right after its colon, the standard library's folder drops the space between two
    encoded words (a Cyrillic subject loses a space between two words), and its reader adds one
    between two encoded words that split a word (a long display name). None changes a character.
    (The folder also writes a long display name as an unquoted obs-phrase: its reader's
    ObsoleteHeaderDefect is the library's own style, not a fault in the value.)"""
    return "".join(read.split()) == "".join(meant.split())


def _check_round_trip(raw: bytes, meant: dict[str, Any]) -> None:
    """Read the written mail back as a client would and compare every header with what was meant."""
    try:
        back = BytesHeaderParser(policy=_READ).parsebytes(raw)
        wire = BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)  # msg-ids as written, not decoded
        for name, value in meant.items():
            if not value:
                continue
            if name in ADDRESS_HEADERS:  # addresses exactly; names as free text (folding moves their spaces)
                header = back[name]
                read: Any = [(a.display_name, a.addr_spec) for a in header.addresses]
                expected: Any = [(a.display_name, a.addr_spec) for a in value]
                if len(read) == len(expected) and all(
                        r[1] == e[1] and _same_text(r[0], e[0]) for r, e in zip(read, expected, strict=True)):
                    read = expected
                problem = "; ".join(str(d) for d in header.defects if not isinstance(d, ObsoleteHeaderDefect))
            elif name in MSG_ID_HEADERS:
                read, expected, problem = str(wire[name]).split(), value, ""
            else:  # free text: the same up to whitespace, which folding may move (see _same_text)
                read, expected, problem = str(back[name]), value, ""
                read = expected if _same_text(read, expected) else read
            if read != expected or problem:
                raise ComposeError(f"{name} {_show(str(expected))} does not survive being written and read "
                                   f"back: {problem or f'read back as {_show(str(read))}'}")
    except ComposeError:
        raise
    except Exception as exc:  # noqa: BLE001 - a mail the standard library cannot read back is not valid
        raise ComposeError(f"the mail cannot be read back: {type(exc).__name__}: {exc}") from None


def to_bytes(message: EmailMessage) -> bytes:
    """The wire form: CRLF line ends, non-ASCII headers RFC 2047-encoded, 7-bit clean."""
    try:
        return message.as_bytes(policy=POLICY)
    except Exception as exc:  # noqa: BLE001 - whatever the standard library refuses is a mail we cannot send
        raise ComposeError(f"the mail cannot be written: {type(exc).__name__}: {exc}") from None


__all__ = [
    "POLICY", "AutoSubmitted", "ComposeError", "HeaderInjectionError", "Party", "ThreadInfo",
    "chain_references", "compose", "msg_id_problem", "subject_with_reference", "to_bytes", "valid_msg_id",
]
