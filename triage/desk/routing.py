"""The liaison's routing decisions: the queue, approve, correct, bulk approve and the routing
figures (the ticket list is `triage.desk.lists`). The CLI (`triage queue / approve / stats`) and the
workbench's pages call these; the decisions themselves are `Router`'s (triage.routing.desk).

A decision on a ticket that someone else decided a moment ago is refused with a Conflict that
names the team and who chose it (`AlreadyRouted`), never applied twice: `Router._approve`
locks the row and sets the team only where none is set, inside the decision's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from triage.desk.actors import Actor, require_router, visible
from triage.desk.errors import Invalid
from triage.routing.evidence import by_sentence, stored_evidence
from triage.schedule.policy import Policies, Policy
from triage.store.db import utcnow
from triage.store.models import Contact, ContactAddress, Direction, Message, Suggestion, Ticket, TicketStatus

if TYPE_CHECKING:
    from triage.bootstrap import App

ORDERS = ("newest", "oldest")
QUEUE_ORDERS = (*ORDERS, "uncertain")
"""The queue's orders: also "uncertain" first (the smallest lead of the suggested team over the next
one), where the liaison's decisions teach the next model most; tickets without a suggestion last."""
EXCERPT_CHARS = 600
LIST_LIMIT = 100


# -- filters and saved views ----------------------------------------------------------------

def as_query(filters: Any) -> dict[str, str]:
    """Filters (a dataclass) as query parameters: links and the live refresh keep them."""
    out: dict[str, str] = {}
    for name, value in asdict(filters).items():
        if value is not None:
            out[name] = ("yes" if value else "no") if isinstance(value, bool) else str(value)
    return out


@dataclass(frozen=True)
class QueueFilters:
    """What the queue shows. `team` is the suggested team (a waiting ticket has no team yet)."""

    team: str | None = None
    status: str | None = None
    language: str | None = None
    flagged: bool | None = None
    overdue: bool | None = None
    suggested: bool | None = None  # a suggestion names a team: one key approves it

    def query(self) -> dict[str, str]:
        return as_query(self)


VIEWS = ("awaiting-approval", "overdue", "my-team", "flagged")
VIEW_TITLES = {"awaiting-approval": "Awaiting approval", "overdue": "Overdue", "my-team": "My team",
               "flagged": "Flagged"}


def saved_view(name: str, actor: Actor) -> QueueFilters:
    """A named preset of filters: "my team" is the acting user's team."""
    if name == "awaiting-approval":
        return QueueFilters(suggested=True)
    if name == "overdue":
        return QueueFilters(overdue=True)
    if name == "flagged":
        return QueueFilters(flagged=True)
    if name == "my-team":
        if not actor.team:
            raise Invalid(f"{actor.name} belongs to no team", "pick a team in the filters instead")
        return QueueFilters(team=actor.team)
    raise Invalid(f"no saved view {name!r}", f"saved views: {', '.join(VIEWS)}")


def check_status(status: str | None) -> TicketStatus | None:
    if status is None:
        return None
    try:
        return TicketStatus(status)
    except ValueError:
        raise Invalid(f"unknown status {status!r}", f"statuses: {', '.join(s.value for s in TicketStatus)}") from None


def check_order(order: str) -> None:
    if order not in ORDERS:
        raise Invalid(f"unknown order {order!r}", "order by newest or oldest")


# -- overdue --------------------------------------------------------------------------------

def overdue_cutoff(policy: Policy, now: datetime, *, horizon_days: int = 366) -> datetime:
    """The latest arrival whose first response is due by `now` under `policy`.

    Due times grow with the arrival time, so the cutoff is found by bisection (to the second)
    and the overdue filter stays one indexed comparison in SQL, whatever the business hours."""
    hours = policy.first_response_hours
    lo, hi = now - timedelta(days=horizon_days), now
    if policy.calendar.add(lo, hours) > now:
        return lo - timedelta(seconds=1)
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if policy.calendar.add(mid, hours) <= now:
            lo = mid
        else:
            hi = mid
    return lo


# -- the queue ------------------------------------------------------------------------------

@dataclass(frozen=True)
class QueueItem:
    reference: str
    subject: str | None
    status: str
    flag: str | None
    contact: str | None
    language: str | None
    created_at: datetime
    due_at: datetime | None
    overdue: bool
    suggested_team: str | None
    confidence: float | None
    ranked: list[Any]
    evidence: list[Any]
    model_version: str | None
    excerpt: str
    evidence_words: list[str] = field(default_factory=list)

    @property
    def evidence_sentences(self) -> list[tuple[list[str], str]]:
        """The evidence as (terms, the sentence holding them), each sentence once."""
        return by_sentence(self.evidence)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("created_at", "due_at"):
            data[key] = data[key].isoformat() if data[key] is not None else None
        return data


