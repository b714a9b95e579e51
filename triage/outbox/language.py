"""Which language to answer a volunteer in: their contact record's, else the one their mail is written in.

Detection uses py3langid (a small naive Bayes model shipped in the package, deterministic,
loaded once on first use). A guess counts only when it is confident and the text long
enough to judge; the caller then picks it only if a translation of the mail exists.
English (the templates' own language) otherwise.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Collection
from typing import Any

MIN_LETTERS = 12  # "Hi" or "Thanks!" says nothing about a language
MIN_CONFIDENCE = 0.80

_lock = threading.Lock()
_identifier: Any = None


def _classifier() -> Any:
    global _identifier
    with _lock:
        if _identifier is None:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier

            _identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    return _identifier


def detect(text: str) -> str | None:
    """The ISO 639-1 code of `text`'s language, or None when the text is too short or unclear."""
    sample = text[:4000]
    if sum(ch.isalpha() for ch in sample) < MIN_LETTERS:
        return None
    code, confidence = _classifier().classify(sample)
    return str(code) if float(confidence) >= MIN_CONFIDENCE else None


_CODE = re.compile(r"^([a-zA-Z]{2})(?:[-_][a-zA-Z0-9]+)*$")


def normalise(code: str | None) -> str | None:
    """'de-CH' or 'de_CH' -> 'de'; None for anything that is not a language tag."""
    match = _CODE.match(code.strip()) if code else None
    return match.group(1).lower() if match else None


def choose_language(
    *, contact_language: str | None, text: str, available: Collection[str], default: str = "en"
) -> tuple[str, str]:
    """(language, why): the contact's language if set, else the detected one, if translated; else default."""
    preferred = normalise(contact_language)
    if preferred:
        if preferred in available:
            return preferred, "contact record"
        return default, f"contact record says {preferred}, which has no translation"
    detected = detect(text)
    if detected is None:
        return default, "language not detected"
    if detected in available:
        return detected, "detected from the mail"
    return default, f"detected {detected}, which has no translation"


__all__ = ["choose_language", "detect", "normalise"]
