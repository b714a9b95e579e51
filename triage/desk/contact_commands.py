"""`triage contact ...`: the address book at the terminal (list, show, edit, merge, unmerge,
duplicates, import). Each command calls one use case of `triage.desk.contacts` (or its merge and
file neighbours) as the liaison; `--actor` names them in the contact's history. A contact REF is
its number or any of its addresses."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from triage.contacts.exchange import write_csv, write_vcard
from triage.desk.actors import cli_actor
from triage.desk.contact_files import duplicate_contacts, export_records, import_contacts
from triage.desk.contact_merge import merge_contacts, unmerge_contact
from triage.desk.contacts import ContactEdit, contact_page, edit_contact, list_contacts
from triage.desk.privacy_commands import erase_command, export_command
from triage.desk.tickets import as_json as to_json
from triage.terminal import echo, echo_json, echo_text

if TYPE_CHECKING:
    from triage.cli import Context

ACTOR_HELP = "Who acts (for the contact's history)."
MAX_IMPORT_BYTES = 5_000_000


@click.group("contact")
def contact() -> None:
    """The address book: people, their addresses, labels, notes and consent; a person's data (export, erase)."""


@contact.command("list")
@click.option("--filter", "text", help="Only contacts whose name, address or label contains this.")
@click.option("--tag", help="Only contacts with this label (tag, role, project or language), exactly.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many (default: all).")
@click.option("--json", "as_json", is_flag=True, help="One JSON array.")
@click.option("--csv", "as_csv", is_flag=True, help="The whole address book as CSV (for a spreadsheet).")
@click.option("--vcard", "as_vcard", is_flag=True, help="The whole address book as vCard 3.0.")
@click.pass_obj
def list_command(ctx: Context, text: str | None, tag: str | None, limit: int | None, as_json: bool,
                 as_csv: bool, as_vcard: bool) -> None:
    """List contacts, most recently heard from first (merged contacts live on in their survivor)."""
    if sum((as_json, as_csv, as_vcard)) > 1:
        raise click.UsageError("choose one of --json, --csv and --vcard")
    actor = cli_actor(getpass.getuser())
    with ctx.app() as app:
        if as_csv or as_vcard:
            records = export_records(app, actor)
            click.echo(write_csv(records) if as_csv else write_vcard(records), nl=False)
            return
        rows = list_contacts(app, actor, text, tag=tag, limit=limit)
    if as_json:
        echo_json([to_json(row) for row in rows])
        return
    if not rows:
        echo("no contacts")
        return
    echo(f"{'ID':>6}  {'NAME':24} {'ADDRESS':32} {'TICKETS':>7}  LABELS")
    for row in rows:
        extra = f" (+{row.addresses - 1})" if row.addresses > 1 else ""
        echo(f"{row.id:>6}  {(row.name or '-')[:24]:24} {((row.address or '-') + extra)[:32]:32} "
             f"{row.tickets:>7}  {', '.join(row.tags)}")


@contact.command("show")
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@click.pass_obj
def show(ctx: Context, ref: str, as_json: bool) -> None:
    """Show contact REF: addresses, labels, notes, tickets, teams, bounces and the history of edits."""
    with ctx.app() as app:
        page = contact_page(app, cli_actor(getpass.getuser()), ref)
    if as_json:
        echo_json(to_json(page))
        return
    echo(f"#{page.id}  {page.name or '(no name)'}" + (f"  [merged into #{page.merged_into}]" if page.merged_into else ""))
    for a in page.addresses:
        echo(f"  {a.address}{'  (primary)' if a.primary else ''}")
    echo(f"language {page.language or '-'}, consent {'yes' if page.consent else 'no'}"
         f"{', BOUNCING' if page.bouncing else ''}, first {page.first_seen:%Y-%m-%d}, last {page.last_seen:%Y-%m-%d}")
    for kind, values in page.labels.items():
        if values:
            echo(f"{kind}s: {', '.join(values)}")
    if page.notes:
        echo("notes:")
        echo_text(page.notes)
    if page.teams:
        echo(f"teams: {', '.join(page.teams)}")
    if page.tickets:
        echo("tickets:")
        for t in page.tickets:
            echo(f"  {t.reference:14} {t.status:9} {(t.team or '-'):14} {t.subject or ''}")
    for bounce in page.bounces:
        echo(f"bounce {bounce.at:%Y-%m-%d %H:%M} on {bounce.ticket or '-'}: {', '.join(bounce.addresses) or '?'}")
    if page.history:
        echo("history:")
        for c in page.history:
            echo(f"  {c.at:%Y-%m-%d %H:%M}  {c.actor:20} {c.action:8} {c.field or '':12} {c.old or '-'} -> {c.new or '-'}")


