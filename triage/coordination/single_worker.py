"""One worker at a time on an SQLite database: a second one is refused with the reason and the way out.

SQLite has no row locks to share mailboxes and jobs by, and no server clock: several workers
on it would each fetch and parse every mail. The worker holds an exclusive `flock` on a file
beside the database for as long as it runs; the kernel drops it when the process dies, however
it dies, so a killed worker never leaves the next one locked out. The file names the holder.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from sqlalchemy.engine import make_url

PRIVATE_FILE = 0o600


class AnotherWorker(RuntimeError):
    """A worker already runs on this SQLite database."""


class WorkerLock:
    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = -1


def lock_path(url: str) -> Path | None:
    """The lock file of an SQLite database file; None for PostgreSQL or an in-memory database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).resolve().with_name(Path(database).name + ".worker-lock")


def claim_sqlite_database(url: str, *, me: str) -> WorkerLock | None:
    """Hold the database's worker lock, or raise AnotherWorker naming the holder and the fix."""
    path = lock_path(url)
    if path is None:
        return None
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
        os.close(fd)
        raise AnotherWorker(
            f"a worker ({holder}) already runs on the SQLite database {path.with_suffix('')}; "
            "SQLite allows one worker at a time. Stop that one, or move to PostgreSQL "
            "(database.url = \"postgresql+psycopg://...\") to run several workers."
        ) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, me.encode(), 0)
    return WorkerLock(path, fd)


__all__ = ["AnotherWorker", "WorkerLock", "claim_sqlite_database", "lock_path"]
