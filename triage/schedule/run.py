"""The reminder run: stale clocks recomputed, due tickets found by index, reminders fired in SQL.

Each open ticket has a reminder clock (`triage.schedule.clocks`, table `ticket_clocks`): the
due time of every level and `next_at`, the due time of the next level not yet sent. A run

1. recomputes the clocks made stale since the last run (new tickets, status or team changes,
   replies): the only per-ticket Python work, and it follows what changed, not the desk's size;
2. selects the due tickets through the `next_at` index, checking status and answer
   again in SQL, and skips those whose team is outside business hours (or quiet hours) now;
3. queues one digest mail per (team, level) through the outbox, listing its tickets, rather
   than one mail per ticket: a team with twelve overdue tickets gets one reminder;
4. inserts one `reminders` row per due ticket, naming its digest, in one INSERT ... SELECT with
   ON CONFLICT DO NOTHING on (ticket, level, due time). If another run won some tickets first,
   3 and 4 are redone without them, so two runs at once, or one run repeated, never send the
   same reminder twice and no ticket is in two runs' mails;
5. moves each clock to its next level, in SQL. The reminders rows are the ticket's log of its
   reminders (`triage.schedule.history`): no events row is written beside each.

All of it is one transaction. Every open ticket that does not fire is counted under a reason.

One ticket never stops the run. Each digest is built in a savepoint; if it fails, each of its
tickets is tried alone, the ones at fault are left out of the digest, and each gets a failed
outbox row (`triage.outbox.failures`) that its reminder names: the level is spent, the failure
is in `triage outbox` and the ticket's log, and every other ticket is reminded as usual. A
digest that fails with no ticket at fault (a template, the team's address) is one failed row
for its tickets. The mail is queued at the real time (`clock`), not at the run's `now`: a
catch-up run as of a later time queues mail that is due at once.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from typing import Any, NamedTuple

import structlog
from sqlalchemy import and_, case, exists, func, literal, null, or_, select, type_coerce, update
from sqlalchemy.orm import Session

from triage.config import Settings
from triage.outbox.compose import Party, ThreadInfo, compose
from triage.outbox.failures import record_failed_mail
from triage.outbox.mails import context, load_view
from triage.outbox.queue import enqueue
from triage.outbox.wiring import Wiring, build_wiring
from triage.schedule.clocks import refresh_clocks
from triage.schedule.history import ACTOR
from triage.schedule.policy import LEVEL_NAMES, Policies, Policy
from triage.store.db import UTCDateTime, core_table, upsert_insert, utcnow
from triage.store.models import Ticket, TicketStatus
from triage.store.outbox_models import Outbox, OutboxStatus
from triage.store.schedule_models import Reminder, TicketClock

log = structlog.get_logger(__name__)

RUNNING = (TicketStatus.new, TicketStatus.open)  # waiting on the volunteer stops the clock
TEMPLATES = {1: "reminder", 2: "escalation", 3: "escalation"}  # the mail template of each level
DIGEST_LIST_LIMIT = 50  # tickets named in one digest; the rest are counted

T = core_table(Ticket)
R = core_table(Reminder)
C = core_table(TicketClock)


class Fired(NamedTuple):
    """A reminder sent (or, in a dry run, one that would be). Named tuples: a run makes thousands."""

    ticket_id: int
    reference: str
    team: str | None
    level: int
    due_at: str
    to: str
    template: str
    outbox_id: int | None  # None in a dry run


class DueTicket(NamedTuple):
    """A ticket whose next reminder level is due now, as the run's select returns it."""

    id: int
    reference: str
    team: str
    level: int
    due_at: str  # ISO 8601, UTC


class Skipped(NamedTuple):
    """A due ticket that did not fire, and why."""

    ticket_id: int
    reference: str
    reason: str
    level: int | None
    due_at: str | None


@dataclass
class RunReport:
    now: str
    dry_run: bool
    fired: list[Fired] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)  # due tickets that did not fire, one by one
    not_due: dict[str, int] = field(default_factory=dict)  # every other open ticket, counted by reason
    refreshed: int = 0  # clocks recomputed because the ticket's facts changed

    @property
    def reasons(self) -> dict[str, int]:
        counts = Counter(self.not_due)
        counts.update(s.reason for s in self.skipped)
        return dict(sorted(counts.items()))

    def as_dict(self) -> dict[str, Any]:
        return {"now": self.now, "dry_run": self.dry_run, "fired": [f._asdict() for f in self.fired],
                "skipped": [s._asdict() for s in self.skipped], "skip_reasons": self.reasons,
                "clocks_refreshed": self.refreshed}