def _consent(value: str | None) -> bool | None:
    return None if value is None else value == "yes"


@contact.command("edit")
@click.argument("ref")
@click.option("--name", help="The display name ('' clears it).")
@click.option("--language", help="The language to write to them in (e.g. de).")
@click.option("--note", "notes", help="The liaison's notes (replace them; '-' reads standard input).")
@click.option("--consent", type=click.Choice(["yes", "no"]), help="Consent to be contacted beyond replies.")
@click.option("--add-tag", multiple=True, help="Add a tag (repeatable).")
@click.option("--remove-tag", multiple=True, help="Remove a tag (repeatable).")
@click.option("--add-role", multiple=True, help="Add a role, e.g. 'affiliate organiser' (repeatable).")
@click.option("--remove-role", multiple=True, help="Remove a role (repeatable).")
@click.option("--add-project", multiple=True, help="Add a project or wiki they work on (repeatable).")
@click.option("--remove-project", multiple=True, help="Remove a project (repeatable).")
@click.option("--add-language", "add_languages", multiple=True, help="Add a language they speak (repeatable).")
@click.option("--remove-language", "remove_languages", multiple=True, help="Remove a language (repeatable).")
@click.option("--add-address", multiple=True, help="Add an address (repeatable).")
@click.option("--remove-address", multiple=True, help="Remove an address (repeatable).")
@click.option("--primary", help="Make this address (one of theirs) the one mail goes to.")
@click.option("--actor", default="liaison", show_default=True, help=ACTOR_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print what changed as JSON.")
@click.pass_obj
def edit(ctx: Context, ref: str, name: str | None, language: str | None, notes: str | None, consent: str | None,
         add_tag: tuple[str, ...], remove_tag: tuple[str, ...], add_role: tuple[str, ...],
         remove_role: tuple[str, ...], add_project: tuple[str, ...], remove_project: tuple[str, ...],
         add_languages: tuple[str, ...], remove_languages: tuple[str, ...], add_address: tuple[str, ...],
         remove_address: tuple[str, ...], primary: str | None, actor: str, as_json: bool) -> None:
    """Change contact REF; every change goes to its history (who, what, old and new value)."""
    if notes == "-":
        notes = sys.stdin.read()
    change = ContactEdit(
        name=name, language=language, notes=notes, consent=_consent(consent),
        add_labels=(*(("tag", v) for v in add_tag), *(("role", v) for v in add_role),
                    *(("project", v) for v in add_project), *(("language", v) for v in add_languages)),
        remove_labels=(*(("tag", v) for v in remove_tag), *(("role", v) for v in remove_role),
                       *(("project", v) for v in remove_project), *(("language", v) for v in remove_languages)),
        add_addresses=add_address, remove_addresses=remove_address, primary=primary,
    )
    with ctx.app() as app:
        changed = edit_contact(app, cli_actor(actor), ref, change)
    if as_json:
        echo_json({"contact": ref, "changes": changed})
    else:
        echo(f"contact {ref}: {changed} change{'s' * (changed != 1)}")


@contact.command("merge")
@click.argument("source")
@click.argument("into")
@click.option("--actor", default="liaison", show_default=True, help=ACTOR_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print what moved as JSON.")
@click.pass_obj
def merge(ctx: Context, source: str, into: str, actor: str, as_json: bool) -> None:
    """Merge contact SOURCE into contact INTO (the same person): its addresses and tickets move.

    Later mail from SOURCE's addresses lands on INTO; `triage contact unmerge SOURCE` undoes it.
    """
    with ctx.app() as app:
        done = merge_contacts(app, cli_actor(actor), source, into)
    if as_json:
        echo_json(done)
    else:
        echo(f"#{done['source']} merged into #{done['into']} "
             f"({done['addresses']} addresses, {done['tickets']} tickets moved)")


@contact.command("unmerge")
@click.argument("ref")
@click.option("--actor", default="liaison", show_default=True, help=ACTOR_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print what moved back as JSON.")
@click.pass_obj
def unmerge(ctx: Context, ref: str, actor: str, as_json: bool) -> None:
    """Undo the merge of contact REF (its number, or an address it brought): its addresses and
    tickets go back to it, exactly as they were."""
    with ctx.app() as app:
        done = unmerge_contact(app, cli_actor(actor), ref)
    if as_json:
        echo_json(done)
    else:
        echo(f"#{done['source']} is no longer merged into #{done['into']} "
             f"({done['addresses']} addresses, {done['tickets']} tickets moved back)")


@contact.command("duplicates")
@click.option("--json", "as_json", is_flag=True, help="One JSON array.")
@click.pass_obj
def duplicates(ctx: Context, as_json: bool) -> None:
    """Suggested merges: the same name and domain, plus-addresses, an address in a signature."""
    with ctx.app() as app:
        found = duplicate_contacts(app, cli_actor(getpass.getuser()))
    if as_json:
        echo_json([to_json(d) for d in found])
        return
    if not found:
        echo("no suggested merges")
        return
    for d in found:
        echo(f"#{d.merge} {d.merge_name or '-'} <{d.merge_address or '-'}>  ->  "
             f"#{d.keep} {d.keep_name or '-'} <{d.keep_address or '-'}>")
        for reason in d.reasons:
            echo(f"    {reason}")
        echo(f"    triage contact merge {d.merge} {d.keep}")


@contact.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--apply", "apply_", is_flag=True, help="Write the changes (without it: only the preview).")
@click.option("--actor", default="liaison", show_default=True, help=ACTOR_HELP)
@click.option("--json", "as_json", is_flag=True, help="The report as JSON.")
@click.pass_obj
def import_command(ctx: Context, file: Path, apply_: bool, actor: str, as_json: bool) -> None:
    """Import contacts from a CSV (header row: name, email, languages, projects, roles, tags, notes,
    consent) or vCard FILE. Shows per row what would be created, merged into an existing contact
    (by address) or refused, and why; writes only with --apply."""
    if file.stat().st_size > MAX_IMPORT_BYTES:
        raise click.UsageError(f"{file} is larger than {MAX_IMPORT_BYTES // 1_000_000} MB")
    data = file.read_bytes()
    with ctx.app() as app:
        report = import_contacts(app, cli_actor(actor), data, file.name, apply=apply_)
    if as_json:
        echo_json(to_json(report))
        return
    for line in report.lines:
        who = f"{line.name or ''} <{', '.join(line.addresses)}>" if line.addresses else ""
        target = f" #{line.contact}" if line.contact and line.outcome != "refuse" else ""
        echo(f"line {line.line:>5}: {line.outcome:9}{target} {who}" + (f": {line.reason}" if line.reason else ""))
    summary = ", ".join(f"{report.count(o)} {o}" for o in ("create", "merge", "unchanged", "refuse"))
    echo(f"{'applied' if report.applied else 'preview (nothing written; --apply writes it)'}: {summary}")


# A person's request for their data (triage.desk.privacy): `triage contact export|erase`.
contact.add_command(export_command)
contact.add_command(erase_command)

__all__ = ["contact"]
