"""The `triage` command. Each subcommand parses arguments, calls one use case, prints the result.

Errors go to stderr as one line each, without a traceback: those a user can act on (bad config,
unknown ticket, unreadable source) with exit status 2, a failed run (the database locked, full or
unreachable, a disk error) with its cause and fix and exit status 1.
"""

from __future__ import annotations

import getpass
import importlib
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, NoReturn, TypeVar

import click
from tqdm import tqdm

from triage.bootstrap import App, bootstrap, owner_only_files
from triage.config import ConfigError, Settings, example_toml, load_settings
from triage.desk.actors import cli_actor
from triage.desk.errors import DeskError
from triage.desk.tickets import as_json as as_json_data
from triage.desk.tickets import ticket_view
from triage.failures import describe, show_traceback, stopped_by
from triage.ingest.parse import parse_mail
from triage.ingest.parsed import ParsedMail
from triage.ingest.pipeline import IncomingMail
from triage.ingest.sources import BATCH_BYTES, SourceError, batches, open_source
from triage.logging import configure_logging
from triage.routing.errors import RoutingError
from triage.store.schema import SchemaError, current_revision, head_revision, upgrade
from triage.terminal import echo, echo_json, echo_text, json_line

F = TypeVar("F", bound=Callable[..., Any])


class Context:
    def __init__(self, config: str | None) -> None:
        self._config = config
        self._settings: Settings | None = None

    @property
    def config_path(self) -> str | None:
        """--config as given (None: $TRIAGE_CONFIG or ./triage.toml), for subcommands that load it themselves."""
        return self._config

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self._config)
            configure_logging(self._settings.log)
        return self._settings

    def open_app(self) -> App:
        """An App the caller closes (commands in other modules use this)."""
        return bootstrap(self.settings)

    @contextmanager
    def app(self, *, migrate: bool | None = None) -> Iterator[App]:
        app = bootstrap(self.settings, migrate=migrate)
        try:
            yield app
        finally:
            app.close()


pass_ctx = click.make_pass_decorator(Context)


class TriageGroup(click.Group):
    """Turns the errors a user can fix into one line on stderr and exit status 2.

    Commands that need scikit-learn are imported only when run (click's documented lazy
    loading), so `triage tickets` does not pay for the classifier's imports.
    """

    lazy: ClassVar[dict[str, str]] = {
        "train": "triage.routing.commands:train",
        "evaluate": "triage.routing.commands:evaluate",
        "suggest": "triage.routing.commands:suggest",
        "queue": "triage.routing.desk_commands:queue",
        "approve": "triage.routing.desk_commands:approve",
        "stats": "triage.routing.desk_commands:stats",
        "retrain": "triage.routing.desk_commands:retrain",
        "remind": "triage.schedule.commands:remind",
        "digest": "triage.digest.commands:digest",
        "reply": "triage.outbox.commands:reply",
        "outbox": "triage.outbox.commands:outbox",
        "web": "triage.web.commands:web",
        "user": "triage.web.commands:user",
        "demo": "triage.web.demo:demo",
        "note": "triage.desk.commands:note",
        "status": "triage.desk.commands:status",
        "merge": "triage.desk.commands:merge_command",
        "contact": "triage.desk.contact_commands:contact",
        "search": "triage.search.commands:search_command",
        "worker": "triage.worker:worker_command",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            module_name, attribute = self.lazy[cmd_name].split(":")
            command: click.Command = getattr(importlib.import_module(module_name), attribute)
            return command
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (ConfigError, SchemaError, SourceError, RoutingError, DeskError) as exc:
            fail(str(exc), status=2)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:  # the database or the disk failed (cause and fix), or a bug
            if show_traceback():
                raise
            fail(stopped_by(exc), status=1)


def fail(message: str, *, status: int) -> NoReturn:
    """Print an error on stderr, each line escaped and prefixed, and exit with `status`
    (2: the command or the configuration needs fixing; 1: the run failed, e.g. the database)."""
    for line in message.splitlines() or [""]:
        echo(f"triage: {line}", err=True)
    sys.exit(status)


@click.group(cls=TriageGroup)
@click.option(
    "--config", "config", type=click.Path(dir_okay=False), envvar="TRIAGE_CONFIG",
    help="Path to triage.toml (default: $TRIAGE_CONFIG, then ./triage.toml, then built-in defaults).",
)
@click.version_option(package_name="triage")
@click.pass_context
def cli(ctx: click.Context, config: str | None) -> None:
    """triage: an email ticket desk for a community liaison."""
    ctx.obj = Context(config)


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the parse contract as JSON (JSON Lines for several).")
@pass_ctx
def parse(ctx: Context, files: tuple[Path, ...], as_json: bool) -> None:
    """Parse mail FILES and print what triage reads from each (nothing is stored)."""
    max_size = ctx.settings.mail.max_size_bytes
    failed = 0
    for file in files:
        try:
            mail = parse_mail(file.read_bytes(), max_size=max_size)
        except Exception as exc:  # noqa: BLE001 - reported per file, the others still print
            failed += 1
            message = describe(exc)
            if as_json:
                echo_json({"file": str(file), "error": message})
            echo(f"triage: {file}: {message}", err=True)
            continue
        if as_json:
            echo_json({"file": str(file), **mail.contract()})
        else:
            _print_mail(file, mail)
    if failed:
        sys.exit(1)


def _print_mail(file: Path, mail: ParsedMail) -> None:
    echo(f"== {file}")
    for label, value in [
        ("From", f"{mail.from_name or ''} <{mail.from_addr or '?'}>"),
        ("To", ", ".join(mail.to)),
        ("Subject", mail.subject or ""),
        ("Date", mail.date.isoformat() if mail.date else "?"),
        ("Message-ID", mail.message_id or "?"),
        ("Kind", f"{mail.kind}" + (f" ({mail.kind_reason})" if mail.kind_reason else "")),
        ("Attachments", ", ".join(f"{a.filename or '?'} ({a.content_type}, {a.size} B)" for a in mail.attachments)),
        ("Defects", ", ".join(mail.defects)),
    ]:
        if value:
            echo(f"{label + ':':13} {value}")
    echo("")
    echo_text(mail.new_text.rstrip())
    echo("")


@cli.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--batch-size", default=100, show_default=True, type=click.IntRange(1, 5000),
              help="Mails per database transaction.")
