"""What one team's digest of one week says, read from the database as plain data (the template's
context and the digests row's summary).

- new: the team's tickets opened in the week (local Monday to Monday, the team's time zone);
- open: the team's tickets not resolved, now, by status;
- oldest: those waiting for the team's answer (new or open, not waiting on the volunteer), oldest first;
- rising: the terms of the week's tickets that rose against the `baseline_weeks` before
  (`triage.digest.topics`), each with example tickets of the week.

A ticket merged into another is left out everywhere: its mail is on the survivor. A ticket's text
for the topics is its subject and the volunteer's own words in its first mail (no quote, no
signature), cut to `TEXT_LIMIT` characters.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from triage.digest.topics import DEFAULT_THRESHOLDS, Rising, Thresholds, rising_terms, terms
from triage.digest.weeks import Week
from triage.store.models import Direction, Message, Ticket, TicketStatus

NEW_LIMIT = 20  # new tickets listed by name; the rest are counted
OLDEST_LIMIT = 5
EXAMPLES = 3  # example tickets per rising term
TEXT_LIMIT = 4000
WAITING_FOR_TEAM = (TicketStatus.new, TicketStatus.open)


@dataclass(frozen=True)
class _Doc:
    id: int
    reference: str
    subject: str | None
    created_at: datetime
    terms: frozenset[str]


def _ticket(row: Any, now: datetime) -> dict[str, Any]:
    return {"reference": row.reference, "subject": row.subject or "", "status": row.status.value,
            "created": row.created_at.date().isoformat(), "waiting_days": max(0, (now - row.created_at).days)}


def _team_tickets(team: str) -> Any:
    return select(Ticket.id, Ticket.reference, Ticket.subject, Ticket.status, Ticket.created_at).where(
        Ticket.team == team, Ticket.merged_into_id.is_(None))


def _documents(session: Session, team: str, start: datetime, end: datetime, stop: Collection[str]) -> list[_Doc]:
    """The team's tickets opened in [start, end), each with the terms of its subject and first mail."""
    rows = session.execute(_team_tickets(team).where(Ticket.created_at >= start, Ticket.created_at < end)
                           .order_by(Ticket.created_at, Ticket.id)).all()
    if not rows:
        return []
    firsts = select(func.min(Message.id)).where(
        Message.ticket_id.in_([row.id for row in rows]), Message.direction == Direction.inbound,
    ).group_by(Message.ticket_id)
    texts = dict(session.execute(select(Message.ticket_id, Message.new_text).where(Message.id.in_(firsts))).all())
    return [_Doc(row.id, row.reference, row.subject, row.created_at,
                 terms(f"{row.subject or ''}\n{(texts.get(row.id) or '')[:TEXT_LIMIT]}", stop)) for row in rows]


def _rising(week_docs: list[_Doc], before: list[_Doc], thresholds: Thresholds) -> list[dict[str, Any]]:
    found: list[Rising] = rising_terms([d.terms for d in week_docs], [d.terms for d in before], thresholds)
    out = []
    for rise in found:
        examples = [d for d in reversed(week_docs) if rise.term in d.terms][:EXAMPLES]  # newest first
        out.append({
            "term": rise.term, "count": rise.count, "tickets": rise.tickets,
            "before_count": rise.before_count, "before_tickets": rise.before_tickets,
            "share": round(100 * rise.share), "before_share": round(100 * rise.before_share, 1),
            "p": float(f"{rise.p:.2g}"),
            "examples": [{"reference": d.reference, "subject": d.subject or ""} for d in examples],
        })
    return out


def digest_content(session: Session, team: str, week: Week, *, tz: str, now: datetime, baseline_weeks: int,
                   stop: Collection[str], thresholds: Thresholds = DEFAULT_THRESHOLDS) -> dict[str, Any]:
    """The digest of `team` for `week` as plain data; `now` is when the open tickets are counted."""
    start, end = week.bounds(tz)
    before_start, _ = week.shifted(-baseline_weeks).bounds(tz)
    week_docs = _documents(session, team, start, end, stop)
    before = _documents(session, team, before_start, start, stop)
    new_rows = session.execute(_team_tickets(team).where(Ticket.created_at >= start, Ticket.created_at < end)
                               .order_by(Ticket.created_at, Ticket.id).limit(NEW_LIMIT)).all()
    by_status = dict(session.execute(
        select(Ticket.status, func.count()).where(Ticket.team == team, Ticket.merged_into_id.is_(None),
                                                  Ticket.status != TicketStatus.resolved)
        .group_by(Ticket.status)).all())
    oldest = session.execute(_team_tickets(team).where(Ticket.status.in_(WAITING_FOR_TEAM))
                             .order_by(Ticket.created_at, Ticket.id).limit(OLDEST_LIMIT)).all()
    open_counts = {status.value: int(by_status.get(status, 0))
                   for status in (TicketStatus.new, TicketStatus.open, TicketStatus.waiting)}
    return {
        "week": str(week),
        "period": {"first": week.monday.isoformat(), "last": (week.monday + timedelta(days=6)).isoformat(),
                   "timezone": tz},
        "new": {"count": len(week_docs), "tickets": [_ticket(row, now) for row in new_rows]},
        "open": {"total": sum(open_counts.values()), **open_counts},
        "oldest": [_ticket(row, now) for row in oldest],
        "rising": _rising(week_docs, before, thresholds),
        "baseline_weeks": baseline_weeks,
        "baseline_tickets": len(before),
    }


def summary(content: dict[str, Any]) -> dict[str, Any]:
    """What the digests row keeps of a digest: the numbers and the rising terms, no ticket text."""
    return {"new": content["new"]["count"], "open": content["open"]["total"],
            "oldest_days": content["oldest"][0]["waiting_days"] if content["oldest"] else None,
            "rising": [r["term"] for r in content["rising"]]}


__all__ = ["digest_content", "summary"]
