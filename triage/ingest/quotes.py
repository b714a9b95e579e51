"""Split a reply's text into what the sender wrote now, the quoted earlier mail, and the signature.

Classification and the liaison's view care about the new words; the quoted history and the
signature are kept (nothing is thrown away) but apart. The rules are line-based and linear in
the text's length: a reply header ("On ... wrote:" in several languages, Outlook's
"-----Original Message-----" or its "From:/Sent:/To:/Subject:" block), a run of '>' lines,
the "-- " signature delimiter, the mobile "Sent from my ..." line, and a closing line ("Best
regards,") with only a name or a few short lines below it. A forwarded message
("---------- Forwarded message ----------") is new content for a ticket desk, so quote
markers below a forward marker are left in the new text.
"""

from __future__ import annotations

import re
from typing import NamedTuple


class ReplyParts(NamedTuple):
    """The three pieces of a reply; joined in order they hold every non-blank line of the text."""

    new: str
    quoted: str
    signature: str


_WROTE = (
    r"(?:wrote|writes|said|schrieb|a écrit|escribió|escribio|schreef|geschreven|ha scritto|escreveu"
    r"|skrev|kirjoitti|napisał|написал|написала)"
)
# "On <date>, <name> wrote:" as each language's clients write it (German and Dutch put the name last).
_STRONG_HEADER = re.compile(
    r"^(?:on\b.{0,300}\b(?:wrote|writes)\s*:"
    r"|am\b.{0,300}\bschrieb\b.{0,200}:"
    r"|le\b.{0,300}\ba écrit\s*:"
    r"|el\b.{0,300}\bescribió\s*:"
    r"|op\b.{0,300}\b(?:schreef|geschreven)\b.{0,200}:"
    r"|il\b.{0,300}\bha scritto\s*:"
    r"|(?:em|no dia)\b.{0,300}\bescreveu\s*:"
    r"|den\b.{0,300}\bskrev\b.{0,200}:"
    r"|\d{1,4}[./-]\d{1,2}[./-]\d{1,4}\b.{0,300}" + _WROTE + r".{0,200}:)$",
    re.IGNORECASE,
)
# "<name> wrote:" alone, trusted only when a '>' line follows.
_WEAK_HEADER = re.compile(rf"^.{{0,200}}\b{_WROTE}\s*:$", re.IGNORECASE)
_ORIGINAL = re.compile(
    r"^-{2,}\s*(?:original message|ursprüngliche nachricht|original-nachricht|message d'origine"
    r"|mensaje original|oorspronkelijk bericht|messaggio originale|mensagem original"
    r"|originalmeddelande|opprinnelig melding)\s*-{2,}$",
    re.IGNORECASE,
)
_FORWARD = re.compile(
    r"^(?:-{2,}\s*(?:forwarded message|weitergeleitete nachricht|message transféré|mensaje reenviado"
    r"|doorgestuurd bericht|messaggio inoltrato)\s*-{2,}"
    r"|begin forwarded message:|anfang der weitergeleiteten nachricht:)$",
    re.IGNORECASE,
)
_FIELD = re.compile(
    r"^\*?(from|von|de|van|da|från|fra|od|sent|gesendet|envoyé|enviado|verzonden|inviato|date|datum|fecha"
    r"|to|an|à|para|aan|a|cc|subject|betreff|objet|asunto|onderwerp|oggetto|assunto|ämne|emne)\*?\s*:",
    re.IGNORECASE,
)
_FROM_FIELDS = frozenset({"from", "von", "de", "van", "da", "från", "fra", "od"})
_MOBILE = re.compile(
    r"^(?:sent from my |sent from (?:mail|outlook|yahoo mail|samsung)|sent with |get outlook for "
    r"|von meinem .+ gesendet|gesendet von meinem |envoyé de mon |envoyé depuis |enviado desde mi "
    r"|enviado do meu |verzonden vanaf mijn |verstuurd vanaf mijn |inviato da )",
    re.IGNORECASE,
)
# A closing line on its own, in the languages above ("Best regards," "Viele Grüße" "Cordialement").
_VALEDICTION = re.compile(
    r"^(?:(?:best|kind|warm|many|warmest|kindest)\s+(?:regards|wishes|thanks)|regards|cheers|best|thanks"
    r"|thank you|sincerely|yours(?: truly| sincerely)?|all the best"
    r"|(?:mit )?(?:viele|beste|liebe|herzliche|freundliche)n? grüße|mit freundlichen grüßen|gruß|grüße"
    r"|cordialement|bien à vous|bien cordialement|amitiés|saludos(?: cordiales)?|un saludo|atentamente"
    r"|(?:met )?vriendelijke groet(?:en)?|groeten|cordiali saluti|saluti|distinti saluti"
    r"|atenciosamente|abraços|cumprimentos|med vänlig hälsning|vänliga hälsningar|mvh|hilsen|pozdrawiam)"
    r"\s*[,.!]?$",
    re.IGNORECASE,
)
SIGN_OFF_LINES = 5  # at most this many short lines (name, role, chapter) below a closing line
_UNDERSCORES = re.compile(r"^_{10,}$")
# Two or more dashes and a word, as "-----Original Message-----" and its kin begin.
# [^\S\n] is what strip() removes, but the line end. Only the first dash of a run starts a match
# (from any dash of a run the match fails or succeeds alike): from every dash, a long run of them
# was read again to its end.
_DASHES_AND_WORD = re.compile(r"(?<!-)--++[^\S\n]*+\w")