@pass_ctx
def ingest(ctx: Context, path: Path, batch_size: int) -> None:
    """Import a maildir, an mbox file, a folder of .eml files or one .eml file.

    Safe to run again on the same source: a mail already stored is counted as a duplicate.
    """
    source = open_source(path, max_size=ctx.settings.mail.max_size_bytes)
    counts = {"stored": 0, "duplicate": 0, "quarantined": 0}
    refused = 0
    with ctx.app() as app:
        ingestor = app.ingestor()
        with tqdm(total=source.count, unit="mail", desc=f"ingest {source.kind}", disable=None) as bar:
            for batch in batches(source.read(), batch_size, max_bytes=BATCH_BYTES, weight=lambda m: len(m.raw)):
                whole = [IncomingMail(m.raw, source=m.label) for m in batch if not m.oversize]
                outcomes = ingestor.ingest_many(whole) if whole else []
                outcomes += [ingestor.refuse(m.raw, size=m.size, source=m.label) for m in batch if m.oversize]
                refused += sum(m.oversize for m in batch)
                for outcome in outcomes:
                    counts[outcome.status] += 1
                bar.update(len(batch))
    echo(
        f"{source.count} mails from {path}: {counts['stored']} stored, "
        f"{counts['duplicate']} duplicates, {counts['quarantined']} quarantined"
        + (f" ({refused} over mail.max_size_bytes, refused unread)" if refused else "")
    )
    if source.skipped:
        echo(f"{len(source.skipped)} entries skipped, not read:", err=True)
        for skipped in source.skipped:
            echo(f"    {skipped.label}: {skipped.reason}", err=True)
    if counts["quarantined"]:
        echo("see `triage quarantine` for the mails that could not be stored", err=True)
    _suggest(ctx)


def _suggest(ctx: Context) -> None:
    """Propose teams for the new tickets; a missing model or teams file only warns."""
    try:
        with ctx.app() as app:
            router = app.router()
            while router.suggest_pending():
                pass
    except RoutingError as exc:
        echo(f"triage: routing suggestions skipped: {exc}", err=True)


