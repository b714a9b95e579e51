"""Smaller parse defects (issue 11, class 9): dates at the ends of time, damaged base64, binary
data in text parts, and automatic replies that send no Auto-Submitted.

Each rule is pinned on small hand-made mails; the real mails behind it are in tests/corpus (see
SOURCES.md), where test_parse_corpus checks their kinds. Sweeps over ../shared skip without it.
"""

from __future__ import annotations

import base64
import mailbox
import re
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from tests.conftest import Clock, make_mail
from triage.bootstrap import App
from triage.desk.actors import cli_actor
from triage.desk.quarantine import list_quarantine
from triage.ingest import autoreplies
from triage.ingest.parse import parse_mail
from triage.outbox.loops import InboundFacts, RecipientFacts, may_auto_answer
from triage.store.models import Message

CORPUS = Path(__file__).parent / "corpus"
SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f\ufffd]")


def with_date(value: str) -> bytes:
    return f"From: Ada <ada@volunteers.example>\r\nDate: {value}\r\nSubject: x\r\n\r\nhello\r\n".encode()


# --- dates ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "Fri, 31 Dec 9999 23:59:59 -1200",  # one hour past the last UTC instant datetime can hold
        "Fri, 31 Dec 9999 23:59:59 +1400",
        "Sat, 1 Jan 9000 00:00:00 +0000",
        "Thu, 31 Dec 8999 23:59:59 -2359",
        "Mon, 1 Jan 1000 00:00:00 +0100",
        "Tue, 1 Jan 0999 00:00:00 +0000",
    ],
)
def test_date_at_the_ends_of_time_is_a_bad_date_not_an_error(value: str) -> None:
    """A date that could overflow later is a `bad-date` defect; the mail is still read."""
    mail = parse_mail(with_date(value))
    assert mail.date is None and "bad-date" in mail.defects
    assert mail.body_text.strip() == "hello"


def test_kept_dates_are_utc() -> None:
    """The parser hands on UTC, the form every later stage stores and compares."""
    mail = parse_mail(with_date("Mon, 2 Sep 2024 10:00:00 +0200"))
    assert mail.date == datetime(2024, 9, 2, 8, 0, tzinfo=UTC) and mail.date.tzinfo is UTC


def test_three_digit_year_is_read_as_rfc_5322_says() -> None:
    """obs-year: a three-digit year is 1900 plus it (old software wrote 101 for 2001)."""
    assert parse_mail(with_date("Mon,  2 Apr 101 04:20:10 CST")).date == datetime(
        2001, 4, 2, 10, 20, 10, tzinfo=UTC
    )


@settings(max_examples=300, deadline=None)
@given(
    year=st.integers(0, 9999),
    month=st.integers(1, 12),
    day=st.integers(1, 28),
    seconds=st.integers(0, 86399),
    sign=st.sampled_from("+-"),
    zone=st.integers(0, 2359),
)
def test_no_kept_date_overflows_downstream(
    year: int, month: int, day: int, seconds: int, sign: str, zone: int
) -> None:
    """Any Date the parser keeps survives what later stages do with it: UTC storage, local time, +-800 years."""
    month_name = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"][
        month - 1
    ]
    clock = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    mail = parse_mail(with_date(f"{day} {month_name} {year:04d} {clock} {sign}{zone:04d}"))
    if mail.date is None:
        assert "bad-date" in mail.defects
        return
    assert mail.date.utcoffset() == timedelta(0)
    for hours in (-14, 14):
        mail.date.astimezone(timezone(timedelta(hours=hours)))
    mail.date + timedelta(days=800 * 366)
    mail.date - timedelta(days=800 * 366)
    assert datetime(2026, 1, 1, tzinfo=UTC) - mail.date is not None


