"""Kind detection: normal, autoreply or bounce, each with a reason, on small hand-written mails.

The corpus tests cover real bounces; these pin down each rule alone, and the rules that must
NOT fire (X-Auto-Response-Suppress alone, a person's "Re: Undeliverable" question).
"""

from __future__ import annotations

import pytest

from triage.ingest.parse import parse_mail


def mail(*headers: str, body: str = "Hello,\n\nthanks for the help.\n", ctype: str = "text/plain") -> bytes:
    base = {
        "From": "Ann Example <ann@example.org>",
        "To": "desk@example.net",
        "Subject": "Question",
        "Date": "Mon, 2 Sep 2024 10:00:00 +0200",
        "Message-ID": "<q1@example.org>",
    }
    lines = []
    overrides = {h.split(":", 1)[0].lower() for h in headers}
    lines += [f"{k}: {v}" for k, v in base.items() if k.lower() not in overrides]
    lines += list(headers)
    lines += ["MIME-Version: 1.0", f"Content-Type: {ctype}"]
    return ("\r\n".join(lines) + "\r\n\r\n" + body.replace("\n", "\r\n")).encode("utf-8")


def test_plain_mail_is_normal() -> None:
    """A person's mail is normal and has no reason."""
    parsed = parse_mail(mail())
    assert (parsed.kind, parsed.kind_reason, parsed.auto_submitted) == ("normal", None, None)


@pytest.mark.parametrize(
    ("header", "reason_part"),
    [
        ("Auto-Submitted: auto-replied", "auto-replied"),
        ("Auto-Submitted: auto-generated", "auto-generated"),
        ("Auto-Submitted: auto-notified; owner-email=x@example.org", "auto-notified"),
        ("X-Autoreply: yes", "x-autoreply"),
        ("X-Autorespond: vacation", "x-autorespond"),
        ("Precedence: auto_reply", "auto_reply"),
        ("X-POST-MessageClass: 9; Autoresponder", "Autoreply"),
    ],
)
def test_autoreply_headers(header: str, reason_part: str) -> None:
    """RFC 3834 Auto-Submitted (anything but 'no') and the common vendor headers mean autoreply."""
    parsed = parse_mail(mail(header))
    assert parsed.kind == "autoreply"
    assert parsed.kind_reason is not None and reason_part.lower() in parsed.kind_reason.lower()


def test_auto_submitted_no_is_a_person() -> None:
    """Auto-Submitted: no is the explicit 'written by a person' (RFC 3834)."""
    parsed = parse_mail(mail("Auto-Submitted: no"))
    assert (parsed.kind, parsed.auto_submitted) == ("normal", "no")


def test_auto_response_suppress_alone_is_not_an_autoreply() -> None:
    """Outlook adds X-Auto-Response-Suppress to ordinary mail; alone it proves nothing."""
    assert parse_mail(mail("X-Auto-Response-Suppress: All", "Precedence: bulk")).kind == "normal"


def test_gmail_vacation_responder() -> None:
    """Gmail's vacation reply: Auto-Submitted: auto-replied plus X-Autoreply."""
    parsed = parse_mail(mail("Auto-Submitted: auto-replied", "X-Autoreply: yes", "Subject: Re: Question"))
    assert parsed.kind == "autoreply"
    assert parsed.auto_submitted == "auto-replied"


@pytest.mark.parametrize(
    "subject",
    [
        "Automatic reply: Question",
        "Out of Office: Question",
        "Out of Office AutoReply: Question",
        "Abwesenheitsnotiz: Frage",
        "Automatische Antwort: Frage",
        "Réponse automatique : Question",
        "Respuesta automática: Pregunta",
        "Automatisch antwoord: Vraag",
        "=?utf-8?q?R=C3=A9ponse_automatique=C2=A0:_Question?=",
    ],
)
def test_exchange_out_of_office_by_subject(subject: str) -> None:
    """Exchange/Outlook out-of-office replies often carry only their localised subject."""
    parsed = parse_mail(mail(f"Subject: {subject}", "X-MS-Exchange-Inbox-Rules-Loop: ann@example.org"))
    assert parsed.kind == "autoreply", parsed.subject


def test_reply_to_an_out_of_office_is_a_person() -> None:
    """'Re: Automatic reply: ...' is a person answering an autoreply."""
    assert parse_mail(mail("Subject: Re: Automatic reply: Question")).kind == "normal"


DSN = """--b1
Content-Type: text/plain

Delivery failed.
--b1
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; Gone@Example.COM
Action: failed
Status: 5.1.1

Final-Recipient: rfc822; later@example.com
Action: delayed
Status: 4.4.1

Final-Recipient: rfc822; fine@example.com
Action: delivered
Status: 2.0.0
--b1
Content-Type: text/rfc822-headers

From: desk@example.net
Message-ID: <orig-42@example.net>
Subject: Your ticket
--b1--
"""


