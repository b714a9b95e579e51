"""The database half of the reports: each query groups in SQL (by day, team, ...) and returns few
rows, so a report over 100,000 tickets moves hundreds of rows, not 100,000 objects.

The only exception is the first-response time on SQLite, which has no percentile aggregate:
one sorted row of three scalars per ticket (month, team, seconds), no ORM objects; PostgreSQL
computes the percentiles itself (`percentile_cont`).

**First-response time.** A ticket's first response is the first mail a person queued on it (a
liaison's reply, or a staff reply by mail relayed to the volunteer, `staff-reply`) at or after the
ticket's arrival, which is the arrival of the first inbound mail that opened it; automatic mail
(acknowledgments, hand-offs, reminders: `auto_submitted` set) and mail that could not be built
(`failed`) do not count. The same rule as the reminder run's `answered_by_a_person`, so a ticket
is "answered" in a report exactly when its reminders stop for that reason. Wall-clock hours, not
business hours: the reminders' business-hours clock is what `overdue` counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Float, Integer, Subquery, and_, cast, func, or_, select, tuple_
from sqlalchemy.orm import Session

from triage.config import Settings
from triage.reports import maths
from triage.schedule.stats import overdue_by_team
from triage.store.models import Contact, Decision, Direction, Message, Suggestion, Ticket, TicketStatus
from triage.store.outbox_models import Outbox, OutboxStatus


@dataclass(frozen=True, slots=True)
class ReportFilters:
    """The period [since, until) that history is read for, and one team (None: every team)."""

    since: datetime | None = None
    until: datetime | None = None
    team: str | None = None


@dataclass(frozen=True, slots=True)
class Waiting:
    """Tickets waiting on the volunteer (status `waiting`) of one team, and the oldest one's last change."""

    team: str
    tickets: int
    oldest_since: datetime | None


@dataclass(slots=True)
class Report:
    """Every table of the reports, for one set of filters at one moment."""

    filters: ReportFilters
    now: datetime
    volume: dict[str, list[tuple[str, str, int]]] = field(default_factory=dict)  # total / team / language
    mail_by_kind: list[tuple[str, str, int]] = field(default_factory=list)  # (week, kind, inbound mails)
    first_response: list[maths.ResponseFigure] = field(default_factory=list)
    overdue: dict[str, int] = field(default_factory=dict)
    waiting: list[Waiting] = field(default_factory=list)
    routing: list[maths.RoutingWeek] = field(default_factory=list)
    corrections: list[tuple[str, str, int]] = field(default_factory=list)  # (suggested, chosen, decisions)
    decisions_matrix: list[tuple[str | None, str, int]] = field(default_factory=list)  # every decision


