"""Deliver the outbox over SMTP: retry what is temporary, give up on what is permanent, never send twice.

Exactly once
------------
The Message-ID is the idempotency key: a row is one mail, sent under one Message-ID, and
its bytes never change. Each delivery moves the row through states committed to the
database *before* the step they announce:

1. **claim** (commit): `pending -> sending`, `smtp_phase = claimed`, `claimed_by = host:pid:token`,
   attempts + 1. Only one worker wins the conditional UPDATE. Several senders on one PostgreSQL
   pick the next due row with `FOR UPDATE SKIP LOCKED`, so each takes a different row instead of
   all racing for the same one (SQLite serialises its writers, so there one claim waits for the other).
2. MAIL, RCPT, DATA, then the whole message except the terminating `.` line.
3. **data_end** (commit): `smtp_phase = data_end`. Only now is the final dot written.
4. The server's reply to the dot (commit): `sent` with the reply text, queue id and server
   (the SMTP transaction record); or a 4xx (`pending` again, capped exponential backoff);
   or a 5xx (`failed`, shown by `triage outbox`).

An SMTP server accepts a message only when it has read the final dot (RFC 5321 4.1.1.4; a
connection lost before it discards the transaction). So a row a dead worker left in
`sending` with `smtp_phase = claimed` was certainly not accepted, and is retried at once.
A row left with `smtp_phase = data_end` may or may not have been accepted: that is the
**remaining window**, from writing the final dot to committing the server's answer, a
single round trip plus one commit (milliseconds). The same window opens when the
connection drops after the dot without a reply. Such a row is never resent blindly:

- with `outbox.confirm_folder` set (a folder of the [imap] account where the server files
  its own copy of submitted mail, such as a provider's Sent folder), it is looked up there
  by Message-ID: found means `sent` (recorded as confirmed by that copy); not found means
  `uncertain`;
- otherwise it becomes `uncertain`: listed by `triage outbox`, never resent automatically;
  the liaison confirms it (`triage outbox --mark-sent ID`) or resends it (`--retry ID`).

A worker recognises a dead claim at once when the claimant ran on the same host and its
process is gone (or is this process's earlier incarnation with the same pid); a claim from
another host is taken back after `outbox.lease_seconds`. Recovery locks the rows it takes back
(skipping those another recovering worker holds), and a row in doubt is first claimed by the
worker that resolves it, so two workers never resolve one row twice, nor differently. Every write
after the claim is conditional on the claim still being this worker's: a worker that lost its
claim (taken back after the lease) stops before the final dot, and never overwrites what the
worker that took it over recorded.

Optionally (`outbox.sent_folder`) a copy of each sent mail is appended to an IMAP folder after
the `sent` commit; a crash between the two loses that copy, never the mail.
"""

from __future__ import annotations

import os
import smtplib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, cast

import structlog
from sqlalchemy import CursorResult, Select, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from triage.config import Settings
from triage.coordination.identity import worker_identity
from triage.outbox.smtp import Delivery, SmtpTransport, Transport
from triage.outbox.smtp import Session as SmtpSession
from triage.store.db import utcnow
from triage.store.models import Event
from triage.store.outbox_models import Outbox, OutboxStatus, SmtpPhase

log = structlog.get_logger(__name__)

ACTOR = "system:outbox"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim_is_dead(claimed_by: str | None, claimed_at: datetime | None, *, me: str, now: datetime,
                  lease: timedelta) -> bool:
    """Is the worker that claimed a row gone? Same host: ask the OS. Elsewhere: after the lease."""
    if not claimed_by or claimed_by == me:
        return True  # ours: left by an earlier pass of this sender that stopped midway
    host, _, rest = claimed_by.partition(":")
    pid_text, _, token = rest.partition(":")
    my_host, _, my_rest = me.partition(":")
    my_pid, _, my_token = my_rest.partition(":")
    if host == my_host and pid_text.isdigit():
        if pid_text == my_pid:
            return token != my_token  # our own pid, an earlier incarnation (a restarted container's pid 1)
        return not _pid_alive(int(pid_text))
    return claimed_at is None or now - claimed_at > lease


