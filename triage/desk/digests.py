"""The weekly digests as use cases: the run by hand (`triage digest`) and the /digests page.

Sending is the liaison's (as the outbox's decisions are); anyone may preview the digest of a
team they can see: staff their own team's only, the liaison and viewers every team's.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from triage.desk.actors import Actor
from triage.desk.errors import Invalid, NotFound
from triage.desk.mail_roles import require_mail_operator
from triage.digest.run import Outcome, Preview, build_mail, digest_preview, run_digests, sent_weeks, team_zone
from triage.digest.weeks import Week, WeekError, last_complete_week, parse_week
from triage.store.db import utcnow
from triage.store.outbox_models import Outbox
from triage.store.web_models import Role
from triage.teams import Team

if TYPE_CHECKING:
    from triage.bootstrap import App

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def week_arg(value: str | None) -> Week | None:
    """A week given by a person (`2026-W48`), or Invalid."""
    if value is None:
        return None
    try:
        return parse_week(value)
    except WeekError as exc:
        raise Invalid(str(exc), "write the ISO week as YYYY-Www, e.g. 2026-W48") from None


def _visible_teams(app: App, actor: Actor) -> list[Team]:
    teams = app.wiring.teams
    if actor.role is Role.staff:
        return [teams[actor.team]] if actor.team in teams else []
    return [teams[key] for key in sorted(teams)]


def _team(app: App, actor: Actor, key: str) -> Team:
    for team in _visible_teams(app, actor):
        if team.key == key:
            return team
    known = ", ".join(t.key for t in _visible_teams(app, actor)) or "none"
    raise NotFound(f"no team {key!r}", f"teams: {known}")


def run(app: App, actor: Actor, *, week: str | None = None, team: str | None = None, dry_run: bool = False,
        now: datetime | None = None) -> list[Outcome]:
    """The digest run by hand: the digests due now (or `week`'s), of every opted-in team or of
    `team`. A dry run previews the mails and writes nothing."""
    if not dry_run:
        require_mail_operator(actor, "the digests")
    teams = [_team(app, actor, team).key] if team is not None else None
    if teams is None and actor.role is Role.staff:
        teams = [t.key for t in _visible_teams(app, actor)]
    return run_digests(app.sessions, app.wiring, now=now or utcnow(), week=week_arg(week), teams=teams,
                       dry_run=dry_run, reads=app.reads)


def overview(app: App, actor: Actor, *, now: datetime | None = None) -> list[dict[str, Any]]:
    """Each team the actor may see: its opt-in and schedule, the last digest sent (with its mail's
    status), and a preview of the digest of the last complete week, the one this week sends."""
    now = now or utcnow()
    wiring = app.wiring
    rows = []
    with app.reads() as session:
        for team in _visible_teams(app, actor):
            tz = team_zone(wiring, team.key)
            week = last_complete_week(now, tz)
            message, facts = build_mail(session, wiring, team, week, now=now, queued_at=now)
            digests = sent_weeks(session, team.key)
            last = digests[0] if digests else None
            mail_status = session.scalar(select(Outbox.status).where(Outbox.id == last.outbox_id)) \
                if last is not None and last.outbox_id is not None else None
            rows.append({
                "key": team.key, "name": team.name, "address": team.address, "digest": team.digest,
                "schedule": f"{WEEKDAYS[team.digest_weekday - 1]} {team.digest_hour:02d}:00 ({tz})",
                "last": None if last is None else {
                    "week": last.week, "sent_at": last.sent_at.isoformat(), "outbox_id": last.outbox_id,
                    "mail_status": mail_status.value if mail_status is not None else None,
                    "summary": last.summary},
                "sent": len(digests),
                "preview_week": str(week),
                "preview_sent": any(d.week == str(week) for d in digests),
                "preview": digest_preview(message), "summary": facts,
            })
    return rows


__all__ = ["Preview", "overview", "run", "week_arg"]
