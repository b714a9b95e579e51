"""`triage search QUERY` and `triage search --rebuild`: the workbench's search at the terminal, as
the liaison. Matched words are shown between [ and ]; `--json` gives the snippet as segments."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import click
from tqdm import tqdm

from triage.desk.actors import cli_actor
from triage.search.backend import Hit
from triage.search.service import (
    DEFAULT_LIMIT,
    KIND_NAMES,
    MAX_LIMIT,
    SearchFilters,
    rebuild,
    rebuild_size,
    search,
)
from triage.terminal import echo, echo_json

if TYPE_CHECKING:
    from triage.cli import Context

DAY = click.DateTime(formats=["%Y-%m-%d"])


def as_json(hit: Hit) -> dict[str, Any]:
    return {"kind": hit.kind, "id": hit.id, "at": hit.at.isoformat() if hit.at else None,
            "reference": hit.reference, "ticket_subject": hit.ticket_subject, "status": hit.status,
            "team": hit.team, "title": hit.title, "who": hit.who, "url": hit.url,
            "snippet": [{"text": text, "mark": marked} for text, marked in hit.snippet]}


def _line(hit: Hit) -> str:
    snippet = "".join(f"[{text}]" if marked else text for text, marked in hit.snippet)
    at = hit.at.strftime("%Y-%m-%d %H:%M") if hit.at else "-"
    where = f"contact {hit.id}" if hit.kind == "contact" else hit.reference or "(no ticket)"
    return f"{where:14} {hit.kind:8} {at:16}  {' '.join(snippet.split())[:160]}"


def _day(value: datetime | None, *, after: bool = False) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) + (timedelta(days=1) if after else timedelta())


@click.command("search")
@click.argument("query", required=False)
@click.option("--team", help="Only tickets of this team ('none': not routed yet).")
@click.option("--status", type=click.Choice(["new", "open", "waiting", "resolved"]), help="Only tickets in this status.")
@click.option("--since", type=DAY, help="From this day on (YYYY-MM-DD, UTC).")
@click.option("--until", type=DAY, help="Up to and including this day (YYYY-MM-DD, UTC).")
@click.option("--language", help="Only tickets whose contact writes in this language (ISO code, e.g. de).")
@click.option("--tag", help="Only contacts with this label, and the tickets, messages and notes of such contacts.")
@click.option("--kind", "kinds", multiple=True, type=click.Choice(list(KIND_NAMES)),
              help="Only this kind of document (repeatable).")
@click.option("--limit", type=click.IntRange(1, MAX_LIMIT), default=DEFAULT_LIMIT, show_default=True,
              help="At most this many hits.")
@click.option("--json", "as_json_output", is_flag=True, help="One JSON array instead of lines.")
@click.option("--rebuild", "rebuild_index", is_flag=True, help="Index every ticket, message, note and contact again.")
@click.pass_obj
def search_command(ctx: Context, query: str | None, team: str | None, status: str | None, since: datetime | None,
                   until: datetime | None, language: str | None, tag: str | None, kinds: tuple[str, ...], limit: int,
                   as_json_output: bool, rebuild_index: bool) -> None:
    """Find tickets, messages, internal notes and contacts by their words, newest first.

    QUERY is words (all must match), "a phrase", -word to leave out, OR between alternatives.
    """
    if rebuild_index:
        if query:
            raise click.UsageError("--rebuild takes no QUERY")
        with ctx.app() as app, tqdm(total=rebuild_size(app), unit="row", desc="search index", disable=None) as bar:
            counts = rebuild(app, step=bar.update)
        echo("search index rebuilt: " + ", ".join(f"{n} {kind}s" for kind, n in counts.items()))
        return
    if query is None:
        raise click.UsageError("give a QUERY, or --rebuild")
    filters = SearchFilters(team="" if team == "none" else team, status=status, since=_day(since),
                            until=_day(until, after=True), language=language, kinds=kinds, tag=tag)
    with ctx.app() as app:
        result = search(app, cli_actor(getpass.getuser()), query, filters, limit=limit)
    if as_json_output:
        echo_json([as_json(hit) for hit in result.hits])
        return
    if not result.hits:
        echo("nothing found")
        return
    for hit in result.hits:
        echo(_line(hit))


__all__ = ["search_command"]
