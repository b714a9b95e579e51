"""Header values as the parser hands them on: only values that the rest of the desk can use.

A Message-ID, an address, a display name or a subject from a stranger's mail ends up in the
headers of a reply composed with `email.policy.SMTP`, in database columns of fixed width and
on the liaison's terminal. The stdlib reads some values without complaint and then raises
while composing (a line breaker that `str.splitlines` knows and mail does not, an unclosed
domain literal, a Message-ID that starts with a special character), so the parser normalises
here what it can and drops the rest, each time with a defect. What is kept follows the
grammars below: RFC 5322's msg-id and addr-spec without their obsolete and quoted forms
(RFC 6532's UTF-8 allowed in addresses), which `tests/test_parse_boundary.py` checks
`EmailMessage(policy=email.policy.SMTP)` and `triage.outbox.compose` accept. Pure, no I/O.
"""

from __future__ import annotations

import re

MAX_SUBJECT = 998
"""Characters of a subject kept: RFC 5322's line limit (2.1.1); our replies echo the subject."""
MAX_NAME = 256
"""Characters of a display name kept; longer is no one's name."""
MAX_MESSAGE_ID = 998
"""Characters of a Message-ID kept (angle brackets included): RFC 5322's line limit, and the
width of the `messages.message_id` column."""
MAX_ADDRESS = 254
"""Characters of an address kept: RFC 5321 (4.5.3.1.3) allows a path of 256 with its brackets."""
MAX_FILENAME = 255
"""Characters of an attachment's file name kept (what file systems allow; it is shown, never a path)."""
MAX_LIST_ID = 255
"""Characters of a List-Id kept (RFC 2919 2: at most 255 octets)."""
MAX_REFERENCES = 100
"""Message-IDs kept from References: the first (the thread's root) and the newest."""

_ATEXT = "A-Za-z0-9!#$%&'*+/=?^_`{|}~-"
# RFC 6532's UTF8-non-ascii, less what is no visible character: C1 controls, surrogates and
# white space (U+2028 and U+2029, which `str.splitlines` breaks on, among it).
_UTF8 = r"^\x00-\x9f\s\ud800-\udfff"
# msg-id = "<" id-left "@" id-right ">" (RFC 5322 3.6.4), dots anywhere; id-left may be a quoted
# string without blanks, id-right may hold more '@' (both are in real mail and the stdlib takes
# them). No '<' or '>' inside: `compose` refuses them.
_MESSAGE_ID = re.compile(
    rf'<(?:[.{_ATEXT}]++|"[\x21\x23-\x3b\x3d\x3f-\x5b\x5d-\x7e]*+")'
    rf"@(?:[.@{_ATEXT}]++|\[[\x21-\x3b\x3d\x3f-\x5a\x5e-\x7e]*+\])>"
)
# addr-spec = local-part "@" domain: dot-atoms (dots anywhere) or an address literal such as
# [192.0.2.7] or [IPv6:2001:db8::1]; no quoted local part (`compose` refuses quotes and blanks).
_ADDRESS = re.compile(rf"(?:[.{_ATEXT}]|[{_UTF8}])++@(?:(?:[.{_ATEXT}]|[{_UTF8}])++|\[[A-Za-z0-9.:-]++\])")
# What a subject or a name may not hold: C0 and C1 controls but the tab, DEL, and the line and
# paragraph separators; all of them end a line for `str.splitlines` or move a terminal's cursor.
_CONTROLS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]+")


def message_id(candidate: str) -> str | None:
    """`candidate` ('<...>') without the blanks a folded header left in it, if it then is a
    msg-id we keep; None if it is not."""
    ident = "".join(candidate.split()) if not candidate.isprintable() or " " in candidate else candidate
    if len(ident) > MAX_MESSAGE_ID or _MESSAGE_ID.fullmatch(ident) is None:
        return None
    return ident


def address(candidate: str) -> str | None:
    """`candidate` ('local@domain'), lower-cased, if it is an address we keep; None if not."""
    addr = candidate.strip().lower()
    if len(addr) > MAX_ADDRESS or _ADDRESS.fullmatch(addr) is None:
        return None
    return addr


def one_line(text: str, what: str, limit: int, defects: list[str]) -> str:
    """`text` with each run of control characters made one space and cut to `limit` characters;
    a defect names what was changed (`control-characters:subject`, `truncated:from-name`)."""
    if not text.isprintable():  # cheap test first: every control character is unprintable
        cleaned = _CONTROLS.sub(" ", text)
        if cleaned != text:
            defects.append(f"control-characters:{what}")
            text = cleaned.strip()
    if len(text) > limit:
        defects.append(f"truncated:{what}")
        text = text[:limit].rstrip()
    return text


def trim_references(ids: list[str], defects: list[str]) -> list[str]:
    """At most MAX_REFERENCES ids: the first and the newest, as RFC 5322 (3.6.4) allows trimming."""
    if len(ids) <= MAX_REFERENCES:
        return ids
    defects.append("trimmed:references")
    return [ids[0], *ids[-(MAX_REFERENCES - 1) :]]
