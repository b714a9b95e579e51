"""Reading a password from config, an environment variable (via config) or a secret file; and
keeping every secret out of what triage prints or logs.

A secret can hide in more places than a `password` key: the userinfo or the query string of the
database URL (`postgresql://u@h/db?password=...`), an OAuth2 token command whose command line
carries a token, a driver's error message. `redact_setting` decides by the key's name, so a key
added later under a secret-sounding name is hidden without being listed here; `redact_text` is
the last line of defence for free text (log fields, error messages).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import SecretStr

MASK = "***"
_SECRET_NAME = re.compile(r"pass|pwd|secret|token|credential|api.?key|auth", re.IGNORECASE)
_SECRET_KEY_ENDINGS = ("password", "_token", "secret", "token_command", "_key")
# user:password@ in any URL, and password=..., token: ... and the like in any text. Both run on
# text that can quote a hostile mail, so neither may backtrack: the URL form starts only at "://"
# and its parts are possessive; the pair starts only where a name starts (the lookbehind), looks
# ahead once for the secret-sounding word inside that name, and then takes the name whole.
_URL_USERINFO = re.compile(r"(?P<head>://[^/\s:@]*+:)(?P<secret>[^/\s@]++)(?=@)")
_PAIR = re.compile(
    r"(?P<head>(?<![\w.-])(?=[\w.-]*?(?:password|passwd|pwd|secret|token|api[_-]?key|credential))"
    r"[\w.-]*+\s*+[=:]\s*+)"
    r"(?P<secret>\"[^\"]*+\"|'[^']*+'|[^\s&;,]++)",
    re.IGNORECASE,
)


class SecretFileError(Exception):
    """The secret file named by a `*.password_file` key cannot be used; the message names the key."""


def read_password(password: SecretStr, password_file: str, *, key: str) -> str:
    """The first line of `password_file` if set, else `password`. `key` names the setting in errors."""
    if password_file:
        try:
            lines = Path(password_file).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise SecretFileError(f"{key} {password_file!r}: {exc.strerror}") from None
        if not lines or not lines[0]:
            raise SecretFileError(f"{key} {password_file!r} is empty")
        return lines[0]
    return password.get_secret_value()


def is_secret_key(key: str) -> bool:
    """A setting whose value is a secret itself (`password`, `*_token`, `oauth2_token_command`), not a
    path to one (`password_file`, `oauth2_token_file` are shown)."""
    name = key.lower()
    return name.endswith(_SECRET_KEY_ENDINGS)


def redact_url(url: str) -> str:
    """A database URL for display: the userinfo password and every secret-sounding query value masked."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return redact_text(url)
    query = {key: (MASK if _SECRET_NAME.search(key) else value) for key, value in parsed.query.items()}
    shown = parsed.set(query=query).render_as_string(hide_password=True)
    return shown.replace("%2A%2A%2A", MASK)


def redact_setting(key: str, value: Any) -> Any:
    """`value` of setting `key` as `triage config check` may print it."""
    if isinstance(value, SecretStr):
        return MASK if value.get_secret_value() else ""
    if isinstance(value, str) and value and is_secret_key(key):
        return MASK
    if isinstance(value, str) and key == "url":
        return redact_url(value)
    if isinstance(value, str):
        return redact_text(value)
    return value


def redact_text(text: str) -> str:
    """Free text with URL passwords and `password=...`-style values masked."""
    text = _URL_USERINFO.sub(lambda m: m["head"] + MASK, text)
    return _PAIR.sub(lambda m: m["head"] + MASK, text)


__all__ = ["MASK", "SecretFileError", "is_secret_key", "read_password", "redact_setting", "redact_text", "redact_url"]
