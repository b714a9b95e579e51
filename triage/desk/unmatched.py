"""Mail stored on no ticket: bounces and autoreplies that match none (they never open one), so
that the liaison still sees a volunteer's address bouncing, or an out-of-office about a thread
this desk no longer holds. Such mail belongs to no team: like the outbox, staff do not see it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from triage.desk.actors import Actor
from triage.desk.mail_roles import require_mail_reader
from triage.store.models import Direction, Message

if TYPE_CHECKING:
    from triage.bootstrap import App

UNMATCHED = "mail on no ticket"


def list_unmatched(app: App, actor: Actor, *, kind: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """Inbound mail on no ticket, newest first, of one `kind` (bounce, autoreply, normal) or all."""
    require_mail_reader(actor, UNMATCHED)
    query = (select(Message).where(Message.ticket_id.is_(None), Message.direction == Direction.inbound)
             .order_by(Message.received_at.desc(), Message.id.desc()))
    if kind is not None:
        query = query.where(Message.kind == kind)
    if limit is not None:
        query = query.limit(limit)
    with app.reads() as session:
        return [
            {
                "id": m.id,
                "received_at": m.received_at.isoformat(),
                "kind": m.kind,
                "why": m.kind_reason,
                "from_addr": m.from_addr,
                "subject": m.subject,
                "bounced_recipients": (m.extra or {}).get("bounced_recipients", []),
                "thread_reason": m.thread_reason,
                "raw_sha256": m.raw_sha256,
            }
            for m in session.scalars(query)
        ]


__all__ = ["list_unmatched"]
