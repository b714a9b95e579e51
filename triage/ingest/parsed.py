"""The parsed form of one mail: what every later stage (threading, storage, routing) reads.

It is a plain value built by `triage.ingest.parse.parse_mail` from raw bytes and never
touches I/O, so it can be rebuilt at any time from the stored raw message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

MailKind = Literal["normal", "autoreply", "bounce"]


class NotAMailError(ValueError):
    """The bytes are not an RFC 822 message at all (no header block we can recognise)."""


@dataclass(frozen=True, slots=True)
class ParsedAttachment:
    """An attachment or inline part. `filename` is the sender's name, kept only as data."""

    filename: str | None
    content_type: str
    size: int
    sha256: str
    content: bytes = field(repr=False, compare=False)
    inline: bool = False
    content_id: str | None = None

    def contract(self) -> dict[str, Any]:
        return {
            "filename": self.filename,
            "content_type": self.content_type,
            "size": self.size,
            "sha256": self.sha256,
        }


@dataclass(frozen=True, slots=True)
class ParsedMail:
    """One mail, decoded. Message-IDs keep their angle brackets, as in the header."""

    message_id: str | None
    from_addr: str | None
    from_name: str | None
    to: list[str]
    cc: list[str]
    reply_to: list[str]
    subject: str | None
    date: datetime | None
    in_reply_to: str | None
    references: list[str]
    body_text: str
    new_text: str
    quoted_text: str
    signature: str
    body_html: str | None
    attachments: list[ParsedAttachment]
    kind: MailKind
    kind_reason: str | None
    list_id: str | None
    defects: list[str]
    size: int
    oversize: bool
    auto_submitted: str | None = None
    bounce_original_message_id: str | None = None
    bounced_recipients: list[str] = field(default_factory=list)
    header_signals: tuple[str, ...] = ()  # see triage.ingest.signals: bulk, list, robot and DMARC facts

    def contract(self) -> dict[str, Any]:
        """The `triage parse --json` object: every key always present, unknown values null."""
        return {
            "message_id": self.message_id,
            "from_addr": self.from_addr,
            "from_name": self.from_name,
            "to": list(self.to),
            "cc": list(self.cc),
            "subject": self.subject,
            "date": self.date.isoformat() if self.date else None,
            "in_reply_to": self.in_reply_to,
            "references": list(self.references),
            "body_text": self.body_text,
            "new_text": self.new_text,
            "attachments": [a.contract() for a in self.attachments],
            "kind": self.kind,
            "list_id": self.list_id,
            "defects": list(self.defects),
        }
