"""`triage digest`: the weekly digest run by hand or from cron (the worker runs it on an interval)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from triage.desk.actors import cli_actor
from triage.desk.digests import run
from triage.terminal import echo, echo_json, echo_text

if TYPE_CHECKING:
    from triage.cli import Context

WHY = {
    "opted-out": "not asked for (digest = true in the teams file turns it on)",
    "not-due": "not due yet",
    "already-sent": "already sent",
    "week-not-over": "the week is not over yet",
    "mail-failed": "could not be built (see `triage outbox`)",
}


@click.command()
@click.option("--week", metavar="YYYY-Www", help="This ISO week's digest (e.g. 2026-W48), whatever the schedule.")
@click.option("--team", metavar="KEY", help="Only this team (a dry run previews it even if it has not opted in).")
@click.option("--dry-run", is_flag=True, help="Print each mail exactly as it would be queued; queue nothing.")
@click.option("--json", "as_json", is_flag=True, help="JSON: each team's outcome (and mail, with --dry-run).")
@click.option("--actor", default="liaison", show_default=True, help="Who runs it (for the log).")
@click.pass_obj
def digest(ctx: Context, week: str | None, team: str | None, dry_run: bool, as_json: bool, actor: str) -> None:
    """Queue the weekly digest of each opted-in team that is due (each team and week exactly once).

    Without --week a team's digest of last week is due from its send time (digest_weekday and
    digest_hour in the teams file, Monday 08:00 by default, in the team's time zone).
    """
    with ctx.app() as app:
        outcomes = run(app, cli_actor(actor), week=week, team=team, dry_run=dry_run)
    if as_json:
        echo_json([o.as_dict() for o in outcomes])
    else:
        for o in outcomes:
            if o.preview is not None:
                state = " (already sent; this is what it said as of now)" if o.status == "already-sent" else ""
                echo(f"== {o.team} {o.week}: would send to {o.to}{state}")
                for name, value in o.preview.headers:
                    echo(f"{name}: {value}")
                echo()
                echo_text(o.preview.text.rstrip("\n"))
                echo()
            elif o.status == "sent":
                echo(f"{o.team} {o.week}: sent to {o.to} (outbox #{o.outbox_id})")
            else:
                due = f", due {o.due_at}" if o.due_at else ""
                echo(f"{o.team}{' ' + o.week if o.week else ''}: {WHY.get(o.status, o.status)}{due}")
        if not dry_run and not app.settings.smtp.host and any(o.status == "sent" for o in outcomes):
            echo("smtp.host is not set: the mail waits in the outbox until it is", err=True)
    if any(o.status == "mail-failed" for o in outcomes):
        sys.exit(1)


__all__ = ["digest"]
