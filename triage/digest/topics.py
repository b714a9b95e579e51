"""Rising topics: the terms whose share of a team's tickets this week is well above their share in
the weeks before. Pure: texts in, scored terms out.

Each ticket is a set of terms (its subject and the volunteer's own words, lower-cased, without
stop words in the desk's languages, mail addresses, web addresses, domains, ticket references
and numbers), so one long mail that repeats a word counts once, like any other ticket.

The test is Fisher's exact test, one-sided: y of the week's n tickets use the term, and y' of the
n' tickets before; if the week were like the weeks before, the number among the
week's n tickets that use it would follow the hypergeometric distribution, and p = P(X >= y) says
how surprising y is. It compares two proportions exactly, with the uncertainty of both (a short
history cannot make a term look surprising), and needs no prior. (The log-odds ratio with an
informative Dirichlet prior was tried first: its variance term 1 / (y' + a) makes a term that
never occurred before, the newest topics, the least likely to rise.)

A term rises when p <= `max_p` (0.001: a week's tickets test a hundred terms or so at once, and
at 0.05 a few would rise by chance every week), it is in at least `min_count` of the week's
tickets (one ticket is an anecdote, not a trend), and its share of the week's tickets is at least
`min_lift` times its share before (well above, not merely detectably above).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from stop_words import StopWordError, get_stop_words

DESK_LANGUAGES = ("en", "de", "fr", "es", "it", "pt", "nl")
"""The languages whose stop words are removed by default (`digest.languages`): those the desk's
mails are translated into and those of the volunteers' mail in the sample mailbox."""

_MAIL_WORDS = """
hi hello hey dear thanks thank thx cheers regards best wishes kind sincerely greetings
mail email message wrote sent subject fwd reply attached attachment please
hallo liebe lieber danke vielen grüße gruß mfg freundlichen
bonjour salut merci cordialement madame monsieur
hola gracias saludos estimado estimada atentamente
ciao grazie saluti cordiali
olá obrigado obrigada atenciosamente
bedankt groeten
"""
MAIL_WORDS = frozenset(_MAIL_WORDS.split())
"""Greetings, closings and words about the mail itself, which say nothing of its topic."""

# Removed before words are cut, so that no part of them becomes a term.
_ADDRESS = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_DOMAIN = re.compile(r"(?<![\w.@-])(?:[\w-]+\.)+[a-z]{2,}(?![\w.@-])", re.IGNORECASE)
_REFERENCE = re.compile(r"\b[A-Z]{1,5}-\d{4}-\d+\b")
_WORD = re.compile(r"[^\W_]+")  # letters and digits: hyphens, apostrophes and underscores cut words

MIN_LENGTH = 3
MIN_LETTERS = 2  # "2fa" is a topic, "2026" is not
MAX_TERM = 40  # longer "words" are pasted tokens, hashes or URLs the patterns missed


@lru_cache(maxsize=8)
def stop_words(languages: tuple[str, ...] = DESK_LANGUAGES) -> frozenset[str]:
    """The stop words of `languages` (ISO 639-1 codes; an unknown one is skipped) and `MAIL_WORDS`."""
    words: set[str] = set(MAIL_WORDS)
    for code in languages:
        try:
            words.update(w.lower() for w in get_stop_words(code))
        except StopWordError:
            continue
    return frozenset(words)


def terms(text: str, stop: Collection[str]) -> frozenset[str]:
    """The terms of one ticket's text: lower-case words of three characters or more (two of them
    letters), not stop words,
    with mail addresses, web addresses, domains and ticket references left out entirely."""
    for pattern in (_ADDRESS, _URL, _DOMAIN, _REFERENCE):
        text = pattern.sub(" ", text)
    found = set()
    for match in _WORD.finditer(text.lower()):
        word = match.group()
        if not MIN_LENGTH <= len(word) <= MAX_TERM or sum(ch.isalpha() for ch in word) < MIN_LETTERS:
            continue
        if word not in stop:
            found.add(word)
    return frozenset(found)


@dataclass(frozen=True)
class Rising:
    """A term that rose: in `count` of the week's `tickets`, against `before_count` of `before_tickets`."""

    term: str
    count: int
    tickets: int
    before_count: int
    before_tickets: int
    p: float  # Fisher's exact test, one-sided
    lift: float  # week share / share before (inf: never seen before)

    @property
    def share(self) -> float:
        return self.count / self.tickets if self.tickets else 0.0

    @property
    def before_share(self) -> float:
        return self.before_count / self.before_tickets if self.before_tickets else 0.0


@dataclass(frozen=True)
class Thresholds:
    max_p: float = 0.001
    min_count: int = 3  # tickets of the week that use the term
    min_lift: float = 2.0  # the week's share at least twice the share before
    limit: int = 5


DEFAULT_THRESHOLDS = Thresholds()


def surprise(count: int, tickets: int, before_count: int, before_tickets: int) -> float:
    """Fisher's exact test, one-sided: the probability of `count` or more of the week's `tickets`
    using the term if the week were like the weeks before (the hypergeometric tail)."""
    from scipy.stats import hypergeom  # here, not at the top: scipy costs every worker a second to import

    return float(hypergeom.sf(count - 1, tickets + before_tickets, count + before_count, tickets))


def document_counts(documents: Iterable[Collection[str]]) -> Counter[str]:
    """In how many documents each term appears."""
    counts: Counter[str] = Counter()
    for document in documents:
        counts.update(set(document))
    return counts


def rising_terms(week: Sequence[Collection[str]], before: Sequence[Collection[str]],
                 thresholds: Thresholds = DEFAULT_THRESHOLDS) -> list[Rising]:
    """The terms of `week`'s documents that rose against `before`'s, most surprising first (at most
    `thresholds.limit`). Nothing rises without documents on both sides: with no history there is
    nothing to rise above."""
    if not week or not before:
        return []
    counts, counts_before = document_counts(week), document_counts(before)
    found = []
    for term, count in counts.items():
        if count < thresholds.min_count:
            continue
        share, share_before = count / len(week), counts_before[term] / len(before)
        lift = share / share_before if share_before else math.inf
        if lift < thresholds.min_lift:
            continue
        p = surprise(count, len(week), counts_before[term], len(before))
        if p <= thresholds.max_p:
            found.append(Rising(term, count, len(week), counts_before[term], len(before), p, lift))
    found.sort(key=lambda r: (r.p, -r.count, r.term))
    return found[: thresholds.limit]


__all__ = ["DEFAULT_THRESHOLDS", "DESK_LANGUAGES", "MAIL_WORDS", "Rising", "Thresholds", "document_counts",
           "rising_terms", "stop_words", "surprise", "terms"]
