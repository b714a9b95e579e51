"""parse_mail against real mail: the shipped corpus (tests/corpus) and, when present, all shared samples.

Concrete expectations below were checked by reading each message. Upstream labels the parser
disagrees with on purpose are in LABEL_EXCEPTIONS, each with its reason.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from triage.ingest.parse import parse_mail
from triage.ingest.parsed import ParsedMail

CORPUS = Path(__file__).parent / "corpus"
SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "mail-samples"
EXPECTED_KIND = {"normal": "normal", "malformed": "normal", "bounce": "bounce", "autoreply": "autoreply"}

LABEL_EXCEPTIONS = {
    # Apple Mail's automatic "unsubscribe" request (Auto-Submitted: auto-replied); it holds no
    # delivery or feedback report, so it is an automatic reply, not a bounce.
    "sisimai__maildir__bsd__arf-26.eml": "autoreply",
    # A person forwarding a bounce with their own words ("Forward the message."): the desk must
    # see it as a person's mail, or their request would be filtered out with the bounces.
    "sisimai__maildir__bsd__lhost-sendmail-14.eml": "normal",
}


def corpus_files(root: Path) -> list[tuple[str, Path]]:
    return [(folder, path) for folder in EXPECTED_KIND for path in sorted((root / folder).glob("*"))]


def load(folder: str, name: str) -> ParsedMail:
    return parse_mail((CORPUS / folder / name).read_bytes())


CORPUS_FILES = corpus_files(CORPUS)


def test_corpus_is_shipped() -> None:
    """The repository carries its own corpus, so the suite needs nothing outside it."""
    assert len(CORPUS_FILES) >= 100
    assert (CORPUS / "SOURCES.md").is_file()


@pytest.mark.parametrize(("folder", "path"), CORPUS_FILES, ids=[p.name[:60] for _, p in CORPUS_FILES])
def test_corpus_mail_parses_to_its_kind(folder: str, path: Path) -> None:
    """Every corpus mail parses, keeps its size, serialises as JSON and gets its folder's kind."""
    raw = path.read_bytes()
    mail = parse_mail(raw)
    assert mail.size == len(raw)
    json.dumps(mail.contract(), ensure_ascii=False).encode("utf-8")
    assert mail.kind == LABEL_EXCEPTIONS.get(path.name, EXPECTED_KIND[folder])
    assert (mail.kind_reason is None) == (mail.kind == "normal")
    for attachment in mail.attachments:
        assert attachment.size == len(attachment.content)
        assert attachment.sha256 == hashlib.sha256(attachment.content).hexdigest()


@pytest.mark.skipif(
    not SHARED.is_dir(), reason=f"shared samples not present at {SHARED} (only in the team checkout)"
)
def test_every_shared_sample_parses_to_its_kind() -> None:
    """Over all shared samples: no crash, and bounce/autoreply/normal as labelled, bar LABEL_EXCEPTIONS."""
    wrong: list[str] = []
    files = corpus_files(SHARED)
    assert len(files) > 600
    for folder, path in files:
        mail = parse_mail(path.read_bytes())
        expected = LABEL_EXCEPTIONS.get(path.name, EXPECTED_KIND[folder])
        if mail.kind != expected:
            wrong.append(f"{folder}/{path.name}: {mail.kind} ({mail.kind_reason})")
    assert wrong == []


# --- headers -------------------------------------------------------------------------------------


def test_rfc2047_subject_in_euc_kr() -> None:
    """An EUC-KR quoted-printable encoded word in the subject decodes to Korean."""
    mail = load("normal", "mikel-mail__spec__fixtures__emails__plain_emails__raw_email.eml")
    assert mail.subject == "NOTE: 한국말로 하는 것"
    assert mail.from_addr == "jamis@37signals.com"
    assert mail.from_name == "Jamis Buck"
    assert mail.body_text.startswith("대부분의 마찬가지로")


def test_rfc2047_words_split_across_lines_join_into_one_subject() -> None:
    """Two base64 UTF-8 words, split mid-character by the sender, still decode (mail.ru bounce)."""
    mail = load("bounce", "flufl.bounce__flufl__bounce__tests__data__simple_38.txt.eml")
    assert mail.subject == "Ваше сообщение не доставлено. Mail failure."


