"""Is a mail written by a person, an automatic reply, or a bounce? With the reason, for the liaison.

Replying to an autoreply or a bounce makes mail loops, and a bounce says a volunteer's
address is dead, so later stages need this verdict before they route anything. Standard
signals come first (RFC 3464 delivery-status and RFC 5965 feedback reports; RFC 3834
Auto-Submitted); then the habits of real servers that send neither: MAILER-DAEMON or
postmaster senders, the empty Return-Path <>, and their well-known subjects and phrases.
Bounce wins over autoreply, because most bounces also say "Auto-Submitted"; only a
challenge-response request, which some systems dress as a bounce, wins over it. The autoreply
rules are in `autoreplies`. Deciding only: nothing here acts on the verdict.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from triage.ingest import autoreplies
from triage.ingest.parsed import MailKind, ParsedAttachment

_DAEMON = re.compile(
    r"^(?:mailer[-_.]?daemon|mail[-_.]?daemon|postmaster|post_master|mail\.?delivery\.?system"
    r"|mdaemon|mmsc|nobody|e500_smtp_mail_service)(?:@|$)",
    re.IGNORECASE,
)
_BOUNCE_SUBJECT = re.compile(
    r"^\s*+(?:\[postmaster\]\s*+)?(?:undeliver|undelivered mail|returned mail"
    r"|mail delivery (?:failed|failure|problem|warning)"
    r"|delivery (?:status notification|failure|report|notification|has failed|status)"
    r"|failure notice|failure delivery"
    r"|failed delivery|failed mail|non-?delivery|permanent delivery failure|mail could not be delivered"
    r"|message delivery has failed|mail system error|delayed mail|warning: message|warning--could not send"
    r"|mail failed|mail not delivered|returned mail|undeliverable|could not send message"
    r"|there was an error sending your mail|email delivery failure|your message .* could not be delivered"
    r"|mail error|processing error|delivery status|complaint about message from|.*mail failure)",
    re.IGNORECASE,
)
# The same in Japanese and Chinese, found anywhere in the subject.
_BOUNCE_SUBJECT_CJK = re.compile(
    r"メールエラー|配信エラー|配信不能|不達|邮件(?:投递|传输|发送)失败|退信|未能送达", re.IGNORECASE
)
# Machine phrases that gateways append to the subject of the mail they return.
_BOUNCE_SUBJECT_TAG = re.compile(
    r"\(delivery failed\)|\bnon remis\b|\bnon-?delivery (?:report|notification)\b", re.IGNORECASE
)
# Phrases of bounce text, in lower case. Plain substring tests, the ones sharing a word behind a
# test for that word: a regex alternation of them all tries every phrase at every position.
_BOUNCE_PHRASES = (
    "could not be delivered",
    "couldn't be delivered",
    "was not delivered",
    "undeliver",
    "delivery to the following",
    "delivery has failed",
    "permanent error",
    "permanently error",
    "permanent fatal error",
    "permanently fatal error",
    "permanent failure",
    "user unknown",
    "unknown user",
    "no such user",
    "mailbox unavailable",
    "mailbox full",
    "mailbox is full",
    "mailbox not found",
    "returned to sender",
    "this is the mail system at",
    "wasn't able to deliver",
    "unable to deliver",
    "following addresses had",
    "smtp error from remote",
    "delivery failed",
    "message could not be sent",
    "failed recipient",
    "recipient address rejected",
    "host or domain name not found",
    "not delivered",
    "not deliverable",
    "could not deliver",
    "delivery problem",
    "delivery failure",
)


def _group_by_word(phrases: Iterable[str], words: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Phrases under the first of `words` they contain; a phrase without one stands for itself."""
    groups: dict[str, tuple[str, ...]] = {}
    for phrase in phrases:
        word = next((w for w in words if w in phrase), phrase)
        groups[word] = (*groups.get(word, ()), phrase)
    return groups


