"""`triage reply` and `triage outbox`: the liaison's mail and the queue that delivers it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from triage.desk.actions import NEEDS_BODY, preview_reply, send_reply
from triage.desk.actors import cli_actor
from triage.desk.outbox import list_outbox, mark_sent, retry, send_due
from triage.outbox.smtp import SmtpUnavailable
from triage.terminal import echo, echo_json, echo_text

if TYPE_CHECKING:
    from triage.cli import Context  # the group's context object (for the type only)

pass_ctx = click.pass_obj


EDITOR_HINT = "# Write the reply above. Lines starting with '#' are dropped; an empty text cancels.\n"


def _body(template: str, body_file: Path | None) -> str:
    if body_file is not None:
        text = sys.stdin.read() if str(body_file) == "-" else body_file.read_text(encoding="utf-8")
    elif template in NEEDS_BODY:
        edited = click.edit("\n\n" + EDITOR_HINT, extension=".txt")
        text = "\n".join(line for line in (edited or "").splitlines() if not line.startswith("#"))
    else:
        text = ""
    text = text.strip("\n")
    if template in NEEDS_BODY and not text.strip():
        raise click.UsageError("the reply is empty; nothing was queued")
    return text


@click.command()
@click.argument("ident")
@click.option("--template", "template", default="reply", show_default=True,
              help="Mail template: reply, resolution, or another folder of templates/email/.")
@click.option("--body-file", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
              help="The text of the reply ('-': standard input). Default: open $EDITOR.")
@click.option("--language", help="Send this translation of the template (default: the volunteer's language).")
@click.option("--preview", is_flag=True, help="Print the mail as it would be sent; queue nothing.")
@click.option("--actor", default="liaison", show_default=True, help="Who sends it (for the ticket's log).")
@pass_ctx
def reply(ctx: Context, ident: str, template: str, body_file: Path | None, language: str | None, preview: bool,
          actor: str) -> None:
    """Reply to ticket IDENT with a template; queued in the outbox, delivered by the worker or `outbox --send`."""
    body = _body(template, body_file)
    with ctx.app() as app:
        sender = cli_actor(actor)
        if preview:
            echo_text(preview_reply(app, sender, ident, template, body, language).source.rstrip("\r\n"))
            return
        sent = send_reply(app, sender, ident, template, body, language=language)
    echo(f"queued #{sent.outbox_id} {sent.message_id} to {', '.join(sent.to)}")
    if not app.settings.smtp.host:
        echo("smtp.host is not set: the mail waits in the outbox until it is", err=True)


@click.command("outbox")
@click.option("--send", is_flag=True, help="Deliver what is due once, then exit (for cron and checks).")
@click.option("--retry", "retry_ids", type=int, multiple=True, help="Queue failed or uncertain mail ID again.")
@click.option("--mark-sent", "sent_ids", type=int, multiple=True, help="Confirm that uncertain mail ID arrived.")
@click.option("--all", "show_all", is_flag=True, help="List sent mail too.")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@pass_ctx
def outbox(ctx: Context, send: bool, retry_ids: tuple[int, ...], sent_ids: tuple[int, ...], show_all: bool,
           as_json: bool) -> None:
    """List mail waiting, failed or uncertain; retry it; or deliver what is due (--send)."""
    status = 0
    actor = cli_actor("liaison")
    with ctx.app() as app:
        if retry_ids:
            done = retry(app, actor, retry_ids).done
            echo(f"queued again: {', '.join(f'#{i}' for i in done) or 'none'}", err=as_json)
            if refused := sorted(set(retry_ids) - set(done)):
                echo(f"not queued again: {', '.join(f'#{i}' for i in refused)} (only failed or uncertain mail "
                 "can be; a mail that was never built has no bytes to send: its error says what to fix)",
                 err=True)
            status |= int(bool(refused))
        if sent_ids:
            done = mark_sent(app, actor, sent_ids).done
            echo(f"marked sent: {', '.join(f'#{i}' for i in done) or 'none'}", err=as_json)
            status |= int(len(done) != len(set(sent_ids)))
        if send:
            try:
                report = send_due(app, actor)
            except SmtpUnavailable as exc:
                echo(f"triage: {exc}", err=True)
                sys.exit(1)
            if as_json:
                echo_json({"sent": report.sent, "deferred": report.deferred, "failed": report.failed,
                           "uncertain": report.uncertain, "recovered": report.recovered, "rows": report.rows})
            else:
                echo(f"{report.sent} sent, {report.deferred} deferred, {report.failed} failed, "
                     f"{report.uncertain} uncertain, {report.recovered} recovered")
            status |= int(bool(report.failed or report.uncertain))
        rows = [] if send else list_outbox(app, actor, include_sent=show_all)
    if not send:
        if as_json:
            echo_json(rows)
        elif not rows:
            echo("outbox is empty" if show_all else "nothing waiting, failed or uncertain")
        for row in [] if as_json else rows:
            echo(f"#{row['id']:<5} {row['status']:9} x{row['attempts']} {row['template']:18} "
                 f"{', '.join(row['to'])[:40]:40} {row['subject'][:60]}")
            if row["last_error"]:
                echo(f"       {row['last_error']}")
    if status:
        sys.exit(1)


__all__ = ["outbox", "reply"]
