"""Text from mail, made safe to print on the liaison's terminal.

Anyone on the internet writes the subjects, names, addresses and bodies that triage lists. A
control character in them is an instruction to the terminal: ESC and OSC sequences recolour the
screen, retitle the window, hide text or make a link that shows one address and opens another;
a line break forges a row of a listing; a bidi override (U+202A-U+202E, U+2066-U+2069) shows
text in another order than it is stored. So every line printed for people goes through `echo`
(one line: every control character shown as an escape such as `\\x1b`) or `echo_text` (a body:
its own newlines kept, everything else escaped), and `--json` output through `echo_json`, which
keeps one object per line under any line splitter.
"""

from __future__ import annotations

import json
from typing import Any

import click

# C0 and C1 controls and DEL (category Cc: ESC, CR, VT, FF, FS/GS/RS, NEL, CSI ...), the line and
# paragraph separators, and the bidi embeddings, overrides and isolates.
_CONTROLS = [*range(0x20), *range(0x7F, 0xA0)]
_SEPARATORS = [0x2028, 0x2029]
_BIDI = [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]


_NAMED = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}


def _escape(code: int) -> str:
    if code in _NAMED:
        return _NAMED[code]
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


_LINE = {code: _escape(code) for code in [*_CONTROLS, *_SEPARATORS, *_BIDI]}
_TEXT = {code: escaped for code, escaped in _LINE.items() if code != 0x0A}
# JSON escapes C0 itself; what it leaves raw with ensure_ascii=False (DEL, C1, U+2028/9, bidi)
# can only stand inside a string literal, where \uXXXX means the same character.
_JSON = {code: f"\\u{code:04x}" for code in [0x7F, *range(0x80, 0xA0), *_SEPARATORS, *_BIDI]}


def escape(text: str) -> str:
    """`text` as one line: every control, separator and bidi control character shown escaped."""
    return text.translate(_LINE)


def escape_text(text: str) -> str:
    """A mail body for display: its newlines kept (CRLF as LF), tabs expanded, the rest escaped."""
    return text.replace("\r\n", "\n").expandtabs(8).translate(_TEXT)


def json_line(value: Any) -> str:
    """`value` as JSON on one line that no line splitter breaks; non-ASCII text stays readable."""
    return json.dumps(value, ensure_ascii=False, default=str).translate(_JSON)


def echo(line: str = "", *, err: bool = False) -> None:
    """Print one line for people (the layout's own text included: it is escaped the same way)."""
    click.echo(escape(line), err=err)


def echo_text(text: str) -> None:
    """Print a multi-line text, such as a mail body, keeping its own line breaks."""
    click.echo(escape_text(text))


def echo_json(value: Any) -> None:
    click.echo(json_line(value))


__all__ = ["echo", "echo_json", "echo_text", "escape", "escape_text", "json_line"]