@cli.command()
@click.option("--once", is_flag=True, help="One pass over every account and folder, then exit (for cron).")
@click.option("--account", "accounts", multiple=True, help="Only these accounts (by name).")
@click.option("--json", "as_json", is_flag=True, help="Print what each folder pass did as JSON (with --once).")
@pass_ctx
def poll(ctx: Context, once: bool, accounts: tuple[str, ...], as_json: bool) -> None:
    """Fetch new mail from the configured IMAP accounts into tickets.

    Exactly once: a mail is committed with its ledger entry before it is marked on the
    server, and nothing is ever deleted. Without --once it keeps polling (IDLE where offered)
    until interrupted.
    """
    from dataclasses import asdict

    from triage.runners.poll import PollRunner
    from triage.runners.supervisor import run_until_signalled

    chosen = [a for a in ctx.settings.imap_all if not accounts or a.name in accounts]
    if not chosen:
        raise ConfigError("no IMAP account configured: set imap.host (TRIAGE_IMAP_HOST) and imap.user")
    with ctx.app() as app:
        runners = [PollRunner(account, app.ingestor()) for account in chosen]
        if not once:
            if not run_until_signalled(runners):
                sys.exit(1)
            return
        failed = False
        passes = []
        for runner in runners:
            try:
                runner.run(once=True)
            except Exception as exc:  # noqa: BLE001 - reported per account; the exit status says it failed
                failed = True
                echo(f"triage: account {runner.settings.name}: {describe(exc)}", err=True)
            passes.extend(runner.last_pass)
    if as_json:
        echo_json([asdict(p) for p in passes])
    else:
        for p in passes:
            echo(
                f"{p.account}/{p.folder}: {p.fetched} fetched, {p.stored} stored, {p.duplicate} duplicates, "
                f"{p.quarantined} quarantined, {p.marked} marked"
                + (f" ({p.refused} over mail.max_size_bytes, refused unread and left unmarked)" if p.refused else "")
                + (f", {len(p.mark_errors)} marking errors" if p.mark_errors else "")
                + (f" (first contact: {p.first_contact})" if p.first_contact else "")
                + (f" (UIDVALIDITY changed from {p.resynced_from})" if p.resynced_from else "")
            )
    _suggest(ctx)
    if failed or any(p.mark_errors for p in passes):
        sys.exit(1)


@cli.command()
@click.option("--status", type=click.Choice(["new", "open", "waiting", "resolved"]), help="Only this status.")
@click.option("--team", help="Only tickets routed to this team.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many.")
@click.option("--json", "as_json", is_flag=True, help="One JSON array instead of a table.")
@pass_ctx
def tickets(ctx: Context, status: str | None, team: str | None, limit: int | None, as_json: bool) -> None:
    """List tickets, oldest first (a ticket merged into another is not listed: its mail is on that one)."""
    from triage.desk.lists import TicketFilters, list_tickets

    with ctx.app() as app:
        listed = list_tickets(app, cli_actor(getpass.getuser()), TicketFilters(status=status, team=team),
                              order="oldest", limit=limit)
    rows = [as_json_data(row) for row in listed.rows]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        echo("no tickets")
        return
    echo(f"{'REFERENCE':14} {'STATUS':9} {'TEAM':14} {'MSGS':>4}  {'FROM':28} SUBJECT")
    for row in rows:
        flag = " [!]" if row["flag"] else ""
        echo(
            f"{row['reference']:14} {row['status']:9} {(row['team'] or '-'):14} {row['messages']:>4}  "
            f"{(row['contact'] or '-')[:28]:28} {(row['subject'] or '')[:60]}{flag}"
        )


@cli.command()
@click.argument("ident")
@click.option("--json", "as_json", is_flag=True, help="Print the ticket as one JSON object.")
@pass_ctx
def show(ctx: Context, ident: str, as_json: bool) -> None:
    """Show ticket IDENT (reference such as T-2026-00042, or numeric id): messages and events."""
    with ctx.app() as app:
        view = ticket_view(app, cli_actor(getpass.getuser()), ident)
    if as_json:
        echo_json(as_json_data(view))
        return
    echo(f"{view.reference}  {view.subject or ''}")
    echo(f"status {view.status}, team {view.team or '-'}, from {view.contact.address if view.contact else '-'}")
    for flag in view.flags:
        echo(f"FLAG: {flag.text}" + (f" (linked to {flag.reference})" if flag.reference else ""))
    echo(f"reminders: {view.clock.words}")
    for message in view.messages:
        echo("")
        echo(f"--- {message.direction} {message.date.isoformat() if message.date else ''} "
             f"{message.from_addr or ''} [{message.kind}]")
        echo(f"    threaded: {message.thread_reason}")
        for att in message.attachments:
            echo(f"    attachment: {att.filename or '?'} ({att.content_type}, {att.size} B)")
        echo_text(message.new_text.rstrip())
    echo("")
    echo("events:")
    for event in view.events:
        echo(f"  {event.at.isoformat()}  {event.actor:16} {event.action:18} {json_line(event.detail)}")
    if view.previous:
        echo("")
        echo("previous tickets of this contact:")
        for previous in view.previous:
            echo(f"  {previous.reference:14} {previous.status:9} {previous.subject or ''}")


