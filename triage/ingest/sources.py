"""Local mail sources for backfills: a maildir, an mbox file, a folder of .eml files, one file.

Each yields (source label, raw bytes) one mail at a time, so memory stays flat however
large the source is. The label names the mail's place in its source for the log and
for quarantine, so an operator can find it again.
"""

from __future__ import annotations

import mailbox
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class SourceError(Exception):
    """The path is not a mail source we can read; the message says what was expected."""


@dataclass(frozen=True)
class MailSource:
    kind: str
    path: Path
    count: int
    _keys: tuple[str, ...]

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        if self.kind == "maildir":
            box: mailbox.Mailbox[mailbox.Message] = mailbox.Maildir(self.path, factory=None, create=False)
        elif self.kind == "mbox":
            box = mailbox.mbox(self.path, factory=None, create=False)
        else:
            box = None  # type: ignore[assignment]
        try:
            for key in self._keys:
                if box is None:
                    yield f"{self.kind}:{key}", Path(key).read_bytes()
                else:
                    box_key: Any = int(key) if self.kind == "mbox" else key  # mbox keys are ints
                    yield f"{self.kind}:{self.path}#{key}", box.get_bytes(box_key)
        finally:
            if box is not None:
                box.close()


def _is_maildir(path: Path) -> bool:
    return path.is_dir() and (path / "cur").is_dir() and (path / "new").is_dir()


def _looks_like_mbox(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(5) == b"From "


def open_source(path: str | Path) -> MailSource:
    """Recognise what `path` is and list its mails (keys only; bytes are read while iterating)."""
    path = Path(path)
    if not path.exists():
        raise SourceError(f"{path} does not exist")
    if _is_maildir(path):
        box = mailbox.Maildir(path, factory=None, create=False)
        keys = tuple(sorted(k for k in box.keys() if not k.startswith(".")))  # noqa: SIM118 - keys, not mails; skip .gitkeep
        return MailSource("maildir", path, len(keys), keys)
    if path.is_dir():
        files = tuple(
            str(p) for p in sorted(path.rglob("*")) if p.is_file() and p.suffix.lower() in (".eml", ".msg822")
        )
        if not files:
            raise SourceError(f"{path} is a folder but neither a maildir (cur/, new/) nor holds .eml files")
        return MailSource("eml", path, len(files), files)
    if _looks_like_mbox(path):
        mbox = mailbox.mbox(path, factory=None, create=False)
        try:
            keys = tuple(str(k) for k in mbox.keys())  # noqa: SIM118 - iterating a mailbox yields mails
        finally:
            mbox.close()
        return MailSource("mbox", path, len(keys), keys)
    return MailSource("eml", path.parent, 1, (str(path),))


def batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of at most `size` items (itertools.batched arrives only in Python 3.12)."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
