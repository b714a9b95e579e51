"""The reminder run: stale clocks recomputed, due tickets found by index, reminders fired in SQL.

Each open ticket carries its reminder clock (`triage.schedule.clocks`): the due time of every
level and `next_reminder_at`, the due time of the next level not yet sent. A run

1. recomputes the clocks made stale since the last run (new tickets, status or team changes,
   replies): the only per-ticket Python work, and it follows what changed, not the desk's size;
2. selects the due tickets through the `next_reminder_at` index, checking status and answer
   again in SQL, and skips those whose team is outside business hours (or quiet hours) now;
3. inserts one `reminders` row per due ticket in one INSERT ... SELECT with ON CONFLICT DO
   NOTHING on (ticket, level, due time): only this run's winners are reminded, so two runs at
   once, or one run repeated, never send the same reminder twice;
4. queues one digest mail per (team, level) through the outbox, listing that run's tickets,
   rather than one mail per ticket: a team with twelve overdue tickets gets one reminder;
5. logs a `reminded` (level 1) or `escalated` (levels 2-3) event per ticket and moves each
   clock to its next level, both in SQL.

All of it is one transaction. Every open ticket that does not fire is counted under a reason.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import and_, case, exists, false, func, literal, null, or_, select, type_coerce, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from triage.config import Settings
from triage.outbox.compose import ComposeError, Party, ThreadInfo, compose
from triage.outbox.mails import context, load_view
from triage.outbox.queue import OutboxError, enqueue
from triage.outbox.render import TemplateError
from triage.outbox.wiring import Wiring, wiring_for
from triage.schedule.clocks import refresh_clocks
from triage.schedule.policy import LEVEL_NAMES, LEVELS, Policies, Policy
from triage.store.db import CLOCK_STALE, UTCDateTime, core_table
from triage.store.models import Event, Ticket, TicketStatus
from triage.store.outbox_models import Outbox, OutboxStatus
from triage.store.schedule_models import Reminder

log = structlog.get_logger(__name__)

ACTOR = "system:remind"
OPEN_STATUSES = (TicketStatus.new, TicketStatus.open, TicketStatus.waiting)
RUNNING = (TicketStatus.new, TicketStatus.open)  # waiting on the volunteer stops the clock
DIGEST_LIST_LIMIT = 50  # tickets named in one digest; the rest are counted

T = core_table(Ticket)
R = core_table(Reminder)


@dataclass(frozen=True, slots=True)
class Fired:
    ticket_id: int
    reference: str
    team: str | None
    level: int
    due_at: str
    to: str
    template: str
    outbox_id: int | None  # None in a dry run


@dataclass(frozen=True, slots=True)
class Skipped:
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
        return {"now": self.now, "dry_run": self.dry_run, "fired": [asdict(f) for f in self.fired],
                "skipped": [asdict(s) for s in self.skipped], "skip_reasons": self.reasons,
                "clocks_refreshed": self.refreshed}


def answered_by_a_person() -> Any:
    """A ticket on which a person's mail (not automatic, not failed) was queued: it has its answer."""
    return exists().where(Outbox.ticket_id == T.c.id, Outbox.auto_submitted.is_(None),
                          Outbox.status != OutboxStatus.failed)


def _due(now: datetime) -> Any:
    """Tickets whose next level is due at `now` (clock fresh, still running, still unanswered)."""
    return and_(T.c.next_reminder_at <= now, T.c.next_reminder_at > CLOCK_STALE, T.c.status.in_(RUNNING),
                ~answered_by_a_person())


def _level_columns(now: datetime) -> tuple[Any, Any, Any]:
    """(level to send, its due time, the next level's due time): several overdue levels send the highest."""
    d1, d2, d3 = T.c.reminder_due_1, T.c.reminder_due_2, T.c.reminder_due_3
    level = case((d3 <= now, 3), (d2 <= now, 2), else_=1)
    due_at = type_coerce(case((d3 <= now, d3), (d2 <= now, d2), else_=d1), UTCDateTime())
    next_at = type_coerce(case((d3 <= now, null()), (d2 <= now, d3), else_=d2), UTCDateTime())
    return level, due_at, next_at