def test_quoted_encoded_word_in_display_name_is_decoded() -> None:
    """Thunderbird quotes encoded words in names; the name is decoded all the same."""
    mail = load("normal", "flanker__tests__fixtures__messages__enclosed.eml")
    assert mail.from_addr == "bob@example.net"
    assert mail.from_name == "Bob Marley"
    assert mail.to == ["bob@example.com"]


def test_latin1_encoded_from_name() -> None:
    """An ISO-8859-1 encoded word in From decodes to the umlaut."""
    mail = load("normal", "flanker__tests__fixtures__messages__from-encoding.eml")
    assert mail.from_name == "Ingo Lütkebohle"
    assert mail.from_addr == "ingo@blank.pages.de"


def test_raw_utf8_headers_rfc6532() -> None:
    """Raw UTF-8 header bytes (RFC 6532) decode; addresses are lower-cased."""
    mail = load("normal", "mikel-mail__spec__fixtures__emails__rfc6532__utf8_headers.eml")
    assert mail.from_name == "Jöhn Doe"
    assert mail.from_addr == "jdöe@mächine.example"
    assert mail.subject == "Säying Hello"


def test_raw_gb2312_subject_uses_the_body_charset() -> None:
    """Raw 8-bit GB2312 in a subject is read with the mail's own charset, not guessed."""
    mail = load("bounce", "flufl.bounce__flufl__bounce__tests__data__sina_01.txt.eml")
    assert mail.subject == "邮件传输失败！"


def test_at_sign_in_unquoted_display_name_is_recovered() -> None:
    """'Mikel@Lindsaar <raasdnil@gmail.com>' is one mailbox, not two (mail-parser's recovery)."""
    mail = load(
        "normal", "mikel-mail__spec__fixtures__emails__plain_emails__raw_email_with_at_display_name.eml"
    )
    assert mail.to == ["smith@gmail.com", "raasdnil@gmail.com", "tom@gmail.com"]
    assert "bad-address:to" in mail.defects


def test_group_syntax_and_cc_addresses() -> None:
    """RFC 2822 example: group syntax in To, and a Cc list."""
    mail = load("normal", "mikel-mail__spec__fixtures__emails__rfc2822__example03.eml")
    assert mail.from_addr == "john.q.public@example.com"
    assert mail.to == ["mary@x.test", "jdoe@example.org", "one@y.test"]
    assert mail.cc == ["boss@nil.test", "sysservices@example.net"]
    assert mail.date == datetime(2003, 7, 1, 10, 52, 37, tzinfo=timezone(timedelta(hours=2)))


def test_stray_line_in_header_block_is_repaired() -> None:
    """One garbled line among the headers does not hide From/Subject below it."""
    mail = load("normal", "mikel-mail__spec__fixtures__emails__plain_emails__raw_email_incorrect_header.eml")
    assert mail.from_addr == "xxx@xxx.xxx"
    assert mail.subject == "Stop adware/spyware once and for all."
    assert "repaired-header-line" in mail.defects
    assert mail.body_text.startswith("You are infected with:")


def test_unparseable_date_is_null_with_defect() -> None:
    """A date that cannot be read is None and recorded as 'bad-date'."""
    mail = load("normal", "mikel-mail__spec__fixtures__emails__plain_emails__raw_email_with_bad_date.eml")
    assert mail.date is None
    assert "bad-date" in mail.defects


def test_dates_keep_the_senders_offset() -> None:
    """Dates are timezone-aware and keep the offset written by the sender."""
    mail = load("normal", "talon__tests__fixtures__standard_replies__gmail.eml")
    assert mail.date == datetime(2012, 4, 2, 20, 21, 52, tzinfo=timezone(timedelta(hours=4)))
    assert mail.message_id == "<CAKsfaBW4hj0Gek6TwbR3erng4P1y0CZzJ0d=pXtCNnYnbe7PLg@mail.gmail.com>"


def test_threading_headers() -> None:
    """In-Reply-To and References keep their angle brackets."""
    mail = load("normal", "flanker__tests__fixtures__messages__multi-received-headers.eml")
    assert mail.in_reply_to == "<AANLkTinUdYK2NpEiYCKGnCEp_OXKqst_bWNdBVHsfDVh@mail.gmail.com>"
    assert len(mail.references) == 2 and all(r.startswith("<") and r.endswith(">") for r in mail.references)


