"""Fill in the language of tickets opened before the desk detected it (`triage db detect-languages`).

New tickets get their language when they open (store_batch); this reads each older ticket's first
inbound mail once, in batches by id, so a large desk is filled without holding one long transaction.
A ticket whose mail is too short or unclear to tell stays NULL, as a new one would.
"""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from triage.language import mail_language
from triage.store.models import Direction, Message, Ticket

BATCH = 200


def detect_missing_languages(sessions: sessionmaker[Session], *, batch: int = BATCH) -> tuple[int, int]:
    """(tickets read, tickets given a language) among those without one."""
    read = named = after = 0
    while True:
        with sessions.begin() as session:
            ids = list(session.scalars(select(Ticket.id).where(Ticket.language.is_(None), Ticket.id > after)
                                       .order_by(Ticket.id).limit(batch)))
            if not ids:
                return read, named
            first = (select(Message.ticket_id, func.min(Message.id).label("mid"))
                     .where(Message.ticket_id.in_(ids), Message.direction == Direction.inbound)
                     .group_by(Message.ticket_id).subquery())
            rows = session.execute(select(Message.ticket_id, Message.subject, Message.new_text, Message.body_text)
                                   .join(first, first.c.mid == Message.id))
            found = {tid: mail_language(subject, new or body) for tid, subject, new, body in rows}
            for ticket_id, language in found.items():
                if language is not None:
                    session.execute(update(Ticket).where(Ticket.id == ticket_id).values(language=language))
                    named += 1
            read += len(ids)
            after = ids[-1]


__all__ = ["detect_missing_languages"]
