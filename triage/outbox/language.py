"""Which language to answer a volunteer in: their contact record's, else the ticket's (detected
when it opened, `triage.language`), else the one their mail is written in.

A guess counts only when it is confident and the text long enough to judge; the caller then picks
it only if a translation of the mail exists. English (the templates' own language) otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from triage.language import detect

_CODE = re.compile(r"^([a-zA-Z]{2})(?:[-_][a-zA-Z0-9]+)*$")


def normalise(code: str | None) -> str | None:
    """'de-CH' or 'de_CH' -> 'de'; None for anything that is not a language tag."""
    match = _CODE.match(code.strip()) if code else None
    return match.group(1).lower() if match else None


def choose_language(
    *, contact_language: str | None, text: str, available: Collection[str], default: str = "en",
    ticket_language: str | None = None,
) -> tuple[str, str]:
    """(language, why): the contact's language if set, else the ticket's (detected when it opened) or
    the one detected in `text`, if translated; else default."""
    preferred = normalise(contact_language)
    if preferred:
        if preferred in available:
            return preferred, "contact record"
        return default, f"contact record says {preferred}, which has no translation"
    detected = normalise(ticket_language) or detect(text)
    if detected is None:
        return default, "language not detected"
    if detected in available:
        return detected, "detected from the mail"
    return default, f"detected {detected}, which has no translation"


__all__ = ["choose_language", "detect", "normalise"]
