"""`triage queue`, `triage approve` and `triage stats`: the liaison's routing decisions."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import Any

import click

from triage.desk import routing
from triage.desk.actors import Actor, cli_actor
from triage.desk.errors import DeskError
from triage.terminal import echo, echo_json


def _router(ctx: click.Context) -> Any:
    app = ctx.obj.open_app()
    return app, app.router()


def _actor(actor: str | None) -> Actor:
    """`--actor liaison:ana` or `--actor ana` act as the liaison ana; the default is the login name."""
    return cli_actor((actor or getpass.getuser()).removeprefix("liaison:"))


@click.command()
@click.option("--order", type=click.Choice(routing.QUEUE_ORDERS), default="oldest", show_default=True,
              help="uncertain: the suggestions the model is least sure of first (deciding them teaches it most).")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@click.pass_context
def queue(ctx: click.Context, order: str, as_json: bool) -> None:
    """Tickets waiting for a routing decision, with the suggested team, confidence and evidence."""
    app = ctx.obj.open_app()
    try:
        routing.suggest_new(app)
        rows = routing.queue(app, _actor(None), order=order, limit=100_000).items
    finally:
        app.close()
    if as_json:
        echo_json([row.as_dict() for row in rows])
        return
    if not rows:
        echo("nothing waiting for a decision")
    for row in rows:
        team = row.suggested_team or "(no suggestion: model not confident)"
        conf = f"{row.confidence:.2f}" if row.confidence is not None else "-"
        flag = f"  [!] {row.flag}" if row.flag else ""
        echo(f"{row.reference}  {team:24} {conf:>5}  {(row.subject or '')[:60]}{flag}")
        for terms, sentence in row.evidence_sentences:
            quoted = f': "{sentence}"' if sentence else ""
            echo(f"{'':15}because: {', '.join(terms)}{quoted}")


@click.command()
@click.argument("references", nargs=-1)
@click.option("--team", help="Route to this team instead of the suggestion (a correction).")
@click.option("--min-confidence", type=click.FloatRange(0, 1), help="Approve every suggestion at or above this.")
@click.option("--actor", help="Who decides (default: liaison:<login>).")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@click.pass_context
def approve(ctx: click.Context, references: tuple[str, ...], team: str | None, min_confidence: float | None,
            actor: str | None, as_json: bool) -> None:
    """Accept the suggested team for tickets (or correct it with --team); the hand-off follows."""
    if not references and min_confidence is None:
        raise click.UsageError("give ticket references, or --min-confidence X to approve in bulk")
    if references and min_confidence is not None:
        raise click.UsageError("give either references or --min-confidence, not both")
    app, who = ctx.obj.open_app(), _actor(actor)
    results: list[dict[str, Any]] = []
    failed = False
    try:
        if min_confidence is not None:
            results = routing.approve_confident(app, who, min_confidence)
        for reference in references:
            try:
                results.append(routing.correct(app, who, reference, team) if team
                               else routing.approve(app, who, reference))
            except DeskError as exc:
                failed = True
                echo(f"triage: {exc}", err=True)
    finally:
        app.close()
    failures = [r for r in results if "error" in r]  # a bulk approval goes on past a ticket that fails
    if as_json:
        echo_json(results)
    else:
        for r in results:
            if "error" in r:
                continue
            how = "accepted" if r["agreed"] else f"corrected from {r['suggested'] or 'no suggestion'}"
            echo(f"{r['reference']} -> {r['team']} ({how})")
        if min_confidence is not None:
            echo(f"{len(results) - len(failures)} approved at confidence >= {min_confidence}"
                       + (f", {len(failures)} failed" if failures else ""))
    for r in failures:
        echo(f"triage: {r['reference']} not approved: {r['error']}", err=True)
    if failed or failures:
        sys.exit(1)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="JSON output (with every report table under \"reports\").")
@click.option("--plot", "plot_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write the report charts into this folder (made if missing).")
@click.option("--format", "fmt", type=click.Choice(["svg", "png"]), default="svg", show_default=True,
              help="The charts' file format (with --plot).")
@click.option("--csv", "csv_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write every report table as CSV into this folder (made if missing).")
@click.option("--since", help="Reports: from this day on (YYYY-MM-DD, UTC).")
@click.option("--until", help="Reports: up to and including this day (YYYY-MM-DD, UTC).")
@click.option("--team", help="Reports: only this team's figures.")
@click.pass_context
def stats(ctx: click.Context, as_json: bool, plot_dir: Path | None, fmt: str, csv_dir: Path | None,
          since: str | None, until: str | None, team: str | None) -> None:
    """Routing agreement by week and coverage; overdue tickets per team and median first-response time.

    With --plot and --csv, the reports (volume, first-response median and 90th percentile,
    overdue and waiting tickets, routing agreement, coverage and corrections) go to files; the
    text printed stays the same, and the files written are listed on stderr.
    """
    from triage.desk import reports as desk_reports

    actor = _actor(None)
    filters = desk_reports.filters_for(actor, since=desk_reports.parse_day(since, "--since"),
                                       until=desk_reports.parse_day(until, "--until"), team=team)
    wants_report = as_json or plot_dir is not None or csv_dir is not None
    app = ctx.obj.open_app()
    try:
        figures = routing.stats(app, actor)
        report = desk_reports.report(app, actor, filters) if wants_report else None
    finally:
        app.close()
    if report is not None:
        _write_report_files(report, plot_dir, fmt, csv_dir)
    if as_json:
        from triage.reports.tables import tables

        assert report is not None
        figures["reports"] = {name: {"title": t.title, "header": t.header, "rows": t.rows}
                              for name, t in tables(report).items()}
        echo_json(figures)
        return
    echo(f"model {figures['model_version'] or '(none)'}: {figures['suggestions']} suggestions, "
         f"coverage {figures['coverage'] if figures['coverage'] is not None else '-'}")
    echo(f"{figures['decisions']} decisions, agreement {figures['agreement'] if figures['agreement'] is not None else '-'}; "
         f"{figures['waiting']} tickets waiting")
    for week in figures["by_week"]:
        agreement = week["agreement"] if week["agreement"] is not None else "-"
        coverage = week["coverage"] if week["coverage"] is not None else "-"
        echo(f"  {week['week']}: {week['agreed']}/{week['decisions']} agreed ({agreement}), "
             f"{week['named']}/{week['suggestions']} suggestions named a team (coverage {coverage})")
    overdue = figures["overdue_by_team"]
    echo("overdue (first response past due): "
         + (", ".join(f"{team} {n}" for team, n in sorted(overdue.items())) if overdue else "none"))
    medians = figures["median_first_response_hours"]
    if medians:
        echo("median first response, last 90 days: "
             + ", ".join(f"{team} {hours:.1f} h" for team, hours in sorted(medians.items())))


def _write_report_files(report: Any, plot_dir: Path | None, fmt: str, csv_dir: Path | None) -> None:
    """The charts and the CSV tables into their folders, each file named on stderr (stdout keeps
    the figures, so `--json` stays one parseable document)."""
    from triage.reports import charts
    from triage.reports.tables import tables, to_csv

    if plot_dir is not None:
        plot_dir.mkdir(parents=True, exist_ok=True)
        for name in charts.CHARTS:
            path = plot_dir / f"{name}.{fmt}"
            path.write_bytes(charts.chart(report, name, fmt))
            echo(f"wrote {path}", err=True)
    if csv_dir is not None:
        csv_dir.mkdir(parents=True, exist_ok=True)
        for name, table in tables(report).items():
            path = csv_dir / f"{name}.csv"
            path.write_text(to_csv(table), encoding="utf-8", newline="")
            echo(f"wrote {path}", err=True)


@click.command()
@click.option("--force", is_flag=True, help="Retrain even below routing.min_new_decisions.")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@click.pass_context
def retrain(ctx: click.Context, force: bool, as_json: bool) -> None:
    """Retrain from the liaison's decisions; the new model replaces the current one only if at least as good."""
    from triage.routing.retrain import retrain as run_retrain

    app, router = _router(ctx)
    try:
        result = run_retrain(router, app.settings.routing, force=force)
    finally:
        app.close()
    if as_json:
        echo_json(result.as_dict())
    else:
        echo(("promoted: " if result.promoted else "kept the current model: ") + result.reason)
        if result.selected:
            echo(f"candidate: {result.selected}, selected on the older decisions in {result.selection_seconds or 0.0:.1f} s")
