"""Bytes and header words to text, whatever charset the sender claimed or forgot.

Order of trust: the declared charset (through the superset real senders mean, e.g. GB2312 ->
GB18030), then UTF-8, then charset-normalizer's guess, then Latin-1, which never fails. Every
fallback is recorded as a short defect ("unknown-charset:x", "bad-charset:x") so the liaison
can see why a mail looks odd. A mail makes at most MAX_GUESSES calls to charset-normalizer
(`Guesses`). Pure functions, no I/O.
"""

from __future__ import annotations

import binascii
import codecs
import re

from charset_normalizer import from_bytes

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_WORD_GAP = re.compile(r"\?=[ \t\r\n]++(?==\?)")
_CHARSET_SUPERSETS = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "shift_jis": "cp932",
    "x-sjis": "cp932",
    "sjis": "cp932",
    "euc-kr": "cp949",
    "ks_c_5601-1987": "cp949",
    "iso-8859-1": "cp1252",
    "iso-8859-8-i": "iso-8859-8",
    "iso-2022-jp": "iso2022_jp_ext",
    "tis-620": "cp874",
}
# The legacy charsets mail is actually written in; guessing among all ~90 codecs is 10x slower
# and on short text picks exotic ones (UTF-16-BE, Johab) that no mailer sends.
_GUESS_CANDIDATES = [
    "cp1252",
    "iso8859_15",
    "cp1250",
    "iso8859_2",
    "cp1251",
    "koi8_r",
    "koi8_u",
    "cp1253",
    "iso8859_7",
    "cp1254",
    "cp1255",
    "cp1256",
    "cp1257",
    "cp1258",
    "cp874",
    "mac_roman",
    "gb18030",
    "big5",
    "cp932",
    "euc_jp",
    "cp949",
]
MAX_GUESSES = 32
"""Calls to charset-normalizer (charset guesses, binary tests) one mail may make. Each costs about
0.2 ms however short its input, so a mail of thousands of small parts or encoded words without a
usable charset took minutes; past the budget the charset guessed last is taken (else Latin-1)."""
_UNSAFE_CODECS = frozenset({"idna", "punycode", "undefined", "unicode_escape", "raw_unicode_escape", "mbcs"})


class Guesses:
    """The charset-normalizer calls one mail has left (MAX_GUESSES), and the charset it guessed last."""

    __slots__ = ("last", "left")

    def __init__(self) -> None:
        self.left = MAX_GUESSES
        self.last: str | None = None

    def take(self) -> bool:
        """Use one call, if one is left."""
        if self.left <= 0:
            return False
        self.left -= 1
        return True


def decode_bytes(
    data: bytes,
    declared: str | None,
    defects: list[str],
    *,
    utf8_first: bool = False,
    guesses: Guesses | None = None,
) -> str:
    """Text from bytes: declared charset, then UTF-8, then a charset-normalizer guess, then Latin-1.

    `utf8_first` is for raw 8-bit header bytes, which RFC 6532 says are UTF-8; there
    `declared` is only the body's charset, the guess that old mailers make right. `guesses`
    is the mail's budget of guesses (a fresh one if not given).
    """
    if utf8_first:
        text = _utf8(data)
        if text is not None:
            return clean_text(text, defects)
    if declared:
        codec = _codec(declared)
        if codec is None:
            defects.append(f"unknown-charset:{declared[:40]}")
        else:
            try:
                return clean_text(data.decode(codec), defects)
            except UnicodeError:
                defects.append(f"bad-charset:{declared[:40]}")
    text = None if utf8_first else _utf8(data)
    if text is not None:
        return clean_text(text, defects)
    guesses = guesses or Guesses()
    encoding = guesses.last
    if guesses.take():
        guess = from_bytes(data[:65536], cp_isolation=_GUESS_CANDIDATES).best()
        encoding = guess.encoding if guess is not None and guess.encoding else None
        guesses.last = encoding or guesses.last
    if encoding:
        return clean_text(data.decode(encoding, "replace"), defects)
    return clean_text(data.decode("latin-1"), defects)


def _utf8(data: bytes) -> str | None:
    """UTF-8 text, also with a few broken sequences (a name cut mid-character); else None.

    Mostly-valid means at least four well-formed non-ASCII characters per broken one, which
    Latin-1 or Cyrillic single-byte text practically never produces by chance.
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("utf-8", "replace")
    broken = text.count("\ufffd")
    wellformed = sum(1 for char in text if char > "\x7f") - broken
    return text if wellformed >= 4 * broken else None


def _codec(charset: str) -> str | None:
    """A Python text codec for a mail charset name, preferring the superset real senders mean."""
    name = charset.strip().strip("\"'").lower()
    name = _CHARSET_SUPERSETS.get(name, name)
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):
        return None
    if info.name in _UNSAFE_CODECS or not getattr(info, "_is_text_encoding", True):
        return None
    return info.name


def clean_text(text: str, defects: list[str]) -> str:
    """Drop what no database or JSON sink accepts: NUL characters and lone surrogates."""
    if "\x00" in text:
        defects.append("nul-in-text")
        text = text.replace("\x00", "")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def decode_words(value: str, defects: list[str], guesses: Guesses | None = None) -> str:
    """RFC 2047 encoded words, also the common broken forms (inside quotes, split multibyte chars)."""
    if "=?" not in value:
        return clean_text(value, defects)
    value = _WORD_GAP.sub("?=", value)
    out: list[str] = []
    pending = bytearray()
    pending_charset: str | None = None
    pos = 0
    for match in _ENCODED_WORD.finditer(value):
        charset = match.group(1).split("*", 1)[0].lower()
        data = _word_bytes(match.group(2).lower(), match.group(3))
        if data is None:
            defects.append("bad-encoded-word")
            continue
        if match.start() > pos or charset != pending_charset:
            if pending_charset is not None:
                out.append(decode_bytes(bytes(pending), pending_charset, defects, guesses=guesses))
            pending, pending_charset = bytearray(), charset
            out.append(value[pos : match.start()])
        pending += data
        pos = match.end()
    if pending_charset is not None:
        out.append(decode_bytes(bytes(pending), pending_charset, defects, guesses=guesses))
    out.append(value[pos:])
    return clean_text("".join(out), defects)


def _word_bytes(encoding: str, text: str) -> bytes | None:
    data = text.encode("ascii", "ignore")
    try:
        if encoding == "q":
            return binascii.a2b_qp(data, header=True)
        data = data.rstrip(b"=")
        if len(data) % 4 == 1:
            data = data[:-1]
        return binascii.a2b_base64(data + b"=" * (-len(data) % 4))
    except (binascii.Error, ValueError):
        return None
