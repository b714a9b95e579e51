"""A mail shown before it is queued (a reply's preview, the digest's dry run): built from the same
EmailMessage the outbox would queue, so what the liaison reads is what goes out."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage

from triage.outbox.compose import to_bytes


@dataclass(frozen=True)
class Preview:
    """The mail as it would be sent: `source` is its exact RFC 5322 text; `headers` and `text`
    are the same mail decoded for reading. Only Date and Message-ID differ from the mail queued."""

    template: str
    language: str
    to: tuple[str, ...]
    subject: str
    headers: tuple[tuple[str, str], ...]
    text: str
    source: str


def preview_of(message: EmailMessage, *, template: str, language: str) -> Preview:
    plain = message.get_body(("plain",))
    return Preview(
        template=template, language=language,
        to=tuple(a.addr_spec for header in ("To", "Cc") if message[header] for a in message[header].addresses),
        subject=str(message["Subject"]),
        headers=tuple((name, str(value)) for name, value in message.items()
                      if not name.lower().startswith(("content-", "mime-"))),
        text=plain.get_content() if isinstance(plain, EmailMessage) else "",
        source=to_bytes(message).decode("ascii", "replace"),
    )


__all__ = ["Preview", "preview_of"]