def split_reply(text: str) -> ReplyParts:
    """Return the new text, the quoted earlier mail and the signature of a plain-text body."""
    lines = text.split("\n")
    may_have_header = _may_have_header(text)
    if not may_have_header and ">" not in text:
        new_lines, signature_lines = _split_signature(lines, text)
        new = _join(new_lines) if signature_lines else text.strip("\n").rstrip()
        return ReplyParts(new, "", _join(signature_lines))
    stripped = [line.strip() for line in lines]
    cut, header_end = _quote_start(stripped) if may_have_header else (None, None)
    if cut is None:
        new_lines, quoted_lines = _split_interleaved(lines, stripped)
    elif header_end is None:
        # Outlook-style headers: the client quotes everything below, without '>' marks.
        new_lines, quoted_lines = lines[:cut], lines[cut:]
    else:
        # "On ... wrote:": answers written below or between the '>' lines are new text.
        answers, quotes = _split_interleaved(lines[header_end + 1 :], stripped[header_end + 1 :])
        if quotes and any(line.strip() for line in answers):
            new_lines, quoted_lines = lines[:cut] + answers, lines[cut : header_end + 1] + quotes
        else:
            new_lines, quoted_lines = lines[:cut], lines[cut:]
    new_lines, signature_lines = _split_signature(new_lines, text)
    return ReplyParts(_join(new_lines), _join(quoted_lines), _join(signature_lines))


def _may_have_header(text: str) -> bool:
    """Could a reply header be in `text`? Each has a ':' (every "wrote:", every Outlook field)
    or is a line of dashes and a word or of underscores; without these `_quote_start` finds
    nothing, and prose without a '>' either has no quote at all.
    """
    return ":" in text or "__________" in text or ("--" in text and _dashes_start_a_line(text))


def _dashes_start_a_line(text: str) -> bool:
    """Does a line start, after blanks, with dashes and a word? A regex anchored at each line
    start tries every position of the text; this one is found by its leading '--'.
    """
    searched = 0  # where the previous match ended: its line does not start with dashes after it
    for match in _DASHES_AND_WORD.finditer(text):
        newline = text.rfind("\n", searched, match.start())
        if (newline >= 0 or searched == 0) and not text[newline + 1 : match.start()].strip():
            return True
        searched = match.end()
    return False


def _join(lines: list[str]) -> str:
    return "\n".join(lines).strip("\n").rstrip()


def _quote_start(stripped: list[str]) -> tuple[int | None, int | None]:
    """First line of a reply header and, for "wrote:" headers, its last line; (None, None) if none.

    A forward marker above any header ends the search: what follows it is forwarded, not quoted.
    """
    wrote = _wrote_headers(stripped)
    for i, line in enumerate(stripped):
        if not line:
            continue
        # A forward marker is dashes, or "Begin forwarded message:" and its German twin.
        if (line[0] == "-" or (line[0] in "bBaA" and line[-1] == ":")) and _FORWARD.match(line):
            return None, None
        if line[0] in "-_" and (
            _ORIGINAL.match(line) or (_UNDERSCORES.match(line) and _is_field_block(stripped, i + 1))
        ):
            return i, None
        if ":" in line[:16] and _is_field_block(stripped, i):
            return i, None
        if i in wrote:
            return i, wrote[i]
    return None, None