def day_of(session: Session, column: Any) -> ColumnElement[str]:
    """The UTC calendar day of a timestamp column as 'YYYY-MM-DD', on both engines (SQLite stores
    UTC text 'YYYY-MM-DD HH:MM:SS', PostgreSQL a timestamptz read here in UTC, whatever the
    session's time zone)."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    return func.substr(column, 1, 10)


def seconds_between(session: Session, start: Any, end: Any) -> ColumnElement[float]:
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.extract("epoch", end - start), Float)
    return (func.julianday(end) - func.julianday(start)) * 86400.0


def _period(column: Any, filters: ReportFilters) -> list[ColumnElement[bool]]:
    return [condition for condition in (
        column >= filters.since if filters.since else None,
        column < filters.until if filters.until else None,
    ) if condition is not None]


def _team(filters: ReportFilters) -> list[ColumnElement[bool]]:
    return [Ticket.team == filters.team] if filters.team else []


def volume_rows(session: Session, filters: ReportFilters) -> list[tuple[str, str | None, str | None, int]]:
    """New tickets per (day, team, contact's language); a ticket merged into another is left out
    (its mail is on that one), like the ticket list."""
    day = day_of(session, Ticket.created_at)
    query = (select(day, Ticket.team, Contact.language, func.count())
             .select_from(Ticket).outerjoin(Contact, Contact.id == Ticket.contact_id)
             .where(Ticket.merged_into_id.is_(None), *_period(Ticket.created_at, filters), *_team(filters))
             .group_by(day, Ticket.team, Contact.language))
    return [(d, team, language, int(n)) for d, team, language, n in session.execute(query)]


def kind_rows(session: Session, filters: ReportFilters) -> list[tuple[str, str, int]]:
    """Inbound mail per (day, kind: normal, autoreply, bounce); with a team, only that team's tickets'."""
    day = day_of(session, Message.received_at)
    query = (select(day, Message.kind, func.count()).where(Message.direction == Direction.inbound,
                                                           *_period(Message.received_at, filters))
             .group_by(day, Message.kind))
    if filters.team:
        query = query.join(Ticket, Ticket.id == Message.ticket_id).where(*_team(filters))
    return [(d, kind, int(n)) for d, kind, n in session.execute(query)]


def month_of(session: Session, column: Any) -> ColumnElement[str]:
    """The UTC calendar month of a timestamp column as 'YYYY-MM' (see `day_of`)."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM")
    return func.substr(column, 1, 7)


def _response_seconds(session: Session, filters: ReportFilters) -> Subquery:
    """(month of arrival, team, seconds to the first response or None) per ticket arrived in the
    period (see the module's docstring for what counts as a response), read through the partial
    index ix_outbox_answers. SQLite runs a correlated MIN (one index seek a ticket) fastest;
    PostgreSQL a merge join grouped by ticket (half the time of its correlated sub-plan)."""
    answer = and_(Outbox.ticket_id == Ticket.id, Outbox.created_at >= Ticket.created_at,
                  Outbox.auto_submitted.is_(None), Outbox.status != OutboxStatus.failed)
    tickets = and_(Ticket.merged_into_id.is_(None), *_period(Ticket.created_at, filters), *_team(filters))
    team = func.coalesce(Ticket.team, maths.UNROUTED).label("team")
    if session.get_bind().dialect.name == "postgresql":
        month = func.date_trunc("month", func.timezone("UTC", Ticket.created_at)).label("month")
        return (select(month, team, seconds_between(session, Ticket.created_at, func.min(Outbox.created_at))
                       .label("seconds"))
                .select_from(Ticket).outerjoin(Outbox, answer).where(tickets).group_by(Ticket.id)
                .subquery("responses"))
    first = select(func.min(Outbox.created_at)).where(answer).correlate(Ticket).scalar_subquery()
    return (select(month_of(session, Ticket.created_at).label("month"), team,
                   seconds_between(session, Ticket.created_at, first).label("seconds"))
            .where(tickets).subquery("responses"))


def response_figures(session: Session, filters: ReportFilters) -> list[maths.ResponseFigure]:
    """Median and 90th percentile of the first-response time per month and team, and per month
    for all teams ('*'). PostgreSQL computes them (`percentile_cont` over GROUPING SETS: a few dozen
    rows come back); SQLite has no percentile aggregate, and its window functions cost three times
    a sort, so it returns one narrow row per ticket (month, team, seconds) already sorted, and
    `maths.first_response` reads the two ranks of each group without sorting them."""
    r = _response_seconds(session, filters)
    if session.get_bind().dialect.name != "postgresql":
        query = (select(r.c.month, r.c.team, r.c.seconds)
                 .order_by(r.c.month, r.c.team, r.c.seconds.nulls_last()))
        result = session.connection().execute(query)
        try:  # the DBAPI's own tuples: a Row object each would cost half as much again as the query
            rows = result.cursor.fetchall()
        finally:
            result.close()
        return maths.first_response(rows)
    grouped = (select(func.to_char(r.c.month, "YYYY-MM"), r.c.team, func.count(), func.count(r.c.seconds),
                      func.percentile_cont(0.5).within_group(r.c.seconds),
                      func.percentile_cont(0.9).within_group(r.c.seconds))
               .group_by(func.grouping_sets(tuple_(r.c.month, r.c.team), tuple_(r.c.month))))
    figures = [maths.response_figure(m, team or "*", int(n), int(answered),
                                     None if median is None else float(median), None if p90 is None else float(p90))
               for m, team, n, answered, median, p90 in session.execute(grouped)]
    return sorted(figures, key=lambda f: (f.month, f.team))