def test_loop_guard_compares_the_latest_kept_date_with_now() -> None:
    """The acknowledgment guard subtracts the date from `now`; the latest date kept must not break it."""
    date = parse_mail(with_date("Sun, 31 Dec 8999 12:00:00 +1400")).date
    assert date is not None
    verdict = may_auto_answer(
        InboundFacts("normal", "ada@volunteers.example", "<a@v.example>", None, date),
        RecipientFacts("ada@volunteers.example", False, 0),
        own_domain="example.org",
        liaison_address="liaison@example.org",
        rate_limit_per_hour=3,
        now=datetime(2026, 11, 2, 9, 0, tzinfo=UTC),
        max_age=timedelta(hours=72),
    )
    assert verdict.allowed


def test_far_future_date_is_stored_not_quarantined(app: App, clock: Clock) -> None:
    """Between two good mails, a year-9999 Date at -1200 is stored (date null); nothing is quarantined."""
    ingest = app.ingestor(clock=clock)
    far = re.sub(
        rb"Date: [^\r\n]*", b"Date: Fri, 31 Dec 9999 23:59:59 -1200", make_mail(message_id="<far@v.example>")
    )
    outcomes = [
        ingest.ingest(make_mail(message_id="<before@v.example>"), source="test"),
        ingest.ingest(far, source="test"),
        ingest.ingest(make_mail(message_id="<after@v.example>"), source="test"),
    ]
    assert [o.status for o in outcomes] == ["stored", "stored", "stored"]
    assert list_quarantine(app, cli_actor("test")) == []
    with app.sessions() as session:
        stored = session.scalars(select(Message).where(Message.message_id == "<far@v.example>")).one()
        assert stored.date is None and "bad-date" in stored.defects


# --- base64 --------------------------------------------------------------------------------------


def attached(encoded: str, *, ctype: str = "application/octet-stream", extra: str = "") -> bytes:
    return (
        "From: Ada <ada@volunteers.example>\r\nSubject: files\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
        f'--b\r\nContent-Type: {ctype}\r\nContent-Disposition: attachment; filename="f.bin"\r\n'
        f"Content-Transfer-Encoding: base64\r\n{extra}\r\n{encoded}\r\n--b--\r\n"
    ).encode("utf-8", "surrogateescape")


DATA = bytes(range(256)) * 3
CLEAN = base64.encodebytes(DATA).decode()


@pytest.mark.parametrize(
    "encoded",
    [CLEAN, CLEAN.replace("\n", "\r\n"), CLEAN.replace("\n", " \n"), CLEAN.replace("\n", "\t\n")],
    ids=["lines", "crlf", "trailing-space", "trailing-tab"],
)
def test_clean_base64_has_no_defect(encoded: str) -> None:
    """Line breaks and blanks between base64 characters are not data (RFC 2045 6.8): no defect."""
    mail = parse_mail(attached(encoded))
    assert mail.attachments[0].content == DATA
    assert "bad-base64" not in mail.defects


@pytest.mark.parametrize(
    ("encoded", "content"),
    [
        (base64.b64encode(b"hello!!").decode().rstrip("="), b"hello!!"),  # padding missing
        ("aGVs*bG8h", b"hello!"),  # a character outside the alphabet
        ("aGVsbG8hI", None),  # a cut-off last group: the stdlib can only keep the text
        ("aGVsbG8=aGVsbG8=", None),  # data after the padding
    ],
    ids=["no-padding", "bad-character", "cut-off", "after-padding"],
)
def test_repaired_base64_attachment_is_a_defect(encoded: str, content: bytes | None) -> None:
    """Whatever the stdlib's lenient fallback repaired is kept, and `bad-base64` says so."""
    mail = parse_mail(attached(encoded))
    assert "bad-base64" in mail.defects
    if content is not None:
        assert mail.attachments[0].content == content


def test_repaired_base64_body_is_a_defect() -> None:
    """The same for the body text itself, with 8-bit bytes inside the base64."""
    raw = (
        b"From: Ada <ada@volunteers.example>\r\nSubject: hi\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b"aGVsbG8g\xe9d29ybGQ=\r\n"
    )
    mail = parse_mail(raw)
    assert "bad-base64" in mail.defects and mail.body_text.startswith("hello")