_PHRASE_GROUPS = _group_by_word(_BOUNCE_PHRASES, ("deliver", "permanent", "user", "mailbox"))
_DSN_CODE = re.compile(r"\b5\.\d\.\d{1,3}\b")  # an RFC 3463 permanent-failure status such as 5.1.1
_SES_NOTIFICATION = re.compile(r'"notificationType"\s*:\s*"(?:Bounce|Complaint)"')
_RECIPIENT_FIELD = re.compile(
    r"^(final-recipient|original-recipient|original-rcpt-to|action)\s*:\s*(.*)$", re.IGNORECASE
)
# The first address on a To line. Its local part starts where the character before is not one of
# its own (the lookbehind): tried from inside a run of them, as before, the same run was read
# again from every position, quadratic in the line's length (15 s for a 195 kB complaint).
_EMBEDDED_TO = re.compile(
    rb"^to[ \t]*+:[^\n]*?<?(?<![^\s<>@,;:\"])([^\s<>@,;:\"]++@[^\s<>@,;:\"]+)>?",
    re.IGNORECASE | re.MULTILINE,
)
_EMBEDDED_ID = re.compile(rb"^message-id[ \t]*+:\s*+(<[^<>\s]+>)", re.IGNORECASE | re.MULTILINE)
# Blanks before the field name are read on its own line only: '\s*' from every line start read all
# the blank lines below it again (a body of empty lines was quadratic). The id found is the same.
_MESSAGE_ID = re.compile(r"^[^\S\n]*+message-id\s*+:\s*+(<[^<>\s]+>)", re.IGNORECASE | re.MULTILINE)
_ID_WORDS = ("message-id", "references", "in-reply-to")
_ID_LINES = re.compile(
    r"^[^\S\n]*+(?:message-id|references|in-reply-to)\s*+:.*$", re.IGNORECASE | re.MULTILINE
)
# '<local@domain>'; the domain's inner '.' is checked after the match, which backtracked through
# every dot of a long domain (`_angle_addresses`).
_ANGLE_ADDR = re.compile(r"<([^<>\s@]++@[^<>\s@]++)>")
# A line that is one address; matched line by line (only lines with an '@'), which finds what
# the same pattern anchored with MULTILINE finds in the whole text, without trying every position.
_BARE_ADDR_LINE = re.compile(r"\s*<?([^\s<>@:;,\"]+@[^\s<>@:;,\"]+\.[a-z]{2,})>?\s*[:.]?\s*\Z", re.IGNORECASE)
_RETURNED_TYPES = frozenset({"message/rfc822", "text/rfc822-headers", "message/global"})
_NOT_BOUNCED = frozenset({"delivered", "relayed", "expanded"})


# The headers detect_kind reads (besides Subject and From, passed decoded).
HEADERS = frozenset(["auto-submitted", "return-path", "x-failed-recipients"]) | autoreplies.HEADERS


@dataclass(frozen=True, slots=True)
class KindVerdict:
    """The kind with a short reason the liaison can read, plus what a bounce tells about its origin."""

    kind: MailKind
    reason: str | None
    auto_submitted: str | None = None
    original_message_id: str | None = None
    recipients: list[str] = field(default_factory=list)


def detect_kind(
    headers: Mapping[str, list[str]],
    *,
    content_type: str,
    report_type: str | None,
    subject: str,
    from_addr: str | None,
    body_text: str,
    attachments: Sequence[ParsedAttachment],
) -> KindVerdict:
    """Decide the kind from decoded headers (lower-case names), the body and the non-body parts."""
    auto_submitted = _first(headers, "auto-submitted")
    # Before bounces: Boxbe dresses its challenges as delivery reports, yet the address is alive.
    reason = autoreplies.challenge_reason(headers, subject, from_addr)
    if reason is not None:
        return KindVerdict("autoreply", reason, auto_submitted)
    reason = _bounce_reason(headers, content_type, report_type, subject, from_addr, body_text, attachments)
    if reason is not None:
        original_id, recipients = _bounce_details(headers, body_text, attachments)
        return KindVerdict("bounce", reason, auto_submitted, original_id, recipients)
    reason = autoreplies.autoreply_reason(headers, subject)
    if reason is not None:
        return KindVerdict("autoreply", reason, auto_submitted)
    return KindVerdict("normal", None, auto_submitted)