def test_missing_message_id_is_a_defect() -> None:
    """No Message-ID: null, and 'missing-message-id' in the defects."""
    mail = load("normal", "cpython__Lib__test__test_email__data__msg_07.txt.eml")
    assert mail.message_id is None
    assert "missing-message-id" in mail.defects


# --- charsets ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "start"),
    [
        ("mikel-mail__spec__fixtures__emails__multi_charset__japanese_shift_jis.eml", "あいうえお"),
        ("mikel-mail__spec__fixtures__emails__multi_charset__japanese_iso_2022.eml", "すみません。"),
        ("mikel-mail__spec__fixtures__emails__multi_charset__ks_c_5601-1987.eml", "스티해"),
        ("flanker__tests__fixtures__messages__8bitmime.eml", "Превел"),
    ],
)
def test_body_charsets(name: str, start: str) -> None:
    """Shift_JIS, ISO-2022-JP, ks_c_5601-1987 and KOI8-R bodies decode to the right text."""
    assert load("normal", name).body_text.startswith(start)


def test_unknown_charset_falls_back_and_is_recorded() -> None:
    """charset=x-unknown: the text still decodes (UTF-8 here) and the defect names the charset."""
    mail = load("normal", "mikel-mail__spec__fixtures__emails__plain_emails__raw_email10.eml")
    assert "Envoyé par le service de messagerie texte de Bell Mobilité." in mail.body_text
    assert "unknown-charset:x-unknown" in mail.defects


def test_wrong_declared_charset_falls_back_to_utf8() -> None:
    """Text declared ISO-2022-JP but written in UTF-8 is read as UTF-8, with a defect."""
    mail = load("bounce", "sisimai__maildir__mac__lhost-kddi-01.eml")
    assert mail.body_text.startswith("送信先のメールボックスが一杯のため")
    assert "bad-charset:iso-2022-jp" in mail.defects


# --- bodies and attachments ----------------------------------------------------------------------


def test_rfc2231_continued_utf8_filename() -> None:
    """RFC 2231 filename*0*/filename*1* in UTF-8 joins into one Japanese file name."""
    mail = load(
        "normal", "mikel-mail__spec__fixtures__emails__multi_charset__japanese_attachment_long_name.eml"
    )
    assert [a.filename for a in mail.attachments] == ["かきくけこ" * 5 + ".txt"]


def test_rfc2231_latin1_filename_with_inline_disposition() -> None:
    """filename*=ISO-8859-1''... decodes; the image is marked inline."""
    mail = load(
        "normal", "mikel-mail__spec__fixtures__emails__attachment_emails__attachment_with_quoted_filename.eml"
    )
    (image,) = mail.attachments
    assert (image.filename, image.content_type, image.inline) == (
        "Eelanalüüsi päring.jpg",
        "image/jpeg",
        True,
    )
    assert mail.subject == "Eelanalüüsi päring"


def test_rfc2047_encoded_filenames() -> None:
    """Encoded words in filename= (not allowed, common) decode: base64 UTF-8 and raw 8-bit."""
    japanese = load("normal", "mikel-mail__spec__fixtures__emails__multi_charset__japanese_attachment.eml")
    assert [a.filename for a in japanese.attachments] == ["てすと.txt"]
    pdf = load(
        "normal",
        "mikel-mail__spec__fixtures__emails__attachment_emails__attachment_with_base64_encoded_name.eml",
    )
    assert [a.filename for a in pdf.attachments] == ["This is a test.pdf"]
    raw = load(
        "normal", "mikel-mail__spec__fixtures__emails__attachment_emails__attachment_nonascii_filename.eml"
    )
    assert [a.filename for a in raw.attachments] == ["ciële.txt"]


def test_utf8_filename_cut_mid_character() -> None:
    """A raw UTF-8 name that Yahoo cut mid-character still decodes as Cyrillic."""
    mail = load("normal", "flanker__tests__fixtures__messages__russian-attachment-yahoo.eml")
    (image,) = mail.attachments
    assert image.filename is not None and image.filename.startswith("Картинка с очень, очень длинным")
    assert image.size == 178213


