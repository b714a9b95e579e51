"""`triage demo`: the newcomer's first minute.

One command shows the product: the sample mailbox that ships with triage goes into the configured
database (`triage ingest`, so a second run stores nothing twice), the routing model proposes
teams, a `liaison` account is made with a generated password printed once, and the workbench is
served together with the worker's runners (suggestions, retraining, reminders; IMAP polling and
the outbox sender only where configured) in one process that one Ctrl-C stops.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import click
from sqlalchemy.engine import make_url

from triage.bundled import bundled
from triage.config import ConfigError
from triage.desk.accounts import add_user, generate_password, list_users, set_password
from triage.terminal import echo

if TYPE_CHECKING:
    from triage.bootstrap import App
    from triage.cli import Context

SAMPLE_MAILBOX = "data/sample-mailbox"
LIAISON = "liaison"


def liaison_password(app: App, *, reset: bool) -> str | None:
    """The new password of the demo's liaison account, or None when the account exists and is
    left as it is (its password was shown when it was made; `reset` sets a new one)."""
    exists = any(row["name"] == LIAISON for row in list_users(app))
    if exists and not reset:
        return None
    password = generate_password()
    if exists:
        set_password(app, LIAISON, password)
    else:
        add_user(app, LIAISON, "liaison", password)
    return password


def listen(host: str, port: int) -> socket.socket:
    """The bound socket, or an error that says what to do when the port is taken."""
    from triage.web.server import bind

    try:
        return bind(host, port)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}): choose another port with --port, "
                          "or --port 0 for any free one") from None


@click.command()
@click.option("--host", help="Address to listen on (default: web.host, 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), help="Port (default: web.port, 8023; 0: any free port).")
@click.option("--reset-password", is_flag=True, help="Give the existing liaison account a new password.")
@click.pass_context
def demo(click_ctx: click.Context, host: str | None, port: int | None, reset_password: bool) -> None:
    """Load the sample mailbox, make a liaison account and serve the workbench with the worker.

    Safe to run again: mail already stored is not stored twice, and an existing liaison account
    keeps its password unless --reset-password.
    """
    from triage.runners.digest import digest_runners
    from triage.runners.remind import remind_runners
    from triage.runners.supervisor import run_until_signalled
    from triage.runners.web import WebRunner
    from triage.web.server import address, exposure_warning, make_server
    from triage.worker import mail_runners, routing_runners

    ctx: Context = click_ctx.obj
    mailbox = bundled(SAMPLE_MAILBOX)
    if mailbox is None:
        raise ConfigError(f"the sample mailbox ({SAMPLE_MAILBOX}) is missing from this installation of triage")
    web = ctx.settings.web
    host = host or web.host
    if warning := exposure_warning(host):
        echo(f"triage: {warning}", err=True)
    sock = listen(host, web.port if port is None else port)  # before anything is written: a taken port fails early
    try:
        database = make_url(ctx.settings.database.url).render_as_string(hide_password=True)
        echo(f"loading the sample mailbox into {database}")
        root = click_ctx.find_root().command
        assert isinstance(root, click.Group)
        click_ctx.invoke(root.commands["ingest"], path=mailbox)  # stores it, then suggests teams
        with ctx.app() as app:
            password = liaison_password(app, reset=reset_password)
            if password is None:
                echo(f"account {LIAISON} exists: its password is unchanged (--reset-password sets a new one)")
            else:
                echo(f"account {LIAISON}, password: {password}  (shown once; store it now)")
            runners = [WebRunner(make_server(app, sock)), *mail_runners(app), *routing_runners(app),
                       *remind_runners(app), *digest_runners(app)]
            echo(f"workbench at {address(sock)}/  (open it and log in as {LIAISON})")
            echo(f"running {', '.join(r.name for r in runners)}; Ctrl-C stops them all")
            clean = run_until_signalled(runners)
    finally:
        sock.close()
    echo("stopped")
    if not clean:
        raise click.exceptions.Exit(1)


__all__ = ["demo", "liaison_password"]