@dataclass
class PassReport:
    """What one pass did; `rows` holds one line per mail touched (for --json)."""

    sent: int = 0
    deferred: int = 0
    failed: int = 0
    uncertain: int = 0
    recovered: int = 0
    contended: int = 0  # claims another sender won between our pick and our UPDATE (not work done)
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def touched(self) -> int:
        return self.sent + self.deferred + self.failed + self.uncertain + self.recovered


LiaisonDecision = Literal["retry", "mark-sent"]
_ACTIONS: dict[LiaisonDecision, str] = {"retry": "mail-retry", "mark-sent": "mail-confirmed"}


@dataclass
class Decision:
    """What a liaison's decision did: the mails it applied to, and why it was refused for the others."""

    done: list[int]
    refused: dict[int, str]


def refusal(decision: LiaisonDecision, status: OutboxStatus, *, built: bool) -> str | None:
    """Why `decision` cannot apply to a mail in `status`, or None if it can. Only failed or uncertain
    mail is retried (a mail never built has no bytes to send); only uncertain mail is marked sent."""
    if status is OutboxStatus.sent:
        return "already sent"
    if status in (OutboxStatus.pending, OutboxStatus.sending):
        return f"{status.value}: the outbox is still delivering it"
    if decision == "mark-sent":
        return None if status is OutboxStatus.uncertain else (
            "failed: the server refused it, so it did not arrive; retry it instead")
    if not built:
        return "never built: it has no bytes to send; its error says what to fix"
    return None


class ClaimLost(Exception):
    """Another worker took this worker's claim on a row back (after `outbox.lease_seconds`)."""


@dataclass(frozen=True, slots=True)
class _Claim:
    """A row this worker claimed, with what it takes to send it."""

    row_id: int
    envelope_from: str
    recipients: list[str]
    raw: bytes
    attempts: int


CopyFinder = Callable[[str], bool | None]  # Message-ID -> found (True/False) or None if it cannot tell