def test_inline_image_with_content_id() -> None:
    """Inline images are attachments with their Content-ID (without brackets) and inline flag."""
    mail = load(
        "normal",
        "mikel-mail__spec__fixtures__emails__attachment_emails__attachment_message_rfc822_inline_image.eml",
    )
    image, message = mail.attachments
    assert (image.filename, image.inline, image.content_id) == (
        "img.png",
        True,
        "emedfeb92f-a786-4718-a446-98db8afb53fb@kronos",
    )
    assert image.content.startswith(b"\x89PNG")
    assert (message.filename, message.content_type) == ("Testmail.eml", "message/rfc822")


def test_attached_message_keeps_its_original_bytes() -> None:
    """A message/rfc822 part is one attachment whose content is the embedded mail, unparsed."""
    mail = load(
        "normal", "mikel-mail__spec__fixtures__emails__attachment_emails__attachment_message_rfc822.eml"
    )
    assert mail.body_text == "This is the first part.\n"
    (forwarded,) = mail.attachments
    assert (forwarded.filename, forwarded.content_type) == ("ForwardedMessage.eml", "message/rfc822")
    assert parse_mail(forwarded.content).from_addr is not None


def test_digest_parts_are_attached_messages() -> None:
    """A multipart/digest lists each digested mail as a message/rfc822 attachment."""
    mail = load("normal", "cpython__Lib__test__test_email__data__msg_02.txt.eml")
    assert [a.content_type for a in mail.attachments] == ["message/rfc822"] * 5
    assert mail.body_text.startswith("Send Ppp mailing list submissions to")


def test_html_only_mail_is_rendered_to_text() -> None:
    """Without a text/plain part the body text is a readable rendering of the HTML."""
    mail = load(
        "malformed",
        "mikel-mail__spec__fixtures__emails__error_emails__content_transfer_encoding_text-html.eml",
    )
    assert mail.body_html is not None and "<br>" in mail.body_html
    assert mail.body_text.startswith("Hello,\n\nYou have qualified for the lowest rate in years.\n")
    assert "Approval Form" in mail.body_text and "<" not in mail.body_text


def test_uuencoded_attachment() -> None:
    """Content-Transfer-Encoding: x-uuencode is decoded to the attachment's bytes."""
    mail = load(
        "malformed",
        "mikel-mail__spec__fixtures__emails__error_emails__content_transfer_encoding_x_uuencode.eml",
    )
    assert mail.body_text.startswith("Attached are the comments of the Public Generating Pool.")
    assert [a.filename for a in mail.attachments] == ["PGP_Cmts_on_12-14-01_Pkg.doc"]


def test_multipart_without_boundary_keeps_its_text() -> None:
    """A multipart whose boundary never appears is still read as text, with stdlib defects."""
    mail = load("malformed", "cpython__Lib__test__test_email__data__msg_41.txt.eml")
    assert mail.body_text == "Blah blah blah\n"
    assert "NoBoundaryInMultipartDefect" in mail.defects


# --- replies, quotes, signatures -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "quote_start"),
    [
        ("talon__tests__fixtures__standard_replies__gmail.eml", "On Mon, Apr 2, 2012 at 6:26 PM"),
        (
            "talon__tests__fixtures__standard_replies__apple_mail.eml",
            "On Apr 3, 2012, at 4:19 PM, bob wrote:",
        ),
        ("talon__tests__fixtures__standard_replies__aol.eml", "-----Original Message-----"),
        ("talon__tests__fixtures__standard_replies__comcast.eml", "----- Original Message -----"),
        ("talon__tests__fixtures__standard_replies__yahoo.eml", "----- Original Message -----"),
        ("talon__tests__fixtures__standard_replies__outlook.eml", "From: xxx@xxx.mailgun.org [mailto:"),
        ("talon__tests__fixtures__standard_replies__hotmail.eml", "> Subject: Test"),
        ("talon__tests__fixtures__standard_replies__android.eml", "02.04.2012 14:20 пользователь"),
        (
            "talon__tests__fixtures__standard_replies__thunderbird.eml",
            "On 04/02/2012 06:26 PM, Megan One wrote:",
        ),
        ("talon__tests__fixtures__standard_replies__apple_mail_2.eml", "> On 22 Aug 2015, at 19:21"),
    ],
)
def test_reply_new_text_is_split_from_the_quote(name: str, quote_start: str) -> None:
    """Each client's reply: the new text is 'Hello', the quote starts at the client's header."""
    mail = load("normal", name)
    assert mail.new_text == "Hello"
    assert mail.quoted_text.startswith(quote_start)


