"""parse_mail's contract on small hand-written inputs, and its helpers (quotes, HTML text)."""

from __future__ import annotations

import email
import hashlib
from email.policy import compat32

import pytest

from triage.ingest.htmltext import html_to_text
from triage.ingest.parse import parse_mail
from triage.ingest.parsed import NotAMailError
from triage.ingest.quotes import split_reply

HEAD = (
    b"From: Ann <ann@example.org>\r\nTo: desk@example.net\r\nSubject: Hi\r\n"
    b"Date: Mon, 2 Sep 2024 10:00:00 +0200\r\n"
)


def with_body(body: bytes, *headers: bytes) -> bytes:
    return HEAD + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + body


# --- what is a mail at all -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"   \r\n\n\t\n",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10",
        b"\x00\x01\x02\x03binary junk\xff\xfe",
        b"Dear John,\nthanks for the lovely evening. See you soon!\n",
        b"Note: bring snacks\n\nSee you on Friday.\n",
        b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n",
    ],
    ids=["empty", "blank", "png", "binary", "prose", "prose-with-colon", "pdf"],
)
def test_not_a_mail_raises_not_a_mail_error(raw: bytes) -> None:
    """Input without an RFC 822 header block raises NotAMailError with a message saying why."""
    with pytest.raises(NotAMailError, match=r"header|input|binary"):
        parse_mail(raw)


def test_mbox_from_line_and_leading_blank_lines_are_accepted() -> None:
    """An mbox 'From ' separator line or blank lines before the headers still make a mail."""
    assert (
        parse_mail(b"From ann@example.org Mon Sep  2 10:00:00 2024\n" + with_body(b"x")).from_addr
        == "ann@example.org"
    )
    assert parse_mail(b"\r\n   \r\n" + with_body(b"x")).subject == "Hi"


def test_minimal_mail_has_every_contract_key() -> None:
    """A header-only mail fills the contract: defaults are empty, unknowns null, defects listed."""
    mail = parse_mail(b"Subject: only this\n")
    contract = mail.contract()
    assert contract["subject"] == "only this"
    assert contract["from_addr"] is None and contract["date"] is None
    assert contract["body_text"] == "" and contract["attachments"] == []
    assert {"missing-from", "missing-date", "missing-message-id"} <= set(mail.defects)


# --- size ----------------------------------------------------------------------------------------


def test_oversize_mail_keeps_headers_only() -> None:
    """Above max_size: headers are parsed, the body is left out, 'oversize' is a defect, no raise."""
    raw = with_body(b"A" * 5000, b"Content-Type: text/plain", b"Message-ID: <big@example.org>")
    mail = parse_mail(raw, max_size=1000)
    assert mail.oversize and "oversize" in mail.defects
    assert (mail.subject, mail.message_id, mail.from_addr) == ("Hi", "<big@example.org>", "ann@example.org")
    assert mail.body_text == "" and mail.attachments == []
    assert mail.size == len(raw)
    assert not parse_mail(raw, max_size=len(raw)).oversize


def test_input_is_not_mutated() -> None:
    """A bytearray given to parse_mail is left exactly as it was."""
    raw = bytearray(with_body(b"hello\r\n"))
    before = bytes(raw)
    assert parse_mail(raw).size == len(before)  # type: ignore[arg-type]
    assert bytes(raw) == before


def test_deeply_nested_multiparts_do_not_crash() -> None:
    """Thousands of nested multiparts end in a 'nesting-too-deep' defect, not a RecursionError."""
    depth = 3000
    body = b"".join(
        b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (i, i + 1) for i in range(depth)
    )
    raw = with_body(
        body + b"--b%d\r\nContent-Type: text/plain\r\n\r\nhi\r\n" % depth,
        b"Content-Type: multipart/mixed; boundary=b0",
    )
    mail = parse_mail(raw)
    assert "nesting-too-deep" in mail.defects
    assert mail.subject == "Hi"


# --- charsets ------------------------------------------------------------------------------------


def test_us_ascii_declared_but_utf8_sent() -> None:
    """8-bit UTF-8 under a us-ascii label decodes as UTF-8 and notes the wrong label."""
    mail = parse_mail(with_body("Grüße aus Köln".encode(), b'Content-Type: text/plain; charset="us-ascii"'))
    assert mail.body_text == "Grüße aus Köln"
    assert "bad-charset:us-ascii" in mail.defects


def test_unknown_charset_with_latin1_bytes() -> None:
    """An unknown charset name falls back past UTF-8 to a guess; the text is never lost."""
    mail = parse_mail(
        with_body("café crème brûlée".encode("latin-1"), b"Content-Type: text/plain; charset=x-nonsense")
    )
    assert "unknown-charset:x-nonsense" in mail.defects
    assert mail.body_text.startswith("caf") and len(mail.body_text) == len("café crème brûlée")


