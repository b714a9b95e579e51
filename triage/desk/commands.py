"""`triage note`, `triage status` and `triage merge`: the ticket actions of the workbench, at the
terminal. Each parses its arguments, calls one use case of `triage.desk.actions` as the liaison
(`--actor` names them in the log) and prints what changed; a refusal is the group's one-line error."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from triage.desk.actions import STATUSES, add_note, merge, set_status, unmerge
from triage.desk.actors import cli_actor
from triage.terminal import echo

if TYPE_CHECKING:
    from triage.cli import Context

EDITOR_HINT = "# Write the internal note above (never sent). Lines starting with '#' are dropped.\n"
ACTOR_HELP = "Who acts (for the ticket's log)."


def _note_text(text: str | None) -> str:
    if text == "-" or (text is None and not sys.stdin.isatty()):
        return sys.stdin.read()
    if text is not None:
        return text
    edited = click.edit("\n\n" + EDITOR_HINT, extension=".txt") or ""
    return "\n".join(line for line in edited.splitlines() if not line.startswith("#"))


@click.command()
@click.argument("ident")
@click.argument("text", required=False)
@click.option("--actor", default="liaison", show_default=True, help=ACTOR_HELP)
@click.pass_obj
def note(ctx: Context, ident: str, text: str | None, actor: str) -> None:
    """Add an internal note to ticket IDENT: on its log for the desk, never mailed to anyone.

    TEXT is the note ('-' or none on a pipe: standard input; none on a terminal: $EDITOR).
    """
    body = _note_text(text)
    with ctx.app() as app:
        event_id = add_note(app, cli_actor(actor), ident, body)
    echo(f"note #{event_id} added to {ident.upper()}")


@click.command()
@click.argument("ident")
@click.argument("status", type=click.Choice(sorted(STATUSES), case_sensitive=False))
@click.option("--actor", default="liaison", show_default=True, help=ACTOR_HELP)
@click.pass_obj
def status(ctx: Context, ident: str, status: str, actor: str) -> None:
    """Set ticket IDENT's STATUS: waiting (on the volunteer), resolved, or open (reopened)."""
    with ctx.app() as app:
        change = set_status(app, cli_actor(actor), ident, status)
    echo(f"{change['reference']}: {change['old']} -> {change['new']}")


@click.command("merge")
@click.argument("source")
@click.argument("into", required=False)
@click.option("--undo", is_flag=True, help="Undo the merge of SOURCE (INTO, if given, must be where it went).")
@click.option("--actor", default="liaison", show_default=True, help=ACTOR_HELP)
@click.pass_obj
def merge_command(ctx: Context, source: str, into: str | None, undo: bool, actor: str) -> None:
    """Merge ticket SOURCE into ticket INTO (two tickets that threading split), or --undo it.

    SOURCE is resolved and points at INTO, whose page shows both tickets' messages.
    """
    if not undo and into is None:
        raise click.UsageError("name the ticket to merge into: triage merge SOURCE INTO")
    with ctx.app() as app:
        if undo:
            undone = unmerge(app, cli_actor(actor), source, into)
            echo(f"{undone['source']} is no longer merged into {undone['into']} (status {undone['status']})")
            return
        assert into is not None
        done = merge(app, cli_actor(actor), source, into)
    echo(f"{done['source']} merged into {done['into']} ({done['messages']} messages)")


__all__ = ["merge_command", "note", "status"]
