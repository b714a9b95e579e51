"""A failure told in one line: what went wrong and what to do about it, never what was being stored.

The database's own errors name the cause badly (a full disk inside a savepoint surfaces as "no such
savepoint") and, in SQLAlchemy's rendering, carry the statement and its parameters, which are mail
bodies. `describe` walks the exception chain for the real cause and says it in one line; the
commands print that on stderr, the worker logs it. Engines are built with `hide_parameters`, so
no traceback or log line carries the parameters either.
"""

from __future__ import annotations

import imaplib
import os
import smtplib
import sqlite3
import traceback
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from triage.secrets import redact_text

MAX_DETAIL = 200
DEBUG_ENV = "TRIAGE_DEBUG"
_RETRY = "then run this again"
_FULL = (f"the database is full: no space is left on its disk (or under its size limit or quota); the "
         f"transaction in progress was rolled back. Free some space, {_RETRY}")
_LOCKED = (f"the database is locked: another process held its write lock for longer than this one waits "
           f"(30 s by default). Let the other triage command or worker finish, or stop it, {_RETRY} "
           f"(to wait longer, add ?timeout=SECONDS to database.url)")
_SQLITE = {
    "SQLITE_FULL": _FULL,
    "SQLITE_BUSY": _LOCKED,
    "SQLITE_LOCKED": _LOCKED,
    "SQLITE_CANTOPEN": "cannot open the database file: check that its folder exists and that this user may "
                       "write there (database.url)",
    "SQLITE_READONLY": "the database is read-only for this user: give it write access to the database file "
                       "and its folder (database.url)",
    "SQLITE_PERM": "the database file may not be accessed by this user: check its permissions (database.url)",
    "SQLITE_IOERR": "the disk failed while reading or writing the database (an I/O error): check the disk and "
                    "the system log, then run this again",
    "SQLITE_CORRUPT": "the database file is damaged: restore it from a backup (database.url names it)",
    "SQLITE_NOTADB": "database.url names a file that is not an SQLite database: point it at the right file",
}
_POSTGRES = {
    "53100": _FULL,
    "53200": f"the database server is out of memory; {_RETRY} later",
    "53300": f"the database server accepts no more connections; stop idle clients or raise max_connections, {_RETRY}",
    "55P03": _LOCKED,
    "57P01": f"the database server was shut down during the command; start it, {_RETRY}",
    "57P03": f"the database server is starting or stopping; {_RETRY} in a moment",
}


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, its driver error, and everything it was raised from or during, once each."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [getattr(current, "orig", None), current.__cause__, current.__context__]


def _driver_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return _short(lines[0] if lines else "")


def _short(text: str) -> str:
    text = redact_text(" ".join(text.split()))
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 3] + "..."


def _sqlite_name(exc: sqlite3.Error) -> str:
    name = getattr(exc, "sqlite_errorname", "") or ""
    message = str(exc)
    if "disk is full" in message or "database or disk is full" in message:
        return "SQLITE_FULL"
    if "database is locked" in message:
        return "SQLITE_BUSY"
    return next((known for known in _SQLITE if name.startswith(known)), name)


def database_problem(exc: BaseException) -> str | None:
    """One line naming the cause of a database failure and the fix; None if `exc` is not one."""
    chain = list(_chain(exc))
    drivers = [e for e in chain if isinstance(e, sqlite3.Error) or type(e).__module__.startswith("psycopg")]
    if not drivers and not any(isinstance(e, SQLAlchemyError) for e in chain):
        return None
    for driver in drivers:  # the most telling cause anywhere in the chain wins over "no such savepoint"
        if isinstance(driver, sqlite3.Error) and _sqlite_name(driver) == "SQLITE_FULL":
            return _FULL
        if getattr(driver, "sqlstate", None) == "53100":
            return _FULL
    for driver in drivers:
        if isinstance(driver, sqlite3.Error) and _sqlite_name(driver) in _SQLITE:
            return _SQLITE[_sqlite_name(driver)]
        state = getattr(driver, "sqlstate", None)
        if state in _POSTGRES:
            return _POSTGRES[state]
        if state is None and type(driver).__name__ == "OperationalError" and "connection" in str(driver).lower():
            return _connection_problem(_driver_line(driver))
    if any("no such savepoint" in str(e) for e in drivers):
        return (f"the database rolled back the transaction after an error it did not report (most often a full "
                f"disk): check the free space where the database lives, {_RETRY}")
    if any(isinstance(e, DBAPIError) and e.connection_invalidated for e in chain):
        return f"the connection to the database was lost; check that the server runs, {_RETRY}"
    cause = drivers[0] if drivers else exc
    return f"database error: {type(cause).__name__}: {_driver_line(cause)}"


def _connection_problem(line: str) -> str:
    if "does not exist" in line:
        fix = "create that database or correct the name in database.url"
    elif "password" in line or "authentication" in line:
        fix = "check the user and password that database.url gives (and the server's pg_hba.conf)"
    else:
        fix = "check that the database server runs and that database.url names the right host and port"
    return f"cannot connect to the database ({line}): {fix}"


def describe(exc: BaseException) -> str:
    """Any failure in one line: a database failure by its cause and fix, an OS error by its reason
    and file, anything else by its type and the first line of its message (capped, secrets masked)."""
    problem = database_problem(exc)
    if problem is not None:
        return problem
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return _short(f"{exc.strerror}{where}")
    message = _driver_line(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def show_traceback() -> bool:
    """Whether the person asked to see tracebacks (TRIAGE_DEBUG=1) instead of one line."""
    return bool(os.environ.get(DEBUG_ENV))


def stopped_by(exc: Exception) -> str:
    """The line a command or the worker prints when `exc` stops it: the database's or the disk's
    failure by its cause and fix, a mail server's refusal (a failed IMAP login, say) by its own
    words; anything else is a bug, named by its type and where it was raised (its message or
    traceback could quote the mail being handled), with how to see the traceback."""
    if isinstance(exc, (SQLAlchemyError, OSError, imaplib.IMAP4.error, smtplib.SMTPException)):
        return describe(exc)
    return (f"unexpected error {type(exc).__name__}{_where(exc)} (a bug, please report it; "
            f"{DEBUG_ENV}=1 shows the traceback)")


# The folders of the two packages (a checkout may itself be called "triage": match on them, not on a name).
_OWN_CODE = tuple(str(Path(folder).resolve()) + os.sep for folder in (
    Path(__file__).parent, Path(__file__).parent.parent / "classifiers"))


def _where(exc: BaseException) -> str:
    """` at package/module.py:LINE` of the innermost frame in triage's own code (else the innermost)."""
    frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ else []
    ours = [f for f in frames if str(Path(f.filename).resolve()).startswith(_OWN_CODE)]
    if not (ours or frames):
        return ""
    frame = (ours or frames)[-1]
    parts = Path(frame.filename).parts
    return f" at {'/'.join(parts[-2:])}:{frame.lineno}"


__all__ = ["DEBUG_ENV", "database_problem", "describe", "show_traceback", "stopped_by"]