def test_windows_1252_without_charset() -> None:
    """No charset and non-UTF-8 bytes: charset-normalizer's guess, else Latin-1, never an error."""
    text = "Das kostet 5 € – nicht mehr, nicht weniger. Schöne Grüße aus München und Düsseldorf!"
    mail = parse_mail(with_body(text.encode("cp1252")))
    assert "München" in mail.body_text


def test_non_text_codec_names_are_refused() -> None:
    """A charset label naming a non-text codec (base64, rot13) is treated as unknown."""
    mail = parse_mail(with_body(b"hello", b"Content-Type: text/plain; charset=rot13"))
    assert mail.body_text == "hello"
    assert "unknown-charset:rot13" in mail.defects


def test_rfc2231_charset_on_an_8bit_body() -> None:
    """An RFC 2231 charset parameter (charset*=) over 8-bit bytes decodes; it used to raise TypeError."""
    raw = with_body(
        "héllo, Grüße".encode(),
        b"Content-Type: text/plain; charset*=utf-8''utf-8",
        b"Content-Transfer-Encoding: 8bit",
        "Reply-To: Zoë <zoe@example.org>".encode(),
    )
    mail = parse_mail(raw)
    assert mail.body_text == "héllo, Grüße" and mail.reply_to == ["zoe@example.org"]


def test_nul_bytes_are_removed_from_text() -> None:
    """NUL characters, which no database text column takes, are dropped and noted."""
    mail = parse_mail(with_body(b"a\x00b"))
    assert mail.body_text == "ab" and "nul-in-text" in mail.defects


# --- headers -------------------------------------------------------------------------------------


def test_encoded_words_split_inside_a_character() -> None:
    """Adjacent encoded words of one charset are joined as bytes, so split characters survive."""
    euro = "€".encode()
    subject = (
        b"Subject: =?utf-8?q?Preis_="
        + b"%02X" % euro[0]
        + b"?= =?utf-8?q?="
        + euro[1:2].hex().upper().encode()
        + b"="
        + euro[2:3].hex().upper().encode()
        + b"_5?="
    )
    raw = HEAD.replace(b"Subject: Hi\r\n", subject + b"\r\n") + b"\r\nx"
    assert parse_mail(raw).subject == "Preis € 5"


def test_unknown_charset_in_encoded_word() -> None:
    """An encoded word in an unknown charset still yields text and a defect."""
    raw = HEAD.replace(b"Subject: Hi", b"Subject: =?x-klingon?q?Qapla'?=") + b"\r\nx"
    mail = parse_mail(raw)
    assert mail.subject == "Qapla'"
    assert "unknown-charset:x-klingon" in mail.defects


def test_message_id_forms() -> None:
    """Message-ID keeps its brackets; a bare id gets them with a defect; References are split."""
    raw = with_body(
        b"x", b"Message-ID: abc@example.org", b"References: <a@x>\r\n <b@y>  <c@z>", b"In-Reply-To: <c@z>"
    )
    mail = parse_mail(raw)
    assert mail.message_id == "<abc@example.org>" and "message-id-without-brackets" in mail.defects
    assert mail.references == ["<a@x>", "<b@y>", "<c@z>"]
    assert mail.in_reply_to == "<c@z>"


def test_list_id_and_reply_to() -> None:
    """List-Id gives the list's id; Reply-To addresses are lower-cased."""
    mail = parse_mail(
        with_body(b"x", b"List-Id: Volunteers <volunteers.example.org>", b"Reply-To: Team <TEAM@Example.org>")
    )
    assert mail.list_id == "volunteers.example.org"
    assert mail.reply_to == ["team@example.org"]


def test_date_without_zone_is_utc() -> None:
    """A date with -0000 or no zone at all is taken as UTC, so it is always timezone-aware."""
    raw = HEAD.replace(b"+0200", b"-0000") + b"\r\nx"
    date = parse_mail(raw).date
    assert date is not None and date.utcoffset() is not None and date.hour == 10


# --- attachments ---------------------------------------------------------------------------------

MIXED = b"""--XX\r
Content-Type: text/plain; charset=utf-8\r
\r
See the attached list.\r
--XX\r
Content-Type: application/pdf; name="=?utf-8?q?Liste_M=C3=A4rz.pdf?="\r
Content-Disposition: attachment; filename*0*=utf-8''Liste%20M%C3%A4;\r
 filename*1*=rz.pdf\r
Content-Transfer-Encoding: base64\r
\r
JVBERi0xLjQK\r
--XX\r
Content-Type: text/plain; name="notes.txt"\r
Content-Disposition: inline; filename="notes.txt"\r
\r
Shown in place.\r
--XX\r
Content-Type: image/png\r
Content-ID: <logo@example.org>\r
Content-Transfer-Encoding: base64\r
\r
iVBORw0KGgo=\r
--XX--\r
"""


