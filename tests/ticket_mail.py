"""Mail for the ticket page's tests: text with a quote, an HTML part and attachments, any field
of which a test may fill with a payload. Built with the standard library, never by concatenation."""

from __future__ import annotations

from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

HOSTILE_HTML = """<html><head><meta http-equiv="refresh" content="0;url=https://evil.example/refresh">
<base href="https://evil.example/"><style>body { background: url(https://tracker.example/css.gif) }</style>
<script>alert('script')</script></head><body>
<p>Dear desk,</p>
<img src="x" onerror="alert('onerror')">
<a href="javascript:alert('link')" id="js-link">click me</a>
<div style="width: expression(alert('expression')); background-image: url(https://tracker.example/style.gif)">styled</div>
<svg onload="alert('svg')"><script>alert('svg-script')</script></svg>
<img src="https://tracker.example/p.gif" alt="pixel">
<form action="https://evil.example/form"><input name="q"><button>go</button></form>
<iframe src="https://evil.example/frame"></iframe>
<p>Regards</p></body></html>"""


def workbench_mail(
    *,
    name: str = "Ada Volunteer",
    address: str = "ada@volunteers.example",
    subject: str = "Question about the logo",
    text: str = "May our chapter use the logo?\n\nOn Monday the desk wrote:\n> Hello Ada\n> how can we help?\n",
    html: str | None = None,
    attachments: list[tuple[str, str, bytes]] = (),  # type: ignore[assignment]
    message_id: str = "<m1@volunteers.example>",
    in_reply_to: str | None = None,
    date: datetime | None = None,
) -> bytes:
    msg = EmailMessage()
    user, _, domain = address.rpartition("@")
    msg["From"] = Address(display_name=name, username=user, domain=domain)
    msg["To"] = "liaison@example.org"
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date or datetime(2026, 11, 2, 9, 0, tzinfo=UTC))
    msg["Message-ID"] = message_id
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = in_reply_to
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    for filename, content_type, data in attachments:
        maintype, subtype = content_type.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes()
