"""The reports use case: who may read which figures, and the period asked for.

The liaison and a viewer read every team's figures (a viewer reads, and reports only read); staff
read their own team's only, whatever team they ask for. The CLI (`triage stats --plot/--csv`) and
the workbench's /reports read here; the figures come from `triage.reports`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING

from triage.desk.actors import Actor
from triage.desk.errors import Forbidden, Invalid
from triage.reports.queries import Report, ReportFilters, read_report
from triage.store.db import utcnow
from triage.store.web_models import Role

if TYPE_CHECKING:
    from triage.bootstrap import App

MAX_TEAM = 64  # the width of the team columns


def parse_day(value: str | None, what: str) -> date | None:
    """'2026-11-02' as a date; empty is None; anything else is Invalid (400) naming `what`."""
    if not value:
        return None
    try:
        if len(value) != 10:
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise Invalid(f"{what} is not a date: {value[:20]!r}", "write it as YYYY-MM-DD, e.g. 2026-11-02") from None


def filters_for(actor: Actor, *, since: date | None = None, until: date | None = None,
                team: str | None = None) -> ReportFilters:
    """The filters `actor` may read: staff always get their own team. `until` is the last day included."""
    if since and until and since > until:
        raise Invalid(f"the period starts ({since}) after it ends ({until})", "swap the two dates")
    if team is not None and len(team) > MAX_TEAM:
        raise Invalid("no such team", "pick a team from the list")
    if actor.role is Role.staff:
        if not actor.team:
            raise Forbidden(f"{actor.name} belongs to no team", "ask the liaison to set your team")
        if team and team != actor.team:
            raise Forbidden(f"{actor.name} reads only the figures of {actor.team}", "leave the team filter empty")
        team = actor.team
    return ReportFilters(
        since=datetime.combine(since, time(), UTC) if since else None,
        until=datetime.combine(until + timedelta(days=1), time(), UTC) if until else None,
        team=team or None,
    )


def report(app: App, actor: Actor, filters: ReportFilters, *, now: datetime | None = None) -> Report:
    """Every report table for `filters` (from `filters_for`, which applies the role rules) as of `now`."""
    checked = filters_for(actor, team=filters.team)  # a staff member's own team, or Forbidden
    filters = ReportFilters(filters.since, filters.until, checked.team)
    with app.reads() as session:
        return read_report(session, app.settings, filters, now or utcnow())


__all__ = ["filters_for", "parse_day", "report"]