def test_attachments_and_inline_parts() -> None:
    """RFC 2231 continued names, decoded content with its hash, inline text as body, cid images."""
    mail = parse_mail(with_body(MIXED, b'Content-Type: multipart/mixed; boundary="XX"'))
    assert mail.body_text == "See the attached list.\nShown in place."
    pdf, logo = mail.attachments
    assert (pdf.filename, pdf.content_type, pdf.inline) == ("Liste März.pdf", "application/pdf", False)
    assert pdf.content == b"%PDF-1.4\n" and pdf.sha256 == hashlib.sha256(b"%PDF-1.4\n").hexdigest()
    assert (logo.filename, logo.inline, logo.content_id, logo.size) == (None, True, "logo@example.org", 8)


@pytest.mark.parametrize(
    "encoded",
    [b"JVBERi0x\r\nLjQK", b"JVBERi0xLjQ", b"JVBERi0x!LjQK", b"JVBE\xc3\xa9Ri0xLjQK", b"JVBERi0xLjQK===="],
    ids=["line-break", "no-padding", "stray-character", "8-bit", "extra-padding"],
)
def test_base64_parts_decode_as_the_stdlib_does(encoded: bytes) -> None:
    """Base64 bodies, clean or damaged, give the bytes the stdlib's lenient decoder gives."""
    raw = with_body(
        b"--XX\r\nContent-Type: text/plain\r\n\r\nHi\r\n--XX\r\nContent-Type: application/pdf\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + encoded + b"\r\n--XX--\r\n",
        b'Content-Type: multipart/mixed; boundary="XX"',
    )
    expected = email.message_from_bytes(raw, policy=compat32).get_payload()[1].get_payload(decode=True)
    assert parse_mail(raw).attachments[0].content == expected


def test_html_alternative_is_kept_raw_and_plain_is_the_body() -> None:
    """multipart/alternative: text/plain is the body text, the HTML is kept as it came."""
    body = (
        b"--A\r\nContent-Type: text/plain\r\n\r\nplain words\r\n--A\r\nContent-Type: text/html\r\n\r\n"
        b'<p onclick="x()">html <b>words</b></p>\r\n--A--\r\n'
    )
    mail = parse_mail(with_body(body, b'Content-Type: multipart/alternative; boundary="A"'))
    assert mail.body_text == "plain words"
    assert mail.body_html == '<p onclick="x()">html <b>words</b></p>'
    assert mail.attachments == []


# --- quotes and signatures -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        "On Tue, 3 Sep 2024 at 09:12, Bob Example <bob@example.org> wrote:",
        "Am Di., 3. Sept. 2024 um 09:12 Uhr schrieb Bob Example <bob@example.org>:",
        "Le mar. 3 sept. 2024 à 09:12, Bob Example <bob@example.org> a écrit :",
        "El mar, 3 sept 2024 a las 9:12, Bob Example (<bob@example.org>) escribió:",
        "Op di 3 sep. 2024 om 09:12 schreef Bob Example <bob@example.org>:",
        "Op 3 sep. 2024, om 09:12 heeft Bob Example <bob@example.org> het volgende geschreven:",
        "Il giorno mar 3 set 2024 alle ore 09:12 Bob Example <bob@example.org> ha scritto:",
    ],
)
def test_reply_headers_in_several_languages(header: str) -> None:
    """'On ... wrote:' in English, German, French, Spanish, Dutch and Italian starts the quote."""
    parts = split_reply(f"Yes, Saturday works.\n\n{header}\n\n> Can you help on Saturday?\n")
    assert parts.new == "Yes, Saturday works."
    assert parts.quoted.startswith(header[:10])
    assert parts.quoted.endswith("> Can you help on Saturday?")


def test_outlook_header_block_quotes_everything_below() -> None:
    """Outlook's From/Sent/To/Subject block (after a rule of underscores) starts the quote."""
    text = (
        "Sure, count me in.\n\nBest,\nCarla\n\n________________________________\n"
        "Von: Desk <desk@example.net>\nGesendet: Dienstag, 3. September 2024 09:12\n"
        "An: Carla <carla@example.org>\nBetreff: Saturday\n\nCan you help on Saturday?\n"
    )
    parts = split_reply(text)
    assert (parts.new, parts.signature) == ("Sure, count me in.", "Best,\nCarla")
    assert parts.quoted.startswith("________________________________\nVon: Desk")


def test_interleaved_answers_are_new_text() -> None:
    """Answers between quoted lines are new text; the quoted lines are the quote."""
    text = "> Can you come?\nYes.\n> At nine?\nBetter ten.\n"
    parts = split_reply(text)
    assert parts.new == "Yes.\nBetter ten."
    assert parts.quoted == "> Can you come?\n> At nine?"