def _first(headers: Mapping[str, list[str]], name: str) -> str | None:
    values = headers.get(name)
    return values[0].strip() if values else None


def _bounce_reason(
    headers: Mapping[str, list[str]],
    content_type: str,
    report_type: str | None,
    subject: str,
    from_addr: str | None,
    body_text: str,
    attachments: Sequence[ParsedAttachment],
) -> str | None:
    report = (report_type or "").lower()
    if content_type == "multipart/report" and report == "feedback-report":
        return "feedback report (RFC 5965)"
    if content_type == "multipart/report" and report in ("delivery-status", ""):
        return "delivery status notification (RFC 3464)"
    if content_type == "message/delivery-status":
        return "delivery status notification (RFC 3464)"
    part_types = {a.content_type for a in attachments}
    if "message/feedback-report" in part_types:
        return "feedback report (RFC 5965)"
    if "message/delivery-status" in part_types or "message/global-delivery-status" in part_types:
        return "delivery status part (RFC 3464)"
    if headers.get("x-failed-recipients"):
        return "X-Failed-Recipients header"
    daemon = bool(from_addr and _DAEMON.match(from_addr)) or not from_addr
    null_path = any(v.strip() in ("<>", "") for v in headers.get("return-path", []))
    bounce_subject = bool(_BOUNCE_SUBJECT.match(subject) or _has_cjk_bounce_subject(subject))
    sample = body_text[:4096]
    if '"notificationType"' in sample and _SES_NOTIFICATION.search(sample):
        return "Amazon SES bounce notification"
    if not (daemon or null_path or bounce_subject or _has_subject_tag(subject)):
        return None  # an ordinary mail: no need to read its body for bounce phrases
    bounce_body = _has_bounce_text(sample.lower())
    returned = bool(part_types & _RETURNED_TYPES)
    if bounce_subject and (daemon or null_path or bounce_body or returned):
        who = (
            "daemon sender"
            if daemon
            else "null Return-Path"
            if null_path
            else "bounce text"
            if bounce_body
            else "returned message"
        )
        return f"non-standard bounce: subject {subject.strip()[:60]!r} with {who}"
    if bounce_body and _has_subject_tag(subject):
        return f"non-standard bounce: subject tag in {subject.strip()[:60]!r} with bounce text"
    if daemon and from_addr and bounce_body:
        return f"non-standard bounce: sender {from_addr} with bounce text"
    return None


def _has_cjk_bounce_subject(subject: str) -> bool:
    # Each phrase starts with one of these characters, which have no other case.
    if subject.isascii() or not any(char in subject for char in "メ配不邮退未"):
        return False
    return _BOUNCE_SUBJECT_CJK.search(subject) is not None


def _has_subject_tag(subject: str) -> bool:
    # Every tag holds '(' or "non", whose letters match only N, n, O and o ignoring case.
    if "(" not in subject and "non" not in subject.lower():
        return False
    return _BOUNCE_SUBJECT_TAG.search(subject) is not None


def _has_bounce_text(lowered: str) -> bool:
    """Does lower-cased text hold a bounce phrase or a permanent-failure status code?"""
    for word, phrases in _PHRASE_GROUPS.items():
        if word in lowered and any(phrase in lowered for phrase in phrases):
            return True
    return "5." in lowered and _DSN_CODE.search(lowered) is not None