def answered_by_a_person() -> Any:
    """A ticket on which a person's mail (not automatic, not failed) was queued: it has its answer."""
    return exists().where(Outbox.ticket_id == T.c.id, Outbox.auto_submitted.is_(None),
                          Outbox.status != OutboxStatus.failed)


def due_clocks(now: datetime) -> Any:
    """Clocks whose next level is due at `now`, of tickets still running and unanswered (the
    statement joins `ticket_clocks` to `tickets`)."""
    return and_(C.c.next_at <= now, T.c.id == C.c.ticket_id, T.c.status.in_(RUNNING), ~answered_by_a_person())


def _level_columns(now: datetime) -> tuple[Any, Any, Any]:
    """(level to send, its due time, the next level's due time): several overdue levels send the highest."""
    d1, d2, d3 = C.c.due_1, C.c.due_2, C.c.due_3
    level = case((d3 <= now, 3), (d2 <= now, 2), else_=1)
    due_at = type_coerce(case((d3 <= now, d3), (d2 <= now, d2), else_=d1), UTCDateTime())
    next_at = type_coerce(case((d3 <= now, null()), (d2 <= now, d3), else_=d2), UTCDateTime())
    return level, due_at, next_at


def not_due_reasons(session: Session, now: datetime) -> dict[str, int]:
    """Open tickets that are not due, counted by why, through the `next_at` index: those whose
    next level is due later, and those whose clock is stopped, by the reason it stopped."""
    counts = dict(session.execute(
        select(C.c.stopped, func.count()).where(C.c.next_at.is_(None)).group_by(C.c.stopped)).all())
    counts["not-due"] = session.scalar(select(func.count()).select_from(C).where(C.c.next_at > now)) or 0
    return {str(why): int(n) for why, n in sorted(counts.items(), key=lambda kv: str(kv[0])) if n}


def _recipient(wiring: Wiring, policy: Policy, team: str, level: int) -> Party | None:
    info = wiring.teams.get(team)
    if level == 1:
        return Party(info.address, info.name) if info is not None else None
    if level == 2:
        if policy.lead_address:
            return Party(policy.lead_address, f"{info.name} lead" if info is not None else None)
        return Party(info.address, info.name) if info is not None else None
    return Party(policy.escalation_address or wiring.settings.mail.liaison_address, None)


def run_reminders(
    sessions: Callable[[], Session], settings: Settings, *, now: datetime, dry_run: bool = False,
    clock: Callable[[], datetime] = utcnow, wiring: Wiring | None = None,
) -> RunReport:
    """One reminder run as of `now`: what fired and what was skipped, with reasons. Its mail is
    queued at `clock()`, the real time, whatever `now` the run is evaluated at. `wiring`: the
    App's (built from `settings` when not given)."""
    policies = Policies(settings.reminders)
    wiring = wiring or build_wiring(settings)
    report = RunReport(now.isoformat(), dry_run)
    with sessions() as session:  # one transaction; a dry run rolls it back, refreshed clocks included
        report.refreshed = refresh_clocks(session, policies, now, batch=settings.reminders.batch_size)
        report.not_due = not_due_reasons(session, now)
        level, due_at, _ = _level_columns(now)
        # No ORDER BY: SQLite would walk the whole tickets table in id order to avoid a sort.
        # The due time comes as text (formatted in SQL): 10,000 datetimes parsed cost more
        # than the query. all() fetches at once; named tuples are read faster than rows.
        rows = sorted(map(DueTicket._make, session.execute(
            select(T.c.id, T.c.reference, T.c.team, level, _iso(session, due_at))
            .select_from(C).join(T, T.c.id == C.c.ticket_id).where(due_clocks(now))
        ).all()))
        recipients = _recipients(wiring, policies, now, {(row.team, row.level) for row in rows})
        firing: list[tuple[DueTicket, Party]] = []
        for row in rows:
            to = recipients[(row.team, row.level)]
            if isinstance(to, Party):
                firing.append((row, to))
            else:
                report.skipped.append(Skipped(row.id, row.reference, to, row.level, row.due_at))
        if dry_run:
            _dry_run(firing, report)
            session.rollback()
        else:
            if firing:
                _fire(session, wiring, now, firing,
                      {key: to for key, to in recipients.items() if isinstance(to, Party)}, report, clock())
            session.commit()
    log.info("remind.run", fired=len(report.fired), skipped=report.reasons, refreshed=report.refreshed,
             dry_run=dry_run)
    return report