# --- binary data is never body text --------------------------------------------------------------

DSN = CORPUS / "bounce" / "sisimai__maildir__bsd__rfc3464-59.eml"
ICON_HEAD = (
    b'Content-Type: image/png; name="icon.png"\r\nContent-Disposition: attachment; filename="icon.png"\r\n'
)


def test_real_delivery_report_keeps_its_icons_out_of_the_text() -> None:
    """Gmail's report: the text is the report's text, the two PNG icons are attachments."""
    mail = parse_mail(DSN.read_bytes())
    assert mail.kind == "bounce" and "Address not found" in mail.body_text
    assert CONTROL.search(mail.body_text) is None
    assert sorted(a.filename or "" for a in mail.attachments if a.content_type == "image/png") == [
        "icon.png",
        "warning_triangle.png",
    ]


@pytest.mark.parametrize(
    "damaged_head",
    [b"Content-Disposition: inline\r\n", b"Content-Type: image png\r\n", b"Content-Type: text/plain\r\n"],
    ids=["type-lost", "type-invalid", "type-wrong"],
)
def test_binary_part_that_looks_like_text_is_an_attachment(damaged_head: bytes) -> None:
    """The same report with the icon's headers damaged so it reads as text: the PNG is kept as an
    attachment with a defect, never decoded into the ticket's text."""
    raw = DSN.read_bytes()
    assert ICON_HEAD in raw
    mail = parse_mail(raw.replace(ICON_HEAD, damaged_head))
    assert CONTROL.search(mail.body_text) is None and "IEND" not in mail.body_text
    assert "binary-in-text-part:text/plain" in mail.defects
    binary = [a for a in mail.attachments if a.content_type == "application/octet-stream"]
    assert len(binary) == 1 and binary[0].content.startswith(b"\x89PNG\r\n\x1a\n")


def test_utf16_text_part_is_still_text() -> None:
    """UTF-16 text is full of NUL bytes, yet it is text in its declared charset."""
    body = base64.encodebytes("Grüße aus Köln, bitte um Rückruf.\n".encode("utf-16")).decode()
    raw = (
        "From: Ada <ada@volunteers.example>\r\nSubject: hi\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-16\r\nContent-Transfer-Encoding: base64\r\n\r\n" + body
    ).encode()
    mail = parse_mail(raw)
    assert mail.body_text.strip() == "Grüße aus Köln, bitte um Rückruf."
    assert not any(d.startswith("binary-in-text-part") for d in mail.defects)


def test_text_with_a_stray_control_character_is_still_text() -> None:
    """A person's text with a form feed or a stray SUB character stays the body."""
    mail = parse_mail(b"From: a@b.example\r\nSubject: x\r\n\r\nPage one\x0cPage two\x1a\r\n")
    assert mail.body_text.startswith("Page one") and not mail.attachments


# --- automatic replies ---------------------------------------------------------------------------


def mail_with(*headers: str, subject: str = "Question") -> bytes:
    lines = [
        "From: Ann Example <ann@example.org>",
        "To: desk@example.net",
        f"Subject: {subject}",
        "Date: Mon, 2 Sep 2024 10:00:00 +0200",
        "Message-ID: <q1@example.org>",
        *headers,
        "Content-Type: text/plain; charset=utf-8",
    ]
    return ("\r\n".join(lines) + "\r\n\r\nI am away until Monday.\r\n").encode()


@pytest.mark.parametrize(
    "header",
    [
        "X-Autoresponder: Will not send another autoreply for 86400 seconds",
        "X-Mail-Autoreply: yes",
        "X-AutoReply-From: ann@example.org",
        "X-Precedence: auto_reply",
        "Preference: auto_reply",
        "X-Autogenerated: Reply",
        "X-FC-MachineGenerated: true",
        "Delivered-To: Autoresponder",
        "Return-Path: <>\r\nPrecedence: bulk",
    ],
)
def test_responder_headers_without_auto_submitted(header: str) -> None:
    """Vacation programs that send no Auto-Submitted still stamp one of these."""
    parsed = parse_mail(mail_with(header))
    assert parsed.kind == "autoreply", header
    assert parsed.kind_reason is not None and header.split(":")[0].lower() in parsed.kind_reason.lower()


