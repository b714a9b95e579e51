"""The reminder run: SQL picks the candidate tickets, `next_due` decides, the outbox sends.

Set-based: one indexed query per batch selects unanswered open tickets old enough to be due
for somebody and not already covered by a reminder whose next step is still ahead; Python
sees only those. For each `Due`, a `reminders` row is inserted with ON CONFLICT DO NOTHING on
(ticket, level, due time); only when this run's insert wins is the mail queued, in the same
transaction, and a `reminded` (level 1) or `escalated` (levels 2-3) event logged. Two runs at
once, or one run repeated, therefore never send the same reminder twice.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import exists, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from triage.config import Settings
from triage.outbox.compose import ComposeError, Party, compose
from triage.outbox.mails import context, load_view
from triage.outbox.queue import OutboxError, enqueue
from triage.outbox.render import TemplateError
from triage.outbox.wiring import Wiring, wiring_for
from triage.schedule.due import Due, Skip, TicketFacts, due_times, next_due
from triage.schedule.policy import LEVEL_NAMES, LEVELS, Policies, Policy
from triage.store.models import Event, Ticket, TicketStatus
from triage.store.outbox_models import Outbox, OutboxStatus
from triage.store.schedule_models import Reminder

log = structlog.get_logger(__name__)

ACTOR = "system:remind"
OPEN_STATUSES = (TicketStatus.new, TicketStatus.open, TicketStatus.waiting)


@dataclass(frozen=True)
class Fired:
    ticket_id: int
    reference: str
    team: str | None
    level: int
    due_at: str
    to: str
    template: str
    outbox_id: int | None  # None in a dry run


@dataclass(frozen=True)
class Skipped:
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
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def reasons(self) -> dict[str, int]:
        return dict(sorted(Counter(s.reason for s in self.skipped).items()))

    def as_dict(self) -> dict[str, Any]:
        return {"now": self.now, "dry_run": self.dry_run, "fired": [asdict(f) for f in self.fired],
                "skipped": [asdict(s) for s in self.skipped], "skip_reasons": self.reasons}


def answered_by_a_person() -> Any:
    """A ticket on which a person's mail (not automatic, not failed) was queued: it has its answer."""
    return exists().where(Outbox.ticket_id == Ticket.id, Outbox.auto_submitted.is_(None),
                          Outbox.status != OutboxStatus.failed)


def candidate_query(now: datetime, cutoff: datetime, after_id: int, limit: int) -> Any:
    """Unanswered open tickets created before `cutoff` with no reminder step still ahead of `now`."""
    answered = answered_by_a_person()
    covered = exists().where(Reminder.ticket_id == Ticket.id,
                             or_(Reminder.next_due_at.is_(None), Reminder.next_due_at > now))
    return (
        select(Ticket.id, Ticket.reference, Ticket.team, Ticket.status, Ticket.created_at)
        .where(Ticket.status.in_(OPEN_STATUSES), Ticket.created_at <= cutoff, Ticket.team.is_not(None),
               Ticket.id > after_id, ~answered, ~covered)
        .order_by(Ticket.id).limit(limit)
    )


def load_facts(session: Session, rows: list[Any]) -> list[TicketFacts]:
    """The due-time facts of `rows` (id, team, status, created_at): status changes and levels sent, two queries."""
    ids = [row.id for row in rows]
    changes: dict[int, list[tuple[datetime, str]]] = defaultdict(list)
    for ticket_id, at, detail in session.execute(
        select(Event.ticket_id, Event.at, Event.detail).where(Event.ticket_id.in_(ids), Event.action == "status")
    ):
        if ticket_id is not None and isinstance(detail, dict) and detail.get("new"):
            changes[ticket_id].append((at, str(detail["new"])))
    reminded: dict[int, set[int]] = defaultdict(set)
    for ticket_id, level in session.execute(
        select(Reminder.ticket_id, Reminder.level).where(Reminder.ticket_id.in_(ids))
    ):
        reminded[ticket_id].add(level)
    return [
        TicketFacts(row.id, row.team, row.created_at, row.status.value, None, tuple(changes[row.id]),
                    frozenset(reminded[row.id]))
        for row in rows
    ]


def _recipient(wiring: Wiring, policy: Policy, team: str, level: int) -> Party | None:
    info = wiring.teams.get(team)
    if level == 1:
        return Party(info.address, info.name) if info is not None else None
    if level == 2:
        if policy.lead_address:
            return Party(policy.lead_address, f"{info.name} lead" if info is not None else None)
        return Party(info.address, info.name) if info is not None else None
    return Party(policy.escalation_address or wiring.settings.mail.liaison_address, None)


def _insert_reminder(session: Session, values: dict[str, Any]) -> int | None:
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (insert(Reminder).values(**values)
            .on_conflict_do_nothing(index_elements=["ticket_id", "level", "due_at"]).returning(Reminder.id))
    return session.scalar(stmt)


