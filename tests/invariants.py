"""What must hold after any fault, checked against the database, the mailboxes and the SMTP peer.

- every delivered mail is stored exactly once (by Message-ID): a new mail as the first message of
  its own ticket, a follow-up on its parent's ticket; every ledger row is marked on the server;
- every new ticket has one acknowledgment, received by the SMTP peer exactly once, or `uncertain`
  and received at most once; the peer received nothing that is not in the outbox;
- no lease is stuck: each is held by a live worker or has expired (after a clean stop: all).

`settle_gaps` says what is still under way (None when everything settled), so a test waits on it
with a deadline; `invariant_violations` lists what is wrong once it settled.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence

from sqlalchemy import Engine, func, select, text

from tests.cluster import Delivered, FleetDovecot
from tests.servers.smtp_sink import SmtpSink
from triage.store.models import Direction, ImapLedgerEntry, Message
from triage.store.outbox_models import Outbox, OutboxStatus

DONE = (OutboxStatus.sent, OutboxStatus.uncertain)
NEVER_MARKED = ("vanished", "oversize")


def settle_gaps(engine: Engine, delivered: Sequence[Delivered]) -> str | None:
    """What is not done yet: mail not stored, not marked, acknowledgments not delivered. None: settled."""
    ids = [d.message_id for d in delivered]
    try:
        with engine.connect() as conn:
            stored = set(conn.scalars(select(Message.message_id).where(Message.message_id.in_(ids))))
            unmarked = conn.scalar(select(func.count()).select_from(ImapLedgerEntry).where(
                ImapLedgerEntry.marked_at.is_(None), ImapLedgerEntry.outcome.not_in(NEVER_MARKED)))
            open_rows = conn.execute(select(Outbox.status, func.count()).where(Outbox.status.not_in(DONE))
                                     .group_by(Outbox.status)).all()
    except Exception as exc:  # noqa: BLE001 - the database may be restarting: not settled yet
        return f"database not answering: {type(exc).__name__}"
    missing = [i for i in ids if i not in stored]
    if missing:
        return f"{len(missing)} of {len(ids)} delivered mails not stored yet, e.g. {missing[:3]}"
    if unmarked:
        return f"{unmarked} ledger rows not marked on the server yet"
    if open_rows:
        return f"outbox rows not delivered yet: { {s.value: n for s, n in open_rows} }"
    return None


def mail_violations(engine: Engine, delivered: Sequence[Delivered], dovecot: FleetDovecot) -> list[str]:
    """Each mail once, on the right ticket; the ledger matches the mailbox and is marked."""
    problems: list[str] = []
    with engine.connect() as conn:
        rows = conn.execute(select(Message.message_id, Message.ticket_id, Message.id)
                            .where(Message.direction == Direction.inbound)).all()
        firsts = set(conn.scalars(select(func.min(Message.id)).group_by(Message.ticket_id)))
        ledger = conn.execute(select(ImapLedgerEntry.account, ImapLedgerEntry.uid, ImapLedgerEntry.marked_at,
                                     ImapLedgerEntry.outcome)).all()
    per_id = Counter(r.message_id for r in rows)
    ticket_of = {r.message_id: r.ticket_id for r in rows}
    pk_of = {r.message_id: r.id for r in rows}
    ours = {d.message_id for d in delivered}
    problems += [f"{mid} stored {n} times" for mid, n in per_id.items() if n != 1]
    problems += [f"{mid} stored but never delivered" for mid in per_id if mid not in ours]
    new_tickets: Counter[int] = Counter()
    for mail in delivered:
        if mail.message_id not in ticket_of:
            problems.append(f"{mail.message_id} ({mail.account}) was delivered but is not stored")
            continue
        ticket = ticket_of[mail.message_id]
        if ticket is None:
            problems.append(f"{mail.message_id} is on no ticket")
        elif mail.parent is None:
            new_tickets[ticket] += 1
            if pk_of[mail.message_id] not in firsts:
                problems.append(f"{mail.message_id} is a new mail but not the first of its ticket {ticket}")
        elif ticket != ticket_of.get(mail.parent):
            problems.append(f"follow-up {mail.message_id} is on ticket {ticket}, its parent on "
                            f"{ticket_of.get(mail.parent)}")
    problems += [f"ticket {t} opened by {n} new mails" for t, n in new_tickets.items() if n != 1]
    for account in dovecot.accounts:
        uids = sorted(int(r.uid) for r in ledger if r.account == account)
        if len(uids) != len(set(uids)):
            problems.append(f"{account}: a UID has several ledger rows")
        on_server = dovecot.flags(user=account)
        if set(uids) != set(on_server):
            problems.append(f"{account}: ledger UIDs differ from the mailbox's: "
                            f"{sorted(set(on_server) - set(uids))[:5]} not in the ledger, "
                            f"{sorted(set(uids) - set(on_server))[:5]} not on the server")
        unseen = [uid for uid, flags in on_server.items() if b"\\Seen" not in flags]
        if unseen:
            problems.append(f"{account}: {len(unseen)} mails not marked \\Seen, e.g. UIDs {unseen[:5]}")
    unmarked = [r for r in ledger if r.marked_at is None and r.outcome not in NEVER_MARKED]
    if unmarked:
        problems.append(f"{len(unmarked)} ledger rows without marked_at")
    return problems


def outbox_violations(engine: Engine, delivered: Sequence[Delivered], sink: SmtpSink) -> list[str]:
    """One acknowledgment per new ticket, received once (or uncertain and received at most once)."""
    problems: list[str] = []
    new_ids = [d.message_id for d in delivered if d.parent is None]
    with engine.connect() as conn:
        tickets = set(conn.scalars(select(Message.ticket_id).where(Message.message_id.in_(new_ids))))
        rows = conn.execute(select(Outbox.id, Outbox.ticket_id, Outbox.template, Outbox.status,
                                   Outbox.message_id)).all()
    received = Counter(sink.message_ids())
    known = {r.message_id for r in rows}
    acks = Counter(r.ticket_id for r in rows if r.template == "acknowledgment")
    problems += [f"ticket {t} has {acks[t]} acknowledgments" for t in tickets if acks[t] != 1]
    problems += [f"acknowledgment for ticket {t}, which no delivered mail opened" for t in acks if t not in tickets]
    for row in rows:
        got = received[row.message_id]
        if row.status is OutboxStatus.sent and got != 1:
            problems.append(f"outbox {row.id} is sent but the peer received it {got} times")
        elif row.status is OutboxStatus.uncertain and got > 1:
            problems.append(f"outbox {row.id} is uncertain and the peer received it {got} times")
        elif row.status not in DONE:
            problems.append(f"outbox {row.id} is {row.status.value}")
    problems += [f"the peer received {mid!r}, which is in no outbox row" for mid in received if mid not in known]
    return problems


def lease_violations(engine: Engine, live_pids: Mapping[int, int], *, stopped: bool = False) -> list[str]:
    """Every unexpired lease names a live worker; after a clean stop, none is unexpired."""
    with engine.connect() as conn:
        if conn.scalar(text("SELECT to_regclass('leases')")) is None:
            return []  # no leases on this branch yet
        rows = conn.execute(text("SELECT name, holder, generation, expires_at > now() AS live FROM leases")).all()
    problems = []
    for row in rows:
        if not row.live or row.holder is None:
            continue
        if stopped:
            problems.append(f"lease {row.name} still held by {row.holder} after every worker stopped")
            continue
        pids = {int(n) for n in re.findall(r"\d+", row.holder)}
        if not pids & set(live_pids):
            problems.append(f"lease {row.name} (generation {row.generation}) held by {row.holder}, no live worker")
    return problems