@pytest.mark.parametrize(
    "header",
    [
        "X-Bluebottle-Request: <1234>",
        "X-Boxtrapper: 5d41402abc4b2a76",
        "X-AskVersion: 2.5.7",
        "X-Delivery-Agent: TMDA/1.1.12 (Macallan)",
        "Precedence: spam",
    ],
)
def test_challenge_response_requests(header: str) -> None:
    """Challenge-response systems (Bluebottle, BoxTrapper, ASK, TMDA) are automatic replies."""
    parsed = parse_mail(mail_with(header, subject="RE: Question"))
    assert parsed.kind == "autoreply" and "challenge-response" in (parsed.kind_reason or "")


def test_ask_challenge_by_its_subject() -> None:
    """ASK (Active Spam Killer) writes 'Unverified email to <address>' and may stamp nothing else."""
    parsed = parse_mail(mail_with(subject="Unverified email to ann@example.org (Question)"))
    assert parsed.kind == "autoreply" and "challenge-response" in (parsed.kind_reason or "")


def test_tmda_confirmation_by_its_message_id() -> None:
    """TMDA's confirmation requests carry a Message-ID ending in -tmda-confirm."""
    raw = mail_with(subject="Re: Question").replace(
        b"<q1@example.org>", b"<1293.1292.tmda@example.org-tmda-confirm>"
    )
    assert parse_mail(raw).kind == "autoreply"


def test_boxbe_challenge_dressed_as_a_delivery_report_is_not_a_bounce() -> None:
    """Boxbe wraps its challenge in a delivery report; the address is alive, so it is no bounce."""
    parsed = parse_mail(
        (CORPUS / "autoreply" / "mail-deliverystatus-bounceparser__t__corpus__boxbe-cr.msg.eml").read_bytes()
    )
    assert parsed.kind == "autoreply" and "Boxbe" in (parsed.kind_reason or "")
    assert parsed.bounced_recipients == []


@pytest.mark.parametrize(
    "subject",
    [
        "Automatic reply: Question",
        "Auto-Reply: Question",
        "AutoReply",
        "Automatische Antwort: Frage",
        "Abwesenheitsnotiz: Frage",
        "Réponse automatique : Question",
        "Respuesta automática: Pregunta",
        "Risposta automatica: Domanda",
        "Resposta automática: Pergunta",
        "Autosvar: Fråga",
        "Automatyczna odpowiedź: Pytanie",
        "[Automatyczna odpowiedź] test",
        "Automatická odpověď: Dotaz",
        "Afwezigheidsbericht: Vraag",
        "Odpověď mimo kancelář: Dotaz",
        "Автоответ: Вопрос",
        "自动回复: 问题",
        "AUTO: Ann Example is out of the office (returning 05/01/2026)",
        "Re: Question (Automatic Response)",
        "Out of Office AutoReply: Question",
    ],
)
def test_responder_subjects_in_many_languages(subject: str) -> None:
    """The subjects responders write, alone, mean autoreply (Exchange often sends nothing else)."""
    parsed = parse_mail(mail_with(subject=subject))
    assert parsed.kind == "autoreply", subject


@pytest.mark.parametrize(
    ("subject", "header"),
    [
        ("Re: Out of office", "X-MS-Exchange-Inbox-Rules-Loop: ann@example.org"),
        ("AW: Automatische Antwort: Frage", "X-MS-Exchange-Generated-Message-Source: Mailbox Rules Agent"),
        ("Out of Office: Question", "Thread-Topic: Question"),
        ("Urlaub", "Precedence: junk"),
        ("Vacation", "X-Mailer: vacation 1.2.7"),
        ("Abwesenheit", "Return-Path: <>"),
        ("Ann Example is out of the office", "X-MS-Exchange-Inbox-Rules-Loop: ann@example.org"),
    ],
)
def test_ambiguous_subject_with_a_machine_sign(subject: str, header: str) -> None:
    """A subject a person could write counts when a second sign says a machine sent it."""
    parsed = parse_mail(mail_with(header, subject=subject))
    assert parsed.kind == "autoreply", (subject, header)


