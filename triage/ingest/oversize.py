"""Mail over `mail.max_size_bytes` is refused before it is read: only its header section is kept.

Every source learns a mail's size before reading it (IMAP's RFC822.SIZE, a file's fstat, an
mbox message's offsets). An oversize mail is never loaded whole, never stored as a message and
never opens a ticket or an acknowledgment: its header section, at most `HEAD_CAP` bytes, goes
to quarantine with a reason that names the sender, the subject and the size, so the liaison
can ask the volunteer for a smaller mail. The mail itself stays where it was.
"""

from __future__ import annotations

import re
import unicodedata

HEAD_CAP = 64 * 1024  # bytes of a refused mail's header section that are read and kept
STAGE = "oversize"  # the quarantine stage of a refused mail: its blob is the header only
_NAMED_CAP = 120  # characters of sender or subject quoted in the reason
_HEADER_END = re.compile(rb"\r?\n\r?\n")


class OversizeMail(ValueError):
    """A mail over the size limit reached the pipeline in memory: it is quarantined, not stored."""


def header_section(prefix: bytes) -> bytes:
    """The header section at the start of `prefix` (up to and with its blank line), at most HEAD_CAP bytes."""
    head = prefix[:HEAD_CAP]
    end = _HEADER_END.search(head)
    return head[: end.end()] if end else head


def _shown(text: str) -> str:
    """Text from a mail made safe to quote in one line: control characters escaped, length capped."""
    text = " ".join(text.split())
    if len(text) > _NAMED_CAP:
        text = text[: _NAMED_CAP - 3] + "..."
    return "".join(
        ch if not unicodedata.category(ch).startswith("C") else ch.encode("unicode_escape").decode("ascii")
        for ch in text
    )


def _megabytes(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MiB"


def refusal_reason(head: bytes, *, size: int, limit: int) -> str:
    """What was refused and why, in one line the liaison can act on."""
    from triage.ingest.parse import parse_mail  # the desk's own reading of From and Subject

    try:
        parsed = parse_mail(header_section(head))
        sender = parsed.from_addr or "an unknown sender"
        if parsed.from_name:
            sender = f"{parsed.from_name} <{sender}>"
        subject = parsed.subject or ""
    except Exception:  # noqa: BLE001 - a header we cannot read still gets its size named
        sender, subject = "an unreadable sender", ""
    about = f'subject "{_shown(subject)}"' if subject else "no subject"
    return (
        f"refused unread: a mail of {_megabytes(size)} ({size} bytes) from {_shown(sender)}, "
        f"{about}, is over the {_megabytes(limit)} limit (mail.max_size_bytes = {limit}); "
        "only its header was kept; the mail is left where it was (see source); "
        "ask the sender for a smaller mail, or raise the limit and import it again"
    )


__all__ = ["HEAD_CAP", "STAGE", "OversizeMail", "header_section", "refusal_reason"]