def test_rfc3464_report_lists_unsuccessful_recipients() -> None:
    """A delivery-status report: bounce, failed and delayed recipients, the original Message-ID."""
    parsed = parse_mail(
        mail(
            "Auto-Submitted: auto-replied",
            body=DSN,
            ctype='multipart/report; report-type=delivery-status; boundary="b1"',
        )
    )
    assert parsed.kind == "bounce"
    assert parsed.kind_reason == "delivery status notification (RFC 3464)"
    assert parsed.bounced_recipients == ["gone@example.com", "later@example.com"]
    assert parsed.bounce_original_message_id == "<orig-42@example.net>"
    assert parsed.auto_submitted == "auto-replied"


def test_feedback_report_is_a_bounce() -> None:
    """report-type=feedback-report (RFC 5965) counts as a bounce."""
    body = DSN.replace("message/delivery-status", "message/feedback-report")
    parsed = parse_mail(mail(body=body, ctype='multipart/report; report-type=feedback-report; boundary="b1"'))
    assert (parsed.kind, parsed.kind_reason) == ("bounce", "feedback report (RFC 5965)")


@pytest.mark.parametrize(
    ("sender", "subject", "extra"),
    [
        ("MAILER-DAEMON@mx.example.net (Mail Delivery System)", "Undelivered Mail Returned to Sender", ""),
        (
            "Mail Delivery Subsystem <mailer-daemon@googlemail.com>",
            "Delivery Status Notification (Failure)",
            "",
        ),
        (
            "Mail Delivery System <Mailer-Daemon@mx.example.net>",
            "Mail delivery failed: returning message to sender",
            "",
        ),
        ("MAILER-DAEMON@mx.example.net", "failure notice", ""),
        ("postmaster@example.net", "Undeliverable: Question", ""),
        (
            "Mail Delivery Subsystem <MAILER-DAEMON@example.net>",
            "Returned mail: see transcript for details",
            "",
        ),
        ("Someone <relay@example.net>", "Delivery Status Notification (Failure)", "Return-Path: <>"),
    ],
)
def test_non_standard_bounces(sender: str, subject: str, extra: str) -> None:
    """Postfix, Gmail, Exim, qmail, Exchange and Sendmail bounces without a DSN part."""
    headers = [f"From: {sender}", f"Subject: {subject}"] + ([extra] if extra else [])
    body = (
        "I'm sorry to have to inform you that your message could not\n"
        "be delivered to:\n\n<gone@example.com>: user unknown\n"
    )
    parsed = parse_mail(mail(*headers, body=body))
    assert parsed.kind == "bounce", parsed.kind_reason
    assert parsed.bounced_recipients == ["gone@example.com"]


def test_exim_failed_recipients_header() -> None:
    """X-Failed-Recipients alone marks an Exim bounce and names the recipients."""
    parsed = parse_mail(mail("X-Failed-Recipients: gone@example.com, other@example.com"))
    assert parsed.kind == "bounce"
    assert parsed.bounced_recipients == ["gone@example.com", "other@example.com"]


def test_bounce_wins_over_autoreply() -> None:
    """A bounce that also says Auto-Submitted is a bounce."""
    parsed = parse_mail(
        mail(
            "From: MAILER-DAEMON@example.net",
            "Subject: Undelivered Mail Returned to Sender",
            "Auto-Submitted: auto-replied",
        )
    )
    assert parsed.kind == "bounce"


def test_person_asking_about_an_undeliverable_parcel_is_normal() -> None:
    """Bounce words from a person (no daemon sender, no null Return-Path) are not a bounce."""
    body = "Hi,\n\nmy parcel could not be delivered, the courier said the address was unknown.\n"
    parsed = parse_mail(mail("Subject: Re: Undeliverable parcel", body=body))
    assert parsed.kind == "normal"


def test_mail_from_postmaster_about_something_else_is_normal() -> None:
    """A postmaster writing an ordinary mail is not a bounce."""
    parsed = parse_mail(
        mail(
            "From: postmaster@example.org",
            "Subject: Planned maintenance on Saturday",
            body="The mail server will be down for an hour on Saturday.\n",
        )
    )
    assert parsed.kind == "normal"


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ("A permanently fatal error occurred.", "bounce"),
        ("The recipient's Mailbox is full.", "bounce"),
        ("Status: 5.2.2", "bounce"),
        ("This message is not deliverable.", "bounce"),
        ("Release notes for version 15.2.3 and 5.1.10b are attached.", "normal"),
        ("The mail server will be down for an hour on Saturday.", "normal"),
    ],
)
def test_bounce_text_from_a_daemon(body: str, kind: str) -> None:
    """A daemon sender with bounce phrases or an RFC 3463 5.x.x status (a whole token) is a bounce."""
    parsed = parse_mail(mail("From: MAILER-DAEMON@example.net", "Subject: Notice", body=body))
    assert parsed.kind == kind, parsed.kind_reason
    if kind == "bounce":
        assert parsed.kind_reason == "non-standard bounce: sender mailer-daemon@example.net with bounce text"