def not_due_reasons(session: Session, now: datetime) -> dict[str, int]:
    """Open tickets that are not due, counted by why (one GROUP BY over the open tickets)."""
    reason = case(
        (T.c.status == TicketStatus.waiting, "waiting-on-volunteer"),
        (T.c.team.is_(None), "no-team"),
        (T.c.next_reminder_at.is_(None), case((T.c.reminded_level >= LEVELS[-1], "ladder-complete"),
                                              else_="answered")),
        (T.c.next_reminder_at > now, "not-due"),
        else_="due",
    ).label("reason")
    rows = session.execute(select(reason, func.count()).where(T.c.status.in_(OPEN_STATUSES)).group_by(reason))
    return {str(why): int(n) for why, n in rows if why != "due"}


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
) -> RunReport:
    """One reminder run as of `now`: what fired and what was skipped, with reasons."""
    policies = Policies(settings.reminders)
    wiring = wiring_for(settings)
    report = RunReport(now.isoformat(), dry_run)
    with sessions() as session:  # one transaction; a dry run rolls it back, refreshed clocks included
        report.refreshed = refresh_clocks(session, policies, now, batch=settings.reminders.batch_size)
        report.not_due = not_due_reasons(session, now)
        level, due_at, next_at = _level_columns(now)
        rows = list(session.execute(
            select(T.c.id, T.c.reference, T.c.subject, T.c.team, T.c.created_at, level.label("level"),
                   due_at.label("due_at")).where(_due(now)).order_by(T.c.id)
        ))
        recipients = _recipients(wiring, policies, now, {(row.team, row.level) for row in rows})
        firing = []
        for row in rows:
            to = recipients.get((row.team, row.level))
            if isinstance(to, Party):
                firing.append((row, to))
            else:
                report.skipped.append(Skipped(row.id, row.reference, to or "unknown-team", row.level,
                                              row.due_at.isoformat()))
        if dry_run:
            _dry_run(session, now, firing, report)
            session.rollback()
        else:
            if firing:
                _fire(session, wiring, now, firing,
                      {key: to for key, to in recipients.items() if isinstance(to, Party)}, report)
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


def _firing_filter(now: datetime, pairs: Iterable[tuple[str, int]]) -> Any:
    level, _, _ = _level_columns(now)
    by_team: dict[str, set[int]] = defaultdict(set)
    for team, lvl in pairs:
        by_team[team].add(lvl)
    wanted = [and_(T.c.team == team, level.in_(sorted(levels))) for team, levels in sorted(by_team.items())]
    return and_(_due(now), or_(*wanted) if wanted else false())


def _dry_run(session: Session, now: datetime, firing: list[tuple[Any, Party]], report: RunReport) -> None:
    level, due_at, _ = _level_columns(now)
    done = set(session.scalars(
        select(T.c.id).where(_firing_filter(now, {(row.team, row.level) for row, _ in firing}), exists().where(
            R.c.ticket_id == T.c.id, R.c.level == level, R.c.due_at == due_at))
    ))
    for row, to in firing:
        if row.id in done:
            report.skipped.append(Skipped(row.id, row.reference, "already-reminded", row.level,
                                          row.due_at.isoformat()))
        else:
            report.fired.append(Fired(row.id, row.reference, row.team, row.level, row.due_at.isoformat(), to.address,
                                      _template(row.level), None))


def _template(level: int) -> str:
    return "reminder" if level == 1 else "escalation"