def _recipients(wiring: Wiring, policies: Policies, now: datetime,
                pairs: set[tuple[str, int]]) -> dict[tuple[str, int], Party | str]:
    """Who gets each (team, level) now, or why nobody does (outside business hours, unknown team)."""
    out: dict[tuple[str, int], Party | str] = {}
    for team, level in pairs:
        policy = policies.for_team(team)
        if not policy.calendar.is_open(now):
            out[(team, level)] = "outside-business-hours"
        else:
            out[(team, level)] = _recipient(wiring, policy, team, level) or "unknown-team"
    return out


def _dry_run(firing: list[tuple[DueTicket, Party]], report: RunReport) -> None:
    """What would fire. A clock that is due has not been reminded at that level: the run that
    fires a reminder moves the clock in the same transaction."""
    report.fired = [_fired(row, to, None) for row, to in firing]


def _fired(row: DueTicket, to: Party, outbox_id: int | None) -> Fired:
    return Fired(row.id, row.reference, row.team, row.level, row.due_at, to.address, TEMPLATES[row.level], outbox_id)


def _iso(session: Session, instant: Any) -> Any:
    """An instant as ISO 8601 text in UTC (2026-11-03T09:00:00+00:00), built in SQL."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", instant), 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"')
    return func.strftime("%Y-%m-%dT%H:%M:%S+00:00", instant)


def _fire(session: Session, wiring: Wiring, now: datetime, firing: list[tuple[DueTicket, Party]],
          recipients: dict[tuple[str, int], Party], report: RunReport, queued_at: datetime) -> None:
    """Queue the digests, insert the reminders naming them in one statement, move the clocks.

    Optimistic: the digests list every candidate. If the insert does not win them all (another
    run reminded some first), everything since the savepoint is undone and done again with the
    winners only, so no ticket is ever in two runs' mails.
    """
    candidates = {row.id: (row, to) for row, to in firing}
    lost: list[int] = []
    for _attempt in range(3):
        savepoint = session.begin_nested()
        groups = _groups(candidates.values())
        outbox: dict[tuple[str, int], int] = {}
        alone: dict[int, int] = {}  # a ticket left out of its digest -> its failed row
        failed: set[int] = set()  # failed rows, which the reminders of tickets whose mail failed name
        for key, members in sorted(groups.items()):
            outbox[key], faults, group_failed = _queue_group(session, wiring, key, members, recipients[key], now,
                                                             queued_at)
            alone.update(faults)
            failed.update(faults.values())
            if group_failed:
                failed.add(outbox[key])
        won = set(session.scalars(_insert_reminders(session, now, outbox, alone))) if outbox else set()
        wanted = {i for i, (row, _) in candidates.items() if (row.team, row.level) in outbox}
        if extra := sorted(won - wanted):  # not checked by the select (answered, or due since): not in a mail
            session.execute(R.delete().where(R.c.ticket_id.in_(extra), R.c.outbox_id.in_(list(outbox.values()))))
            won -= set(extra)
        if won == wanted:
            break
        savepoint.rollback()  # some were reminded by another run meanwhile: redo with the winners
        gone = [candidates.pop(i)[0] for i in wanted - won]
        lost += [row.id for row in gone]
        report.skipped += [Skipped(row.id, row.reference, "already-reminded", row.level, row.due_at) for row in gone]
    else:
        raise RuntimeError("the reminder run lost its tickets to other runs three times; it will run again")
    savepoint.commit()
    if recompute := sorted({*extra, *lost}):  # clocks the next run recomputes from the facts: the reminders
        # that beat this run, or the answer or status change that reached the ticket but not its clock
        session.execute(update(T).where(T.c.id.in_(recompute)).values(clock_stale_at=utcnow()))
    if failed:  # reminded, but their mail is a failed row: reported as skipped, with the reason
        named = {i: alone.get(i, outbox[(row.team, row.level)]) for i, (row, _) in candidates.items() if i in won}
        report.skipped += [Skipped(i, row.reference, "mail-failed", row.level, row.due_at)
                           for i, (row, _) in candidates.items() if named.get(i) in failed]
        won = {i for i in won if named[i] not in failed}
    report.fired += [  # in ticket order, as the candidates are
        _fired(row, to, outbox[(row.team, row.level)]) for i, (row, to) in candidates.items() if i in won]
    if not outbox:
        return
    # The clocks just reminded move to their next level, computed from their own columns; those
    # left to the next run's recomputation (above) keep theirs.
    level, _, next_at = _level_columns(now)
    session.execute(update(C).where(_chosen(now, outbox), *([C.c.ticket_id.not_in(recompute)] if recompute else []))
                    .values(reminded_level=level, next_at=next_at,
                            stopped=case((next_at.is_(None), "ladder-complete"), else_=null())))


def _groups(candidates: Iterable[tuple[DueTicket, Party]]) -> dict[tuple[str, int], list[DueTicket]]:
    groups: dict[tuple[str, int], list[DueTicket]] = defaultdict(list)
    for row, _ in candidates:
        groups[(row.team, row.level)].append(row)
    return groups


def _chosen(now: datetime, outbox: dict[tuple[str, int], int]) -> Any:
    """The clocks due now whose (team, level) has a digest in `outbox`."""
    level, _, _ = _level_columns(now)
    by_team: dict[str, list[int]] = defaultdict(list)
    for team, lvl in sorted(outbox):
        by_team[team].append(lvl)
    return and_(C.c.next_at <= now, or_(*(and_(C.c.team == team, level.in_(lvls)) for team, lvls in by_team.items())))


def _insert_reminders(session: Session, now: datetime, outbox: dict[tuple[str, int], int],
                      alone: dict[int, int]) -> Any:
    """INSERT ... SELECT of the reminders rows (the digest chosen per team and level in SQL, or
    the failed row of a ticket left out of it), skipping any (ticket, level, due time) already
    there; returns the ticket ids it wrote.

    It reads the clocks alone: the caller's select already checked status and answer on the
    tickets, and drops whatever this writes beyond its candidates.
    """
    level, due_at, _ = _level_columns(now)
    digest = case(*((C.c.ticket_id == ticket_id, outbox_id) for ticket_id, outbox_id in sorted(alone.items())),
                  *((and_(C.c.team == team, level == lvl), outbox_id) for (team, lvl), outbox_id in outbox.items()))
    chosen = select(C.c.ticket_id, level, due_at, C.c.team, literal(now, UTCDateTime()), digest).where(
        _chosen(now, outbox))
    columns = ["ticket_id", "level", "due_at", "team", "fired_at", "outbox_id"]
    return (upsert_insert(session)(R).from_select(columns, chosen)
            .on_conflict_do_nothing(index_elements=["ticket_id", "level", "due_at"]).returning(R.c.ticket_id))


def _queue_group(session: Session, wiring: Wiring, key: tuple[str, int], members: list[DueTicket], to: Party,
                 now: datetime, queued_at: datetime) -> tuple[int, dict[int, int], bool]:
    """Queue the mail of one (team, level), each attempt in a savepoint. If it fails, try each
    ticket alone: those at fault get a failed row each and the mail is queued without them. If
    no ticket is at fault, or the mail fails again, one failed row stands for the group.

    Returns the outbox id the group's reminders name, the failed row of each ticket left out,
    and whether the id is a failed row."""
    team, level = key
    try:
        with session.begin_nested():
            return _enqueue_digest(session, wiring, level, _digest(session, wiring, team, level, members, to, now,
                                                                    queued_at), members, queued_at), {}, False
    except Exception as exc:  # noqa: BLE001 - one mail's failure never rolls back the run
        error: Exception = exc
    alone: dict[int, int] = {}
    failing = members  # the tickets the group's failed row stands for
    if len(members) > 1:
        faults: dict[int, Exception] = {}
        for row in members:  # as in the digest, on its own; building reads and writes nothing
            try:
                _digest(session, wiring, team, level, [row], to, now, queued_at, as_list=True)
            except Exception as exc:  # noqa: BLE001 - this ticket is at fault
                faults[row.id] = exc
        rest = [row for row in members if row.id not in faults]
        if faults and rest:
            for row in members:
                if row.id in faults:
                    alone[row.id] = _record_failure(session, wiring, level, [row], to, faults[row.id], queued_at)
            try:
                with session.begin_nested():
                    return _enqueue_digest(session, wiring, level, _digest(session, wiring, team, level, rest, to,
                                                                            now, queued_at), rest, queued_at), alone, False
            except Exception as exc:  # noqa: BLE001 - the rest fails as a whole
                error, failing = exc, rest
    log.error("remind.failed", team=team, level=level, tickets=len(failing), error=type(error).__name__)
    return _record_failure(session, wiring, level, failing, to, error, queued_at), alone, True


def _record_failure(session: Session, wiring: Wiring, level: int, members: list[DueTicket], to: Party,
                    error: Exception, queued_at: datetime) -> int:
    row = record_failed_mail(
        session, template=TEMPLATES[level], ticket_id=members[0].id if len(members) == 1 else None,
        tickets=[row.id for row in members], to=to.address, error=error, actor=ACTOR, now=queued_at,
        envelope_from=wiring.settings.mail.liaison_address, auto_submitted="auto-generated",
    )
    return row.id


def _enqueue_digest(session: Session, wiring: Wiring, level: int, message: EmailMessage, members: list[DueTicket],
                    queued_at: datetime) -> int:
    row = enqueue(session, message, template=TEMPLATES[level], actor=ACTOR, now=queued_at,
                  ticket_id=members[0].id if len(members) == 1 else None, auto_submitted="auto-generated")
    return row.id


def _digest(session: Session, wiring: Wiring, team: str, level: int, members: list[DueTicket], to: Party,
            now: datetime, queued_at: datetime, *, as_list: bool = False) -> EmailMessage:
    """The mail to `to` about `members` (this run's tickets of one team at one level), dated
    `queued_at`. One ticket's mail joins its thread, unless `as_list` asks for the digest's form."""
    info = wiring.teams.get(team)
    listed = sorted(members, key=lambda row: (row.due_at, row.id))[:DIGEST_LIST_LIMIT]  # oldest first
    details = {row.id: row for row in session.execute(
        select(T.c.id, T.c.subject, T.c.created_at).where(T.c.id.in_([row.id for row in listed])))}
    tickets = [{"reference": row.reference, "subject": details[row.id].subject,
                "waiting_days": max(0, (now - details[row.id].created_at).days)} for row in listed]
    extra = {"team": info, "recipient_name": to.name, "tickets": tickets, "total": len(members),
             "waiting_days": tickets[0]["waiting_days"]}
    if len(members) == 1 and not as_list:  # one ticket: the mail joins its thread and says who is waiting
        view = load_view(session, session.get_one(Ticket, members[0].id))
        data, thread = context(view, wiring.settings, **extra), view.thread()
    else:
        data, thread = _digest_context(wiring, extra), ThreadInfo("")
    rendered = wiring.renderer.render(TEMPLATES[level], data, "en")
    desk = Party(wiring.settings.mail.liaison_address, wiring.settings.outbox.desk_name)
    return compose(rendered, sender=desk, to=[to], reply_to=desk, thread=thread,
                   own_domain=wiring.settings.mail.own_domain, date=queued_at, auto_submitted="auto-generated")


def _digest_context(wiring: Wiring, extra: dict[str, Any]) -> dict[str, Any]:
    settings = wiring.settings
    team = extra["team"]
    signature = (team.signature if team is not None and team.signature else None) or settings.outbox.signature
    return {
        "desk": {"name": settings.outbox.desk_name, "address": settings.mail.liaison_address},
        "ticket": extra["tickets"][0], "volunteer": None, "signature": signature, "language": "en",
        **extra,
        "team": {"key": team.key, "name": team.name, "address": team.address} if team is not None else None,
    }


def summarise(report: RunReport) -> Iterable[str]:
    """Lines for people: each reminder fired (or that would fire), then the skip reasons counted."""
    verb = "would send" if report.dry_run else "sent"
    for f in report.fired:
        yield (f"{f.reference}: {verb} level {f.level} ({LEVEL_NAMES[f.level]}) {f.template} to {f.to}, "
               f"due {f.due_at}")
    yield f"{len(report.fired)} {'would fire' if report.dry_run else 'fired'}, {sum(report.reasons.values())} skipped"
    for reason, count in report.reasons.items():
        yield f"  skipped {count}: {reason}"


__all__ = [
    "ACTOR", "Fired", "RunReport", "Skipped", "answered_by_a_person", "not_due_reasons",
    "run_reminders", "summarise",
]