def test_signature_delimiter_and_mobile_footer() -> None:
    """'-- ' starts the signature; so does a German 'Von meinem iPhone gesendet' at the end."""
    assert split_reply("Thanks!\n-- \nCarla\nFood bank").signature == "-- \nCarla\nFood bank"
    parts = split_reply("Passt.\n\nVon meinem iPhone gesendet")
    assert (parts.new, parts.signature) == ("Passt.", "Von meinem iPhone gesendet")


@pytest.mark.parametrize("closing", ["Best regards,", "Kind regards", "Thanks,", "Viele Grüße", "Cordialement,",
                                     "Un saludo", "Met vriendelijke groet,"])
def test_a_closing_line_with_a_short_name_below_starts_the_signature(closing: str) -> None:
    """Without a delimiter, "Best regards," and its kin start the signature when only a few short
    lines (name, role) follow and something was written above."""
    text = f"Hello,\n\nmay our chapter use the logo?\n\n{closing}\nAda Lovelace\nChapter lead, Berlin\n"
    parts = split_reply(text)
    assert (parts.new, parts.signature) == (
        "Hello,\n\nmay our chapter use the logo?", f"{closing}\nAda Lovelace\nChapter lead, Berlin")


@pytest.mark.parametrize("text", [
    "Best regards,\nAda",  # nothing written above it: the closing is the message
    "Thanks!",  # nothing below it
    "We met.\nRegards\nthis line below the closing is a long sentence, so it is not a name or a role",
    "Plan:\nBest\n" + "".join(f"item {n}\n" for n in range(6)),  # too many lines below for a signature
])
def test_a_closing_line_without_a_short_signature_below_stays_in_the_text(text: str) -> None:
    parts = split_reply(text)
    assert parts.signature == "" and parts.new == text.strip("\n")


def test_plain_text_without_quotes_is_all_new() -> None:
    """Text with no quote markers is new text only; a colon at a line's end is not a header."""
    text = "On Saturday we need:\n- two drivers\n- one cook\n"
    assert split_reply(text) == (text.rstrip(), "", "")


# --- HTML rendering ------------------------------------------------------------------------------


def test_html_to_text_keeps_structure() -> None:
    """Paragraphs, line breaks, lists and entities become readable plain text; scripts vanish."""
    html = (
        "<html><head><style>p{color:red}</style><script>alert(1)</script></head><body>"
        "<p>Hello&nbsp;team,</p><p>we need:<br>drivers &amp; cooks</p><ul><li>Sat</li><li>Sun</li></ul>"
        "</body></html>"
    )
    text = html_to_text(html)
    assert "alert" not in text and "color" not in text
    assert "Hello team," in text and "drivers & cooks" in text
    assert text.index("Sat") < text.index("Sun")


def test_nested_divs_are_not_indented() -> None:
    """Mail HTML nests <div>s (Gmail's dir="ltr" wrapper, Outlook's sections); the text the
    liaison reads starts at the margin whatever the depth, and inline elements keep their spaces."""
    html = '<div dir="ltr"><div>Hi <span>team</span></div><div><div><div>may we use the logo?</div></div></div></div>'
    assert html_to_text(html) == "Hi team\nmay we use the logo?"


def test_html_only_reply_quote_without_attribution_is_quoted() -> None:
    """An HTML-only reply whose client marks the earlier mail (Apple Mail's cite, Gmail's
    gmail_quote) keeps it out of the new text even with no "On ... wrote:" line above it."""
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"] = "Ada <ada@volunteers.example>"
    msg["To"] = "liaison@example.org"
    msg["Subject"] = "Re: Saturday"
    msg["Message-ID"] = "<html-cite@volunteers.example>"
    msg.set_content("<div>Yes, Saturday works.</div><blockquote type=\"cite\"><div>Can you help on Saturday?</div>"
                    "<blockquote class=\"gmail_quote\">An older question</blockquote></blockquote>", subtype="html")
    mail = parse_mail(msg.as_bytes())
    assert mail.new_text.strip() == "Yes, Saturday works."
    assert "> Can you help on Saturday?" in mail.quoted_text and "> An older question" in mail.quoted_text


def test_an_indented_html_block_of_the_senders_own_stays_new_text() -> None:
    """A bare <blockquote> (Thunderbird's "indent") is the sender's own words, not a quote."""
    text = html_to_text("<p>My plan:</p><blockquote>step one<br>step two</blockquote><p>ok?</p>")
    assert split_reply(text).new == "My plan:\n\nstep one\nstep two\n\nok?"


@pytest.mark.parametrize("html", ["", "   ", "<html></html>", "\x00\x01<p>x</p>", "<<<>>>", "<!-- -->"])
def test_html_to_text_never_raises(html: str) -> None:
    """Empty, control-character and broken markup gives a string, never an exception."""
    assert isinstance(html_to_text(html), str)
