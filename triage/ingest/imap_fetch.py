"""What the poller fetches, and how much at a time: sizes first, batches bounded in bytes.

Before any mail is fetched, the server is asked for the RFC822.SIZE of the pending UIDs. A
batch then holds at most `batch_size` mails and at most `batch_bytes` of them (a single mail
larger than that, but within the limit, goes alone), so memory follows the largest mail, not
the batch. A mail over `mail.max_size_bytes` is never fetched whole: only the first HEAD_CAP
bytes of its header section, which the poller quarantines with the reason.

The server's RFC822.SIZE is trusted: the IMAP server is ours, the mail in it is not.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from imapclient import IMAPClient

from triage.ingest.oversize import HEAD_CAP
from triage.ingest.sources import BATCH_BYTES, batches

SIZE_QUERY_UIDS = 1000  # UIDs per RFC822.SIZE query (a command line stays well under 64 kB)
WHOLE = "BODY.PEEK[]"
HEAD = f"BODY.PEEK[HEADER]<0.{HEAD_CAP}>"
_WHOLE_KEY = b"BODY[]"
_HEAD_KEY = b"BODY[HEADER]<0>"


@dataclass(frozen=True)
class PlannedBatch:
    """Consecutive UIDs: those to fetch whole, those refused (UID -> size); the rest have vanished."""

    uids: tuple[int, ...]
    whole: tuple[int, ...] = ()
    refused: dict[int, int] = field(default_factory=dict)


def plan_batches(
    sized: Iterable[tuple[int, int | None]], *, max_count: int, max_bytes: int, max_size: int
) -> Iterator[PlannedBatch]:
    """Split (UID, size or None if expunged) in UID order into batches bounded in count and bytes."""

    def cost(item: tuple[int, int | None]) -> int:
        size = item[1]
        return 0 if size is None else (size if size <= max_size else HEAD_CAP)

    for group in batches(sized, max_count, max_bytes=max_bytes, weight=cost):
        yield PlannedBatch(
            tuple(uid for uid, _ in group),
            tuple(uid for uid, size in group if size is not None and size <= max_size),
            {uid: size for uid, size in group if size is not None and size > max_size},
        )


def sized_uids(client: IMAPClient, uids: Sequence[int]) -> Iterator[tuple[int, int | None]]:
    """Each UID with its RFC822.SIZE, asked a chunk at a time as the batches need them."""
    for chunk in batches(uids, SIZE_QUERY_UIDS):
        answer: dict[int, dict[bytes, Any]] = client.fetch(chunk, ["RFC822.SIZE"])
        for uid in chunk:
            size = answer.get(uid, {}).get(b"RFC822.SIZE")
            yield uid, None if size is None else int(size)


@dataclass
class FetchedMails:
    """One planned batch fetched: raw bytes per UID (None: vanished or refused), refused UID -> (size, head)."""

    raws: list[bytes | None]
    refused: dict[int, tuple[int, bytes]]


def fetch_planned(client: IMAPClient, plan: PlannedBatch) -> FetchedMails:
    """The whole mails and the refused mails' header sections of one batch, two FETCHes at most."""
    whole: dict[int, dict[bytes, Any]] = client.fetch(list(plan.whole), [WHOLE]) if plan.whole else {}
    raws = [whole.get(uid, {}).get(_WHOLE_KEY) if uid not in plan.refused else None for uid in plan.uids]
    del whole
    refused: dict[int, tuple[int, bytes]] = {}
    if plan.refused:
        heads: dict[int, dict[bytes, Any]] = client.fetch(list(plan.refused), [HEAD])
        for uid, size in plan.refused.items():
            head = heads.get(uid, {}).get(_HEAD_KEY)
            if head is not None:  # else expunged since the size query: it has vanished
                refused[uid] = (size, bytes(head))
    return FetchedMails(raws, refused)


__all__ = ["BATCH_BYTES", "FetchedMails", "PlannedBatch", "fetch_planned", "plan_batches", "sized_uids"]
