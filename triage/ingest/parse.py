"""Raw bytes to `ParsedMail`: the one pure function between the mail sources and everything else.

The MIME tree is the stdlib `email` package's (compat32, the fastest policy), built once, and
mail-parser's structural recovery re-reads the address headers the stdlib misreads. A full
mail-parser parse is not used: it is about 2.5x slower and raises on some real mail. Bodies of
attached messages (`message/*`) are kept as their original bytes instead of being parsed part
by part: they are attachments here, and not re-parsing them keeps a forwarded 3 MB thread cheap.
Plainly built mail (well-formed header blocks, a single part or one level of multipart) is
read here into the very tree the stdlib's feed parser would build, without its line-by-line
Python loop and its regex compile per boundary; everything else goes to the feed parser.
Charset fallbacks live in `charsets`, kinds in `kinds`, quote splitting in `quotes`.

Damaged mail is parsed as far as it goes and the damage is listed in `defects`; only input
that is not a mail at all raises `NotAMailError`. Hostile mail costs time linear in its size:
header fields are capped as the tree is built (`limits`), multiparts are read MAX_DEPTH deep,
every pattern applied to mail text runs in linear time, and the values handed on (Message-IDs,
addresses, names, the subject) are ones a reply can carry (`boundary`). Nothing here logs or
does I/O.
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import itertools
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone
from email.message import Message
from email.parser import BytesHeaderParser, Parser
from email.policy import compat32
from email.utils import collapse_rfc2231_value, getaddresses, parsedate_to_datetime

from charset_normalizer import is_binary
from mailparser.utils import get_addresses

from triage.ingest import boundary, htmltext, kinds, quotes, signals
from triage.ingest.charsets import Guesses, decode_bytes, decode_words
from triage.ingest.limits import CappedMessage, HeaderCut
from triage.ingest.parsed import NotAMailError, ParsedAttachment, ParsedMail

DEFAULT_MAX_SIZE = 25 * 1024 * 1024
MAX_DEPTH = 16
"""Multipart levels read; a deeper multipart is kept whole as an attachment. Real mail nests
about five; the stdlib's parser tests each line against every open level's boundary."""

_FIELD_LINE = re.compile(rb"^([!-9;-~]{1,100})[ \t]*:")
_KNOWN_FIELDS = frozenset(
    b"from to cc bcc subject date message-id received return-path mime-version content-type sender reply-to"
    b" in-reply-to references delivered-to envelope-to delivery-date user-agent x-mailer list-id precedence"
    b" auto-submitted thread-topic thread-index importance organization dkim-signature authentication-results"
    b" arc-seal content-transfer-encoding x-original-to received-spf".split()
)
_KNOWN_PREFIXES = (b"x-", b"list-", b"content-", b"resent-", b"arc-")
# One header field as the feed parser reads it: a name of printable characters but ':', the
# colon, the rest of the line and its continuation lines (lines end in CRLF, CR or LF).
_FIELD = r"([\041-\071\073-\176]+):([^\r\n]*+(?>\r\n|\r|\n)(?:[\t ][^\r\n]*+(?>\r\n|\r|\n))*+)"
_HEADER_FIELD = re.compile(_FIELD)
_HEADER_BLOCK = re.compile(f"(?:{_FIELD})*+(?>\\r\\n|\\r|\\n)")  # fields, then an empty line
_FIRST_LOOK = 512
_LINE_END = re.compile(r"\r\n?|\n")
# Linear time: a start inside a run of line ends fails at once (the run's first end decides).
_FOLD = re.compile(r"(?<![\r\n])[\r\n]++(?=[ \t])")
_MSG_ID = re.compile(r"<[^<>]+>")
_MONTHS = {"Jan": 1, "Feb": 2, "Mar": 3, "Apr": 4, "May": 5, "Jun": 6}
_MONTHS |= {"Jul": 7, "Aug": 8, "Sep": 9, "Oct": 10, "Nov": 11, "Dec": 12}
_CANONICAL_DATE = re.compile(
    r"(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), )?([0-9]{1,2}) (" + "|".join(_MONTHS) + r") ([1-9][0-9]{3})"
    r" ([0-9]{2}):([0-9]{2}):([0-9]{2}) ([+-])([0-9]{2})([0-9]{2})"
)
# The years (UTC) a mail's date may have: a thousand clear of both ends of `datetime`, so that
# no timezone conversion or date arithmetic downstream can overflow on a date the parser kept.
_EARLIEST_YEAR = 1000
_LATEST_YEAR = 9000
# The name group keeps its trailing blanks (the caller collapses them): a lazy name followed by
# blanks and '<' tried every split of a long run of blanks, quadratic in the item's length.
_SIMPLE_ADDRESS = re.compile(r"\s*+(?:([^<>@]*+)<([^<>\s@]+@[^<>\s@]+)>|([^<>\s@]+@[^<>\s@]+))\s*")
_ATOM = r'[^\s"(),:;<>@\[\]\\]+'  # what getaddresses reads as one word ('.' included)
_ADDR_SPEC = f"{_ATOM}@{_ATOM}"
# The leading blanks are possessive: every alternative starts with a character that is not one,
# and giving them back one by one to the phrase's own blanks was quadratic in a run of them.
_PHRASE_ADDRESS = re.compile(
    rf'[ \t,]*+(?:"(?P<quoted>[^"\\\r\n]*)"[ \t]*<(?P<quoted_addr>{_ADDR_SPEC})?>'
    rf"|(?P<phrase>{_ATOM}(?:[ \t]+{_ATOM})*)?[ \t]*<(?P<phrase_addr>{_ADDR_SPEC})?>"
    rf"|(?P<commented>{_ADDR_SPEC})[ \t]*\((?P<comment>[^()\\\r\n]*)\)"
    rf"|(?P<bare>{_ADDR_SPEC}))[ \t]*(?:,[ \t,]*|\Z)"
)
_NOT_SIMPLE = re.compile(r'["()\\;:=]')
_MAX_PARENS = 16  # comments in an address header beyond which the stdlib's recursive reader is not used
# An '@' before an angle address in the same item. Not '@' itself in the class: from each '@' the
# scan stops at the next one, so the text is read once (it was read to its end from every '@').
_AT_IN_NAME = re.compile(r"@[^,<>\"@]*+<")
_BODY_TYPES = ("text/plain", "text/html")
# type "/" subtype, each an RFC 2045 token of at most 127 characters (RFC 6838 4.2).
_MEDIA_TYPE = re.compile(r"[!#$%&'*+.^_`{|}~0-9a-z-]{1,127}/[!#$%&'*+.^_`{|}~0-9a-z-]{1,127}")
# C0 control characters that no text in an ASCII-based charset uses (NUL, which broken
# mailers pad text with and `clean_text` drops, and TAB, LF, VT, FF, CR and ESC are left out);
# how much of the start of a body is looked at to tell text from binary data.
_CONTROL_BYTE = re.compile(rb"[\x01-\x08\x0e-\x1a\x1c-\x1f]")
_BINARY_SAMPLE = 1024
_READ_HEADERS = (
    frozenset(
        [
            "from",
            "to",
            "cc",
            "reply-to",
            "subject",
            "date",
            "message-id",
            "in-reply-to",
            "references",
            "list-id",
            "return-path",
        ]
    )
    | kinds.HEADERS
)
_NAME_HEADERS = frozenset({"content-type", "content-disposition"})


class _ShallowMessage(CappedMessage):
    """A capped compat32 message whose `message/*` bodies, and multiparts nested deeper than
    MAX_DEPTH, the parser leaves unparsed.

    The feed parser recurses into a part whenever `get_content_type()` says `message/...` or
    `multipart/...`; answering "application/octet-stream" instead keeps the body as raw text.
    The depth cap bounds the feed parser's work: it tests every line against the boundary of
    every open multipart. Once parsing is done `_finish` turns every part back into a plain
    `Message`, with its real content type.
    """

    depth = 0  # multiparts above this part; the feed parser attaches a part before reading it

    def attach(self, payload: Message) -> None:  # type: ignore[override]  # compat32: a Message
        if isinstance(payload, _ShallowMessage):
            payload.depth = self.depth + 1
        super().attach(payload)

    def get_content_type(self) -> str:
        ctype = Message.get_content_type(self)  # the feed parser asks ~5 times a part: no super()
        if ctype.startswith("message/") or (self.depth >= MAX_DEPTH and ctype.startswith("multipart/")):
            return "application/octet-stream"
        return ctype


def parse_mail(raw: bytes, *, max_size: int = DEFAULT_MAX_SIZE) -> ParsedMail:
    """Parse one mail. Raises `NotAMailError` only when `raw` has no RFC 822 header block."""
    raw = bytes(raw)
    start = _check_is_mail(raw)
    defects: list[str] = []
    if start:
        defects.append("leading-blank-lines")  # the stdlib would read them as an empty header block
    oversize = len(raw) > max_size
    msg: Message | None = None
    if oversize:
        defects.append("oversize")
    else:
        try:
            msg = _parse_tree(raw[start:] if start else raw)
            if any(type(d).__name__ == "MissingHeaderBodySeparatorDefect" for d in msg.defects):
                repaired = _repair_header_line(raw[start:])
                if repaired is not None:
                    defects.extend(("MissingHeaderBodySeparatorDefect", "repaired-header-line"))
                    msg = _parse_tree(repaired)
        except RecursionError:
            defects.append("nesting-too-deep")
            msg = None
    if msg is None:
        head = raw[start : start + _header_end(raw[start:])]
        msg = BytesHeaderParser(CappedMessage, policy=compat32).parsebytes(head)
    _finish(msg, defects)
    return _build(raw, msg, defects, oversize)


def _build(raw: bytes, msg: Message, defects: list[str], oversize: bool) -> ParsedMail:
    guesses = Guesses()  # the mail's budget of charset-normalizer calls
    headers = _header_map(msg, defects, guesses)
    senders = _addresses(headers.get("from", []), "from", defects, guesses)
    from_name, from_addr = senders[0] if senders else (None, None)
    if not senders:
        defects.append("missing-from")
    if from_name:
        from_name = boundary.one_line(from_name, "from-name", boundary.MAX_NAME, defects) or None
    decoded_subject = decode_words(_first(headers, "subject") or "", defects, guesses).strip()
    subject = boundary.one_line(decoded_subject, "subject", boundary.MAX_SUBJECT, defects) or None
    root = _Head(msg)
    body = _BodyWalk(msg, defects, guesses)
    if not oversize and "nesting-too-deep" not in defects:
        body.walk(msg, head=root)
    attachments = body.attachments
    body_html = "\n".join(body.html) if body.html else None
    body_text = "\n".join(body.plain).replace("\r\n", "\n").replace("\r", "\n")
    if not body_text.strip() and body_html:
        if len(body_html) > htmltext.MAX_HTML:
            defects.append("html-text-truncated")
        body_text = htmltext.html_to_text(body_html)
    reply = quotes.split_reply(body_text)
    content_type = root.ctype
    verdict = kinds.detect_kind(
        headers,
        content_type=content_type,
        report_type=_report_type(root) if content_type == "multipart/report" else None,
        subject=subject or "",
        from_addr=from_addr,
        body_text=body_text,
        attachments=attachments,
    )
    in_reply_to = _MSG_ID.findall(_first(headers, "in-reply-to") or "")
    references = _MSG_ID.findall(" ".join(headers.get("references", [])))
    recipients = [(None, r) for r in verdict.recipients]
    bounced = [a for _, a in _valid_addresses(recipients, "bounced-recipient", defects, guesses)]
    return ParsedMail(
        message_id=_message_id(_first(headers, "message-id"), defects),
        from_addr=from_addr,
        from_name=from_name,
        to=[a for _, a in _addresses(headers.get("to", []), "to", defects, guesses)],
        cc=[a for _, a in _addresses(headers.get("cc", []), "cc", defects, guesses)],
        reply_to=[a for _, a in _addresses(headers.get("reply-to", []), "reply-to", defects, guesses)],
        subject=subject,
        date=_date(_first(headers, "date"), defects),
        in_reply_to=_first_valid_id(in_reply_to, "in-reply-to", defects),
        references=boundary.trim_references(_valid_ids(references, "references", defects), defects),
        body_text=body_text,
        new_text=reply.new,
        quoted_text=reply.quoted,
        signature=reply.signature,
        body_html=body_html,
        attachments=attachments,
        kind=verdict.kind,
        kind_reason=verdict.reason,
        list_id=_list_id(_first(headers, "list-id"), defects),
        defects=list(dict.fromkeys(defects)),
        size=len(raw),
        oversize=oversize,
        auto_submitted=verdict.auto_submitted,
        bounce_original_message_id=_first_valid_id(
            [verdict.original_message_id] if verdict.original_message_id else [], "bounce", defects
        ),
        bounced_recipients=bounced,
        header_signals=signals.header_signals(msg.raw_items()),
    )


def _check_is_mail(raw: bytes) -> int:
    """Offset of the header block; refuses empty, binary, or prose input without `Name: value` lines.

    The answer almost always comes from the first line or two, so the first 512 bytes are read
    first; only when the lines in them do not settle it are the first 16 kB split into lines.
    """
    if len(raw) > _FIRST_LOOK:
        found = _header_start(raw[:_FIRST_LOOK].splitlines(keepends=True), complete=False)
        if found is not None:
            return found
    found = _header_start(raw[:16384].splitlines(keepends=True), complete=True)
    assert found is not None  # a complete look always decides
    return found


def _header_start(lines: list[bytes], *, complete: bool) -> int | None:
    """`_check_is_mail` over `lines`; None when that needs the last line of an incomplete look.

    The last line of a cut-off look may itself be cut off, so it is never read.
    """
    usable = len(lines) if complete else len(lines) - 1
    start = offset = 0
    while start < usable and not lines[start].strip():
        offset += len(lines[start])
        start += 1
    if start == usable:
        if not complete:
            return None
        raise NotAMailError("empty input: a mail starts with header lines such as 'From: ...'")
    if lines[start].startswith((b"From ", b">From ")):
        start += 1
    for number, line in enumerate(lines[start : min(start + 400, usable)]):
        if not line.strip():
            break
        if b"\x00" in line:
            raise NotAMailError("binary data (NUL bytes) in the header block: not a mail")
        if line[:1] in (b" ", b"\t"):
            continue
        match = _FIELD_LINE.match(line)
        if match is None:
            if number == 0:
                raise NotAMailError("no header block: the first line is not a 'Name: value' header field")
            break
        name = match.group(1).lower()
        if name in _KNOWN_FIELDS or name.startswith(_KNOWN_PREFIXES):
            return offset
    else:
        if start + 400 > usable and not complete:
            return None  # ran out of lines before the 400-line limit: look further
    raise NotAMailError("no known mail header (From, To, Subject, Date, Received, ...) in the header block")


def _parse_tree(raw: bytes) -> Message:
    text = raw.decode("ascii", "surrogateescape")  # what BytesParser does before parsing
    return _parse_clean(text) or Parser(_ShallowMessage, policy=compat32).parsestr(text)


def _parse_clean(text: str, *, top: bool = True) -> Message | None:
    """The feed parser's result for a plainly built mail; None for anything else.

    The feed parser reads a mail line by line in Python, body lines too, and compiles a
    regex for each multipart boundary: most of its time on short mail. When the header
    block is only well-formed fields (a printable name, a colon, continuation lines)
    closed by an empty line, its result is known: these fields as compat32's
    `header_source_parse` splits them, no defect, and the rest of the text as the
    payload; or, for a top-level multipart, the parts between its boundary lines, each
    such a plain part. Anything else (an mbox 'From ' line, a stray line, a nested or
    digest multipart, a missing boundary, any defect the feed parser would note) is left
    to the feed parser, which also defines every rule followed here.
    """
    fields = _read_fields(text)
    if fields is None:
        return None
    msg, body_start, multipart = fields
    if not multipart:
        msg.set_payload(text[body_start:])
        return msg
    return msg if top and _split_multipart(msg, text, body_start) else None


def _read_fields(text: str) -> tuple[Message, int, bool] | None:
    """A message with the header fields of `text`, where its body starts, and whether a field
    mentions multipart; None unless the header block is well-formed fields and an empty line."""
    block = _HEADER_BLOCK.match(text)
    if block is None:
        return None
    msg = CappedMessage()
    for field in _HEADER_FIELD.finditer(text, 0, block.end()):
        msg.set_raw(field.group(1), field.group(2).lstrip(" \t").rstrip("\r\n"))
    return msg, block.end(), "multipart" in block.group().lower()


def _split_multipart(msg: Message, text: str, start: int) -> bool:
    """Attach the parts of `text[start:]` to `msg` as the feed parser would; False to leave it."""
    ctype = msg.get_content_type()
    if not ctype.startswith("multipart/") or ctype == "multipart/digest":
        return False  # a digest's parts default to message/rfc822
    boundary = msg.get_boundary()
    if not boundary or "\r" in boundary or "\n" in boundary:
        return False
    if str(msg.get("content-transfer-encoding", "8bit")).lower() not in ("7bit", "8bit", "binary"):
        return False
    lines = _boundary_lines(text, start, "--" + boundary)
    if not lines or lines[0][2]:
        return False  # no start boundary
    first = lines[0][0]
    if first > start:
        msg.preamble = _without_line_end(text[start:first])  # RFC 2046: the last line end is the boundary's
    parts: list[Message] = []
    for (_, end, _), (next_start, next_end, close) in itertools.pairwise(lines):
        segment = text[end:next_start]
        fields = _read_fields(segment) if segment else None
        if fields is None or fields[2]:
            return False  # a part the feed parser must read, or boundary lines in a row
        part, body_start, _ = fields
        part.set_payload(_without_line_end(segment[body_start:]))
        parts.append(part)
        if close:
            for each in parts:
                msg.attach(each)
            msg.epilogue = text[next_end:]
            return True
    return False  # no close boundary


def _boundary_lines(text: str, start: int, separator: str) -> list[tuple[int, int, bool]]:
    """(start, end past the line end, is the close boundary) of each line the feed parser's
    boundary regex `(--sep)(--)?[ \t]*(line end)?$` matches, from `start` on."""
    found: list[tuple[int, int, bool]] = []
    pos = start
    while (at := text.find(separator, pos)) >= 0:
        if at > start and text[at - 1] not in "\r\n":
            pos = at + 1  # not at a line start
            continue
        line_end = _line_end(text, at)
        rest = text[at + len(separator) : line_end].rstrip("\r\n")
        if not rest.strip(" \t"):
            found.append((at, line_end, False))
        elif rest.startswith("--") and not rest[2:].strip(" \t"):
            found.append((at, line_end, True))
        pos = line_end
    return found


def _line_end(text: str, pos: int) -> int:
    """The index past the line end (CRLF, CR or LF) of the line holding `pos`, or the text's end.

    One search for either character: finding each alone read a text without CRs to its end,
    at every boundary line (quadratic in the number of parts)."""
    found = _LINE_END.search(text, pos)
    return found.end() if found else len(text)


def _without_line_end(text: str) -> str:
    """`text` less one final CRLF, CR or LF (the feed parser's NLCRE_eol)."""
    if text.endswith("\r\n"):
        return text[:-2]
    return text[:-1] if text.endswith(("\r", "\n")) else text


def _repair_header_line(raw: bytes) -> bytes | None:
    """Make one stray line inside the header block a continuation line, if fields follow it.

    The stdlib ends the headers at the first line that is not a field, so a single garbled
    line above From/Subject would hide them all. The bytes stay; only a space is added.
    """
    offset = 0
    lines = raw[:16384].splitlines(keepends=True)
    for number, line in enumerate(lines):
        if not line.strip():
            return None
        if not (
            line[:1] in (b" ", b"\t")
            or _FIELD_LINE.match(line)
            or (number == 0 and line.startswith(b"From "))
        ):
            following = lines[number + 1] if number + 1 < len(lines) else b""
            return raw[:offset] + b" " + raw[offset:] if _FIELD_LINE.match(following) else None
        offset += len(line)
    return None


def _header_end(raw: bytes) -> int:
    """Offset just past the header block, for headers-only parsing of huge or broken mail."""
    ends = [pos for pos in (raw.find(b"\n\n"), raw.find(b"\r\n\r\n"), raw.find(b"\r\r")) if pos >= 0]
    return min(ends) + 1 if ends else min(len(raw), 1 << 20)


def _finish(msg: Message, defects: list[str]) -> None:
    """Restore real content types and gather the parsers' defects, without recursion."""
    stack = [msg]
    while stack:
        part = stack.pop()
        if isinstance(part, CappedMessage):
            part.__class__ = Message  # type: ignore[assignment]  # same layout, real types back
        if part.defects:
            defects.extend(str(d) if isinstance(d, HeaderCut) else type(d).__name__ for d in part.defects)
        if part.is_multipart():
            stack.extend(p for p in part.get_payload() if isinstance(p, Message))


def _header_map(msg: Message, defects: list[str], guesses: Guesses) -> dict[str, list[str]]:
    """Lower-case name -> unfolded values of the headers triage reads, raw 8-bit bytes decoded.

    RFC 6532 says raw header bytes are UTF-8; older mailers used the body's charset, so that
    is the next guess before charset-normalizer, which is unreliable on a few words. Trace and
    signature headers (Received, DKIM-Signature, ...) are skipped: nothing here reads them.
    """
    out: dict[str, list[str]] = {}
    for raw_name, raw_value in msg.raw_items():
        name = raw_name.strip().lower()
        if name not in _READ_HEADERS:
            continue
        value = raw_value if isinstance(raw_value, str) else str(raw_value)
        if "\n" in value or "\r" in value:
            value = _FOLD.sub("", value).replace("\r", "").replace("\n", "")
        if not value.isascii():
            data = value.encode("utf-8", "surrogateescape")
            value = decode_bytes(data, _charset_hint(msg), defects, utf8_first=True, guesses=guesses)
        out.setdefault(name, []).append(value)
    return out


def _charset_hint(msg: Message) -> str | None:
    """The charset of the mail's first text part, the best guess for its raw 8-bit headers."""
    part: object = msg
    for _ in range(MAX_DEPTH):
        if not isinstance(part, Message):
            return None
        if not part.is_multipart():
            return part.get_content_charset()
        payload = part.get_payload()
        part = payload[0] if isinstance(payload, list) and payload else None
    return None


def _first(headers: dict[str, list[str]], name: str) -> str | None:
    values = headers.get(name)
    return values[0] if values else None


def _addresses(
    values: list[str], field: str, defects: list[str], guesses: Guesses
) -> list[tuple[str | None, str]]:
    """(display name, lower-case address) pairs; mail-parser recovers what the stdlib misreads."""
    if not values:
        return []
    text = ", ".join(values)
    pairs = _simple_addresses(text) or _phrase_addresses(text) or []
    checked = bool(pairs)  # the fast paths read one '@' into each address (or no address)
    # The stdlib's reader recurses into every group (':') and comment ('('), a RecursionError
    # after a few hundred, and copies a group's list once per member, quadratic in its length;
    # mail-parser's scanner reads groups and comments in one pass and hands it single items.
    stdlib = not pairs and ":" not in text and text.count("(") <= _MAX_PARENS
    if stdlib:
        pairs = getaddresses([text])
    # The stdlib silently misreads an unquoted '@' in a display name ("a@b <c@d>") as an
    # address of its own; mail-parser's structural recovery reads such headers right.
    if (
        (not checked and not stdlib)
        or _AT_IN_NAME.search(text)
        or (stdlib and any(addr and addr.count("@") != 1 for _, addr in pairs))
    ):
        diagnostics: list[object] = []
        pairs = get_addresses(text, defects=diagnostics)
        if diagnostics:
            defects.append(f"bad-address:{field}")
    return _valid_addresses(pairs, field, defects, guesses)


def _valid_addresses(
    pairs: Iterable[tuple[str | None, str]], field: str, defects: list[str], guesses: Guesses
) -> list[tuple[str | None, str]]:
    """The pairs whose address `boundary.address` keeps, names decoded; `bad-address:<field>`
    when one is dropped. An item without '@' (an empty one, a group's name) is no address."""
    out: list[tuple[str | None, str]] = []
    for name, candidate in pairs:
        if "@" not in candidate:
            continue
        addr = boundary.address(candidate)
        if addr is None:
            defects.append(f"bad-address:{field}")
            continue
        decoded = decode_words(name, defects, guesses).strip().strip('"').strip() if name else ""
        out.append((decoded or None, addr))
    return out


def _simple_addresses(text: str) -> list[tuple[str, str]] | None:
    """Fast path for the plain 'Name <a@b>, c@d' lists most mail has; None sends it to the full parser.

    Quotes, comments, groups, escapes and encoded words all go to `getaddresses`, which is
    exact but pure Python and the costliest step of parsing an ordinary mail.
    """
    if _NOT_SIMPLE.search(text):
        return None
    pairs: list[tuple[str, str]] = []
    for item in text.split(","):
        if not item.strip():
            continue
        match = _SIMPLE_ADDRESS.fullmatch(item)
        if match is None:
            return None
        pairs.append(
            (" ".join(match.group(1).split()) if match.group(1) else "", match.group(2) or match.group(3))
        )
    return pairs


def _phrase_addresses(text: str) -> list[tuple[str, str]] | None:
    """The next fast path: quoted names, encoded words, comments and '<>'; else None.

    It reads what `getaddresses` reads the same way (checked on generated lists against it):
    items of `"Any, text" <a@b>`, `Name =?utf-8?q?...?= <a@b>`, `a@b (Comment)` (the
    comment is the name), `Name <>` (no address), `<a@b>` or `a@b`, with only spaces and
    tabs between words, no backslash, nested comment, group or domain literal. Empty items,
    which `getaddresses` returns as ('', ''), are left out: no address is read from them.
    """
    if not text.strip(" \t,"):
        return None
    pairs: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        match = _PHRASE_ADDRESS.match(text, pos)
        if match is None:
            return None
        item = match.groupdict()
        if item["quoted"] is not None:
            pairs.append((item["quoted"], item["quoted_addr"] or ""))
        elif item["commented"] is not None:
            pairs.append((item["comment"], item["commented"]))
        elif item["bare"] is not None:
            pairs.append(("", item["bare"]))
        else:
            phrase = item["phrase"]
            pairs.append((" ".join(phrase.split()) if phrase else "", item["phrase_addr"] or ""))
        pos = match.end()
    return pairs


def _message_id(value: str | None, defects: list[str]) -> str | None:
    """The mail's own id: the first valid '<...>' in the field, or a bare token put in brackets."""
    candidates = _MSG_ID.findall(value or "")
    if not candidates:
        token = (value or "").strip()
        if not token or " " in token:
            defects.append("missing-message-id")
            return None
        defects.append("message-id-without-brackets")
        candidates = [f"<{token}>"]
    return _first_valid_id(candidates, "message-id", defects)


def _first_valid_id(candidates: list[str], field: str, defects: list[str]) -> str | None:
    """The first of the '<...>' candidates that `boundary.message_id` keeps (see `_valid_ids`)."""
    for candidate in candidates:
        found = _valid_ids([candidate], field, defects)
        if found:
            return found[0]
    return None


def _valid_ids(candidates: list[str], field: str, defects: list[str]) -> list[str]:
    """The '<...>' candidates `boundary.message_id` keeps, blanks removed, in order; a defect
    (`bad-message-id:<field>`) when one had to be changed or dropped."""
    ids: list[str] = []
    for candidate in candidates:
        ident = boundary.message_id(candidate)
        if ident != candidate:
            defects.append(f"bad-message-id:{field}")
        if ident is not None:
            ids.append(ident)
    return ids


def _date(value: str | None, defects: list[str]) -> datetime | None:
    """Timezone-aware date in UTC; a missing zone or -0000 means UTC (RFC 5322 4.3).

    Every later stage stores, compares and converts this date (the database keeps UTC, the
    loop guard subtracts it from `now`), so only an instant well inside what `datetime` can
    hold is kept: 31 Dec 9999 at -1200 is past the last representable UTC instant, and a
    date near either end would overflow at the first conversion or timedelta added to it.
    Anything else is damage (`bad-date`), like an unreadable date; the mail is still read.
    """
    if not value or not value.strip():
        defects.append("missing-date")
        return None
    try:
        parsed = _rfc5322_date(value.strip()) or parsedate_to_datetime(value.strip())
        if 100 <= parsed.year < 1000 and str(parsed.year) in value.split():
            parsed = parsed.replace(year=parsed.year + 1900)  # obs-year: "101" is 2001 (RFC 5322 4.3)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        parsed = parsed.astimezone(UTC)
    except (TypeError, ValueError, IndexError, OverflowError):
        defects.append("bad-date")
        return None
    if not _EARLIEST_YEAR <= parsed.year < _LATEST_YEAR:
        defects.append("bad-date")
        return None
    return parsed


def _rfc5322_date(value: str) -> datetime | None:
    """`parsedate_to_datetime` for the canonical 'Mon, 2 Sep 2024 10:00:00 +0200'; None for other forms.

    Nearly every mailer writes this form; the stdlib's pure-Python parser, which also reads
    the obsolete ones, takes about a quarter longer on it.
    """
    match = _CANONICAL_DATE.fullmatch(value)
    if match is None:
        return None
    day, month, year, hour, minute, second, sign, zone_hours, zone_minutes = match.groups()
    offset = int(zone_hours) * 3600 + int(zone_minutes) * 60
    moment = (int(year), _MONTHS[month], int(day), int(hour), int(minute), int(second))
    if offset == 0 and sign == "-":
        return datetime(*moment)  # -0000: the zone is unknown
    return datetime(*moment, tzinfo=timezone(timedelta(seconds=-offset if sign == "-" else offset)))


def _list_id(value: str | None, defects: list[str]) -> str | None:
    if not value:
        return None
    match = _MSG_ID.search(value)
    ident = match.group(0)[1:-1] if match else value
    return boundary.one_line(ident.strip(), "list-id", boundary.MAX_LIST_ID, defects) or None


def _report_type(head: _Head) -> str | None:
    value = head.param("report-type")
    return value if isinstance(value, str) else None


@functools.lru_cache(maxsize=512)
def _ascii_params(value: str) -> tuple[tuple[str, object], ...]:
    """`get_params()` of an ASCII header value: a pure function of it, and most parts share a few."""
    probe = Message()
    probe["Content-Type"] = value
    return tuple(probe.get_params([]))


def _decoded(part: Message, defects: list[str]) -> object:
    """`part.get_payload(decode=True)`, with a clean base64 body decoded in one strict step.

    Line breaks and blanks between base64 characters are not data (RFC 2045 6.8), so a body
    clean but for them is decoded here at once. For anything else (missing padding, characters
    outside the alphabet, a cut-off last group, raw 8-bit bytes) the stdlib's lenient fallback
    repairs what it can without a word: its bytes are kept, and `bad-base64` tells the liaison
    that the part may be damaged.
    """
    # The raw body: get_payload() would first decode an 8-bit one with the declared charset.
    payload = part._payload  # type: ignore[attr-defined]
    # The stdlib's own test, unstripped: with any other value it does not decode base64 either.
    if not isinstance(payload, str) or str(part.get("content-transfer-encoding", "")).lower() != "base64":
        return part.get_payload(decode=True)
    if payload.isascii():
        try:
            return binascii.a2b_base64(payload.encode("ascii").translate(None, b" \t\r\n"), strict_mode=True)
        except binascii.Error:
            pass
    defects.append("bad-base64")
    return part.get_payload(decode=True)


def _is_binary(data: bytes, guesses: Guesses) -> bool:
    """Is this body binary data (an image, an archive) rather than text in some charset?

    Text in a mail charset has no C0 control characters but NUL (UTF-16, or padding), TAB,
    LF, VT, FF, CR and ESC (ISO-2022), so a body without the others is text and costs one
    scan of its start; only one with them is given to charset-normalizer to decide, while the
    mail's budget of calls lasts. Past it, a tenth of control bytes makes the part binary:
    random bytes have about that many, text next to none.
    """
    sample = data[:_BINARY_SAMPLE]
    if _CONTROL_BYTE.search(sample) is None:
        return False
    if guesses.take():
        return bool(is_binary(sample))
    return len(_CONTROL_BYTE.findall(sample)) * 10 >= len(sample)


class _Head:
    """A part's Content-Type and Content-Disposition, each header found and parsed once.

    Every stdlib getter scans all of a part's headers again (a top-level part has dozens),
    and `get_param` parses the parameters again on each call; the walk asks up to six such
    questions per part. ASCII values, which all but broken mail has, are read here the way
    compat32 reads them; anything else is left to the stdlib getters.
    """

    __slots__ = ("_disposition_value", "_type_value", "ascii", "ctype", "disposition", "part")

    def __init__(self, part: Message) -> None:
        self.part = part
        type_value: object = None
        disposition_value: object = None
        self.ascii = True  # are all Content-Type and Content-Disposition values ASCII text?
        for name, value in part.raw_items():
            lower = name.lower()
            if lower == "content-type":
                if type_value is None:
                    type_value = value
            elif lower == "content-disposition":
                if disposition_value is None:
                    disposition_value = value
            else:
                continue
            if not isinstance(value, str) or not value.isascii():
                self.ascii = False
        self._type_value = type_value
        self._disposition_value = disposition_value
        if type_value is None:
            self.ctype = part.get_default_type()
        else:
            if isinstance(type_value, str) and type_value.isascii():
                ctype = type_value.partition(";")[0].strip().lower()
            else:
                ctype = part.get_content_type()
            # RFC 2045 5.2: an invalid type is text/plain; a longer one than RFC 6838 allows is
            # invalid too (and no database column could hold the attachment's type).
            self.ctype = ctype if _MEDIA_TYPE.fullmatch(ctype) else "text/plain"
        if disposition_value is None:
            self.disposition: str | None = None
        elif isinstance(disposition_value, str) and disposition_value.isascii():
            self.disposition = disposition_value.partition(";")[0].strip().lower()
        else:
            self.disposition = part.get_content_disposition()

    def param(self, name: str, *, disposition: bool = False) -> object:
        """`get_param(name)` of Content-Type, or of Content-Disposition; None when absent."""
        value = self._disposition_value if disposition else self._type_value
        if value is None:
            return None
        params: Iterable[tuple[str, object]]
        if isinstance(value, str) and value.isascii():
            if name not in value.lower():  # every parameter name is a piece of the value
                return None
            params = _ascii_params(value)
        else:
            header = "content-disposition" if disposition else "content-type"
            params = self.part.get_params((), header=header)
        for key, found in params:
            if key.lower() == name:
                return found
        return None

    def filename(self) -> str | None:
        """`get_filename()`: the filename parameter of Content-Disposition, else Content-Type's name."""
        value = self.param("filename", disposition=True)
        if value is None:
            value = self.param("name")
        if value is None:
            return None
        return collapse_rfc2231_value(value).strip()  # type: ignore[arg-type]  # str or RFC 2231 tuple

    def named(self) -> bool:
        return bool(self.param("filename", disposition=True) or self.param("name"))

    def charset(self) -> str | None:
        """`get_content_charset()`."""
        value = self.param("charset")
        if value is None:
            return None
        if isinstance(value, str):
            return value.lower() if value.isascii() else None
        return self.part.get_content_charset()  # RFC 2231 (charset*=): the stdlib decodes it


class _BodyWalk:
    """Sorts the MIME tree into body text, body HTML and attachments (RFC 2046, RFC 2183)."""

    def __init__(self, root: Message, defects: list[str], guesses: Guesses) -> None:
        self.root = root
        self.defects = defects
        self.guesses = guesses
        self.plain: list[str] = []
        self.html: list[str] = []
        self.attachments: list[ParsedAttachment] = []

    def walk(
        self,
        part: Message,
        *,
        head: _Head | None = None,
        attached: bool = False,
        alternative: bool = False,
        depth: int = 0,
    ) -> None:
        head = head or _Head(part)
        # Not `get_payload()` to test for a list: on a leaf with 8-bit bytes it decodes the whole
        # body with the declared charset, and raises TypeError when that is RFC 2231 encoded.
        if part.is_multipart():
            attached = attached or head.disposition == "attachment"
            inner_alternative = head.ctype.split("/")[1] == "alternative"
            for child in part.get_payload():
                if isinstance(child, Message):
                    self.walk(child, attached=attached, alternative=inner_alternative, depth=depth + 1)
            return
        ctype = head.ctype
        disposition = head.disposition
        if ctype.startswith("multipart/"):
            if depth >= MAX_DEPTH:  # left unparsed (`_ShallowMessage`): kept whole, as an attachment
                self.defects.append("nesting-too-deep")
                self.attachments.append(self._attachment(head, ctype, disposition))
                return
            ctype = "text/plain"  # a multipart without usable boundaries: its raw text is all we have
        # Explicitly inline text is body even with a file name (RFC 2183: shown in place).
        if (
            ctype in _BODY_TYPES
            and not attached
            and (disposition == "inline" or (disposition is None and not head.named()))
        ):
            data = _decoded(part, self.defects)
            if not isinstance(data, bytes):
                data = b""
            if _is_binary(data, self.guesses):
                # Declared (or defaulted to) text, but binary: as text it would be garbage in
                # the ticket, so it is kept as what it is, an attachment of unknown type.
                self.defects.append(f"binary-in-text-part:{ctype}")
                self.attachments.append(self._attachment(head, "application/octet-stream", disposition, data))
                return
            text = decode_bytes(data, head.charset(), self.defects, guesses=self.guesses)
            (self.plain if ctype == "text/plain" else self.html).append(text)
        elif alternative and ctype.startswith("text/") and ctype != "text/calendar" and not head.named():
            return  # another rendition of the same body (text/enriched and the like)
        else:
            self.attachments.append(self._attachment(head, ctype, disposition))

    def _attachment(
        self, head: _Head, ctype: str, disposition: str | None, content: object = None
    ) -> ParsedAttachment:
        part = head.part
        if content is None:
            content = _decoded(part, self.defects)
        if not isinstance(content, bytes):
            content = b""
        cid = part.get("content-id")
        content_id = (
            boundary.one_line(self._text(str(cid)).strip().strip("<>").strip(), "content-id",
                              boundary.MAX_MESSAGE_ID, self.defects) or None
            if cid is not None else None
        )
        return ParsedAttachment(
            filename=self._filename(head),
            content_type=ctype,
            size=len(content),
            sha256=hashlib.sha256(content).hexdigest(),
            content=content,
            inline=disposition == "inline" or (disposition is None and content_id is not None),
            content_id=content_id,
        )

    def _filename(self, head: _Head) -> str | None:
        """The sender's file name: RFC 2231 (stdlib), RFC 2047 words (common, not allowed), raw 8-bit."""
        if head.ascii:
            name = head.filename()
        else:
            # The stdlib turns raw 8-bit parameter bytes into U+FFFD; decode them first.
            source = Message()
            for key, value in head.part.raw_items():
                if key.lower() in _NAME_HEADERS:
                    source[key] = self._text(str(value))
            name = source.get_filename()
        if not isinstance(name, str):
            return None
        name = decode_words(self._text(name), self.defects, self.guesses).strip()
        return boundary.one_line(name, "filename", boundary.MAX_FILENAME, self.defects) or None

    def _text(self, value: str) -> str:
        """Header text that may carry raw 8-bit bytes (as surrogates): UTF-8, else the mail's charset."""
        if value.isascii():
            return value
        data = value.encode("utf-8", "surrogateescape")
        hint = _charset_hint(self.root)
        return decode_bytes(data, hint, self.defects, utf8_first=True, guesses=self.guesses)