def _bounce_details(
    headers: Mapping[str, list[str]], body_text: str, attachments: Sequence[ParsedAttachment]
) -> tuple[str | None, list[str]]:
    """The bounced mail's Message-ID and the failed recipients, from whichever part holds them."""
    original_id: str | None = None
    recipients: list[str] = []
    feedback = False
    returned_head = b""  # the returned message's header block: its To is read only for a complaint
    for attachment in attachments:
        ctype = attachment.content_type
        if ctype in ("message/delivery-status", "message/global-delivery-status", "message/feedback-report"):
            recipients.extend(_report_recipients(attachment.content))
            feedback = feedback or ctype == "message/feedback-report"
        elif original_id is None and ctype in _RETURNED_TYPES:
            returned_head = _header_block(attachment.content)
            found = _EMBEDDED_ID.search(returned_head)
            original_id = found.group(1).decode("ascii", "replace") if found else None
    for value in headers.get("x-failed-recipients", []):
        recipients.extend(a.strip() for a in value.split(",") if "@" in a)
    if original_id is None:
        original_id = _body_message_id(body_text)
    if not recipients:
        # A complaint names no failed recipient; the complainer is whom the mail was sent to.
        if feedback:
            recipients = [m.decode("ascii", "replace") for m in _EMBEDDED_TO.findall(returned_head)]
        else:
            recipients = _text_recipients(body_text)
    return original_id, _unique_lower(r for r in recipients if not _DAEMON.match(r))


def _report_recipients(content: bytes) -> list[str]:
    """Recipients of a delivery-status (or feedback) report whose action is not a success."""
    found: list[str] = []
    recipient: str | None = None
    action = ""
    for line in [*content.decode("utf-8", "replace").splitlines(), ""]:
        if not line.strip():
            if recipient and action not in _NOT_BOUNCED:
                found.append(recipient)
            recipient, action = None, ""
            continue
        match = _RECIPIENT_FIELD.match(line.strip())
        if match is None:
            continue
        name, value = match.group(1).lower(), match.group(2).strip()
        if name == "action":
            action = value.lower()
        elif recipient is None or name == "final-recipient":
            address = value.split(";", 1)[-1].strip().strip("<>")
            if "@" in address:
                recipient = address
    return found


def _header_block(content: bytes) -> bytes:
    """The header block of a returned message (or of its returned headers alone)."""
    head = content[:65536]
    for blank in (b"\n\n", b"\r\n\r\n", b"\r\r"):
        end = head.find(blank)
        if end >= 0:
            head = head[:end]
    return head


def _body_message_id(body_text: str) -> str | None:
    """The first 'Message-ID: <...>' line of a bounce's text (the returned mail's headers)."""
    start = 0
    if body_text.isascii():  # then lower() finds exactly what IGNORECASE matches
        at = body_text.lower().find("message-id")
        if at < 0:
            return None
        # The first match starts on this line or a later one.
        start = body_text.rfind("\n", 0, at) + 1
    match = _MESSAGE_ID.search(body_text, start)
    return match.group(1) if match else None


def _text_recipients(body_text: str) -> list[str]:
    """Addresses that a non-standard bounce puts on a line of their own, or in angle brackets."""
    head = body_text[:4096]
    if not head.isascii() or any(word in head.lower() for word in _ID_WORDS):
        head = _ID_LINES.sub("", head)
    found = [
        match.group(1)
        for line in head.split("\n")
        if "@" in line and (match := _BARE_ADDR_LINE.match(line)) is not None
    ]
    if not found:
        found = _angle_addresses(head)[:5]
    return found


def _angle_addresses(text: str) -> list[str]:
    """Every '<local@domain>' whose domain has a dot with a character on each side."""
    return [addr for addr in _ANGLE_ADDR.findall(text) if "." in addr.partition("@")[2][1:-1]]


def _unique_lower(addresses: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for address in addresses:
        seen.setdefault(address.strip().lower(), None)
    return [a for a in seen if a]
