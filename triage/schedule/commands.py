"""`triage remind`: one reminder run, for cron or by hand (run_worker.py runs it on an interval)."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from triage.schedule.run import run_reminders, summarise
from triage.terminal import echo, echo_json


def _parse_now(value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO date-time such as 2026-11-24T10:00:00+01:00") from None
    if parsed.tzinfo is None:
        raise click.BadParameter("give a time zone offset (e.g. +00:00 or Z): a naive time is ambiguous")
    return parsed.astimezone(UTC)


@click.command()
@click.option("--dry-run", is_flag=True, help="Print what would fire and why; send and record nothing.")
@click.option("--now", "now_iso", metavar="ISO", help="Evaluate as of this time (ISO 8601 with offset).")
@click.option("--json", "as_json", is_flag=True, help="JSON: what fired and what was skipped, with reasons.")
@click.pass_context
def remind(ctx: click.Context, dry_run: bool, now_iso: str | None, as_json: bool) -> None:
    """Send the reminders and escalations that are due (each exactly once)."""
    now = _parse_now(now_iso)
    app = ctx.obj.open_app()
    try:
        report = run_reminders(app.sessions, app.settings, now=now, dry_run=dry_run, wiring=app.wiring)
    finally:
        app.close()
    if as_json:
        echo_json(report.as_dict())
        return
    for line in summarise(report):
        echo(line)


__all__ = ["remind"]