def test_signature_and_mobile_footer_are_split() -> None:
    """The '-- ' block and 'Sent from my iPhone' are the signature, not new text."""
    sparrow = load("normal", "talon__tests__fixtures__standard_replies__sparrow.eml")
    assert sparrow.new_text == "Hello"
    assert sparrow.signature.startswith("-- \nxxx\nSent with Sparrow")
    iphone = load("normal", "talon__tests__fixtures__standard_replies__iphone.eml")
    assert (iphone.new_text, iphone.signature) == ("Hello", "Sent from my iPhone")


def test_bottom_posted_answer_below_the_quote_is_new_text() -> None:
    """'X wrote:' then '>' lines then the answer: the answer is the new text."""
    mail = load("normal", "flanker__tests__fixtures__messages__from-encoding.eml")
    assert mail.new_text.startswith("Isn't that the case for almost every other server")
    assert mail.quoted_text.startswith("Marc Slemko wrote:\n> If you have a real uid of root")


def test_forwarded_mail_stays_new_text() -> None:
    """A forwarded message in the body is the sender's content, not a quote."""
    mail = load("normal", "flanker__tests__fixtures__messages__multi-received-headers.eml")
    assert mail.new_text.startswith(
        "---------- Forwarded message ----------\nFrom: Hello <hello@example.com>"
    )
    assert mail.quoted_text == ""


# --- bounces and automatic replies ---------------------------------------------------------------


def test_rfc3464_bounce_details() -> None:
    """A DSN names the failed recipient and the bounced mail's Message-ID."""
    mail = load("bounce", "sisimai__maildir__bsd__rfc3464-01.eml")
    assert mail.kind_reason == "delivery status notification (RFC 3464)"
    assert mail.bounced_recipients == ["userunknown@bouncehammer.jp"]
    assert mail.bounce_original_message_id == "<E1C50F1B-1C83-4820-BC36-AC6FBFBE8568@example.org>"
    assert mail.auto_submitted == "auto-generated (failure)"


def test_dsn_with_several_failed_recipients() -> None:
    """All failed recipients of a multi-recipient DSN are listed."""
    mail = load(
        "bounce", "mikel-mail__spec__fixtures__emails__multipart_report_emails__multi_address_bounce1.eml"
    )
    assert len(mail.bounced_recipients) == 5
    assert "egyfefsdvsfvvhjsd@gmail.com" in mail.bounced_recipients


def test_feedback_report_is_a_bounce() -> None:
    """An RFC 5965 abuse report (AOL) is kind bounce with the reported mail's id."""
    mail = load("bounce", "flanker__tests__fixtures__messages__complaints__aol.eml")
    assert mail.kind_reason == "feedback report (RFC 5965)"
    assert mail.bounce_original_message_id == "<20101117174130.28884.55421@luna>"


@pytest.mark.parametrize(
    ("name", "recipient"),
    [
        ("flufl.bounce__flufl__bounce__tests__data__qmail_01.txt.eml", "psadisc@wwwmail.n-h.de"),
        ("flufl.bounce__flufl__bounce__tests__data__postfix_01.txt.eml", "xxxxx@local.ie"),
        ("flufl.bounce__flufl__bounce__tests__data__exim_01.txt.eml", "delangen@its.tudelft.nl"),
        (
            "flanker__tests__fixtures__messages__bounce__gmail-invalid-address.eml",
            "awfawfawfawfawfaw@someserverhere.com",
        ),
        ("flufl.bounce__flufl__bounce__tests__data__simple_20.txt.eml", "duke@ald.socgen.com"),
    ],
)
def test_non_standard_bounces_name_the_recipient(name: str, recipient: str) -> None:
    """qmail, Postfix, Exim, Gmail and gateway bounces without a DSN still yield the address."""
    mail = load("bounce", name)
    assert mail.kind == "bounce"
    assert recipient in mail.bounced_recipients


def test_rfc3834_autoreply() -> None:
    """Auto-Submitted: auto-replied makes an autoreply, and the header value is kept."""
    mail = load("autoreply", "sisimai__maildir__mac__rfc3834-01.eml")
    assert (mail.kind, mail.auto_submitted) == ("autoreply", "auto-replied")
    assert mail.subject == "Away until May 5"
