"""Reading a password from config, an environment variable (via config) or a secret file."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr


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
