"""Exactly-once ingestion from IMAP folders, on a ledger kept in the database.

For each (account, folder) the ledger holds UIDVALIDITY and the highest UID done, and
one row per server message (UID, Message-ID, sha256, outcome). Each mail's ledger rows
commit in the same transaction as its message (or its quarantine entry), so a crash
before the commit means the UID is fetched again and a crash after it means it is not.
Only after the commit is the mail marked on the server (\\Seen, a keyword, a move, or
nothing); a mark that fails is retried on the next pass and never re-imports the mail.
Nothing is ever deleted.

Under several workers (PostgreSQL) each folder is polled by the holder of its lease
(`triage.coordination.leases`, named `imap:<account>/<folder>`): every ledger commit fences on
the lease's generation in its own transaction, and the lease is renewed before each batch and
before marking. A worker that froze past its lease and woke up finds it changed hands: its
batch rolls back (LeaseLost) and it marks nothing; the new holder fetches those UIDs again.

Sizes are asked first (see `imap_fetch`): batches are bounded in bytes, and a mail over
`mail.max_size_bytes` is refused unread. Its header section is quarantined with the reason
in its batch's transaction, its ledger row says `oversize`, and it is never marked: it stays
in the mailbox as it was, for the liaison to see, and the ledger moves past it exactly once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import BrokenExecutor, CancelledError, Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from imapclient import IMAPClient
from imapclient.imapclient import SEEN
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from triage.config import ImapSettings
from triage.coordination.leases import Claim, LeaseLost
from triage.ingest.imap_fetch import BATCH_BYTES, PlannedBatch, fetch_planned, plan_batches, sized_uids
from triage.ingest.oversize import refusal_reason
from triage.ingest.parse_worker import PARSE_CHUNKS, Blobs, Prepared, parse_chunk_in_worker, start_parse_pool
from triage.ingest.parsed import ParsedMail
from triage.ingest.pipeline import IncomingMail, Ingestor, IngestOutcome, refuse_oversize
from triage.language import Detected
from triage.logging import bind_mailbox
from triage.observe.metrics import count_ingested
from triage.store.db import upsert_insert, utcnow
from triage.store.models import ImapFolderState, ImapLedgerEntry

log = structlog.get_logger(__name__)

MARK_SWEEP_LIMIT = 1000
OVERSIZE = "oversize"  # the ledger outcome of a mail refused unread; it is never marked


@dataclass
class FolderPass:
    """What one pass over one folder did; the runner logs it and `triage poll` prints it."""

    account: str
    folder: str
    uidvalidity: int = 0
    fetched: int = 0
    stored: int = 0
    duplicate: int = 0
    quarantined: int = 0  # refused oversize mails included: each has a quarantine entry
    refused: int = 0  # oversize: only the header was fetched, the mail left unmarked on the server
    vanished: int = 0
    marked: int = 0
    mark_errors: list[str] = field(default_factory=list)
    first_contact: str | None = None
    resynced_from: int | None = None
    seen_below: int = 0
    """UIDs below this were looked at (the SELECT's UIDNEXT, or past the highest UID the SEARCH found):
    a higher UIDNEXT when the runner goes into IDLE means mail came in after the SEARCH."""

    def count(self, status: str) -> None:
        setattr(self, status, getattr(self, status) + 1)


class ParsePool:
    """The poller's parse workers: started on first use, started afresh after one died.

    A worker killed under it (the OOM killer) breaks a ProcessPoolExecutor for good; the
    batch in hand is then parsed inline and the next pass gets a new pool.
    """

    def __init__(self, workers: int, account: str = "") -> None:
        self.workers = workers
        self._account = account
        self._executor: ProcessPoolExecutor | None = None
        self.starts = 0  # executors started
        self.restarts = 0  # executors dropped because a worker died

    def get(self) -> Executor:
        if self._executor is None:
            self._executor = start_parse_pool(self.workers)
            self.starts += 1
            log.info("imap.parse_pool", account=self._account, workers=self.workers)
        return self._executor

    def broken(self, exc: BaseException) -> None:
        """A submit or a result failed with BrokenExecutor: drop the pool; the next get() starts one."""
        log.warning("imap.parse_pool_broken", account=self._account, error=f"{type(exc).__name__}: {exc}")
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
            self.restarts += 1

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown()
            self._executor = None


@dataclass
class FetchedBatch:
    """UIDs, their raw bytes (None if expunged since the SEARCH, or refused) and their parsing in the pool;
    the refused ones' size and header section."""

    uids: Sequence[int]
    raws: list[bytes | None]
    parsing: list[tuple[list[int], Future[list[Prepared | RuntimeError]]]]
    refused: dict[int, tuple[int, bytes]] = field(default_factory=dict)

    @property
    def to_mark(self) -> list[int]:
        return [uid for uid in self.uids if uid not in self.refused]


class FolderPoller:
    """One pass at a time over the folders of one account, on a connection the caller opened."""

    def __init__(
        self,
        settings: ImapSettings,
        ingestor: Ingestor,
        sessions: sessionmaker[Session],
        *,
        clock: Callable[[], datetime] = utcnow,
        stop: threading.Event | None = None,
        parse_pool: ParsePool | None = None,
        batch_bytes: int = BATCH_BYTES,
        claims: Mapping[str, Claim] | None = None,
    ) -> None:
        self.settings = settings
        self.account = settings.name
        self._ingestor = ingestor
        self._sessions = sessions
        self._clock = clock
        self._stop = stop or threading.Event()
        self._pool = parse_pool
        self._max_size = ingestor.max_size
        self._batch_bytes = batch_bytes
        self._claims = claims if claims is not None else {}  # shared with the runner, which fills it

    # -- one pass ----------------------------------------------------------------------------

    def poll(self, client: IMAPClient, folders: Sequence[str] | None = None) -> list[FolderPass]:
        return [self.poll_folder(client, folder) for folder in (self.settings.folders if folders is None else folders)]

    def _keep(self, folder: str) -> None:
        """Renew the folder's lease when due; LeaseLost if another worker has it now."""
        claim = self._claims.get(folder)
        if claim is not None and not claim.hold():
            raise LeaseLost(claim.name, None)

    def _fence(self, session: Session, folder: str) -> None:
        claim = self._claims.get(folder)
        if claim is not None:
            claim.fence(session)

    def poll_folder(self, client: IMAPClient, folder: str) -> FolderPass:
        claim = self._claims.get(folder)
        with bind_mailbox(f"{self.account}/{folder}", None if claim is None else claim.generation):
            return self._poll_folder(client, folder)

    def _poll_folder(self, client: IMAPClient, folder: str) -> FolderPass:
        result = FolderPass(self.account, folder)
        selected = client.select_folder(folder)
        uidvalidity = int(selected[b"UIDVALIDITY"])
        uidnext = int(selected.get(b"UIDNEXT", 0)) or None
        result.uidvalidity = uidvalidity
        last_uid = self._position(client, folder, uidvalidity, uidnext, result)
        self._sweep_unmarked(client, folder, uidvalidity, result)
        pending = sorted(uid for uid in client.search(["UID", f"{last_uid + 1}:*"]) if uid > last_uid)
        result.seen_below = max(uidnext or 0, pending[-1] + 1 if pending else 0)
        # Batch n+1 is fetched, and handed to the parse pool, before batch n is stored: the pool
        # parses while this process stores. Fetching is a PEEK, so a crash here loses nothing;
        # batches still commit, and are marked, strictly in UID order.
        # A single batch gains nothing from the pool; a backfill or a busy morning does.
        pool = self._pool if self._pool is not None and len(pending) > self.settings.batch_size else None
        plans = plan_batches(
            sized_uids(client, pending), max_count=self.settings.batch_size, max_bytes=self._batch_bytes,
            max_size=self._max_size,
        )
        upcoming = self._fetch(client, plans, pool)
        current = next(upcoming, None)
        while current is not None:
            following = next(upcoming, None) if pool is not None else None
            self._keep(folder)
            self._ingest_batch(folder, uidvalidity, current, result)
            self._keep(folder)  # a worker that froze during the commit marks nothing
            self._mark(client, folder, uidvalidity, current.to_mark, result)
            if self._stop.is_set():
                break
            current = following if pool is not None else next(upcoming, None)
        else:
            self._read_through(folder)
        log.info(
            "imap.pass", account=self.account, folder=folder, fetched=result.fetched, stored=result.stored,
            duplicate=result.duplicate, quarantined=result.quarantined, refused=result.refused, marked=result.marked,
            mark_errors=len(result.mark_errors),
        )
        return result

    def _read_through(self, folder: str) -> None:
        """The folder was read to its end: its `last_pass_at`, which every worker's /metrics reports."""
        with self._sessions.begin() as session:
            session.execute(update(ImapFolderState)
                            .where(ImapFolderState.account == self.account, ImapFolderState.folder == folder)
                            .values(last_pass_at=self._clock()))

    # -- where we stand ----------------------------------------------------------------------

    def _position(
        self, client: IMAPClient, folder: str, uidvalidity: int, uidnext: int | None, result: FolderPass
    ) -> int:
        """The highest UID done, after first contact or a UIDVALIDITY change has been handled."""
        with self._sessions() as session:
            state = self._state(session, folder)
            if state is not None and state.uidvalidity == uidvalidity:
                return int(state.last_uid)
        if state is None:
            start_at = self._first_uid(client, self.settings.start, uidnext)
            now = self._clock()
            try:
                with self._sessions.begin() as session:
                    self._fence(session, folder)
                    session.add(ImapFolderState(
                        account=self.account, folder=folder, uidvalidity=uidvalidity, last_uid=start_at - 1,
                        first_contact_at=now, start_policy=self.settings.start, updated_at=now,
                    ))
            except IntegrityError:
                return self._position(client, folder, uidvalidity, uidnext, result)  # another poller won
            result.first_contact = self.settings.start
            log.info("imap.first_contact", account=self.account, folder=folder, policy=self.settings.start,
                     skipped_below_uid=start_at)
            return start_at - 1
        # UIDVALIDITY changed: every UID we knew is void. Start again from the mails that the
        # start policy covers; the pipeline recognises mails already stored by Message-ID and
        # sha256, so they are recorded in the ledger as duplicates, not stored again.
        policy = state.start_policy
        if policy == "now":
            since = state.first_contact_at.date()
            found = client.search(["SINCE", since])
            start_at = min(found) if found else (uidnext or 1)
        else:
            start_at = self._first_uid(client, policy, uidnext)
        with self._sessions.begin() as session:
            self._fence(session, folder)
            session.execute(
                update(ImapFolderState)
                .where(ImapFolderState.id == state.id, ImapFolderState.uidvalidity == state.uidvalidity)
                .values(uidvalidity=uidvalidity, last_uid=start_at - 1, updated_at=self._clock())
            )
        result.resynced_from = state.uidvalidity
        log.warning("imap.uidvalidity_changed", account=self.account, folder=folder, old=state.uidvalidity,
                    new=uidvalidity, rescan_from_uid=start_at)
        return start_at - 1

    def _first_uid(self, client: IMAPClient, policy: str, uidnext: int | None) -> int:
        if policy == "all":
            return 1
        if policy == "since":
            assert self.settings.since is not None
            found = client.search(["SINCE", self.settings.since])
            if found:
                return int(min(found))
        if uidnext:
            return uidnext
        existing = client.search(["ALL"])
        return int(max(existing)) + 1 if existing else 1

    def _state(self, session: Session, folder: str) -> ImapFolderState | None:
        return session.scalar(
            select(ImapFolderState).where(ImapFolderState.account == self.account, ImapFolderState.folder == folder)
        )

    # -- ingesting ---------------------------------------------------------------------------

    def _fetch(
        self, client: IMAPClient, plans: Iterable[PlannedBatch], pool: ParsePool | None
    ) -> Iterator[FetchedBatch]:
        """Each batch's raw mails, its parsing already under way in the pool when there is one."""
        for plan in plans:
            fetched = fetch_planned(client, plan)
            raws = fetched.raws
            chunks: list[tuple[list[int], Future[list[Prepared | RuntimeError]]]] = []
            if pool is not None:
                present = [i for i, raw in enumerate(raws) if raw is not None]
                size = max(1, -(-len(present) // PARSE_CHUNKS))
                try:
                    executor = pool.get()
                    for start in range(0, len(present), size):
                        positions = present[start:start + size]
                        chunks.append((positions, executor.submit(
                            parse_chunk_in_worker, [raws[i] for i in positions], self._max_size  # type: ignore[misc]
                        )))
                except BrokenExecutor as exc:  # the rest of this batch is parsed inline
                    pool.broken(exc)
            yield FetchedBatch(plan.uids, raws, chunks, fetched.refused)

    def _ingest_batch(self, folder: str, uidvalidity: int, batch: FetchedBatch, result: FolderPass) -> None:
        parsed: list[ParsedMail | BaseException | None] = [None] * len(batch.uids)
        encoded: list[Blobs | None] = [None] * len(batch.uids)
        detected: list[Detected | None] = [None] * len(batch.uids)
        for positions, future in batch.parsing:
            try:
                results = future.result()
            except (BrokenExecutor, CancelledError) as exc:  # a worker died: parsed inline, in the store step
                if self._pool is not None:
                    self._pool.broken(exc)
                continue
            for i, done in zip(positions, results, strict=True):
                if isinstance(done, BaseException):
                    parsed[i] = done
                else:
                    parsed[i], encoded[i], detected[i] = done
        incoming, uids, vanished = [], [], []
        for uid, raw, pre, blobs, language in zip(batch.uids, batch.raws, parsed, encoded, detected, strict=True):
            if uid in batch.refused:
                continue
            if raw is None:  # expunged between SEARCH and FETCH: nothing to keep, move past it
                vanished.append(uid)
                continue
            uids.append(uid)
            source = self._source(folder, uidvalidity, uid)
            incoming.append(IncomingMail(raw, source=source, parsed=pre, encoded=blobs, detected=language))
        result.fetched += len(incoming)
        result.vanished += len(vanished)
        reasons = {  # read from the header before the transaction, not while it holds the database
            uid: refusal_reason(head, size=size, limit=self._max_size) for uid, (size, head) in batch.refused.items()
        }

        def write_ledger(session: Session, outcomes: list[IngestOutcome]) -> None:
            self._fence(session, folder)  # first: a fenced-off worker's batch rolls back whole
            done: list[tuple[int, IngestOutcome | None, str]] = [
                (uid, outcome, outcome.status) for uid, outcome in zip(uids, outcomes, strict=True)
            ]
            done += [(uid, None, "vanished") for uid in vanished]
            for uid, (size, head) in batch.refused.items():
                done.append((uid, refuse_oversize(
                    session, head, size=size, limit=self._max_size, source=self._source(folder, uidvalidity, uid),
                    now=self._clock(), reason=reasons[uid],
                ), OVERSIZE))
            if done:
                self._write_ledger(session, folder, uidvalidity, done)

        for outcome in self._ingestor.ingest_many(incoming, after=write_ledger):
            result.count(outcome.status)
            count_ingested(self.account, folder, outcome.status)
        for uid, (size, _) in batch.refused.items():  # committed: count and say so
            result.fetched += 1
            result.quarantined += 1
            result.refused += 1
            count_ingested(self.account, folder, "quarantined")
            log.warning("imap.refused_oversize", account=self.account, folder=folder, uid=uid, size=size,
                        limit=self._max_size)

    def _source(self, folder: str, uidvalidity: int, uid: int) -> str:
        return f"imap:{self.account}/{folder};UIDVALIDITY={uidvalidity};UID={uid}"

    def _write_ledger(
        self, session: Session, folder: str, uidvalidity: int, done: list[tuple[int, IngestOutcome | None, str]]
    ) -> None:
        """Ledger rows and the folder position, in the transaction that stored the mails.

        ON CONFLICT DO NOTHING: a second poller racing on the same UIDs leaves the first's rows.
        """
        now = self._clock()
        dialect_insert = upsert_insert(session)
        session.execute(
            dialect_insert(ImapLedgerEntry).on_conflict_do_nothing(
                index_elements=["account", "folder", "uidvalidity", "uid"]
            ),
            [
                {
                    "account": self.account, "folder": folder, "uidvalidity": uidvalidity, "uid": uid,
                    "message_id": outcome.message_id if outcome else None,
                    "raw_sha256": outcome.raw_sha256 if outcome else None,
                    "outcome": status,
                    "message_pk": outcome.message_pk if outcome else None,
                    "seen_at": now, "marked_at": None,
                }
                for uid, outcome, status in done
            ],
        )
        session.execute(
            update(ImapFolderState)
            .where(
                ImapFolderState.account == self.account, ImapFolderState.folder == folder,
                ImapFolderState.uidvalidity == uidvalidity, ImapFolderState.last_uid < max(u for u, _, _ in done),
            )
            .values(last_uid=max(u for u, _, _ in done), updated_at=now)
        )

    # -- marking on the server, after the commit ----------------------------------------------

    def _mark(self, client: IMAPClient, folder: str, uidvalidity: int, uids: list[int], result: FolderPass) -> None:
        mode = self.settings.mark
        if mode == "none" or not uids:
            return
        try:
            if mode == "seen":
                client.add_flags(uids, [SEEN], silent=True)
            elif mode == "keyword":
                client.add_flags(uids, [self.settings.keyword.encode()], silent=True)
            else:
                self._move(client, uids)
        except Exception as exc:  # noqa: BLE001 - the mail is safely stored; marking is retried next pass
            message = f"{type(exc).__name__}: {exc}"
            result.mark_errors.append(message)
            log.warning("imap.mark_failed", account=self.account, folder=folder, mode=mode, count=len(uids),
                        error=message)
            if mode == "move":
                client.select_folder(folder)  # a failed MOVE must not leave us elsewhere
            return
        with self._sessions.begin() as session:
            session.execute(
                update(ImapLedgerEntry)
                .where(
                    ImapLedgerEntry.account == self.account, ImapLedgerEntry.folder == folder,
                    ImapLedgerEntry.uidvalidity == uidvalidity, ImapLedgerEntry.uid.in_(uids),
                    ImapLedgerEntry.marked_at.is_(None),
                )
                .values(marked_at=self._clock())
            )
        result.marked += len(uids)

    def _move(self, client: IMAPClient, uids: list[int]) -> None:
        capabilities = client.capabilities()
        if b"MOVE" in capabilities:
            client.move(uids, self.settings.move_to)
        elif b"UIDPLUS" in capabilities:
            client.copy(uids, self.settings.move_to)
            client.delete_messages(uids, silent=True)
            client.uid_expunge(uids)  # only these UIDs: a plain EXPUNGE could remove others' deletions
        else:
            raise RuntimeError("the server offers neither MOVE nor UIDPLUS; use mark = seen or keyword")

    def _sweep_unmarked(self, client: IMAPClient, folder: str, uidvalidity: int, result: FolderPass) -> None:
        """Mark mails whose marking failed after their commit in an earlier pass."""
        if self.settings.mark == "none":
            return
        self._keep(folder)
        with self._sessions() as session:
            uids = list(session.scalars(
                select(ImapLedgerEntry.uid).where(
                    ImapLedgerEntry.account == self.account, ImapLedgerEntry.folder == folder,
                    ImapLedgerEntry.uidvalidity == uidvalidity, ImapLedgerEntry.marked_at.is_(None),
                    ImapLedgerEntry.outcome.not_in(("vanished", OVERSIZE)),
                ).order_by(ImapLedgerEntry.uid).limit(MARK_SWEEP_LIMIT)
            ))
        if uids:
            self._mark(client, folder, uidvalidity, [int(u) for u in uids], result)