def _fire(session: Session, wiring: Wiring, policy: Policy, facts: TicketFacts, due: Due, to: Party,
          now: datetime) -> Fired | str:
    """Insert the reminder and queue its mail; a reason string when another run already did."""
    template = "reminder" if due.level == 1 else "escalation"
    later = due_times(facts, policy, now)
    next_due_at = later[due.level + 1] if due.level < LEVELS[-1] else None
    reminder_id = _insert_reminder(session, {
        "ticket_id": facts.ticket_id, "level": due.level, "due_at": due.due_at, "team": facts.team,
        "to_addr": to.address.lower(), "fired_at": now, "next_due_at": next_due_at,
    })
    if reminder_id is None:
        return "already-reminded"
    ticket = session.get_one(Ticket, facts.ticket_id)
    view = load_view(session, ticket)
    info = wiring.teams.get(facts.team or "")
    data = context(view, wiring.settings, team=info, recipient_name=to.name,
                   waiting_days=max(0, (now - facts.created_at).days))
    rendered = wiring.renderer.render(template, data, "en")
    desk = Party(wiring.settings.mail.liaison_address, wiring.settings.outbox.desk_name)
    message = compose(rendered, sender=desk, to=[to], reply_to=desk, thread=view.thread(),
                      own_domain=wiring.settings.mail.own_domain, date=now, auto_submitted="auto-generated")
    row = enqueue(session, message, template=template, actor=ACTOR, now=now, ticket_id=facts.ticket_id,
                  auto_submitted="auto-generated")
    session.get_one(Reminder, reminder_id).outbox_id = row.id
    session.add(Event(ticket_id=facts.ticket_id, at=now, actor=ACTOR,
                      action="reminded" if due.level == 1 else "escalated",
                      detail={"level": due.level, "to": LEVEL_NAMES[due.level], "address": to.address,
                              "due_at": due.due_at.isoformat(), "outbox": row.id}))
    return Fired(facts.ticket_id, ticket.reference, facts.team, due.level, due.due_at.isoformat(), to.address,
                 template, row.id)


def run_reminders(
    sessions: Callable[[], Session], settings: Settings, *, now: datetime, dry_run: bool = False,
) -> RunReport:
    """One reminder run as of `now`: what fired and what was skipped, with reasons."""
    policies = Policies(settings.reminders)
    wiring = wiring_for(settings)
    report = RunReport(now.isoformat(), dry_run)
    cutoff = now - timedelta(hours=policies.min_first_hours)
    after_id = 0
    while True:
        with sessions() as session, session.begin():
            rows = list(session.execute(candidate_query(now, cutoff, after_id, settings.reminders.batch_size)))
            if not rows:
                break
            after_id = rows[-1].id
            references = {row.id: row.reference for row in rows}
            for facts in load_facts(session, rows):
                _decide(session, wiring, policies, facts, references[facts.ticket_id], now, dry_run, report)
        if len(rows) < settings.reminders.batch_size:
            break
    log.info("remind.run", fired=len(report.fired), skipped=report.reasons, dry_run=dry_run)
    return report


def _decide(session: Session, wiring: Wiring, policies: Policies, facts: TicketFacts, reference: str,
            now: datetime, dry_run: bool, report: RunReport) -> None:
    policy = policies.for_team(facts.team)
    verdict = next_due(facts, policy, now)
    if isinstance(verdict, Skip):
        report.skipped.append(_skipped(verdict, reference))
        return
    to = _recipient(wiring, policy, facts.team or "", verdict.level)
    if to is None:
        report.skipped.append(Skipped(facts.ticket_id, reference, "unknown-team", verdict.level,
                                      verdict.due_at.isoformat()))
        return
    if dry_run:
        report.fired.append(Fired(facts.ticket_id, reference, facts.team, verdict.level, verdict.due_at.isoformat(),
                                  to.address, "reminder" if verdict.level == 1 else "escalation", None))
        return
    savepoint = session.begin_nested()
    try:
        outcome = _fire(session, wiring, policy, facts, verdict, to, now)
        savepoint.commit()
    except (ComposeError, TemplateError, OutboxError) as exc:
        savepoint.rollback()
        log.error("remind.failed", ticket=reference, error=str(exc))
        report.skipped.append(Skipped(facts.ticket_id, reference, "error", verdict.level, verdict.due_at.isoformat()))
        return
    if isinstance(outcome, str):
        report.skipped.append(Skipped(facts.ticket_id, reference, outcome, verdict.level, verdict.due_at.isoformat()))
    else:
        report.fired.append(replace(outcome, reference=reference))


def _skipped(skip: Skip, reference: str) -> Skipped:
    return Skipped(skip.ticket_id, reference, skip.reason, skip.level,
                   skip.due_at.isoformat() if skip.due_at else None)


def summarise(report: RunReport) -> Iterable[str]:
    """Lines for people: each reminder fired (or that would fire), then the skip reasons counted."""
    verb = "would send" if report.dry_run else "sent"
    for f in report.fired:
        yield (f"{f.reference}: {verb} level {f.level} ({LEVEL_NAMES[f.level]}) {f.template} to {f.to}, "
               f"due {f.due_at}")
    yield f"{len(report.fired)} {'would fire' if report.dry_run else 'fired'}, {len(report.skipped)} skipped"
    for reason, count in report.reasons.items():
        yield f"  skipped {count}: {reason}"


__all__ = [
    "ACTOR", "Fired", "RunReport", "Skipped", "answered_by_a_person", "candidate_query", "load_facts", "run_reminders",
    "summarise",
]
