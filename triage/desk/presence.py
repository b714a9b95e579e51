"""Who else has a ticket open: each open ticket page touches its reader's presence every few
seconds (drafting or only viewing); `present` lists the others seen in the last minute, so that
two people do not answer the same volunteer at once without knowing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, select

from triage.desk.actors import Actor, require_visible
from triage.store.db import upsert_insert, utcnow
from triage.store.models import Ticket
from triage.store.web_models import Presence, User

if TYPE_CHECKING:
    from triage.bootstrap import App

RECENT = timedelta(seconds=60)  # the page polls every ~10 s; a minute of silence means the page is closed
FORGET = timedelta(hours=1)


@dataclass(frozen=True)
class Present:
    name: str
    drafting: bool
    seen_at: datetime

    @property
    def doing(self) -> str:
        return "is drafting a reply" if self.drafting else "is viewing"


def touch_presence(app: App, actor: Actor, ticket_id: int, drafting: bool = False, *,
                   now: datetime | None = None) -> None:
    """Record that `actor` has ticket `ticket_id` open now (and whether they are drafting).
    The CLI's actor has no account and leaves no trace."""
    if actor.user_id is None:
        return
    now = now or utcnow()
    with app.sessions.begin() as session:
        require_visible(session.get(Ticket, ticket_id), actor, str(ticket_id))
        insert = upsert_insert(session)(Presence).values(ticket_id=ticket_id, user_id=actor.user_id,
                                                         drafting=drafting, seen_at=now)
        session.execute(insert.on_conflict_do_update(index_elements=["ticket_id", "user_id"],
                                                     set_={"drafting": drafting, "seen_at": now}))
        session.execute(delete(Presence).where(Presence.ticket_id == ticket_id, Presence.seen_at < now - FORGET))


def present(app: App, actor: Actor, ticket_id: int, *, now: datetime | None = None) -> list[Present]:
    """The other users seen on ticket `ticket_id` in the last minute, drafting ones first."""
    now = now or utcnow()
    with app.reads() as session:
        require_visible(session.get(Ticket, ticket_id), actor, str(ticket_id))
        query = (select(User.name, Presence.drafting, Presence.seen_at).join(User, User.id == Presence.user_id)
                 .where(Presence.ticket_id == ticket_id, Presence.seen_at >= now - RECENT))
        if actor.user_id is not None:
            query = query.where(Presence.user_id != actor.user_id)
        rows = [Present(name, drafting, seen_at) for name, drafting, seen_at in session.execute(query)]
    return sorted(rows, key=lambda p: (not p.drafting, p.name))


__all__ = ["RECENT", "Present", "present", "touch_presence"]