@dataclass(frozen=True)
class Queue:
    items: list[QueueItem]
    total: int  # matching tickets, of which `items` holds the first `limit`
    filters: QueueFilters
    order: str
    teams: dict[str, str]  # key -> name, for the team picker
    page: int = 1
    limit: int = LIST_LIMIT

    @property
    def has_more(self) -> bool:
        return self.page * self.limit < self.total


def evidence_words(evidence: Sequence[Any]) -> list[str]:
    """The words of the mail the evidence names, for highlighting; addresses are not highlighted."""
    return [e.term for e in stored_evidence(evidence) if "@" not in e.term]


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit].rstrip() + " …"


def _latest_suggestion() -> Any:
    return (select(func.max(Suggestion.id)).where(Suggestion.ticket_id == Ticket.id)
            .correlate(Ticket).scalar_subquery())


def _first_text(session: Session, ticket_ids: list[int]) -> dict[int, str]:
    first = (select(Message.ticket_id, func.min(Message.id).label("mid"))
             .where(Message.ticket_id.in_(ticket_ids), Message.direction == Direction.inbound)
             .group_by(Message.ticket_id).subquery())
    rows = session.execute(select(Message.ticket_id, Message.new_text, Message.body_text)
                           .join(first, first.c.mid == Message.id))
    return {tid: excerpt(new or body or "") for tid, new, body in rows if tid is not None}


def _unanswered_and_overdue(policy: Policy, now: datetime) -> tuple[Any, Any]:
    """(answered by a person, overdue): SQL conditions on a waiting ticket."""
    from triage.schedule.run import answered_by_a_person

    answered = answered_by_a_person()
    return answered, and_(Ticket.created_at <= overdue_cutoff(policy, now), ~answered)


def _waiting(actor: Actor, filters: QueueFilters, status: TicketStatus | None, overdue: Any) -> Any:
    """The statement of the waiting tickets `filters` select, with their latest suggestion and contact."""
    query: Any = (
        select(Ticket.id, Ticket.reference, Ticket.subject, Ticket.status, Ticket.flag, Ticket.created_at,
               Suggestion.id.label("suggestion_id"), Suggestion.team.label("suggested_team"), Suggestion.confidence,
               Suggestion.ranked, Suggestion.evidence, Suggestion.model_version,
               ContactAddress.address, func.coalesce(Contact.language, Ticket.language).label("language"))
        .outerjoin(Suggestion, Suggestion.id == _latest_suggestion())
        .outerjoin(Contact, Contact.id == Ticket.contact_id)
        .outerjoin(ContactAddress, and_(ContactAddress.contact_id == Contact.id, ContactAddress.is_primary))
        .where(Ticket.team.is_(None), Ticket.status != TicketStatus.resolved, Ticket.merged_into_id.is_(None))
    )
    query = visible(query, actor)
    if filters.team is not None:
        query = query.where(Suggestion.team == filters.team)
    if status is not None:
        query = query.where(Ticket.status == status)
    if filters.language is not None:
        query = query.where(func.coalesce(Contact.language, Ticket.language) == filters.language)
    if filters.flagged is not None:
        query = query.where(Ticket.flag.is_not(None) if filters.flagged else Ticket.flag.is_(None))
    if filters.overdue is not None:
        query = query.where(overdue if filters.overdue else ~overdue)
    if filters.suggested is not None:
        query = query.where(Suggestion.team.is_not(None) if filters.suggested
                            else or_(Suggestion.id.is_(None), Suggestion.team.is_(None)))
    return query


def margin() -> Any:
    """The suggested team's lead in probability over the runner-up (SQL; NULL without a suggestion)."""
    return Suggestion.ranked[(0, 1)].as_float() - func.coalesce(Suggestion.ranked[(1, 1)].as_float(), 0.0)


def _queue_order(order: str) -> tuple[Any, ...]:
    if order == "newest":
        return (Ticket.id.desc(),)
    if order == "uncertain":
        lead = margin()
        return (case((lead.is_(None), 1), else_=0), lead, Ticket.id)
    return (Ticket.id,)


