"""Local mail sources for backfills: a maildir, an mbox file, a folder of .eml files, one file.

Each yields one mail at a time, so memory stays flat however large the source is. The label
names the mail's place in its source for the log and for quarantine, so an operator can find
it again.

Nothing inside a source is read through a symlink. The path given may itself be one: it is
the operator's own choice, resolved once when the source is opened. Below it, each folder and
file is opened with O_NOFOLLOW relative to its already-open parent and checked on the open
descriptor (a regular file, its size) before a byte is read, so neither a link planted in the
folder nor a file swapped for one after the listing can put another file's content into the
desk. Such entries are skipped with a logged reason and counted in `skipped`.

Sizes are known before reading (fstat; an mbox message's offsets), and a mail over the limit
is not read whole: only its header section (see `triage.ingest.oversize`). An mbox is split
while streaming, a bounded piece of a line at a time: no message or line is read whole to
find where the next one starts.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TypeVar

import structlog

from triage.ingest.oversize import HEAD_CAP, header_section

T = TypeVar("T")
log = structlog.get_logger(__name__)

DEFAULT_MAX_SIZE = 25 * 1024 * 1024  # mail.max_size_bytes' default; callers pass the configured one
MAIL_SUFFIXES = (".eml", ".msg822")
SYMLINK = "symlink, not followed"
NOT_A_FILE = "not a regular file"
VANISHED = "gone since it was listed"
OVERSIZE = "over mail.max_size_bytes, not read"
BATCH_BYTES = 16 * 1024 * 1024  # mails held at once by a caller that batches a source (see `batches`)
LINE_PIECE = 64 * 1024  # an mbox is scanned in pieces of lines at most this long
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # NONBLOCK: a FIFO must not hang us


class SourceError(Exception):
    """The path is not a mail source we can read; the message says what was expected."""


@dataclass(frozen=True, slots=True)
class SourceMail:
    """One mail of a source: whole, or only its header section when it is over the limit."""

    label: str
    raw: bytes
    size: int
    oversize: bool = False


@dataclass(frozen=True, slots=True)
class Skipped:
    """An entry of a source that was not read, and why."""

    label: str
    reason: str


def _identity(info: os.stat_result) -> tuple[int, int]:
    return info.st_dev, info.st_ino


def read_limited(handle: BinaryIO, label: str, size: int, max_size: int, *, to_end: bool = True) -> SourceMail:
    """Read a mail of `size` bytes from `handle`, or only its header section if it is over `max_size`.

    `to_end`: the mail runs to the end of the file, which may have grown since its size was taken.
    """
    if size > max_size:
        return SourceMail(label, header_section(handle.read(min(size, HEAD_CAP))), size, oversize=True)
    if not to_end:
        return SourceMail(label, handle.read(size), size)
    raw = handle.read(size + 1)  # not max_size + 1: read() allocates what it is asked for
    if len(raw) > size:  # it grew after the size was taken
        raw += handle.read(max_size + 1 - len(raw))
        if len(raw) > max_size:
            return SourceMail(label, header_section(raw), len(raw), oversize=True)
    return SourceMail(label, raw, len(raw))


def read_mail_at(dir_fd: int, name: str, *, label: str, max_size: int) -> SourceMail | Skipped:
    """The file `name` in the open folder `dir_fd`: never through a symlink, never more than the limit."""
    try:
        mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode  # no open() on a device or FIFO
        if not stat.S_ISREG(mode):
            return _skip(label, SYMLINK if stat.S_ISLNK(mode) else NOT_A_FILE)
        fd = os.open(name, _FILE, dir_fd=dir_fd)
    except OSError as exc:
        return _skip(label, _why(exc))
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):  # swapped since the check above
            return _skip(label, NOT_A_FILE)
        return read_limited(handle, label, info.st_size, max_size)


def open_beneath(root_fd: int, folders: Iterable[str]) -> int:
    """A descriptor for the folder `root/folders...`, each step opened with O_NOFOLLOW (the caller closes it)."""
    fd = os.dup(root_fd)
    try:
        for name in folders:
            try:
                child = os.open(name, _DIR, dir_fd=fd)
            except NotADirectoryError:  # what O_DIRECTORY answers first, also for a symlink
                if stat.S_ISLNK(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), name) from None
                raise
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _why(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return SYMLINK
    if exc.errno == errno.ENOENT:
        return VANISHED
    if exc.errno in (errno.ENOTDIR, errno.ENXIO):
        return NOT_A_FILE
    return f"unreadable: {exc.strerror}"


def _skip(label: str, reason: str) -> Skipped:
    log.warning("source.skipped", source=label, reason=reason)
    return Skipped(label, reason)


@dataclass(frozen=True)
class MailSource:
    """A source opened and listed: `read()` yields its mails, `skipped` says what was left out."""

    kind: str
    path: Path  # as the operator gave it; labels use it
    count: int
    _keys: tuple[str, ...]  # maildir, eml: paths below `_root`; mbox: "start:stop" byte offsets
    _root: str = ""  # the resolved folder (maildir, eml) or file (mbox)
    _identity: tuple[int, int] = (0, 0)
    max_size: int = DEFAULT_MAX_SIZE
    skipped: list[Skipped] = field(default_factory=list, compare=False)
    single: bool = False  # one file given: the label is the path itself

    def read(self) -> Iterator[SourceMail]:
        """Every mail, in a stable order; an oversize one as its header section only."""
        if self.kind == "mbox":
            yield from self._read_mbox()
            return
        root = self._open_root(_DIR)
        try:
            for key in self._keys:
                *folders, name = key.split("/")
                try:
                    parent = open_beneath(root, folders)
                except OSError as exc:
                    self.skipped.append(_skip(self._label(key), _why(exc)))
                    continue
                try:
                    done = read_mail_at(parent, name, label=self._label(key), max_size=self.max_size)
                finally:
                    os.close(parent)
                if isinstance(done, Skipped):
                    self.skipped.append(done)
                else:
                    yield done
        finally:
            os.close(root)

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        """(label, raw bytes) of each mail within the limit; an oversize one is skipped, with its reason."""
        for mail in self.read():
            if mail.oversize:
                self.skipped.append(_skip(mail.label, OVERSIZE))
            else:
                yield mail.label, mail.raw

    def _label(self, key: str) -> str:
        if self.kind == "maildir":
            return f"maildir:{self.path}#{key.split('/')[-1].split(':')[0]}"
        if self.kind == "mbox":
            return f"mbox:{self.path}#{key}"
        return f"eml:{self.path if self.single else self.path / key}"

    def _open_root(self, flags: int) -> int:
        """The listed folder or mbox again, never through a link, and checked to be the same (device, inode).
        An inode number reused by a replacement escapes that check; what keeps other files out is O_NOFOLLOW."""
        try:
            fd = os.open(self._root, flags)
        except OSError as exc:
            raise SourceError(f"{self.path} was replaced since it was opened ({_why(exc)}); open it again") from None
        if _identity(os.fstat(fd)) != self._identity:
            os.close(fd)
            raise SourceError(f"{self.path} was replaced since it was opened; open it again")
        return fd

    def _read_mbox(self) -> Iterator[SourceMail]:
        with os.fdopen(self._open_root(_FILE), "rb") as handle:
            for index, span in enumerate(self._keys):
                start, stop = (int(n) for n in span.split(":"))
                handle.seek(start)
                yield read_limited(handle, self._label(str(index)), stop - start, self.max_size, to_end=False)


def _mbox_spans(handle: BinaryIO) -> list[str]:
    """Where each message of an mbox lies ("start:stop", its From_ line and the blank line before the
    next one left out, as the standard library's mailbox.mbox does), found reading pieces of lines."""
    spans: list[str] = []
    start: int | None = None
    in_from_line = False
    pos = 0
    line_start = True
    blank_before = 0  # 1 if the line just read was blank
    while piece := handle.readline(LINE_PIECE):
        if line_start and piece.startswith(b"From "):
            if start is not None:
                spans.append(f"{start}:{pos - blank_before}")
            start, in_from_line = None, True
        pos += len(piece)
        ends_line = piece.endswith(b"\n")
        blank_before = 1 if line_start and piece == b"\n" else 0
        if in_from_line and ends_line:
            start, in_from_line = pos, False
        line_start = ends_line
    if start is not None:
        spans.append(f"{start}:{pos - blank_before}")
    return spans


def _list_maildir(root: int, display: Path, skipped: list[Skipped]) -> list[str]:
    keys: list[tuple[str, str]] = []
    for sub in ("cur", "new"):
        fd = open_beneath(root, [sub])
        try:
            with os.scandir(fd) as entries:
                for entry in entries:
                    if entry.name.startswith("."):
                        continue  # .gitkeep and the like
                    rel = f"{sub}/{entry.name}"
                    label = f"maildir:{display}#{entry.name.split(':')[0]}"
                    if entry.is_symlink():
                        skipped.append(_skip(label, SYMLINK))
                    elif not entry.is_file(follow_symlinks=False):
                        skipped.append(_skip(label, NOT_A_FILE))
                    else:
                        keys.append((entry.name.split(":")[0], rel))
        finally:
            os.close(fd)
    return [rel for _, rel in sorted(keys)]


def _list_eml(root: int, display: Path, skipped: list[Skipped], below: str = "") -> list[str]:
    """Mail files in the folder and its subfolders; a symlinked subfolder is not entered."""
    found: list[str] = []
    with os.scandir(root) as entries:
        listed = sorted(entries, key=lambda e: e.name)
    for entry in listed:
        rel = f"{below}{entry.name}"
        is_mail = entry.name.lower().endswith(MAIL_SUFFIXES)
        if entry.is_symlink():
            if is_mail:
                skipped.append(_skip(f"eml:{display / rel}", SYMLINK))
        elif entry.is_dir(follow_symlinks=False):
            try:
                sub = open_beneath(root, [entry.name])
            except OSError as exc:
                skipped.append(_skip(f"eml:{display / rel}", _why(exc)))
                continue
            try:
                found += _list_eml(sub, display, skipped, f"{rel}/")
            finally:
                os.close(sub)
        elif is_mail:
            if entry.is_file(follow_symlinks=False):
                found.append(rel)
            else:
                skipped.append(_skip(f"eml:{display / rel}", NOT_A_FILE))
    return found


def _is_maildir(root: int) -> bool:
    try:
        return all(stat.S_ISDIR(os.stat(sub, dir_fd=root, follow_symlinks=False).st_mode) for sub in ("cur", "new"))
    except FileNotFoundError:
        return False


def open_source(path: str | Path, *, max_size: int = DEFAULT_MAX_SIZE) -> MailSource:
    """Recognise what `path` is and list its mails (names and offsets only; bytes are read by `read()`)."""
    display = Path(path)
    if not os.path.lexists(display) or not display.exists():
        raise SourceError(f"{display} does not exist")
    real = os.path.realpath(display)  # the operator's own path may be a link: resolved here, once
    skipped: list[Skipped] = []
    if os.path.isdir(real):
        root = os.open(real, _DIR)
        try:
            identity = _identity(os.fstat(root))
            if _is_maildir(root):
                keys = _list_maildir(root, display, skipped)
                return MailSource("maildir", display, len(keys), tuple(keys), real, identity, max_size, skipped)
            files = _list_eml(root, display, skipped)
        finally:
            os.close(root)
        if not files:
            raise SourceError(f"{display} is a folder but neither a maildir (cur/, new/) nor holds .eml files")
        return MailSource("eml", display, len(files), tuple(files), real, identity, max_size, skipped)
    try:
        fd = os.open(real, _FILE)
    except OSError as exc:
        raise SourceError(f"{display}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SourceError(f"{display} is neither a folder nor a regular file")
        if handle.read(5) == b"From ":
            handle.seek(0)
            spans = _mbox_spans(handle)
            return MailSource("mbox", display, len(spans), tuple(spans), real, _identity(info), max_size, skipped)
    parent = os.path.dirname(real)
    identity = _identity(os.stat(parent))
    return MailSource("eml", display, 1, (os.path.basename(real),), parent, identity, max_size, skipped, single=True)


def batches(
    items: Iterable[T], size: int, *, max_bytes: int | None = None, weight: Callable[[T], int] = lambda _: 0
) -> Iterator[list[T]]:
    """Consecutive lists of at most `size` items and, with `max_bytes`, of at most that total `weight`
    (an item heavier than that on its own goes alone)."""
    batch: list[T] = []
    load = 0
    for item in items:
        heavy = weight(item) if max_bytes is not None else 0
        if batch and max_bytes is not None and load + heavy > max_bytes:
            yield batch
            batch, load = [], 0
        batch.append(item)
        load += heavy
        if len(batch) == size:
            yield batch
            batch, load = [], 0
    if batch:
        yield batch
