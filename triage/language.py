"""Which language a mail is written in: the desk's one detector, for the ticket's language (set
once, when the ticket opens), the acknowledgment's language and the routing model's language block.

Lingua (`lingua-language-detector`) ships its models in the wheel and is maintained. It is built
for every language it knows, in its low-accuracy mode (trigram models only): about 75 MB and 0.4 s
to load, about 1 ms a mail. Its high-accuracy mode over all languages needs 1.3 GB and 10 s to load
(measured on the shared 2-core machine), which a worker should not pay for a mail's language; on
mail bodies the two modes agree (low accuracy is weaker on a few words, which `MIN_LETTERS` leaves
out anyway). Built once, on first use, and shared by the threads of a process.
"""

from __future__ import annotations

import threading
from typing import Any

MIN_LETTERS = 12  # "Hi" or "Thanks!" says nothing about a language
MIN_CONFIDENCE = 0.80
MAX_CHARS = 4000  # the start of a long mail says as much as all of it

_lock = threading.Lock()
_detector: Any = None


def _built() -> Any:
    global _detector
    with _lock:
        if _detector is None:
            from lingua import LanguageDetectorBuilder

            _detector = LanguageDetectorBuilder.from_all_languages().with_low_accuracy_mode().build()
    return _detector


def detect(text: str) -> str | None:
    """The ISO 639-1 code of `text`'s language, or None when the text is too short or unclear."""
    sample = text[:MAX_CHARS]
    if sum(ch.isalpha() for ch in sample) < MIN_LETTERS:
        return None
    values = _built().compute_language_confidence_values(sample)
    if not values or values[0].value < MIN_CONFIDENCE:
        return None
    return str(values[0].language.iso_code_639_1.name.lower())


def mail_language(subject: str | None, text: str | None) -> str | None:
    """The language of a mail: its subject and the volunteer's own words (quotes left out)."""
    return detect(f"{subject or ''}\n{text or ''}")


__all__ = ["MIN_CONFIDENCE", "MIN_LETTERS", "detect", "mail_language"]
