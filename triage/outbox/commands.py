"""`triage reply` and `triage outbox`: the liaison's mail and the queue that delivers it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from sqlalchemy import select

from triage.outbox.compose import ComposeError, to_bytes
from triage.outbox.queue import OutboxError, build_reply, enqueue_reply
from triage.outbox.render import TemplateError
from triage.outbox.setup import make_sender
from triage.outbox.smtp import SmtpUnavailable
from triage.queries import find_ticket
from triage.store.db import utcnow
from triage.store.outbox_models import Outbox, OutboxStatus
from triage.terminal import echo, echo_json, echo_text

if TYPE_CHECKING:
    from triage.cli import Context  # the group's context object (for the type only)

pass_ctx = click.pass_obj


NEEDS_BODY = {"reply"}
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
@click.option("--preview", is_flag=True, help="Print the mail as it would be sent; queue nothing.")
@click.option("--actor", default="liaison", show_default=True, help="Who sends it (for the ticket's log).")
@pass_ctx
def reply(ctx: Context, ident: str, template: str, body_file: Path | None, preview: bool, actor: str) -> None:
    """Reply to ticket IDENT with a template; queued in the outbox, delivered by the worker or `outbox --send`."""
    body = _body(template, body_file)
    with ctx.app() as app:
        try:
            if preview:
                with app.reads() as session:
                    _, message = build_reply(session, find_ticket(session, ident), template=template, body=body,
                                             now=utcnow(), wiring=app.wiring)
                echo_text(to_bytes(message).decode("ascii", "replace").rstrip("\r\n"))
                return
            with app.sessions.begin() as session:
                row = enqueue_reply(session, find_ticket(session, ident), template=template, body=body,
                                    actor=actor, now=utcnow(), wiring=app.wiring)
                row_id, message_id, to = row.id, row.message_id, ", ".join(row.recipients)
        except (OutboxError, ComposeError, TemplateError) as exc:
            echo(f"triage: {exc}", err=True)
            sys.exit(2)
    echo(f"queued #{row_id} {message_id} to {to}")
    if not app.settings.smtp.host:
        echo("smtp.host is not set: the mail waits in the outbox until it is", err=True)


def _rows(ctx: Context, show_all: bool) -> list[dict[str, Any]]:
    with ctx.app() as app, app.reads() as session:
        query = select(Outbox).order_by(Outbox.id)
        if not show_all:
            query = query.where(Outbox.status != OutboxStatus.sent)
        return [
            {"id": r.id, "status": r.status.value, "template": r.template, "to": r.recipients,
             "subject": r.subject, "message_id": r.message_id, "ticket_id": r.ticket_id, "attempts": r.attempts,
             "next_attempt_at": r.next_attempt_at.isoformat(), "last_error": r.last_error,
             "smtp_reply": r.smtp_reply, "smtp_queue_id": r.smtp_queue_id, "smtp_server": r.smtp_server,
             "sent_at": r.sent_at.isoformat() if r.sent_at else None, "created_at": r.created_at.isoformat()}
            for r in session.scalars(query)
        ]


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
    with ctx.app() as app:
        sender = make_sender(app)
        if retry_ids:
            done = sender.retry(list(retry_ids), actor="liaison")
            echo(f"queued again: {', '.join(f'#{i}' for i in done) or 'none'}", err=as_json)
            if refused := sorted(set(retry_ids) - set(done)):
                echo(f"not queued again: {', '.join(f'#{i}' for i in refused)} (only failed or uncertain mail "
                 "can be; a mail that was never built has no bytes to send: its error says what to fix)",
                 err=True)
            status |= int(bool(refused))
        if sent_ids:
            done = sender.mark_sent(list(sent_ids), actor="liaison")
            echo(f"marked sent: {', '.join(f'#{i}' for i in done) or 'none'}", err=as_json)
            status |= int(len(done) != len(set(sent_ids)))
        if send:
            try:
                report = sender.send_due(limit=10_000)
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
    if not send:
        rows = _rows(ctx, show_all)
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
