"""The service layer's one exception family: each error has a code (for the web's status and
the CLI's exit status), a message that says what went wrong, and a hint that says what to do."""

from __future__ import annotations


class DeskError(Exception):
    """A use case refused: the message says why, the hint what to do about it."""

    code = "invalid"
    status = 400

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class Invalid(DeskError):
    """The request itself is wrong (an unknown team, an empty reply)."""


class NotFound(DeskError):
    """No such thing, or none this user may see (the two are not told apart)."""

    code = "not-found"
    status = 404


class Forbidden(DeskError):
    """The user's role does not allow this action."""

    code = "forbidden"
    status = 403


class Conflict(DeskError):
    """Someone else changed the ticket first (it was already decided, merged, ...)."""

    code = "conflict"
    status = 409


class Throttled(DeskError):
    """Too many failed logins; the hint says when to try again."""

    code = "throttled"
    status = 429


__all__ = ["Conflict", "DeskError", "Forbidden", "Invalid", "NotFound", "Throttled"]