class OutboxSender:
    """Delivers due outbox rows over one SMTP session per pass."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: Settings,
        *,
        transport: Transport | None = None,
        clock: Callable[[], datetime] = utcnow,
        worker: str | None = None,
        confirm_copy: CopyFinder | None = None,
        append_copies: Callable[[Sequence[bytes]], list[str]] | None = None,
    ) -> None:
        self._sessions = sessions
        self.settings = settings
        self._transport = transport
        self._clock = clock
        self.worker = worker or worker_identity()
        self._confirm_copy = confirm_copy
        self._append_copies = append_copies

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            self._transport = SmtpTransport(self.settings.smtp)
        return self._transport

    # -- one pass --------------------------------------------------------------------------

    def send_due(self, *, limit: int = 100, stop: threading.Event | None = None) -> PassReport:
        """Recover dead claims, then deliver what is due (at most `limit`). Raises SmtpUnavailable."""
        report = PassReport()
        self.recover(report)
        if not self._anything_due():
            return report
        session = self.transport.open()  # before any claim: a server that is down leaves every row pending
        sent_raw: list[tuple[int, bytes]] = []
        try:
            for _ in range(limit):
                if stop is not None and stop.is_set():
                    break
                claimed = self._claim_next(report)
                if claimed is None:
                    break
                delivered = self._deliver_one(session, claimed, report)
                if delivered.kind == "accepted":
                    sent_raw.append((claimed.row_id, claimed.raw))
                if delivered.kind in ("in-doubt",) or delivered.stage == "connection":
                    break  # the session is unusable; the rest waits for the next pass
        finally:
            session.close()
        if sent_raw and self._append_copies is not None:
            self._record_copies(sent_raw)
        return report

    def _due(self, now: datetime) -> Select[int]:
        return (select(Outbox.id)
                .where(Outbox.status == OutboxStatus.pending, Outbox.next_attempt_at <= now,
                       Outbox.raw.is_not(None))  # a mail never built has nothing to send
                .order_by(Outbox.next_attempt_at, Outbox.id))

    def _anything_due(self) -> bool:
        with self._sessions() as session:
            return session.scalar(self._due(self._clock()).limit(1)) is not None

    def _claim_next(self, report: PassReport) -> _Claim | None:
        """Claim the next due row, committed before any byte goes to the server. On PostgreSQL the
        pick skips rows another sender is claiming at this moment, so N senders take N different
        rows; the conditional UPDATE stays the guarantee (one winner per row) on every engine."""
        while True:
            now = self._clock()
            with self._sessions.begin() as session:
                row_id = session.scalar(self._due(now).limit(1).with_for_update(skip_locked=True))
                if row_id is None:
                    return None
                won = cast("CursorResult[Any]", session.execute(
                    update(Outbox)
                    .where(Outbox.id == row_id, Outbox.status == OutboxStatus.pending, Outbox.next_attempt_at <= now)
                    .values(status=OutboxStatus.sending, smtp_phase=SmtpPhase.claimed, claimed_by=self.worker,
                            claimed_at=now, attempts=Outbox.attempts + 1, updated_at=now)
                )).rowcount
                if won == 1:
                    row = session.get_one(Outbox, row_id)
                    assert row.raw is not None
                    return _Claim(row_id, row.envelope_from, list(row.recipients), row.raw, row.attempts)
            report.contended += 1  # taken meanwhile by a sender the lock did not hold back (SQLite has none)

    def _mark_data_end(self, row_id: int) -> None:
        with self._sessions.begin() as session:
            marked = cast("CursorResult[Any]", session.execute(
                update(Outbox).where(Outbox.id == row_id, Outbox.status == OutboxStatus.sending,
                                     Outbox.claimed_by == self.worker)
                .values(smtp_phase=SmtpPhase.data_end, updated_at=self._clock())
            )).rowcount
        if marked != 1:
            raise ClaimLost(row_id)  # taken back by another worker: the final dot must not be written

    def _deliver_one(self, smtp: SmtpSession, claim: _Claim, report: PassReport) -> Delivery:
        row_id = claim.row_id
        try:
            delivery = smtp.transact(claim.envelope_from, claim.recipients, claim.raw,
                                     lambda: self._mark_data_end(row_id))
        except ClaimLost:
            log.warning("outbox.claim_lost", outbox=row_id, stage="before the final dot", sent=False)
            return Delivery("temporary", None, "the claim was taken over before the final dot", "connection")
        except (OSError, smtplib.SMTPException, SQLAlchemyError) as exc:  # before the final dot: not accepted
            delivery = Delivery("temporary", None, f"{type(exc).__name__}: {exc}", "connection")
        except Exception as exc:  # noqa: BLE001 - smtplib choked on this mail's own data before the final
            # dot in a way `transact` does not foresee: it never will be sendable; the session is still good
            # (the next transaction starts with RSET) and the queue goes on without it.
            delivery = Delivery("permanent", None, f"refused before sending: {type(exc).__name__}: {exc}", "local")
        self._settle(row_id, delivery, claim.attempts, smtp.server, report)
        return delivery

    def _own_row(self, session: Session, row_id: int) -> Outbox | None:
        """The row, locked, if it is still `sending` under this worker's claim; None if another
        worker took it over (after the lease) and so owns what is recorded about it now."""
        return session.scalar(select(Outbox).where(Outbox.id == row_id, Outbox.status == OutboxStatus.sending,
                                                   Outbox.claimed_by == self.worker).with_for_update())

    # -- outcomes --------------------------------------------------------------------------

    def _settle(self, row_id: int, delivery: Delivery, attempts: int, server: str, report: PassReport) -> None:
        if delivery.kind == "in-doubt":
            self._resolve_in_doubt(row_id, delivery.describe(), report, server=server)
            return
        now = self._clock()
        smtp = self.settings.smtp
        with self._sessions.begin() as session:
            row = self._own_row(session, row_id)
            if row is None:
                log.warning("outbox.claim_lost", outbox=row_id, stage="after the reply", reply=delivery.describe())
                return
            row.claimed_by, row.updated_at, row.smtp_server = None, now, server
            row.refused = [f"{a}: {r}" for a, r in delivery.refused.items()]
            if delivery.kind == "accepted":
                row.status, row.sent_at, row.smtp_reply, row.smtp_queue_id = (
                    OutboxStatus.sent, now, f"{delivery.code} {delivery.reply}", delivery.queue_id)
                row.last_error = f"refused: {'; '.join(row.refused)}" if row.refused else None
                action, report.sent = "mail-sent", report.sent + 1
            elif delivery.kind == "temporary" and attempts < smtp.max_attempts:
                delay = min(smtp.backoff_max_seconds, smtp.backoff_base_seconds * 2.0 ** (attempts - 1))
                row.status, row.next_attempt_at, row.smtp_phase = OutboxStatus.pending, now + timedelta(seconds=delay), None
                row.last_error = f"temporary failure at {delivery.describe()}; attempt {attempts}, next in {delay:.0f} s"
                action, report.deferred = "mail-deferred", report.deferred + 1
            else:
                row.status = OutboxStatus.failed
                why = "permanent failure" if delivery.kind == "permanent" else f"gave up after {attempts} attempts"
                row.last_error = f"{why} at {delivery.describe()}"
                action, report.failed = "mail-failed", report.failed + 1
            session.add(Event(ticket_id=row.ticket_id, at=now, actor=ACTOR, action=action, detail={
                "outbox": row.id, "message_id": row.message_id, "to": row.recipients, "attempt": attempts,
                "server": server, "reply": delivery.describe(), "queue_id": delivery.queue_id,
            }))
            report.rows.append(_line(row))
        log.info("outbox." + action.removeprefix("mail-"), outbox=row_id, reply=delivery.describe())

    def _resolve_in_doubt(self, row_id: int, why: str, report: PassReport, *, server: str | None) -> None:
        """The server may have accepted it: confirm from its own copy if we can, else flag it `uncertain`.
        The row is under this worker's claim (its own delivery, or taken over by `recover`); the
        outcome is recorded only if it still is."""
        with self._sessions() as session:
            message_id = session.get_one(Outbox, row_id).message_id
        found: bool | None = None
        if self._confirm_copy is not None:
            try:
                found = self._confirm_copy(message_id)
            except Exception as exc:  # noqa: BLE001 - no answer from the copy: stay on the safe side
                log.warning("outbox.confirm_failed", outbox=row_id, error=f"{type(exc).__name__}: {exc}")
        now = self._clock()
        with self._sessions.begin() as session:
            row = self._own_row(session, row_id)
            if row is None:
                log.warning("outbox.claim_lost", outbox=row_id, stage="resolving a mail in doubt", found=found)
                return
            row.claimed_by, row.updated_at = None, now
            if server:
                row.smtp_server = server
            if found:
                row.status, row.sent_at = OutboxStatus.sent, now
                row.smtp_reply = f"no reply ({why}); confirmed by the server's copy in {self.settings.outbox.confirm_folder}"
                row.last_error = None
                action, report.sent = "mail-sent", report.sent + 1
            else:
                row.status = OutboxStatus.uncertain
                row.last_error = (
                    f"may have been sent: {why}. Not resent automatically; check the recipient's copy, then "
                    f"`triage outbox --mark-sent {row.id}` or `--retry {row.id}`"
                )
                action, report.uncertain = "mail-uncertain", report.uncertain + 1
            session.add(Event(ticket_id=row.ticket_id, at=now, actor=ACTOR, action=action,
                              detail={"outbox": row.id, "message_id": row.message_id, "why": why,
                                      "confirmed_by_copy": bool(found)}))
            report.rows.append(_line(row))
        log.warning("outbox." + action.removeprefix("mail-"), outbox=row_id, why=why)

    # -- recovery --------------------------------------------------------------------------

    def recover(self, report: PassReport | None = None) -> PassReport:
        """Take back rows whose worker died: before the final dot, retry now; after it, resolve the doubt.

        The rows are locked while judged (another worker recovering at the same moment skips them,
        and sees the outcome on its next pass). A row in doubt is claimed by this worker before its
        doubt is resolved: the lookup in the server's copy takes a while, and meanwhile the row is
        a live worker's, left alone by every other; if this worker dies during it, the next takes
        it over the same way."""
        report = report if report is not None else PassReport()
        now = self._clock()
        lease = timedelta(seconds=self.settings.outbox.lease_seconds)
        in_doubt: list[int] = []
        with self._sessions.begin() as session:
            sending = select(Outbox).where(Outbox.status == OutboxStatus.sending).order_by(Outbox.id)
            for row in session.scalars(sending.with_for_update(skip_locked=True)):
                if not claim_is_dead(row.claimed_by, row.claimed_at, me=self.worker, now=now, lease=lease):
                    continue
                if row.smtp_phase == SmtpPhase.data_end:
                    row.claimed_by, row.claimed_at, row.updated_at = self.worker, now, now
                    in_doubt.append(row.id)
                    continue
                row.status, row.next_attempt_at, row.updated_at = OutboxStatus.pending, now, now
                row.last_error = (f"worker {row.claimed_by} stopped before the end of DATA: the server cannot "
                                  "have accepted it; retrying")
                row.claimed_by, row.smtp_phase = None, None
                session.add(Event(ticket_id=row.ticket_id, at=now, actor=ACTOR, action="mail-recovered",
                                  detail={"outbox": row.id, "message_id": row.message_id}))
                report.recovered += 1
                report.rows.append(_line(row))
        for row_id in in_doubt:
            self._resolve_in_doubt(row_id, "the worker stopped after sending the final dot, before recording "
                                   "the server's reply", report, server=None)
        return report

    # -- the liaison's decisions -----------------------------------------------------------

    def retry(self, ids: Sequence[int], *, actor: str) -> list[int]:
        """Put failed or uncertain mails back in the queue, due now (the liaison's decision); a mail
        that was never built is not retried (it has no bytes: its error says what to fix)."""
        return self.decide(ids, "retry", actor=actor).done

    def mark_sent(self, ids: Sequence[int], *, actor: str) -> list[int]:
        """The liaison confirms that uncertain mails did arrive."""
        return self.decide(ids, "mark-sent", actor=actor).done

    def decide(self, ids: Sequence[int], decision: LiaisonDecision, *, actor: str) -> Decision:
        """Apply the liaison's decision to each mail it is allowed for, in one transaction, logged on
        the mail's ticket as `actor`; say why it was refused for each other one (`refusal`)."""
        now = self._clock()
        result = Decision([], {})
        with self._sessions.begin() as session:
            # Locked (on PostgreSQL; SQLite's writers are serialised already), so that a second liaison
            # deciding the same mail at the same time waits, then sees the first decision: refused.
            rows = {row.id: row for row in session.scalars(select(Outbox).where(Outbox.id.in_(ids))
                                                           .with_for_update())}
            for row_id in sorted(set(ids)):
                row = rows.get(row_id)
                why = "no such mail" if row is None else refusal(decision, row.status, built=row.raw is not None)
                if why is not None:
                    result.refused[row_id] = why
                    continue
                assert row is not None
                row.updated_at, row.smtp_phase = now, None
                if decision == "retry":
                    row.status, row.next_attempt_at, row.attempts = OutboxStatus.pending, now, 0
                else:
                    row.status, row.sent_at = OutboxStatus.sent, row.sent_at or now
                    row.smtp_reply = row.smtp_reply or f"confirmed by {actor}"
                session.add(Event(ticket_id=row.ticket_id, at=now, actor=actor, action=_ACTIONS[decision],
                                  detail={"outbox": row.id, "message_id": row.message_id}))
                result.done.append(row.id)
        return result

    def _record_copies(self, sent: list[tuple[int, bytes]]) -> None:
        assert self._append_copies is not None
        try:
            results = self._append_copies([raw for _, raw in sent])
        except Exception as exc:  # noqa: BLE001 - the mail is sent; only the copy failed
            results = [f"not appended: {type(exc).__name__}: {exc}"] * len(sent)
        with self._sessions.begin() as session:
            for (row_id, _), result in zip(sent, results, strict=True):
                session.get_one(Outbox, row_id).sent_copy = result[:500]


def _line(row: Outbox) -> dict[str, Any]:
    return {"id": row.id, "status": row.status.value, "to": row.recipients, "message_id": row.message_id,
            "attempts": row.attempts, "last_error": row.last_error}


__all__ = ["ClaimLost", "Decision", "LiaisonDecision", "OutboxSender", "PassReport", "claim_is_dead", "refusal", "worker_identity"]