def queue(app: App, actor: Actor, *, filters: QueueFilters | None = None, order: str = "oldest",
          limit: int = LIST_LIMIT, page: int = 1, now: datetime | None = None) -> Queue:
    """Tickets awaiting a routing decision, `limit` a page (`page` counts from 1), with the latest
    suggestion, its evidence, the first mail's text and whether the first response is overdue.
    Only reads: suggesting is the routing runner's job (the worker's, and `triage demo`'s), and
    `triage ingest` and `poll --once` suggest as they store; a ticket newer than the runner's
    last pass shows "no suggestion" until the next one, a few seconds later."""
    filters = filters or QueueFilters()
    if order not in QUEUE_ORDERS:
        raise Invalid(f"unknown order {order!r}", "order by " + ", ".join(QUEUE_ORDERS))
    status = check_status(filters.status)
    if page < 1:
        raise Invalid(f"no page {page}", "pages count from 1")
    now = now or utcnow()
    router = app.router()
    policy = Policies(app.settings.reminders).default  # a waiting ticket has no team, so no team's policy
    answered, overdue = _unanswered_and_overdue(policy, now)
    query = _waiting(actor, filters, status, overdue).add_columns(answered.label("answered"))
    offset = (page - 1) * limit
    with app.reads() as session:
        # Plain rows, not ORM objects: building 200 instances per page cost as much as the SQL.
        rows = list(session.execute(
            query.order_by(*_queue_order(order)).offset(offset).limit(limit)))
        if len(rows) < limit and (rows or page == 1):
            total = offset + len(rows)  # the last page: no count needed
        else:
            total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
        texts = _first_text(session, [row.id for row in rows])
    items = []
    for row in rows:
        due = policy.calendar.add(row.created_at, policy.first_response_hours)
        suggested = row.suggestion_id is not None
        evidence = [e.to_json() for e in stored_evidence(row.evidence, router.stop_words)] if suggested else []
        items.append(QueueItem(
            reference=row.reference, subject=row.subject, status=TicketStatus(row.status).value, flag=row.flag,
            contact=row.address, language=row.language, created_at=row.created_at, due_at=due,
            overdue=not row.answered and due <= now,
            suggested_team=row.suggested_team if suggested else None,
            confidence=round(row.confidence, 3) if suggested else None,
            ranked=list(row.ranked[:3]) if suggested else [], evidence=evidence,
            model_version=row.model_version if suggested else None,
            excerpt=texts.get(row.id, ""), evidence_words=evidence_words(evidence),
        ))
    teams = {key: team.name for key, team in sorted(router.teams.items())}
    return Queue(items, int(total), filters, order, teams, page=page, limit=limit)


def suggest_new(app: App) -> int:
    """Suggest teams for every waiting ticket the current model has not seen (the routing runner's
    pass, to the end): `triage queue` runs it first, being a one-off without a worker behind it."""
    router, made = app.router(), 0
    while done := router.suggest_pending():
        made += done
    return made


# -- decisions ------------------------------------------------------------------------------

def approve(app: App, actor: Actor, reference: str) -> dict[str, Any]:
    """Route the ticket to its suggested team; the hand-off follows in the same transaction."""
    require_router(actor)
    return app.router().approve(reference, actor=actor.label)


def correct(app: App, actor: Actor, reference: str, team: str) -> dict[str, Any]:
    """Route the ticket to `team` instead of the suggestion (a labelled example for retraining)."""
    require_router(actor)
    if not team:
        raise Invalid("no team chosen", "pick the team the ticket belongs to")
    return app.router().approve(reference, actor=actor.label, team=team)


def approve_confident(app: App, actor: Actor, min_confidence: float, *,
                      filters: QueueFilters | None = None) -> list[dict[str, Any]]:
    """Approve every waiting suggestion that names a team at or above `min_confidence`, among the
    tickets `filters` select (all of their pages; every waiting ticket without filters). One that
    fails stays waiting (its result has `error`); the others are approved all the same."""
    require_router(actor)
    if not 0 <= min_confidence <= 1:
        raise Invalid(f"confidence {min_confidence:g} is not between 0 and 1", "give a number such as 0.9")
    router = app.router()
    router.suggest_pending()
    among = None
    if filters is not None and filters.query():
        status = check_status(filters.status)
        _, overdue = _unanswered_and_overdue(Policies(app.settings.reminders).default, utcnow())
        with app.reads() as session:
            among = set(session.scalars(
                _waiting(actor, filters, status, overdue).with_only_columns(Ticket.reference)
                .where(Suggestion.team.is_not(None), Suggestion.confidence >= min_confidence)))
    return router.approve_confident(min_confidence, actor=actor.label, among=among)


def stats(app: App, actor: Actor, *, now: datetime | None = None) -> dict[str, Any]:
    """Routing agreement by week and coverage; overdue tickets per team; median first response."""
    from triage.schedule.stats import median_first_response_hours, overdue_by_team

    del actor  # counts only, the same for every role
    now = now or utcnow()
    router = app.router()
    with app.reads() as session:
        figures = router.stats(session)
        figures["overdue_by_team"] = overdue_by_team(session, app.settings, now)
        figures["median_first_response_hours"] = median_first_response_hours(session, now - timedelta(days=90))
    return figures


__all__ = ["LIST_LIMIT", "ORDERS", "QUEUE_ORDERS", "VIEWS", "VIEW_TITLES", "Queue", "QueueFilters", "QueueItem", "approve",
           "approve_confident", "as_query", "check_order", "check_status", "correct", "evidence_words", "margin",
           "overdue_cutoff", "queue", "saved_view", "stats", "suggest_new"]