@cli.command()
@click.option("--kind", type=click.Choice(["bounce", "autoreply", "normal"]), help="Only mail of this kind.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many (newest first).")
@click.option("--json", "as_json", is_flag=True, help="One JSON array instead of a list.")
@pass_ctx
def unmatched(ctx: Context, kind: str | None, limit: int | None, as_json: bool) -> None:
    """Mail stored without a ticket: bounces and autoreplies that match none, newest first."""
    from triage.desk.unmatched import list_unmatched

    with ctx.app() as app:
        rows = list_unmatched(app, cli_actor(getpass.getuser()), kind=kind, limit=limit)
    if as_json:
        echo_json(rows)
        return
    if not rows:
        echo("no unmatched mail")
        return
    for row in rows:
        echo(f"#{row['id']} {row['received_at']} [{row['kind']}] {row['from_addr'] or '-'}  "
             f"{(row['subject'] or '')[:70]}")
        if row["bounced_recipients"]:
            echo(f"    bounced: {', '.join(row['bounced_recipients'])}")
        echo(f"    {row['why'] or row['thread_reason']}")


@cli.command()
@click.option("--retry", is_flag=True, help="Re-run quarantined mails (after a fix); stored ones are released.")
@click.option("--id", "ids", type=int, multiple=True, help="Only these quarantine ids (with --retry).")
@click.option("--all", "show_all", is_flag=True, help="Also list released mails.")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@pass_ctx
def quarantine(ctx: Context, retry: bool, ids: tuple[int, ...], show_all: bool, as_json: bool) -> None:
    """List mails that could not be parsed or stored, or re-run them with --retry."""
    from triage.desk import quarantine as desk
    from triage.desk.actors import cli_actor

    actor = cli_actor("liaison")
    with ctx.app() as app:
        if retry:
            done = desk.retry_quarantined(app, actor, ids or None)
            if as_json:
                echo_json(done.results)
            else:
                for r in done.results:
                    echo(f"#{r['id']}: {r['status']} {r['ticket'] or ''} {r['reason']}")
                echo(f"{done.released} of {len(done.results)} released")
            for row_id, why in done.refused.items():
                echo(f"#{row_id}: not run again: {why}", err=True)
            if done.released < len(done.results):
                sys.exit(1)
            return
        rows = desk.list_quarantine(app, actor, include_released=show_all)
    if as_json:
        echo_json(rows)
        return
    if not rows:
        echo("quarantine is empty")
    for row in rows:
        echo(f"#{row['id']} {row['created_at']} [{row['stage']}] x{row['attempts']} {row['source'] or ''}")
        echo(f"    {row['error']}")


@cli.group()
def db() -> None:
    """Database schema: show the revision, or upgrade it; fill in what a new version derives from stored mail."""


@db.command("upgrade")
@pass_ctx
def db_upgrade(ctx: Context) -> None:
    """Upgrade the database schema to this version of triage."""
    from triage.store.db import make_engine

    engine = make_engine(ctx.settings.database.url)
    try:
        upgrade(engine)
        echo(f"schema at {current_revision(engine)}")
    finally:
        engine.dispose()


@db.command("current")
@pass_ctx
def db_current(ctx: Context) -> None:
    """Print the database's schema revision and the one this triage needs."""
    from triage.store.db import make_engine

    engine = make_engine(ctx.settings.database.url)
    try:
        echo(f"database: {current_revision(engine) or 'empty'}; triage needs: {head_revision()}")
    finally:
        engine.dispose()


@db.command("detect-languages")
@pass_ctx
def db_detect_languages(ctx: Context) -> None:
    """Detect the language of tickets opened before triage stored it (new tickets get theirs on arrival)."""
    from triage.ingest.language_backfill import detect_missing_languages

    with ctx.app() as app:
        read, named = detect_missing_languages(app.sessions)
    echo(f"{read} tickets without a language read, {named} given one")


@cli.group("config")
def config_group() -> None:
    """Check the configuration or print an example."""


@config_group.command("check")
@pass_ctx
def config_check(ctx: Context) -> None:
    """Validate the configuration and print the effective values (secrets hidden)."""
    from triage.secrets import redact_setting

    for section, values in ctx.settings.model_dump().items():
        for key, value in values.items():
            if isinstance(value, dict) and section == "imap_accounts":
                for field, item in value.items():
                    echo(f"{section}.{key}.{field} = {redact_setting(field, item)!r}")
            else:
                echo(f"{section}.{key} = {redact_setting(key, value)!r}")


@config_group.command("example")
def config_example() -> None:
    """Print a triage.toml documenting every key with its default."""
    click.echo(example_toml(), nl=False)


def main() -> None:
    owner_only_files()
    cli(prog_name="triage")