def _wrote_headers(stripped: list[str]) -> dict[int, int]:
    """Start -> end line of each "On ... wrote:" header; clients wrap them over up to 3 lines.

    For each line ending in ':' the language patterns are tried on the 1-, 2- and 3-line spans
    that end there, then the bare "<name> wrote:", trusted only right above a '>' line.
    """
    found: dict[int, int] = {}
    for end in _colon_ends(stripped):
        line = stripped[end]
        if len(line) > 300:
            continue
        spans: list[tuple[int, str]] = []
        joined = line
        for start in range(end, max(end - 3, -1), -1):
            if start < end:
                if not stripped[start]:
                    break
                joined = f"{stripped[start]} {joined}"
            spans.append((start, joined))
        match = next((start for start, text in spans if _STRONG_HEADER.match(text)), None)
        if match is None and _next_is_quote(stripped, end + 1):
            match = next((start for start, text in spans if _WEAK_HEADER.match(text)), None)
        if match is not None:
            found.setdefault(match, end)
    return found


def _colon_ends(stripped: list[str]) -> list[int]:
    """Indices of the lines ending in ':', found in one joined string rather than line by line."""
    joined = "\n".join(stripped) + "\n"
    found: list[int] = []
    line = last = 0
    at = joined.find(":\n")
    while at >= 0:
        line += joined.count("\n", last, at)
        found.append(line)
        last = at
        at = joined.find(":\n", at + 2)
    return found


def _next_is_quote(stripped: list[str], start: int) -> bool:
    for line in stripped[start : start + 3]:
        if line:
            return line.startswith(">")
    return False


def _is_field_block(stripped: list[str], i: int) -> bool:
    """Outlook/Yahoo/Hotmail quote header: a From line among at least three header-like lines."""
    first = _FIELD.match(stripped[i]) if i < len(stripped) else None
    if first is None:
        return False
    names: list[str] = []
    for line in stripped[i : i + 7]:
        match = _FIELD.match(line)
        if match is None:
            if line:
                break
            continue
        names.append(match.group(1).lower())
    return len(names) >= 3 and any(name in _FROM_FIELDS for name in names)


def _split_interleaved(lines: list[str], stripped: list[str]) -> tuple[list[str], list[str]]:
    """Without a header, '>' lines are the quote: a trailing block, or lines between answers."""
    quoted_idx = [i for i, line in enumerate(stripped) if line.startswith(">")]
    if not quoted_idx:
        return lines, []
    first = quoted_idx[0]
    tail_is_quote = all(not line or line.startswith(">") for line in stripped[first:])
    if tail_is_quote:
        return lines[:first], lines[first:]
    quoted_set = set(quoted_idx)
    new = [line for i, line in enumerate(lines) if i not in quoted_set]
    return new, [lines[i] for i in quoted_idx]


def _split_signature(lines: list[str], text: str) -> tuple[list[str], list[str]]:
    """The last "-- " delimiter starts the signature; else a mobile "Sent from my ..." line near the end.

    `lines` are lines of `text`: without "--" in it, there is no delimiter to look for.
    """
    if "--" in text and "\r" not in text:
        # The same test as below, as list lookups: without CRs a delimiter line is one of two strings.
        at = max(
            (len(lines) - 1 - lines[::-1].index(mark) for mark in ("-- ", "--") if mark in lines), default=-1
        )
        if at >= 0:
            return lines[:at], lines[at:]
    elif "--" in text:
        for i in range(len(lines) - 1, -1, -1):
            if lines[i].rstrip("\r") in ("-- ", "--"):
                return lines[:i], lines[i:]
    seen = 0
    for i in range(len(lines) - 1, -1, -1):
        line = lines[i].strip()
        if not line:
            continue
        seen += 1
        if seen > 4:
            break
        if len(line) < 80 and _MOBILE.match(line):
            return lines[:i], lines[i:]
    return _split_sign_off(lines)


def _split_sign_off(lines: list[str]) -> tuple[list[str], list[str]]:
    """Without a delimiter, a closing line ("Best regards,") near the end with only a few short
    lines below it (a name, a role) starts the signature, if words were written above it."""
    below = 0
    for i in range(len(lines) - 1, -1, -1):
        line = lines[i].strip()
        if not line:
            continue
        if len(line) < 40 and _VALEDICTION.match(line):
            if below and any(earlier.strip() for earlier in lines[:i]):
                return lines[:i], lines[i:]
            return lines, []
        below += 1
        if below > SIGN_OFF_LINES or len(line) > 60:
            return lines, []
    return lines, []
