"""Evidence a person can read: the few words of a mail that made the model pick its team, each
with the sentence it comes from. Pure: the model's explanation and the mail in, evidence out.

The model's own explanation (`Classifier.explain`) lists features, not words: stop words that
happen to weigh for a team ("das", "he", "on"), pieces of addresses ("example", "org"), character
n-grams of the subject (`subject:" logo"`). A liaison checks a suggestion by reading, so the
evidence keeps only what they would underline: words that are in no stop-word list of the
desk's languages (nor the mail's own), are no part of an address or domain in the mail or the
desk's own, and can be found in a sentence of the mail; a subject n-gram stands for the subject
word it is part of; an address stands for itself (the sender, a recipient, an address the mail
mentions), its domain alone never. At most `MAX_TERMS`, strongest first.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sentencex import segment

from classifiers import Example

MAX_TERMS = 5
CANDIDATES = 40
"""How many of the model's strongest features are read to find `MAX_TERMS` readable ones."""

MIN_LENGTH = 3
MAX_SENTENCE = 300  # characters of a sentence shown; a "sentence" without punctuation can be a page
READ_CHARS = 20_000
"""How much of the body evidence is looked for in: a person reads the start of a mail, and splitting a
5 MB body into sentences whole took 2.6 s and 26 MB."""

_ADDRESS = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_DOMAIN = re.compile(r"(?<![\w.@-])(?:[\w-]+\.)+[a-z]{2,}(?![\w.@-])", re.IGNORECASE)
_TOKEN = re.compile(r"[^\W_]+")
_ADDRESS_KINDS = {"from": "From", "to": "To", "mention": None}


@dataclass(frozen=True, slots=True)
class Evidence:
    """A word (or address) of the mail, how much it added to the team's score, and where it is."""

    term: str
    weight: float
    sentence: str

    def to_json(self) -> dict[str, Any]:
        return {"term": self.term, "weight": round(self.weight, 4), "sentence": self.sentence}


def address_tokens(example: Example, own_addresses: Iterable[str] = ()) -> frozenset[str]:
    """Every word-like piece of the addresses and domains in the mail's start and of the desk's own
    addresses: `liaison@lists.example.org` gives liaison, lists, example, org."""
    texts = [example.sender, *own_addresses, *(example.headers.get(h, "") for h in ("from", "to", "cc")),
             example.body[:READ_CHARS]]
    found = [a for t in texts for a in _ADDRESS.findall(t)]
    return frozenset(token.lower() for a in found for token in _TOKEN.findall(a))


def sentences(example: Example, language: str | None = None) -> list[str]:
    """The subject, then the sentences of the body's start (lines of a quoted reply left out), whitespace collapsed."""
    body = "\n".join(line for line in example.body[:READ_CHARS].splitlines() if not line.lstrip().startswith(">"))
    found = [example.subject] + list(segment(language or "en", body))
    out = [" ".join(s.split()) for s in found]
    return [s[:MAX_SENTENCE] for s in out if s]


@dataclass(frozen=True, slots=True)
class _Sentences:
    """A mail's sentences, each also without its addresses, web addresses and domains (in
    `forum.example.org`, "forum" is a piece of an address, not a word the writer chose). Stripped
    once per mail: a suggestion looks up to `CANDIDATES` terms in them."""

    shown: list[str]
    words: list[str]

    @classmethod
    def of(cls, among: list[str]) -> _Sentences:
        return cls(among, [_without_addresses(s) for s in among])

    def holding(self, term: str, *, word: bool = True) -> str | None:
        """The first sentence holding `term`; a `word` only outside addresses."""
        pattern = re.compile(rf"(?<![^\W_]){re.escape(term)}(?![^\W_])", re.IGNORECASE)
        searched = self.words if word else self.shown
        return next((shown for shown, text in zip(self.shown, searched, strict=True) if pattern.search(text)), None)


def _without_addresses(text: str) -> str:
    for pattern in (_ADDRESS, _URL, _DOMAIN):
        text = pattern.sub(" ", text)
    return text


def _subject_word(ngram: str, subject_words: Sequence[str]) -> str | None:
    """The subject word (of `subject_words`, lower case) a character n-gram (`" logo"`, `"rant "`) is part of."""
    core = ngram.strip()
    for word in subject_words:
        if ngram.startswith(" ") and ngram.endswith(" "):
            hit = word == core
        elif ngram.startswith(" "):
            hit = word.startswith(core)
        elif ngram.endswith(" "):
            hit = word.endswith(core)
        else:
            hit = core in word
        if hit:
            return str(word)
    return None


def _address_sentence(kind: str, address: str, among: _Sentences) -> str | None:
    label = _ADDRESS_KINDS.get(kind)
    return among.holding(address, word=False) or (f"{label}: {address}" if label else None)


