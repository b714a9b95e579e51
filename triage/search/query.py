"""The user's query, parsed once and rendered for each engine; snippets split into marked segments.

Anything typed into a search box is hostile: quotes, FTS5 operators (NEAR, *, ^, column:), NUL,
unbalanced parentheses, 10 kB of text. `parse` keeps only words (runs of letters and digits), in
terms: a bare word, a "quoted phrase", a -word or -"phrase" to exclude, OR between two terms. Each
term's words are rendered quoted (FTS5) or as a quoted phrase (PostgreSQL's websearch_to_tsquery),
so no input reaches the engine as syntax; too long or empty input is Invalid with a hint.

Snippets come back from the engine with the matched words between two private-use sentinel
characters; `segments` cuts them there into (text, marked) pairs that the page escapes one by one,
so a <mark> is never made of the database's own text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from triage.desk.errors import Invalid

MAX_QUERY_CHARS = 500
MAX_TERMS = 16
MARK_OPEN, MARK_CLOSE = "\ue000", "\ue001"
ELLIPSIS = "…"

_TOKEN = re.compile(r'(-?)"([^"]*)"?|(\S+)')
_WORD = re.compile(r"[^\W_]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ue000\ue001]")
HINT = 'type words to find; "a phrase" in quotes, -word to leave out, OR between alternatives'


@dataclass(frozen=True)
class Term:
    words: tuple[str, ...]
    exclude: bool = False
    either: bool = False  # joined to the previous term by OR (else AND)


@dataclass(frozen=True)
class Query:
    text: str  # as typed, cleaned of control characters
    terms: tuple[Term, ...]

    def fts5(self) -> str:
        """An FTS5 MATCH expression: (a AND b) OR (c) NOT d, every word a quoted string."""
        groups: list[list[str]] = []
        for term in self.terms:
            if term.exclude:
                continue
            phrase = '"' + " ".join(term.words) + '"'
            if term.either and groups:
                groups.append([phrase])
            elif groups:
                groups[-1].append(phrase)
            else:
                groups.append([phrase])
        expression = " OR ".join("(" + " AND ".join(group) + ")" for group in groups)
        excluded = ['"' + " ".join(term.words) + '"' for term in self.terms if term.exclude]
        return "(" + expression + ")" + "".join(f" NOT {phrase}" for phrase in excluded)

    def websearch(self) -> str:
        """The same query in websearch_to_tsquery's syntax: "phrases", or, -exclusions."""
        out: list[str] = []
        for term in self.terms:
            if term.either and out and not term.exclude:
                out.append("or")
            out.append(("-" if term.exclude else "") + '"' + " ".join(term.words) + '"')
        return " ".join(out)


def parse(text: str) -> Query:
    """`text` as a Query, or Invalid when it is too long or has nothing to search for."""
    cleaned = _CONTROL.sub(" ", text).strip()
    if len(cleaned) > MAX_QUERY_CHARS:
        raise Invalid(f"the search is longer than {MAX_QUERY_CHARS} characters", "search for fewer words")
    terms: list[Term] = []
    either = False
    for match in _TOKEN.finditer(cleaned):
        negated, quoted, bare = match.group(1), match.group(2), match.group(3)
        if bare == "OR":
            either = bool(terms)
            continue
        exclude = bool(negated) or (bare is not None and bare.startswith("-") and len(bare) > 1)
        words = tuple(word.lower() for word in _WORD.findall(quoted if quoted is not None else bare))
        if not words:
            continue
        terms.append(Term(words, exclude, either and not exclude))
        either = False
    if len(terms) > MAX_TERMS:
        raise Invalid(f"the search has more than {MAX_TERMS} words or phrases", "search for fewer words")
    if not any(not term.exclude for term in terms):
        raise Invalid("nothing to search for", HINT)
    return Query(cleaned, tuple(terms))


Segment = tuple[str, bool]


def segments(snippet: str | None) -> tuple[Segment, ...]:
    """A snippet with sentinel marks as (text, marked) pairs; stray sentinels are dropped."""
    if not snippet:
        return ()
    out: list[Segment] = []
    marked = False
    for piece in re.split(f"([{MARK_OPEN}{MARK_CLOSE}])", snippet):
        if piece == MARK_OPEN:
            marked = True
        elif piece == MARK_CLOSE:
            marked = False
        elif piece:
            out.append((piece, marked))
    return tuple(out)


__all__ = ["ELLIPSIS", "MARK_CLOSE", "MARK_OPEN", "Query", "Segment", "Term", "parse", "segments"]