@pytest.mark.parametrize(
    ("subject", "headers"),
    [
        ("Out of the office next week", ()),
        ("Out of Office", ()),
        ("Re: Out of office", ()),
        ("Out of office: back on Monday", ("Thread-Topic: Out of office: back on Monday",)),
        ("Re: Automatic reply: Question", ()),
        ("AW: Automatische Antwort: Frage", ()),
        ("Fwd: Automatic reply: Question", ("X-MS-Exchange-Inbox-Rules-Loop: ann@example.org",)),
        ("Auto-reply not working on my account", ()),
        ("Automatic reply settings for the shared inbox?", ()),
        ("Vacation request for June", ()),
        ("Out of Office", ("X-Auto-Response-Suppress: All",)),
        ("Out of office on Friday", ("Precedence: list", "List-Id: <volunteers.example.org>")),
        ("Out of office on Friday", ("Precedence: bulk",)),
    ],
)
def test_a_person_writing_about_absence_is_not_an_autoreply(subject: str, headers: tuple[str, ...]) -> None:
    """People write "Out of office", reply to autoreplies, forward them and ask about them: normal mail."""
    parsed = parse_mail(mail_with(*headers, subject=subject))
    assert (parsed.kind, parsed.kind_reason) == ("normal", None), subject


def test_a_null_return_path_alone_is_not_an_autoreply() -> None:
    """A contact form relays a volunteer's question with a null sender: a ticket, not an autoreply."""
    parsed = parse_mail(mail_with("Return-Path: <>", subject="Question from the contact form"))
    assert (parsed.kind, parsed.kind_reason) == ("normal", None)
    assert "null-return-path" in parsed.header_signals  # the acknowledgment is refused instead


def test_autoreply_rules_take_linear_time_on_hostile_headers() -> None:
    """Megabyte subjects and header values of repeated prefixes or markers cost milliseconds."""
    hostile = {
        "subject": "Re: " * 250_000,
        "thread-topic": ["Out of office: " * 60_000],
        "x-mailer": ["vacation " * 100_000],
        "message-id": ["<" + "-tmda-confirm" * 70_000],
        "sender": ["a@" * 300_000],
    }
    headers = {k: v for k, v in hostile.items() if isinstance(v, list)}
    for subject in (str(hostile["subject"]), "Out of office " * 70_000, "(" * 1_000_000, "AUTO" * 250_000):
        started = time.perf_counter()
        autoreplies.challenge_reason(headers, subject, "a@" * 100_000)
        autoreplies.autoreply_reason(headers, subject)
        assert time.perf_counter() - started < 0.5


# --- sweeps over the shared data (skipped without it) --------------------------------------------


@pytest.mark.skipif(not (SHARED / "datasets").is_dir(), reason=f"shared datasets not present at {SHARED}")
def test_no_person_written_absence_notice_in_the_enron_mail_is_an_autoreply() -> None:
    """Enron staff announced their absence as 'Out of the Office'; those are people's mail."""
    subject = re.compile(rb"^Subject:[^\n]*(?:office|vacation|away|auto)", re.IGNORECASE | re.MULTILINE)
    checked = 0
    for path in sorted((SHARED / "datasets").glob("enron-*/*.mbox")):
        box = mailbox.mbox(path, create=False)
        for key in box.iterkeys():
            raw = box.get_bytes(key)
            if subject.search(raw[:4096]) is None:
                continue
            checked += 1
            mail = parse_mail(raw)
            assert mail.kind == "normal", (path.name, key, mail.subject, mail.kind_reason)
    assert checked > 20