def readable_evidence(
    features: Sequence[tuple[str, float]] | Sequence[Sequence[Any]], example: Example, *,
    stop: Collection[str], own_addresses: Iterable[str] = (), language: str | None = None,
    limit: int = MAX_TERMS,
) -> list[Evidence]:
    """The terms of `features` (the model's explanation, strongest first) a person would underline,
    at most `limit`, each with the first sentence of `example` that holds it. `stop`: the stop
    words of every language the desk sees; `own_addresses`: the desk's own addresses."""
    banned = address_tokens(example, own_addresses)
    among = _Sentences.of(sentences(example, language))
    subject_words = _TOKEN.findall(example.subject.lower())
    weights: dict[str, float] = {}
    found: dict[str, str] = {}  # an address's sentence; a word's is looked up only once the word ranks
    for item in features:
        feature, weight = str(item[0]), float(item[1])
        if weight <= 0:
            continue
        block, _, name = feature.partition(":")
        if block == "language":
            continue  # the mail's language as a whole: not a word of it
        term: str | None
        if block == "addresses":
            kind, _, term = name.partition(":")
            if kind not in _ADDRESS_KINDS:
                continue  # a domain alone, or any other address feature: not something to underline
            sentence = _address_sentence(kind, term, among)
            if sentence is None:
                continue
            found.setdefault(term, sentence)
        else:
            term = _subject_word(name[1:-1], subject_words) if name.startswith('"') and name.endswith('"') else name
            if term is None or not _meaningful(term, stop, banned):
                continue
        weights[term] = weights.get(term, 0.0) + weight
    evidence: list[Evidence] = []
    for term in sorted(weights, key=lambda t: -weights[t]):
        sentence = found.get(term) or among.holding(term)
        if sentence is None:
            continue  # a word the mail has only inside an address
        evidence.append(Evidence(term, weights[term], sentence))
        if len(evidence) == limit:
            break
    return evidence


def _meaningful(term: str, stop: Collection[str], banned: Collection[str]) -> bool:
    words = term.lower().split()
    return bool(words) and all(
        len(w) >= MIN_LENGTH and any(ch.isalpha() for ch in w) and w not in stop and w not in banned for w in words
    )


def around(sentence: str, terms: Sequence[str], width: int = 120) -> str:
    """`sentence` cut to about `width` characters around its first term (with "…" where cut), so
    that a long sentence shown in a narrow column still shows the word it is evidence of."""
    if len(sentence) <= width:
        return sentence
    hits = [m.start() for t in terms if (m := re.search(re.escape(t), sentence, re.IGNORECASE))]
    first = min(hits) if hits else 0
    start = max(0, min(first - width // 4, len(sentence) - width))
    if start:
        start = sentence.find(" ", start) + 1 or start  # not in the middle of a word
    end = start + width
    if end < len(sentence):
        end = sentence.rfind(" ", start, end) if " " in sentence[start:end] else end
    return ("…" if start else "") + sentence[start:end].strip() + ("…" if end < len(sentence) else "")


def by_sentence(evidence: Iterable[Any]) -> list[tuple[list[str], str]]:
    """Stored evidence grouped by sentence, in order: (its terms, the sentence); a sentence that holds
    several terms is shown once. Terms without a sentence (older suggestions) come as ([term], "")."""
    groups: dict[str, list[str]] = {}
    loose: list[tuple[list[str], str]] = []
    for item in stored_evidence(evidence):
        if item.sentence:
            groups.setdefault(item.sentence, []).append(item.term)
        else:
            loose.append(([item.term], ""))
    return [(terms, sentence) for sentence, terms in groups.items()] + loose


def stored_evidence(items: Iterable[Any], stop: Collection[str] = frozenset()) -> list[Evidence]:
    """Evidence as stored on a suggestion: dicts now; `[feature, weight]` pairs from before (their
    words that are not in `stop`, without a sentence; the next model's suggestion replaces them)."""
    out: list[Evidence] = []
    for item in items:
        if isinstance(item, dict):
            out.append(Evidence(str(item.get("term", "")), float(item.get("weight", 0.0)),
                                str(item.get("sentence", ""))))
        elif isinstance(item, list | tuple) and len(item) >= 2:
            _, _, term = str(item[0]).partition(":")
            if term.startswith('"') or ":" in term or not _meaningful(term, stop, ()):
                continue
            out.append(Evidence(term, float(item[1]), ""))
    return out


__all__ = ["CANDIDATES", "MAX_TERMS", "Evidence", "address_tokens", "around", "by_sentence", "readable_evidence", "sentences",
           "stored_evidence"]
