"""The digest run: each opted-in team's weekly digest, queued through the outbox exactly once per
team and ISO week.

For each team, in a transaction of its own (one team's failure or lost race leaves the others
alone):

1. the week: the one asked for, or the one due now by the team's schedule (`triage.digest.weeks`:
   `digest_weekday` and `digest_hour` of its teams-file table, in its reminder time zone);
2. the claim: an INSERT of the `digests` row (team, week) with ON CONFLICT DO NOTHING. If it
   inserts nothing, another run (a second worker, the same run repeated) has that week: reported
   as "already-sent" and nothing is built. On PostgreSQL a second insert waits for the first's
   transaction and then finds its row; SQLite's BEGIN IMMEDIATE runs the two one after the other;
3. the mail, built from `templates/email/digest/` and queued in the same transaction, so a crash
   before the commit leaves neither the claim nor the mail, and the next run sends it. A mail
   that cannot be built is a failed outbox row (`triage outbox` shows why), which the claim names:
   the week's digest is spent, as a reminder level is, rather than failing every five minutes.

A dry run builds the same mail (`Preview`) in a read transaction and writes nothing. Mail is
queued at `clock()`, the real time; `now` is the time the run is evaluated at.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from triage.digest.content import digest_content, summary
from triage.digest.topics import stop_words
from triage.digest.weeks import Week, due_week, local_week, send_time
from triage.outbox.compose import Party, ThreadInfo, compose
from triage.outbox.failures import record_failed_mail
from triage.outbox.preview import Preview, preview_of
from triage.outbox.queue import enqueue
from triage.outbox.wiring import Wiring
from triage.schedule.policy import Policies
from triage.store.db import core_table, upsert_insert, utcnow
from triage.store.digest_models import Digest
from triage.teams import Team

log = structlog.get_logger(__name__)

ACTOR = "system:digest"
TEMPLATE = "digest"
D = core_table(Digest)


@dataclass
class Outcome:
    """One team's part of a run. `status`: sent, would-send, already-sent, mail-failed, not-due,
    opted-out, week-not-over."""

    team: str
    status: str
    week: str | None = None
    to: str | None = None
    outbox_id: int | None = None
    due_at: str | None = None  # for not-due: when this week's send time comes
    summary: dict[str, Any] = field(default_factory=dict)
    preview: Preview | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {"team": self.team, "status": self.status, "week": self.week, "to": self.to,
               "outbox_id": self.outbox_id, "due_at": self.due_at, "summary": self.summary}
        if self.preview is not None:
            out["mail"] = {"subject": self.preview.subject, "headers": [list(h) for h in self.preview.headers],
                           "text": self.preview.text, "source": self.preview.source}
        return out


def team_zone(wiring: Wiring, team: str) -> str:
    """The team's time zone: its reminder calendar's ([reminders] or [reminders.teams.<key>])."""
    return Policies(wiring.settings.reminders).for_team(team).calendar.tz


def build_mail(session: Session, wiring: Wiring, team: Team, week: Week, *, now: datetime,
               queued_at: datetime) -> tuple[EmailMessage, dict[str, Any]]:
    """The digest mail of `team` for `week` and its summary (reads only)."""
    settings = wiring.settings
    content = digest_content(
        session, team.key, week, tz=team_zone(wiring, team.key), now=now,
        baseline_weeks=settings.digest.baseline_weeks, stop=stop_words(tuple(settings.digest.languages)))
    data = {
        **content,
        "desk": {"name": settings.outbox.desk_name, "address": settings.mail.liaison_address},
        "signature": settings.outbox.signature,  # the desk writes to the team: the desk's signature
        "language": "en",
        "team": {"key": team.key, "name": team.name, "address": team.address},
    }
    rendered = wiring.renderer.render(TEMPLATE, data, "en")
    desk = Party(settings.mail.liaison_address, settings.outbox.desk_name)
    message = compose(rendered, sender=desk, to=[Party(team.address, team.name)], reply_to=desk,
                      thread=ThreadInfo(""), own_domain=settings.mail.own_domain, date=queued_at,
                      auto_submitted="auto-generated")
    return message, summary(content)


def digest_preview(message: EmailMessage) -> Preview:
    return preview_of(message, template=TEMPLATE, language="en")


def sent_weeks(session: Session, team: str) -> list[Digest]:
    """The team's digests, newest week first."""
    return list(session.scalars(select(Digest).where(Digest.team == team).order_by(Digest.week.desc())))


