"""`triage web` (serve the workbench) and `triage user` (its accounts)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from triage.desk.accounts import add_user, disable_user, generate_password, list_users
from triage.terminal import echo, echo_json

if TYPE_CHECKING:
    from triage.cli import Context


@click.command()
@click.option("--host", help="Address to listen on (default: web.host, 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), help="Port (default: web.port, 8023; 0: any free port).")
@click.pass_obj
def web(ctx: Context, host: str | None, port: int | None) -> None:
    """Serve the liaison's workbench until interrupted.

    Anything but a loopback address must sit behind a TLS proxy: the session cookie is a
    password's worth, and the workbench speaks plain HTTP (see the README's deployment notes).
    """
    from triage.web.server import address, bind, exposure_warning, make_server, run

    settings = ctx.settings.web
    host = host or settings.host
    if warning := exposure_warning(host):
        echo(f"triage: {warning}", err=True)
    with ctx.app() as app:
        app.suggests = False  # the worker suggests; every web process shows the same stored suggestions
        sock = bind(host, settings.port if port is None else port)
        server = make_server(app, sock)
        echo(f"workbench at {address(sock)}  (Ctrl-C stops it)")
        run(server)


@click.group()
def user() -> None:
    """Workbench accounts: add, list, disable."""


@user.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["liaison", "staff", "viewer"]), required=True,
              help="liaison: everything; staff: their team's tickets; viewer: reads.")
@click.option("--team", help="The staff member's team (a key of the teams file).")
@click.option("--generate", is_flag=True, help="Generate a password and print it once, instead of reading one.")
@click.pass_obj
def user_add(ctx: Context, name: str, role: str, team: str | None, generate: bool) -> None:
    """Add account NAME. The password is read from standard input (one line) unless --generate."""
    if generate:
        password = generate_password()
    else:
        if sys.stdin.isatty():
            password = click.prompt("password", hide_input=True, confirmation_prompt=True)
        else:
            password = sys.stdin.readline().rstrip("\r\n")
    with ctx.app() as app:
        add_user(app, name, role, password, team=team)
    echo(f"added {name} ({role}{', ' + team if team else ''})")
    if generate:
        echo(f"password: {password}  (shown once; store it now)")


@user.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@click.pass_obj
def user_list(ctx: Context, as_json: bool) -> None:
    """List the accounts."""
    with ctx.app() as app:
        rows = list_users(app)
    if as_json:
        echo_json(rows)
        return
    for row in rows:
        state = " (disabled)" if row["disabled"] else ""
        echo(f"{row['name']:20} {row['role']:8} {row['team'] or '-':16}{state}")
    if not rows:
        echo("no accounts: add one with `triage user add NAME --role liaison`")


@user.command("disable")
@click.argument("name")
@click.pass_obj
def user_disable(ctx: Context, name: str) -> None:
    """Disable account NAME: it cannot log in, and its open sessions end now."""
    with ctx.app() as app:
        disable_user(app, name)
    echo(f"disabled {name}")


__all__ = ["user", "web"]
