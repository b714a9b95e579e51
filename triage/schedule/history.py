"""A ticket's reminders as entries of its event log, read from the `reminders` table.

The reminder run writes one `reminders` row per reminder and no events row beside it (a run
fires thousands at once; writing each twice doubled its cost). The ticket's log shows them
through this view: `reminded` for level 1, `escalated` for levels 2 and 3, with who got the mail.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from triage.schedule.policy import LEVEL_NAMES
from triage.store.outbox_models import Outbox
from triage.store.schedule_models import Reminder

ACTOR = "system:remind"


class LoggedReminder(NamedTuple):
    """Shaped like an `events` row, so that the log can merge both by time."""

    at: datetime
    actor: str
    action: str
    detail: dict[str, Any]


def reminder_events(session: Session, ticket_id: int) -> list[LoggedReminder]:
    """The ticket's reminders and escalations, oldest first."""
    rows = session.execute(
        select(Reminder.level, Reminder.due_at, Reminder.fired_at, Reminder.team, Reminder.outbox_id, Outbox.to_addr)
        .outerjoin(Outbox, Outbox.id == Reminder.outbox_id)
        .where(Reminder.ticket_id == ticket_id).order_by(Reminder.fired_at, Reminder.level)
    )
    return [
        LoggedReminder(fired_at, ACTOR, "reminded" if level == 1 else "escalated",
                       {"level": level, "to": LEVEL_NAMES.get(level), "address": address, "team": team,
                        "due_at": due_at.isoformat(timespec="seconds"), "outbox": outbox_id})  # as the run reports it
        for level, due_at, fired_at, team, outbox_id, address in rows
    ]


__all__ = ["ACTOR", "LoggedReminder", "reminder_events"]
