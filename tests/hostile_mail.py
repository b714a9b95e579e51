"""Hostile mail for the parser: families of crafted mails whose cost a careless parser lets grow
faster than their size. Each family turns a size in bytes into one mail of about that size.

The linear-time tests (`tests/test_parse_linear.py`) and `bench/bench_parse.py --adversarial`
both parse these at doubling sizes and compare the times.
"""

from __future__ import annotations

from collections.abc import Callable

Family = Callable[[int], bytes]

_HEAD = b"From: Ana <ana@example.org>\r\nTo: desk@example.org\r\nSubject: hello\r\nMessage-ID: <m1@example.org>\r\n"
_DATE = b"Date: Mon, 2 Sep 2024 10:00:00 +0200\r\n"


def _repeat(unit: bytes, size: int) -> bytes:
    return unit * max(1, size // len(unit))


def _mail(headers: bytes, body: bytes = b"Hello.\r\n") -> bytes:
    return headers + _DATE + b"\r\n" + body


def _field(name: bytes, value: bytes) -> bytes:
    """A header field whose long value is folded into lines of about 70 bytes, as mailers do."""
    lines = [value[i : i + 70] for i in range(0, len(value), 70)] or [b""]
    return name + b": " + b"\r\n ".join(lines) + b"\r\n"


def address_at_in_names(size: int) -> bytes:
    """'@' in display names with no angle address after them (the 60 s To header of issue 11)."""
    return _mail(_field(b"To", _repeat(b"a@b ", size)) + b"From: ana@example.org\r\nSubject: x\r\n")


def address_unclosed_angles(size: int) -> bytes:
    return _mail(
        _field(b"To", b"Ana " + _repeat(b"<a@b ", size)) + b"From: ana@example.org\r\nSubject: x\r\n"
    )


def address_unclosed_quote(size: int) -> bytes:
    return _mail(_field(b"To", b'"' + _repeat(b"a@b, ", size)) + b"From: ana@example.org\r\nSubject: x\r\n")


def address_nested_comments(size: int) -> bytes:
    return _mail(_field(b"Cc", b"a@b " + _repeat(b"(", size)) + _HEAD)


def address_spaces(size: int) -> bytes:
    """One To item whose name is a long run of blanks, with no address to end it."""
    return _mail(b"To: a" + _repeat(b" ", size) + b"x\r\nFrom: ana@example.org\r\nSubject: x\r\n")


def address_folded_blanks(size: int) -> bytes:
    """A To header folded at once, its value a run of blanks: the fast address paths start there."""
    return _mail(b"To:\r\n" + _repeat(b" \t", size) + b"x\r\nFrom: ana@example.org\r\nSubject: x\r\n")


def address_domain_literal(size: int) -> bytes:
    return _mail(
        _field(b"From", b"x@[" + _repeat(b"192.0.2.7 ", size)) + b"To: desk@example.org\r\nSubject: x\r\n"
    )


def many_addresses(size: int) -> bytes:
    return _mail(
        _field(b"To", _repeat(b'"N, a" <a@example.org>, ', size)) + b"From: ana@example.org\r\nSubject: x\r\n"
    )


def subject_encoded_words(size: int) -> bytes:
    return _mail(_field(b"Subject", _repeat(b"=?utf-8?q?caf=C3=A9?= ", size)) + b"From: ana@example.org\r\n")


def subject_bounce_words(size: int) -> bytes:
    """A subject that starts like a bounce and keeps the bounce patterns guessing."""
    return _mail(
        _field(b"Subject", b"[postmaster] " + _repeat(b"mail ", size)) + b"From: ana@example.org\r\n"
    )


def long_references(size: int) -> bytes:
    return _mail(_field(b"References", _repeat(b"<r1@example.org> ", size)) + _HEAD)


def unclosed_references(size: int) -> bytes:
    return _mail(
        _field(b"References", _repeat(b"<a b", size)) + _field(b"In-Reply-To", _repeat(b"<", size)) + _HEAD
    )


def header_blank_fold(size: int) -> bytes:
    """One field of empty continuation lines (line ends and blanks)."""
    return _mail(b"X-Junk: a\r\n" + _repeat(b" \r\n", size) + _HEAD)


def huge_header_block(size: int) -> bytes:
    """Many fields: a header block the size of the mail."""
    return _mail(_HEAD + _repeat(b"X-Filler: 0123456789abcdef\r\n", size))


def huge_content_type(size: int) -> bytes:
    """A multipart Content-Type with a long run of empty parameters (the stdlib splits them one by one)."""
    ctype = b'Content-Type: multipart/mixed; boundary="b"' + _repeat(b";", size) + b"\r\n"
    body = b"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b--\r\n"
    return _mail(_HEAD + b"MIME-Version: 1.0\r\n" + ctype, body)


def quoted_content_type(size: int) -> bytes:
    """A part whose Content-Type opens a quote and then has many ';' (each a rescan in the stdlib)."""
    part = b'--b\r\nContent-Type: text/plain; name="' + _repeat(b";", size) + b"\r\n\r\nhello\r\n--b--\r\n"
    return _mail(_HEAD + b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n', part)


def deep_nesting(size: int) -> bytes:
    """Multiparts nested as deep as the size allows."""
    depth = max(1, size // 60)
    opens = b"".join(
        b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (i, i + 1) for i in range(depth)
    )
    closes = b"".join(b"--b%d--\r\n" % i for i in range(depth, -1, -1))
    inner = b"--b%d\r\nContent-Type: text/plain\r\n\r\nhello\r\n" % depth
    return _mail(
        _HEAD + b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b0"\r\n',
        opens + inner + closes,
    )


def many_parts(size: int) -> bytes:
    part = b"--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
    return _mail(
        _HEAD + b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n',
        _repeat(part, size) + b"--b--\r\n",
    )


def many_odd_parts(size: int) -> bytes:
    """Parts the fast path refuses (each with a stray header line), so the feed parser reads them all."""
    part = b"--b\r\nContent-Type: text/plain\r\nstray\r\n\r\nhi\r\n"
    return _mail(
        _HEAD + b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n',
        _repeat(part, size) + b"--b--\r\n",
    )


def _parts(part: bytes, size: int) -> bytes:
    headers = _HEAD + b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n'
    return _mail(headers, _repeat(part, size) + b"--b--\r\n")


def tiny_control_parts(size: int) -> bytes:
    """Tiny text parts with a control byte: each one a binary-or-text question for charset-normalizer."""
    return _parts(b"--b\r\nContent-Type: text/plain\r\n\r\nhi\x01there\r\n", size)


def tiny_undeclared_parts(size: int) -> bytes:
    """Tiny 8-bit text parts without a charset: each one a charset guess."""
    return _parts(b"--b\r\nContent-Type: text/plain\r\n\r\ncaf\xe9\r\n", size)


def unknown_charset_words(size: int) -> bytes:
    """Encoded words in charsets no codec knows, each cut off from the next by a word."""
    return _mail(
        _field(b"Subject", _repeat(b"=?x-a?q?caf=E9?= a =?x-b?q?caf=E9?= b ", size))
        + b"From: ana@example.org\r\n"
    )


def feedback_report_to(size: int) -> bytes:
    """An abuse report whose returned message has a long To line with no address (15 s in issue 11)."""
    body = (
        b"--r\r\nContent-Type: text/plain\r\n\r\nThis is an abuse report.\r\n"
        b"--r\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nUser-Agent: x/1\r\nVersion: 1\r\n"
        b"--r\r\nContent-Type: message/rfc822\r\n\r\n"
        b"From: ana@example.org\r\nTo: "
        + _repeat(b"a", size)
        + b"\r\nMessage-ID: <o1@example.org>\r\n\r\nhi\r\n--r--\r\n"
    )
    headers = (
        b"From: fbl@isp.example\r\nTo: desk@example.org\r\nSubject: complaint\r\nMessage-ID: <f1@isp.example>\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=feedback-report; boundary="r"\r\n'
    )
    return _mail(headers, body)


def bounce_blank_lines(size: int) -> bytes:
    """A bounce whose text names 'message-id' once and then has nothing but empty lines."""
    headers = b"From: MAILER-DAEMON@example.org\r\nTo: desk@example.org\r\nSubject: Undelivered Mail\r\n"
    return _mail(headers, b"message-id\r\n" + _repeat(b"\r\n", size))


def bounce_long_address_line(size: int) -> bytes:
    headers = b"From: MAILER-DAEMON@example.org\r\nTo: desk@example.org\r\nSubject: Undelivered Mail\r\n"
    return _mail(headers, b"<a@" + _repeat(b"b.", size) + b"\r\n")


def html_unclosed_tags(size: int) -> bytes:
    return html_mail(_repeat(b"<", size))


def html_nested(size: int) -> bytes:
    return html_mail(_repeat(b"<div>", size // 2) + b"x" + _repeat(b"</div>", size // 2))


def html_table(size: int) -> bytes:
    return html_mail(b"<table><tr>" + _repeat(b"<td>x</td>", size) + b"</tr></table>")


def html_table_rows(size: int) -> bytes:
    return html_mail(b"<table>" + _repeat(b"<tr><td>x</td><td>y</td></tr>", size) + b"</table>")


def html_quotes(size: int) -> bytes:
    return html_mail(_repeat(b'<p>a</p><blockquote type="cite">q</blockquote>', size))


def html_colspan(size: int) -> bytes:
    return html_mail(_repeat(b'<table><tr><td colspan="1000">x</td></tr><tr><td>y</td></tr></table>', size))


def html_mail(html: bytes) -> bytes:
    headers = _HEAD + b"MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n"
    return _mail(headers, html)


def text_mail(body: bytes) -> bytes:
    return _mail(_HEAD + b"Content-Type: text/plain; charset=utf-8\r\n", body)


def quote_dashes(size: int) -> bytes:
    """One line of dashes with no word after it: every dash could start '-----Original Message'."""
    return text_mail(b"Hi\r\n" + _repeat(b"-", size) + b"\r\n")


def quote_dash_words(size: int) -> bytes:
    """Dashes and words on one long line: each is a candidate reply marker."""
    return text_mail(b"Hi\r\n" + _repeat(b"--a ", size) + b"\r\n")


def quote_colon_lines(size: int) -> bytes:
    """Lines ending in ':' that almost make "On ... wrote:" headers, over long lines."""
    return text_mail(_repeat(b"On " + b"x" * 250 + b" wrote wrote\r\n:\r\n", size))


def quote_interleaved(size: int) -> bytes:
    return text_mail(b"On Mon, Ana wrote:\r\n" + _repeat(b"> quoted\r\nanswer\r\n", size))


def quote_field_blocks(size: int) -> bytes:
    return text_mail(_repeat(b"From: a\r\nTo: b\r\n", size))


def signature_lines(size: int) -> bytes:
    return text_mail(_repeat(b"Regards\r\n", size))


def body_address_words(size: int) -> bytes:
    """One long word of address characters in the text (the classifier reads body addresses)."""
    return text_mail(_repeat(b"a.", size) + b"@x\r\n")


def encoded_word_soup(size: int) -> bytes:
    return _mail(_field(b"Subject", _repeat(b"=?=?", size)) + b"From: ana@example.org\r\n")


FAMILIES: dict[str, Family] = {
    "address: '@' in names": address_at_in_names,
    "address: unclosed '<'": address_unclosed_angles,
    "address: unclosed quote": address_unclosed_quote,
    "address: nested comments": address_nested_comments,
    "address: run of blanks": address_spaces,
    "address: folded, blanks first": address_folded_blanks,
    "address: unclosed domain literal": address_domain_literal,
    "address: many quoted names": many_addresses,
    "subject: encoded words": subject_encoded_words,
    "subject: bounce words": subject_bounce_words,
    "subject: '=?' soup": encoded_word_soup,
    "references: many ids": long_references,
    "references: unclosed '<'": unclosed_references,
    "header: blank continuation lines": header_blank_fold,
    "header: huge block": huge_header_block,
    "mime: long Content-Type": huge_content_type,
    "mime: quoted Content-Type": quoted_content_type,
    "mime: deep nesting": deep_nesting,
    "mime: many parts": many_parts,
    "mime: many odd parts": many_odd_parts,
    "mime: tiny parts with control bytes": tiny_control_parts,
    "mime: tiny parts without charset": tiny_undeclared_parts,
    "subject: words in unknown charsets": unknown_charset_words,
    "report: feedback To line": feedback_report_to,
    "bounce: blank lines": bounce_blank_lines,
    "bounce: long address line": bounce_long_address_line,
    "html: unclosed '<'": html_unclosed_tags,
    "html: nested divs": html_nested,
    "html: wide table": html_table,
    "html: long table": html_table_rows,
    "html: many cited quotes": html_quotes,
    "html: colspans": html_colspan,
    "quotes: dashes": quote_dashes,
    "quotes: dash words": quote_dash_words,
    "quotes: near 'wrote:' lines": quote_colon_lines,
    "quotes: interleaved": quote_interleaved,
    "quotes: field blocks": quote_field_blocks,
    "quotes: sign-off lines": signature_lines,
    "body: address word": body_address_words,
}