def waiting_rows(session: Session, filters: ReportFilters) -> list[Waiting]:
    """Tickets waiting on the volunteer now, per team (the period does not apply: it is the present)."""
    query = (select(Ticket.team, func.count(), func.min(Ticket.updated_at))
             .where(Ticket.status == TicketStatus.waiting, Ticket.merged_into_id.is_(None), *_team(filters))
             .group_by(Ticket.team).order_by(Ticket.team))
    return [Waiting(team or maths.UNROUTED, int(n), oldest) for team, n, oldest in session.execute(query)]


def decision_rows(session: Session, filters: ReportFilters) -> list[tuple[str, int, int]]:
    """(day, decisions, agreed with the suggestion), by the day they were made."""
    day = day_of(session, Decision.decided_at)
    query = (select(day, func.count(), func.sum(cast(Decision.agreed, Integer)))
             .where(*_period(Decision.decided_at, filters), *_decision_team(filters)).group_by(day))
    return [(d, int(n), int(agreed or 0)) for d, n, agreed in session.execute(query)]


def suggestion_rows(session: Session, filters: ReportFilters) -> list[tuple[str, int, int]]:
    """(day, suggestions, those naming a team): coverage is the share where the model did not abstain."""
    day = day_of(session, Suggestion.created_at)
    query = (select(day, func.count(), func.count(Suggestion.team))
             .where(*_period(Suggestion.created_at, filters)).group_by(day))
    if filters.team:
        query = query.join(Ticket, Ticket.id == Suggestion.ticket_id).where(*_team(filters))
    return [(d, int(n), int(named or 0)) for d, n, named in session.execute(query)]


def _decision_team(filters: ReportFilters) -> list[ColumnElement[bool]]:
    """A team's decisions: those that routed a ticket to it, or away from its suggestion of it."""
    if not filters.team:
        return []
    return [or_(Decision.team == filters.team, Decision.suggested_team == filters.team)]


def pair_rows(session: Session, filters: ReportFilters) -> list[tuple[str | None, str, int]]:
    """(suggested team, team chosen, decisions) over the period."""
    query = (select(Decision.suggested_team, Decision.team, func.count())
             .where(*_period(Decision.decided_at, filters), *_decision_team(filters))
             .group_by(Decision.suggested_team, Decision.team))
    return [(suggested, chosen, int(n)) for suggested, chosen, n in session.execute(query)]


def read_report(session: Session, settings: Settings, filters: ReportFilters, now: datetime) -> Report:
    """Every table of the reports, read in one session."""
    overdue = overdue_by_team(session, settings, now)  # the reminder run's own rule (triage.schedule.stats)
    if filters.team:
        overdue = {team: n for team, n in overdue.items() if team == filters.team}
    pairs = pair_rows(session, filters)
    return Report(
        filters=filters, now=now,
        volume=maths.volume(volume_rows(session, filters)),
        mail_by_kind=maths.by_week(kind_rows(session, filters)),
        first_response=response_figures(session, filters),
        overdue=overdue,
        waiting=waiting_rows(session, filters),
        routing=maths.routing_weeks(decision_rows(session, filters), suggestion_rows(session, filters)),
        corrections=maths.confusion(pairs),
        decisions_matrix=pairs,
    )


__all__ = ["Report", "ReportFilters", "Waiting", "day_of", "month_of", "read_report", "response_figures",
           "seconds_between"]
