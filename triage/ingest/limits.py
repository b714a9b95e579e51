"""How much header the parser keeps: the caps that bound its work on hostile mail.

Everything triage does with a header field takes time linear in its length, but some stdlib
steps do not: `email.message._parseparam`, behind `get_param`, `get_boundary` and
`get_filename`, copies the rest of a value once per ';' and counts quotes from its start again
at each ';' inside a quoted string, so a Content-Type of 100,000 semicolons costs seconds. And
no mail needs megabytes of header. So the tree keeps at most MAX_HEADER characters of fields
per message or part, each field cut to MAX_FIELD, and the two fields with MIME parameters cut
further. Each cut is a defect (`oversize-header:<field>`, `oversize-header-block`), never an
error. Pure, no I/O.
"""

from __future__ import annotations

from email.errors import MessageDefect
from email.message import Message

MAX_FIELD = 100 * 1024
"""Characters kept of one header field: Postfix's default `header_size_limit`, so no more than
a default Postfix passes on."""
MAX_HEADER = 1024 * 1024
"""Characters kept of all the header fields of one message or part; later fields are dropped."""
MAX_PARAM_FIELD = 8 * 1024
"""Characters kept of Content-Type and Content-Disposition. An RFC 2231 file name of 255 UTF-8
bytes, percent-encoded, takes under 1,000."""
MAX_PARAMS = 64
"""Parameters kept in Content-Type and Content-Disposition (RFC 2231 splits a long name into a
few dozen at most); with this the stdlib's parameter parsing stays linear."""
_PARAM_FIELDS = frozenset({"content-type", "content-disposition"})


class HeaderCut(MessageDefect):
    """A field or a header block cut by a cap; `str()` is the defect as `ParsedMail` lists it."""


class CappedMessage(Message):
    """A compat32 message whose `set_raw` (how every parser adds a field) applies the caps."""

    _header_chars = 0

    def set_raw(self, name: str, value: str) -> None:
        if self._header_chars > MAX_HEADER:
            return  # the block ran over: recorded once, later fields are dropped
        if isinstance(value, str) and len(value) > MAX_PARAMS:  # a shorter value passes every cap
            lower = name.lower()
            end = _kept_length(lower, value)
            if end < len(value):
                self.defects.append(HeaderCut(f"oversize-header:{lower[:40]}"))
                value = value[:end]
        self._header_chars += len(name) + (len(value) if isinstance(value, str) else 0)
        if self._header_chars > MAX_HEADER:
            self.defects.append(HeaderCut("oversize-header-block"))
            return
        super().set_raw(name, value)


def _kept_length(name: str, value: str) -> int:
    """How much of the field `name` (lower case) the caps keep: at most MAX_FIELD characters, and
    for a field with parameters MAX_PARAM_FIELD, up to the ';' that would start parameter
    MAX_PARAMS + 1."""
    if name not in _PARAM_FIELDS:
        return min(len(value), MAX_FIELD)
    end = min(len(value), MAX_PARAM_FIELD)
    at = -1
    for _ in range(MAX_PARAMS + 1):
        at = value.find(";", at + 1, end)
        if at < 0:
            return end
    return at