def _claim(session: Session, team: Team, week: Week, queued_at: datetime) -> int | None:
    """Insert the (team, week) row; its id, or None when another run has it."""
    insert = upsert_insert(session)(D).values(
        team=team.key, week=str(week), to_addr=team.address, actor=ACTOR, sent_at=queued_at, summary={},
    ).on_conflict_do_nothing(index_elements=["team", "week"]).returning(D.c.id)
    claimed: int | None = session.scalar(insert)
    return claimed


def _send(session: Session, wiring: Wiring, team: Team, week: Week, now: datetime, queued_at: datetime) -> Outcome:
    """Claim, build and queue one team's digest, in the caller's transaction (not committed here)."""
    claimed = _claim(session, team, week, queued_at)
    if claimed is None:
        return Outcome(team.key, "already-sent", str(week), team.address)
    try:
        with session.begin_nested():
            message, facts = build_mail(session, wiring, team, week, now=now, queued_at=queued_at)
            row = enqueue(session, message, template=TEMPLATE, actor=ACTOR, now=queued_at, ticket_id=None,
                          auto_submitted="auto-generated")
            outbox_id, status = row.id, "sent"
    except Exception as exc:  # noqa: BLE001 - recorded as a failed row; the other teams go on
        log.error("digest.failed", team=team.key, week=str(week), error=type(exc).__name__)
        failed = record_failed_mail(session, template=TEMPLATE, ticket_id=None, to=team.address, error=exc,
                                    actor=ACTOR, now=queued_at, envelope_from=wiring.settings.mail.liaison_address,
                                    auto_submitted="auto-generated")
        outbox_id, status, facts = failed.id, "mail-failed", {}
    session.execute(D.update().where(D.c.id == claimed).values(outbox_id=outbox_id, summary=facts))
    return Outcome(team.key, status, str(week), team.address, outbox_id, summary=facts)


def run_digests(
    sessions: Callable[[], Session], wiring: Wiring, *, now: datetime, clock: Callable[[], datetime] = utcnow,
    week: Week | None = None, teams: Sequence[str] | None = None, dry_run: bool = False,
    reads: Callable[[], Session] | None = None,
) -> list[Outcome]:
    """One digest run as of `now`: a team's outcome each, in key order.

    `week`: that week's digest for every team chosen, whatever their schedule (it must be over;
    a dry run previews any week). `teams`: only these keys; a team named here is previewed even
    if it has not opted in (a dry run), never sent to. `reads`: the session factory for a dry run
    (the App's read sessions) for dry runs and the check whether a week is done already."""
    chosen = sorted(wiring.teams) if teams is None else list(teams)
    outcomes = []
    for key in chosen:
        team = wiring.teams[key]
        outcome = _one(sessions, wiring, team, now=now, clock=clock, week=week, named=teams is not None,
                       dry_run=dry_run, reads=reads or sessions)
        outcomes.append(outcome)
    sent = [o.team for o in outcomes if o.status == "sent"]
    log.info("digest.run", sent=len(sent), teams=sent, dry_run=dry_run,
             skipped={o.team: o.status for o in outcomes if o.status not in ("sent", "would-send")})
    return outcomes


def _one(sessions: Callable[[], Session], wiring: Wiring, team: Team, *, now: datetime,
         clock: Callable[[], datetime], week: Week | None, named: bool, dry_run: bool,
         reads: Callable[[], Session]) -> Outcome:
    if not team.digest and not (dry_run and named):
        return Outcome(team.key, "opted-out", to=team.address)
    tz = team_zone(wiring, team.key)
    target = week or due_week(now, tz, team.digest_weekday, team.digest_hour)
    if target is None:
        due = send_time(local_week(now, tz), tz, team.digest_weekday, team.digest_hour)
        return Outcome(team.key, "not-due", str(local_week(now, tz).shifted(-1)), team.address,
                       due_at=due.isoformat())
    if dry_run:
        with reads() as session:
            message, facts = build_mail(session, wiring, team, target, now=now, queued_at=clock())
            done = session.scalar(select(Digest.id).where(Digest.team == team.key, Digest.week == str(target)))
        return Outcome(team.key, "already-sent" if done else "would-send", str(target), team.address,
                       summary=facts, preview=digest_preview(message))
    if target.bounds(tz)[1] > now:
        return Outcome(team.key, "week-not-over", str(target), team.address)
    with reads() as session:  # the common case in the worker, read without SQLite's write lock
        if session.scalar(select(Digest.id).where(Digest.team == team.key, Digest.week == str(target))):
            return Outcome(team.key, "already-sent", str(target), team.address)
    with sessions() as session:
        outcome = _send(session, wiring, team, target, now, clock())
        session.commit()
    return outcome


__all__ = ["ACTOR", "TEMPLATE", "Outcome", "Preview", "build_mail", "digest_preview", "run_digests", "sent_weeks",
           "team_zone"]