def _fire(session: Session, wiring: Wiring, now: datetime, firing: list[tuple[Any, Party]],
          recipients: dict[tuple[str, int], Party], report: RunReport) -> None:
    run_id = uuid.uuid4().hex
    level, due_at, next_at = _level_columns(now)
    dialect_insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    chosen = select(T.c.id, level, due_at, T.c.team, literal(now, UTCDateTime()), next_at, literal(run_id)).where(
        _firing_filter(now, recipients))
    won = set(session.scalars(
        dialect_insert(R).from_select(["ticket_id", "level", "due_at", "team", "fired_at", "next_due_at", "run_id"],
                                      chosen)
        .on_conflict_do_nothing(index_elements=["ticket_id", "level", "due_at"]).returning(R.c.ticket_id)
    ))
    groups: dict[tuple[str, int], list[Any]] = defaultdict(list)
    lost = []
    for row, _ in firing:
        if row.id in won:
            groups[(row.team, row.level)].append(row)
        else:  # another run reminded it first; its clock is recomputed from the reminders next time
            lost.append(row.id)
            report.skipped.append(Skipped(row.id, row.reference, "already-reminded", row.level,
                                          row.due_at.isoformat()))
    for (team, lvl), members in sorted(groups.items()):
        to = recipients[(team, lvl)]
        group = and_(R.c.run_id == run_id, R.c.team == team, R.c.level == lvl)
        try:
            with session.begin_nested():
                outbox_id = _queue_digest(session, wiring, team, lvl, members, to, now)
        except (ComposeError, TemplateError, OutboxError) as exc:
            # Not sent, so not reminded: the rows go, and the next run tries again.
            log.error("remind.failed", team=team, level=lvl, tickets=len(members), error=str(exc))
            session.execute(R.delete().where(group))
            lost += [row.id for row in members]
            report.skipped += [Skipped(row.id, row.reference, "error", lvl, row.due_at.isoformat()) for row in members]
            continue
        session.execute(update(R).where(group).values(to_addr=to.address.lower(), outbox_id=outbox_id))
        report.fired += [Fired(row.id, row.reference, team, lvl, row.due_at.isoformat(), to.address, _template(lvl),
                               outbox_id) for row in members]
    report.fired.sort(key=lambda f: f.ticket_id)
    session.execute(core_table(Event).insert().from_select(
        ["ticket_id", "at", "actor", "action", "detail"],
        select(R.c.ticket_id, literal(now, UTCDateTime()), literal(ACTOR),
               case((R.c.level == 1, "reminded"), else_="escalated"), _event_detail(session))
        .where(R.c.run_id == run_id),
    ))
    session.execute(update(T).where(T.c.id == R.c.ticket_id, R.c.run_id == run_id)
                    .values(reminded_level=R.c.level, next_reminder_at=R.c.next_due_at))
    if lost:
        session.execute(update(T).where(T.c.id.in_(lost)).values(next_reminder_at=CLOCK_STALE))


def _event_detail(session: Session) -> Any:
    """The event's JSON detail, built in SQL: level, who got it, the due time, the outbox mail."""
    to = case(*((R.c.level == lvl, name) for lvl, name in LEVEL_NAMES.items()))
    if session.get_bind().dialect.name == "postgresql":
        due = func.to_char(func.timezone("UTC", R.c.due_at), 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"')
        build = func.json_build_object
    else:
        due = func.strftime("%Y-%m-%dT%H:%M:%S+00:00", R.c.due_at)
        build = func.json_object
    return build("level", R.c.level, "to", to, "address", R.c.to_addr, "due_at", due, "outbox", R.c.outbox_id)


def _queue_digest(session: Session, wiring: Wiring, team: str, level: int, members: list[Any], to: Party,
                  now: datetime) -> int:
    """One mail to `to` about `members` (this run's tickets of one team at one level); its outbox id."""
    info = wiring.teams.get(team)
    listed = sorted(members, key=lambda row: (row.due_at, row.id))[:DIGEST_LIST_LIMIT]
    tickets = [{"reference": row.reference, "subject": row.subject, "waiting_days": max(0, (now - row.created_at).days)}
               for row in listed]
    extra = {"team": info, "recipient_name": to.name, "tickets": tickets, "total": len(members),
             "waiting_days": tickets[0]["waiting_days"]}
    if len(members) == 1:  # one ticket: the mail joins its thread and says who is waiting
        view = load_view(session, session.get_one(Ticket, members[0].id))
        data, thread = context(view, wiring.settings, **extra), view.thread()
    else:
        data, thread = _digest_context(wiring, extra), ThreadInfo("")
    rendered = wiring.renderer.render(_template(level), data, "en")
    desk = Party(wiring.settings.mail.liaison_address, wiring.settings.outbox.desk_name)
    message = compose(rendered, sender=desk, to=[to], reply_to=desk, thread=thread,
                      own_domain=wiring.settings.mail.own_domain, date=now, auto_submitted="auto-generated")
    row = enqueue(session, message, template=_template(level), actor=ACTOR, now=now,
                  ticket_id=members[0].id if len(members) == 1 else None, auto_submitted="auto-generated")
    return row.id


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
