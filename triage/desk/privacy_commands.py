"""`triage contact export` and `triage contact erase`: a person's request for their data, at the
terminal. Each calls one use case of `triage.desk.privacy` as the liaison (`--actor` names them
on the tombstone); a refusal is the group's one-line error."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from triage.desk.actors import cli_actor
from triage.desk.privacy import erase_person, export_person, person_view
from triage.terminal import echo, echo_json

if TYPE_CHECKING:
    from triage.cli import Context

ACTOR_HELP = "Who acts (named on the tombstone)."


@click.command("export")
@click.argument("ref")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The zip file to write (must not exist): person.json, mails/*.eml, attachments/*.")
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
@click.option("--actor", default="liaison", show_default=True, help="Who asks (for the log).")
@click.pass_obj
def export_command(ctx: Context, ref: str, out: Path, as_json: bool, actor: str) -> None:
    """Write everything held about the person REF (contact id or address) to a zip file.

    The zip holds person.json (contact, tickets with their events, suggestions and decisions,
    messages with headers and text, outbox mails, bounces, quarantined mail) and each raw mail
    and attachment under a name the desk gives it, never the sender's.
    """
    with ctx.app() as app:
        export = export_person(app, cli_actor(actor), ref)
    data = export.zip_bytes()
    try:
        handle = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise click.UsageError(f"{out} exists: choose another --out (an export never overwrites)") from None
    with os.fdopen(handle, "wb") as file:
        file.write(data)
    summary = {"out": str(out), "bytes": len(data), "messages": len(export.document["messages"]),
               "tickets": len(export.document["tickets"]), "files": len(export.files)}
    if as_json:
        echo_json(summary)
    else:
        echo(f"wrote {out}: {summary['tickets']} tickets, {summary['messages']} messages, "
             f"{summary['files']} files ({summary['bytes']} bytes)")


@click.command("erase")
@click.argument("ref")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (needed when not on a terminal).")
@click.option("--json", "as_json", is_flag=True, help="Print the tombstone as JSON.")
@click.option("--actor", default="liaison", show_default=True, help=ACTOR_HELP)
@click.pass_obj
def erase_command(ctx: Context, ref: str, yes: bool, as_json: bool, actor: str) -> None:
    """Erase the person REF (contact id or address): their mail, attachments, address and name,
    the desk's mail to them and the notes on their tickets. Cannot be undone.

    Tickets stay as empty shells (team, status, dates) for reports; a tombstone records what was
    erased, when and by whom. Run again for the same contact id, it reports that tombstone.
    """
    who = cli_actor(actor)
    with ctx.app() as app:
        if not yes:
            if not sys.stdin.isatty():
                raise click.UsageError("erasure cannot be undone: add --yes to confirm it")
            view = person_view(app, who, ref)
            click.confirm(f"Erase contact {view.contact_id} ({view.tickets} tickets, {view.messages} messages, "
                          f"{view.attachments} attachments, {view.outbox} outgoing mails)? This cannot be undone",
                          abort=True)
        done = erase_person(app, who, ref)
    if as_json:
        echo_json(done.as_dict())
    elif done.already:
        echo(f"already erased (erasure #{done.erasure_id} on {done.at:%Y-%m-%d %H:%M} UTC by {done.actor}); "
             "nothing changed")
    else:
        counts = done.counts
        echo(f"erasure #{done.erasure_id}: {counts.get('messages', 0)} messages, {counts.get('attachments', 0)} "
             f"attachments, {counts.get('outbox', 0)} outgoing mails, {counts.get('notes', 0)} notes erased; "
             f"tickets kept as shells: {', '.join(done.tickets) or 'none'}")


__all__ = ["erase_command", "export_command"]
