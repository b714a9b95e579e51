"""Raw bytes in, stored messages out: parse, thread, store, a batch per transaction.

The one writer is `triage.ingest.store_batch`: a batch is stored by it whole, and when that
fails, mail by mail as batches of one, so each threading and status rule is written once.
`Ingestor.ingest_many` is the whole use case: it commits (with the caller's own bookkeeping,
such as the IMAP ledger, in the same transaction), turns a lost race into "duplicate", and
quarantines anything that fails, so one bad mail never stops the mails behind it.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from triage.config import MailSettings
from triage.ingest import oversize
from triage.ingest.parse import parse_mail
from triage.ingest.parsed import ParsedMail
from triage.ingest.store_batch import StoredMail, store_batch
from triage.ingest.threading import StaffPath
from triage.language import Detected
from triage.privacy.fingerprint import ERASED_REASON, erased_message_id
from triage.store.blobs import get_blob, put_blob, sha256_hex
from triage.store.db import utcnow
from triage.store.models import Quarantine

if TYPE_CHECKING:
    from triage.outbox.wiring import Wiring

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    status: Literal["stored", "duplicate", "quarantined"]
    reason: str
    ticket_reference: str | None = None
    message_pk: int | None = None
    raw_sha256: str | None = None
    message_id: str | None = None
    staff: StaffPath | None = None  # the team's mail on its ticket: a reply to relay, or an internal note

    @classmethod
    def of(cls, stored: StoredMail, digest: str, parsed: ParsedMail) -> IngestOutcome:
        message_id = parsed.message_id
        if message_id and stored.reason == ERASED_REASON:  # the IMAP ledger keeps no more of it than messages do
            message_id = erased_message_id(message_id)
        return cls(stored.status, stored.reason, stored.ticket_reference, stored.message_pk, digest, message_id,
                   stored.staff)


def quarantine(
    session: Session, raw: bytes, *, stage: str, error: str, source: str | None, now: datetime
) -> str:
    """Keep the raw bytes and the reason; a second failure of the same bytes only counts an attempt."""
    digest = put_blob(session, raw)
    row = session.scalar(select(Quarantine).where(Quarantine.raw_sha256 == digest))
    if row is None:
        session.add(
            Quarantine(
                raw_sha256=digest, source=source, stage=stage, error=error,
                attempts=1, created_at=now, updated_at=now,
            )
        )
    else:
        row.attempts += 1
        row.error, row.stage, row.updated_at, row.released_at = error, stage, now, None
    return digest


def refuse_oversize(
    session: Session, head: bytes, *, size: int, limit: int, source: str | None, now: datetime,
    reason: str | None = None,
) -> IngestOutcome:
    """A mail over the limit, refused unread: its header section is quarantined with the reason
    (stage `oversize`), in the caller's transaction. No message, no ticket, no acknowledgment.
    `reason`: `oversize.refusal_reason`, when the caller worked it out before its transaction."""
    reason = reason or oversize.refusal_reason(head, size=size, limit=limit)
    digest = quarantine(
        session, oversize.header_section(head), stage=oversize.STAGE, error=reason, source=source, now=now
    )
    return IngestOutcome("quarantined", reason, raw_sha256=digest)


def _short_error(exc: BaseException) -> str:
    """A one-line reason that names the error and where it arose, never the mail's content.

    A database error's own text carries the statement's parameters (bodies included), so
    only the driver's message is kept.
    """
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" at {last[0].filename.rsplit('/', 1)[-1]}:{last[0].lineno}" if last else ""
    if isinstance(exc, StatementError) and exc.orig is not None:
        first_line = str(exc.orig).splitlines()[0] if str(exc.orig) else ""
        return f"{type(exc).__name__} ({type(exc.orig).__name__}: {first_line}){where}"
    return f"{type(exc).__name__}: {exc}{where}"


def _reason_kind(reason: str) -> str:
    """The first word of a quarantine reason (the error's type, or 'refused'): what a log line may
    carry. The rest can quote the mail (an exception's message, the refused mail's subject), and
    is kept for the liaison in the quarantine row."""
    return reason.split(None, 1)[0].rstrip(":") if reason.strip() else "error"


@dataclass(frozen=True, slots=True)
class IncomingMail:
    """One mail to ingest; `parsed` if it was parsed elsewhere (an exception there: quarantine)."""

    raw: bytes
    source: str | None = None
    parsed: ParsedMail | BaseException | None = None
    encoded: Mapping[str, tuple[str, bytes]] | None = None  # its blobs, compressed where it was parsed
    detected: Detected | None = None  # its language, detected where it was parsed


AfterBatch = Callable[[Session, list[IngestOutcome]], None]


class Ingestor:
    """Ingest raw mails, a batch per transaction.

    The batch is first stored set-based (`store_batch`, a fixed number of statements). If
    that fails, its savepoint is rolled back and each mail is stored as a batch of one in a
    savepoint of its own, so the mail at fault is quarantined in the same transaction and the
    others go on. `after` runs in the transaction with the outcomes, so a caller's own
    bookkeeping (the IMAP ledger) commits or rolls back with the mails.

    `outbox`: the App's outbox wiring, for the acknowledgments of new tickets (with this
    ingestor's own mail settings) and the teams whose staff answer by mail (their replies are
    relayed to the volunteer). Without it nothing is acknowledged and nobody is staff.
    `App.ingestor()` passes a function that returns the App's current wiring, read at each
    batch, so a long-running poller follows an edited teams file.
    """

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        settings: MailSettings,
        *,
        clock: Callable[[], datetime] = utcnow,
        parser: Callable[..., ParsedMail] = parse_mail,
        set_based: bool = True,
        outbox: Wiring | Callable[[], Wiring] | None = None,
    ) -> None:
        self._set_based = set_based
        self._outbox_source = outbox
        self.fallbacks = 0  # batches redone mail by mail; a test holds the fast path to zero on clean mail
        self._sessions = session_factory
        self._settings = settings
        self._clock = clock
        self._parse = parser

    @property
    def sessions(self) -> sessionmaker[Session]:
        return self._sessions

    def _outbox(self) -> Wiring | None:
        """The outbox wiring as it is now, with this ingestor's mail settings."""
        source = self._outbox_source
        wiring = source() if callable(source) else source
        return wiring.with_mail(self._settings) if wiring is not None else None

    def _staff(self) -> dict[str, frozenset[str]]:
        """Each team's addresses (the teams of the current wiring): their mail on their ticket is the staff's."""
        wiring = self._outbox()
        return {key: team.addresses for key, team in wiring.teams.items()} if wiring is not None else {}

    @property
    def max_size(self) -> int:
        return self._settings.max_size_bytes

    def parse(self, raw: bytes) -> ParsedMail:
        return self._parse(raw, max_size=self._settings.max_size_bytes)

    def refuse(self, head: bytes, *, size: int, source: str | None = None) -> IngestOutcome:
        """Quarantine an oversize mail's header section, in its own transaction (see `refuse_oversize`)."""
        reason = oversize.refusal_reason(head, size=size, limit=self.max_size)
        with self._sessions.begin() as session:
            outcome = refuse_oversize(
                session, head, size=size, limit=self.max_size, source=source, now=self._clock(), reason=reason
            )
        log.warning("mail.refused_oversize", size=size, limit=self.max_size, source=source)
        return outcome

    def ingest(self, raw: bytes, *, source: str | None = None) -> IngestOutcome:
        """Store one mail (or quarantine it) in its own transaction and return what happened."""
        return self.ingest_many([IncomingMail(raw, source)])[0]

    def ingest_many(self, mails: Sequence[IncomingMail], *, after: AfterBatch | None = None) -> list[IngestOutcome]:
        """Store a batch in one transaction; if the commit fails, nothing of the batch is kept."""
        prepared: list[tuple[IncomingMail, str, ParsedMail | BaseException]] = []
        for mail in mails:
            parsed = mail.parsed
            if len(mail.raw) > self.max_size:  # sources refuse these unread; one handed over whole is kept raw
                parsed = oversize.OversizeMail(
                    f"{len(mail.raw)} bytes, over mail.max_size_bytes = {self.max_size}: kept raw, not stored"
                )
            if parsed is None:
                try:
                    parsed = self.parse(mail.raw)
                except Exception as exc:  # noqa: BLE001 - any parse failure is quarantined, never raised
                    parsed = exc
            prepared.append((mail, sha256_hex(mail.raw), parsed))
        with self._sessions.begin() as session:
            outcomes = self._store_set_based(session, prepared) if self._set_based else None
            if outcomes is None:
                outcomes = [self._store_one(session, mail, digest, parsed) for mail, digest, parsed in prepared]
            # -- outbox hooks (issue 5), in this transaction: bounces of our mail, acknowledgments of new tickets
            from triage.outbox.bounces import handle_bounces
            from triage.outbox.queue import acknowledge_new_tickets, relay_staff_replies

            handle_bounces(session, [parsed for _, _, parsed in prepared], outcomes, now=self._clock())
            outbox = self._outbox()
            if outbox is not None:
                acknowledge_new_tickets(session, outcomes, now=self._clock(), wiring=outbox)
                relay_staff_replies(session, outcomes, now=self._clock(), wiring=outbox)
            # -- end outbox hooks
            if after is not None:
                after(session, outcomes)
        for (mail, digest, _), outcome in zip(prepared, outcomes, strict=True):
            if outcome.status == "quarantined":
                log.warning("mail.quarantined", error=_reason_kind(outcome.reason), sha256=digest[:12],
                            source=mail.source)
            else:
                log.debug("mail.ingested", status=outcome.status, ticket=outcome.ticket_reference,
                          sha256=digest[:12], source=mail.source)
        return outcomes

    def _store_set_based(
        self, session: Session, prepared: list[tuple[IncomingMail, str, ParsedMail | BaseException]]
    ) -> list[IngestOutcome] | None:
        good = [(m.raw, d, p, m.source) for m, d, p in prepared if not isinstance(p, BaseException)]
        savepoint = session.begin_nested()
        try:
            encoded = {sha: blob for m, _, _ in prepared if m.encoded for sha, blob in m.encoded.items()}
            detected = {digest: m.detected for m, digest, _ in prepared if m.detected is not None}
            stored = iter(store_batch(session, good, settings=self._settings, now=self._clock(), encoded=encoded,
                                      detected=detected, staff=self._staff()))
            outcomes = []
            for mail, digest, parsed in prepared:
                if isinstance(parsed, BaseException):
                    outcomes.append(self._quarantine_in(session, mail, digest, "parse", _short_error(parsed)))
                    continue
                outcomes.append(IngestOutcome.of(next(stored), digest, parsed))
            session.flush()
            savepoint.commit()
            return outcomes
        except Exception as exc:  # noqa: BLE001 - mail by mail, the mail at fault is found and isolated
            savepoint.rollback()
            self.fallbacks += 1
            log.info("ingest.batch_fallback", mails=len(prepared), error=type(exc).__name__)
            return None

    def _store_one(
        self, session: Session, mail: IncomingMail, digest: str, parsed: ParsedMail | BaseException
    ) -> IngestOutcome:
        if isinstance(parsed, BaseException):
            return self._quarantine_in(session, mail, digest, "parse", _short_error(parsed))
        error = ""
        for attempt in range(2):
            savepoint = session.begin_nested()
            try:
                [stored] = store_batch(session, [(mail.raw, digest, parsed, mail.source)], settings=self._settings,
                                       now=self._clock(), encoded=mail.encoded, staff=self._staff(),
                                       detected={digest: mail.detected} if mail.detected is not None else None)
                session.flush()
                savepoint.commit()
                return IngestOutcome.of(stored, digest, parsed)
            except IntegrityError as exc:
                savepoint.rollback()  # another worker stored the same mail or contact first: look again
                error = _short_error(exc)
                if attempt == 0:
                    continue
            except Exception as exc:  # noqa: BLE001 - one bad mail never stops the line
                savepoint.rollback()
                error = _short_error(exc)
            break
        return self._quarantine_in(session, mail, digest, "store", error)

    def _quarantine_in(
        self, session: Session, mail: IncomingMail, digest: str, stage: str, error: str
    ) -> IngestOutcome:
        with session.begin_nested():
            quarantine(session, mail.raw, stage=stage, error=error, source=mail.source, now=self._clock())
        return IngestOutcome("quarantined", error, raw_sha256=digest)

    def retry_quarantined(self, ids: list[int] | None = None) -> list[tuple[int, IngestOutcome]]:
        """Re-run quarantined mails (after a fix); those that now store are released."""
        with self._sessions() as session:
            query = select(Quarantine.id, Quarantine.raw_sha256, Quarantine.source).where(
                Quarantine.released_at.is_(None),
                Quarantine.stage != oversize.STAGE,  # only a header was kept: nothing to re-run
            )
            if ids:
                query = query.where(Quarantine.id.in_(ids))
            pending = list(session.execute(query.order_by(Quarantine.id)))
        results = []
        for row_id, digest, source in pending:
            with self._sessions() as session:
                raw = get_blob(session, digest)
            outcome = self.ingest(raw, source=source)
            if outcome.status != "quarantined":
                with self._sessions.begin() as session:
                    session.get_one(Quarantine, row_id).released_at = self._clock()
            results.append((row_id, outcome))
        return results
