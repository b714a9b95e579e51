"""The liaison's outbox: what waits, failed or may have been sent, and the two decisions on it.

A mail is `uncertain` when the server may have accepted it (see `triage.outbox.sender`): only
the liaison can tell, by confirming it arrived (mark sent) or sending it again (retry). A
`failed` mail can be retried once its cause is fixed. The state rules live in the sender
(`refusal`); this module adds who may do it and hands back plain rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import defer

from triage.desk.actors import Actor
from triage.desk.errors import Invalid
from triage.desk.mail_roles import require_mail_operator, require_mail_reader
from triage.outbox.sender import Decision, LiaisonDecision, PassReport, refusal
from triage.outbox.setup import make_sender
from triage.store.models import Ticket
from triage.store.outbox_models import Outbox, OutboxStatus

if TYPE_CHECKING:
    from triage.bootstrap import App

OUTBOX = "the outbox"
DECISIONS: tuple[LiaisonDecision, ...] = ("mark-sent", "retry")
_ATTENTION = {OutboxStatus.uncertain.value: 0, OutboxStatus.failed.value: 1}


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _row(row: Outbox, reference: str | None, built: bool) -> dict[str, Any]:
    return {
        "id": row.id, "status": row.status.value, "template": row.template, "to": row.recipients,
        "subject": row.subject, "message_id": row.message_id, "ticket_id": row.ticket_id, "ticket": reference,
        "attempts": row.attempts, "next_attempt_at": row.next_attempt_at.isoformat(), "last_error": row.last_error,
        "smtp_reply": row.smtp_reply, "smtp_queue_id": row.smtp_queue_id, "smtp_server": row.smtp_server,
        "sent_at": _iso(row.sent_at), "created_at": row.created_at.isoformat(),
        "actions": [d for d in DECISIONS if refusal(d, row.status, built=built) is None],
    }


def list_outbox(app: App, actor: Actor, *, include_sent: bool = False) -> list[dict[str, Any]]:
    """The outbox by id, sent mail only with `include_sent`; `actions` says what the liaison may do to each."""
    require_mail_reader(actor, OUTBOX)
    query = (
        select(Outbox, Ticket.reference, Outbox.raw.is_not(None))
        .outerjoin(Ticket, Ticket.id == Outbox.ticket_id)
        .options(defer(Outbox.raw))
        .order_by(Outbox.id)
    )
    if not include_sent:
        query = query.where(Outbox.status != OutboxStatus.sent)
    with app.reads() as session:
        return [_row(row, reference, bool(built)) for row, reference, built in session.execute(query)]


def attention_first(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Uncertain mail, then failed mail, then the rest, each by id: what needs the liaison on top."""
    return sorted(rows, key=lambda r: (_ATTENTION.get(r["status"], 2), r["id"]))


def _decide(app: App, actor: Actor, ids: Sequence[int], decision: LiaisonDecision) -> Decision:
    require_mail_operator(actor, OUTBOX)
    if not ids:
        raise Invalid("no mail chosen", "choose the mails by their outbox id")
    return make_sender(app).decide(ids, decision, actor=actor.label)


def mark_sent(app: App, actor: Actor, ids: Sequence[int]) -> Decision:
    """Confirm that uncertain mails arrived; `refused` says why for each mail it could not be done to."""
    return _decide(app, actor, ids, "mark-sent")


def retry(app: App, actor: Actor, ids: Sequence[int]) -> Decision:
    """Queue failed or uncertain mails again, due now; `refused` says why for the others."""
    return _decide(app, actor, ids, "retry")


def send_due(app: App, actor: Actor) -> PassReport:
    """Deliver what is due, once (the CLI's --send). Raises SmtpUnavailable when no session opens."""
    require_mail_operator(actor, OUTBOX)
    return make_sender(app).send_due(limit=10_000)


__all__ = ["DECISIONS", "attention_first", "list_outbox", "mark_sent", "retry", "send_due"]
