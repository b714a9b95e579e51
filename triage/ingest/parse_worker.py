"""The parse worker processes of the IMAP poller: light on purpose.

A worker is spawned, not forked (the worker process runs its runners in threads, and a child
forked while another thread holds a lock can hang on it; nor should it inherit the poller's
sockets and files), so it imports what it needs afresh: the parser, the blob codec and the
language detector, not the database layer.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor

from triage.ingest.parse import parse_mail
from triage.ingest.parsed import ParsedMail
from triage.language import Detected, mail_language
from triage.store.codec import encode, sha256_hex

# A batch goes to the pool in this many chunks: enough to keep every worker busy, few
# enough that the per-task round trip stays small next to the parsing.
PARSE_CHUNKS = 4


Blobs = dict[str, tuple[str, bytes]]


def start_parse_pool(workers: int) -> ProcessPoolExecutor:
    """Parse worker processes, spawned, that exit when the process that started them is gone."""
    context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(workers, mp_context=context, initializer=_exit_with_parent)


def _exit_with_parent(every: float = 1.0) -> None:
    """A pool worker waits for work on a pipe and would outlive a poller killed with SIGKILL
    (cron's timeout, the OOM killer) for ever, holding its memory: a watcher thread ends it
    when its parent is gone."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def encode_blobs(raw: bytes, digest: str, parsed: ParsedMail) -> Blobs:
    """The blobs one mail will store, compressed: a parse worker calls this so the storing
    process does not have to (compression is a fifth of its time)."""
    out = {digest: encode(raw)}
    for part in parsed.attachments:
        if part.sha256 not in out:
            out[part.sha256] = encode(part.content)
    return out


def detect_language(parsed: ParsedMail) -> Detected | None:
    """The language of a mail that may open a ticket, detected where it is parsed, so that the
    store does not detect it inside its transaction (0.1-1 ms a mail); None for a bounce or an
    automatic reply, which the store detects itself in the rare case it opens a ticket."""
    if parsed.kind != "normal":
        return None
    return Detected(mail_language(parsed.subject, parsed.new_text or parsed.body_text))


Prepared = tuple[ParsedMail, Blobs, Detected | None]


def parse_chunk_in_worker(raws: list[bytes], max_size: int) -> list[Prepared | RuntimeError]:
    """Runs in a pool process: parses, compresses the blobs the store will write and detects the
    language of a mail that may open a ticket.

    Any failure comes back as a value, to be quarantined in order.
    """
    out: list[Prepared | RuntimeError] = []
    for raw in raws:
        try:
            parsed = parse_mail(raw, max_size=max_size)
            out.append((parsed, encode_blobs(raw, sha256_hex(raw), parsed), detect_language(parsed)))
        except Exception as exc:  # noqa: BLE001 - returned, then quarantined by the parent
            out.append(RuntimeError(f"{type(exc).__name__}: {exc}"))
    return out


__all__ = ["PARSE_CHUNKS", "Blobs", "Prepared", "detect_language", "encode_blobs", "parse_chunk_in_worker",
           "start_parse_pool"]
