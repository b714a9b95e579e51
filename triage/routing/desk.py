"""Routing in the pipeline: suggest a team for each new ticket, let the liaison decide, learn from it.

Suggesting and deciding are two calls joined by the stored suggestion (as Mailman's
hold/handle): `suggest_pending` proposes, with confidence and evidence, and never routes;
`approve` applies the liaison's decision (accept or correct), records who and when in the
ticket's event log, and is the hook for the hand-off. Every decision is a labelled example
for the next training run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import Integer, and_, case, cast, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session, sessionmaker

from classifiers import Classifier, Example
from triage.digest.topics import stop_words as default_stop_words
from triage.failures import describe
from triage.outbox.failures import storable
from triage.reports.maths import iso_week
from triage.reports.queries import day_of
from triage.routing.errors import AlreadyRouted, RoutingError, UnknownTicket
from triage.routing.evidence import CANDIDATES, Evidence, readable_evidence, stored_evidence
from triage.store.db import utcnow
from triage.store.models import Decision, Direction, Event, Message, Suggestion, Ticket, TicketStatus
from triage.teams import Team, TeamsFileError
from triage.teams import load_teams as read_teams

if TYPE_CHECKING:
    from triage.routing.model_store import ModelRecord, ModelStore

log = structlog.get_logger(__name__)

MODEL_RECHECK_SECONDS = 5.0  # how stale a process's model may be after another one promoted a new one
SUGGEST_BATCH = 50  # tickets claimed, predicted and stored per transaction: their rows are locked meanwhile
ROUTE_CHARS = 100_000
"""How much of a stored body the model reads, to suggest and to retrain: the start of a mail says
where it belongs, and the model's tokens of a 45 MB body took 470 MB (measured in-process; the
peak of `bench/bench_memory.py` with the size limit raised fell from 1,268 to 720 MB)."""


def load_teams(path: str | Path) -> dict[str, Team]:
    """The teams routing can choose from; a missing or malformed file is a RoutingError."""
    try:
        return read_teams(path)
    except TeamsFileError as exc:
        raise RoutingError(str(exc)) from None


def example_from_message(message: Message, language: str | None = None) -> Example:
    """The classifier's view of a stored mail (the first `ROUTE_CHARS` of its body); the same fields
    training reads from raw mail, and the ticket's `language` (for the optional language block)."""
    headers: dict[str, str] = {}
    if message.to_addrs:
        headers["to"] = ", ".join(message.to_addrs)
    if message.cc_addrs:
        headers["cc"] = ", ".join(message.cc_addrs)
    if message.list_id:
        headers["list-id"] = message.list_id
    return Example(
        subject=message.subject or "", body=message.body_text[:ROUTE_CHARS], sender=message.from_addr or "",
        headers=headers, date=message.date, language=language,
    )


def _languages(session: Session, ticket_ids: Sequence[int]) -> dict[int, str | None]:
    return dict(session.execute(select(Ticket.id, Ticket.language).where(Ticket.id.in_(ticket_ids))).all())


def _first_inbound(session: Session, ticket_ids: Sequence[int]) -> dict[int, Message]:
    first = (
        select(Message.ticket_id, func.min(Message.id).label("mid"))
        .where(Message.ticket_id.in_(ticket_ids), Message.direction == Direction.inbound)
        .group_by(Message.ticket_id)
        .subquery()
    )
    rows = session.scalars(select(Message).join(first, first.c.mid == Message.id))
    return {m.ticket_id: m for m in rows if m.ticket_id is not None}


class Router:
    """The routing use cases over one database and one loaded model (which may be absent).

    With a `ModelStore`, the router follows the model in use: before a suggestion pass (and when
    the app hands it out) it asks the database, at most every `model_recheck_seconds`, which model
    was promoted last, and loads it if it is not the one held."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        model: Classifier | None,
        teams: dict[str, Team],
        *,
        clock: Callable[[], datetime] = utcnow,
        on_routed: Callable[[Session, Ticket, str, str, datetime], object] | None = None,
        models: ModelStore | None = None,
        record: ModelRecord | None = None,
        stop_words: Collection[str] | None = None,
        own_addresses: Sequence[str] = (),
    ) -> None:
        self._sessions = sessions
        self._held: tuple[Classifier | None, ModelRecord | None] = (model, record)  # swapped as one
        self.teams = teams
        self._clock = clock
        self._on_routed = on_routed
        self._models = models
        self.model_recheck_seconds = MODEL_RECHECK_SECONDS
        self._model_checked = time.monotonic()
        self._reloading = threading.Lock()
        self.stop_words = frozenset(stop_words) if stop_words is not None else default_stop_words()
        self.own_addresses = tuple(own_addresses)

    @property
    def sessions(self) -> sessionmaker[Session]:
        return self._sessions

    @property
    def models(self) -> ModelStore | None:
        return self._models

    @property
    def model(self) -> Classifier | None:
        return self._held[0]

    @model.setter
    def model(self, model: Classifier | None) -> None:
        self._held = (model, None)

    @property
    def held(self) -> tuple[Classifier | None, ModelRecord | None]:
        """The model held and its promotion record (None: not a recorded one), read together."""
        return self._held

    def use(self, model: Classifier, record: ModelRecord) -> None:
        """Hold `model`, promoted as `record` (by this process's retraining)."""
        self._held = (model, record)

    @property
    def model_version(self) -> str | None:
        return getattr(self.model, "version", None) if self.model is not None else None

    def refresh_model(self, *, now: bool = False) -> bool:
        """Load the model promoted last if it is not the one held; True if it was loaded. Asks the
        database at most every `model_recheck_seconds` (unless `now`); one thread at a time asks,
        the others go on with the model held. A model that cannot be loaded is logged and the
        one held is kept (asked again after the period)."""
        if self._models is None:
            return False
        if not now and time.monotonic() - self._model_checked < self.model_recheck_seconds:
            return False
        if not self._reloading.acquire(blocking=now):
            return False
        try:
            self._model_checked = time.monotonic()
            latest = self._models.recorded()
            held = self._held[1]
            if latest is None or (held is not None and held.id == latest.id):
                return False
            try:
                model = self._models.load(latest)
            except Exception as exc:  # noqa: BLE001 - a model gone or damaged on this host: keep the one held
                log.error("routing.model_reload_failed", version=latest.version, folder=latest.folder,
                          error=describe(exc))
                return False
            previous = self.model_version
            self._held = (model, latest)
            log.info("routing.model_reloaded", version=latest.version, previous=previous)
            return True
        finally:
            self._reloading.release()

    # -- suggest -----------------------------------------------------------------------------

    def suggest_pending(self, *, limit: int = 500) -> int:
        """Suggest a team for open tickets that have no decision and no suggestion from this model.

        The model is taken once for the pass: the retrain runner may replace the model held from
        its own thread meanwhile, and each suggestion must be stored under the version that made it.

        Tickets are claimed in batches: on PostgreSQL each batch locks its tickets' rows and skips
        those another pass holds (`FOR NO KEY UPDATE SKIP LOCKED`), so routing workers running
        together predict different tickets; SQLite runs one writer at a time. The unique key
        (ticket, model version) is the backstop: a suggestion already stored is not stored again,
        nor logged again."""
        self.refresh_model()
        model = self.model
        if model is None:
            return 0
        version = str(getattr(model, "version", None))
        stored, claimed, after = 0, 0, 0
        while claimed < limit:
            batch = min(SUGGEST_BATCH, limit - claimed)
            tickets, made, after = self._suggest_batch(model, version, batch, after)
            stored, claimed = stored + made, claimed + tickets
            if tickets < batch:
                break
        if stored:
            log.info("routing.suggested", tickets=stored, model=version)
        return stored

    def _suggest_batch(self, model: Classifier, version: str, size: int, after: int) -> tuple[int, int, int]:
        """Claim up to `size` waiting tickets above id `after`, suggest, store: (claimed, stored, last id)."""
        with self._sessions.begin() as session:
            pending = list(session.scalars(
                select(Ticket.id)
                .outerjoin(Suggestion, and_(Suggestion.ticket_id == Ticket.id, Suggestion.model_version == version))
                .where(Ticket.team.is_(None), Ticket.status != TicketStatus.resolved, Suggestion.id.is_(None),
                       Ticket.id > after)
                .order_by(Ticket.id)
                .limit(size)
                .with_for_update(of=Ticket, key_share=True, skip_locked=True)
            ))
            if not pending:
                return 0, 0, after
            messages = _first_inbound(session, pending)
            ids = [t for t in pending if t in messages]
            languages = _languages(session, ids)
            examples = [example_from_message(messages[t], languages.get(t)) for t in ids]
            suggestions = model.predict(examples) if examples else []
            now = self._clock()
            rows: list[dict[str, Any]] = []
            for ticket_id, example, suggestion in zip(ids, examples, suggestions, strict=True):
                evidence = self.evidence(model, example, example.language) if suggestion.ranked else []
                rows.append({
                    "ticket_id": ticket_id, "team": suggestion.team, "confidence": float(suggestion.confidence),
                    "model_version": version,
                    "ranked": [[team, round(float(p), 4)] for team, p in suggestion.ranked],
                    "evidence": [e.to_json() for e in evidence],
                    "created_at": now,
                })
            stored: set[int] = set()
            if rows:
                dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
                stored = set(session.scalars(
                    dialect.insert(Suggestion).on_conflict_do_nothing(index_elements=["ticket_id", "model_version"])
                    .returning(Suggestion.ticket_id),
                    rows,
                ))
            events = [{"ticket_id": r["ticket_id"], "at": now, "actor": f"model:{version}", "action": "suggested",
                       "detail": {"team": r["team"], "confidence": round(float(r["confidence"]), 3)}}
                      for r in rows if r["ticket_id"] in stored]
            if events:
                session.execute(insert(Event), events)
            return len(pending), len(stored), pending[-1]

    def evidence(self, model: Classifier, example: Example, language: str | None = None) -> list[Evidence]:
        """The model's reasons for its top team, as words of the mail a person would underline; the
        stop words of the mail's own `language` go too, when it is not one of the desk's."""
        stop = self.stop_words | default_stop_words((language,)) if language else self.stop_words
        return readable_evidence(model.explain(example, top_k=CANDIDATES), example, stop=stop,
                                 own_addresses=self.own_addresses, language=language)

    # -- decide ------------------------------------------------------------------------------

    def queue(self, session: Session) -> list[dict[str, Any]]:
        """Tickets waiting for a routing decision, oldest first, with their latest suggestion."""
        latest = (
            select(Suggestion.ticket_id, func.max(Suggestion.id).label("sid")).group_by(Suggestion.ticket_id).subquery()
        )
        rows = session.execute(
            select(Ticket, Suggestion)
            .outerjoin(latest, latest.c.ticket_id == Ticket.id)
            .outerjoin(Suggestion, Suggestion.id == latest.c.sid)
            .where(Ticket.team.is_(None), Ticket.status != TicketStatus.resolved)
            .order_by(Ticket.id)
        )
        return [
            {
                "reference": ticket.reference,
                "subject": ticket.subject,
                "flag": ticket.flag,
                "suggested_team": suggestion.team if suggestion else None,
                "confidence": round(suggestion.confidence, 3) if suggestion else None,
                "ranked": suggestion.ranked[:3] if suggestion else [],
                "evidence": [e.to_json() for e in stored_evidence(suggestion.evidence, self.stop_words)]
                if suggestion else [],
                "model_version": suggestion.model_version if suggestion else None,
            }
            for ticket, suggestion in rows
        ]

    def approve(self, reference: str, *, actor: str, team: str | None = None) -> dict[str, Any]:
        """Accept the suggestion (team None) or correct it (team given); route the ticket."""
        with self._sessions.begin() as session:
            return self._approve(session, reference, actor=actor, team=team)

    def approve_confident(self, min_confidence: float, *, actor: str,
                          among: Collection[str] | None = None) -> list[dict[str, Any]]:
        """Accept, in one go, every waiting suggestion at or above `min_confidence` that named a team
        (of the tickets `among`, by reference, when given: what the liaison's filters show).

        Each ticket is approved in a savepoint of its own: one that fails (its suggested team is
        gone from the teams file, any error) is left waiting, its failure in its log and in the
        result (`error`), and the others are approved all the same."""
        with self._sessions.begin() as session:
            waiting = [
                row["reference"] for row in self.queue(session)
                if row["suggested_team"] and row["confidence"] is not None and row["confidence"] >= min_confidence
                and (among is None or row["reference"] in among)
            ]
            results = []
            for reference in waiting:
                savepoint = session.begin_nested()
                try:
                    results.append(self._approve(session, reference, actor=actor, team=None))
                    savepoint.commit()
                except Exception as exc:  # noqa: BLE001 - one ticket's failure never stops a bulk approval
                    savepoint.rollback()
                    results.append(self._record_failure(session, reference, "approval-failed", exc, actor))
            return results

    def _record_failure(self, session: Session, reference: str, action: str, exc: Exception,
                        actor: str) -> dict[str, Any]:
        why = storable(str(exc) if isinstance(exc, RoutingError) else describe(exc), 2000)
        ticket_id = session.scalar(select(Ticket.id).where(Ticket.reference == reference))
        session.add(Event(ticket_id=ticket_id, at=self._clock(), actor=actor, action=action, detail={"why": why}))
        log.warning("routing." + action.replace("-", "_"), ticket=reference, error=type(exc).__name__)
        return {"reference": reference, "error": why}

    def _approve(self, session: Session, reference: str, *, actor: str, team: str | None) -> dict[str, Any]:
        """Decide, inside the caller's transaction. The row is locked (PostgreSQL; SQLite's writers
        hold the database lock from BEGIN IMMEDIATE) and the team is set only where none is set yet,
        so of two decisions racing on one ticket exactly one applies and the other is AlreadyRouted."""
        ticket = session.scalar(select(Ticket).where(Ticket.reference == reference.upper()).with_for_update())
        if ticket is None:
            raise UnknownTicket(f"no ticket {reference!r}", "the queue lists the tickets waiting for a decision")
        if ticket.team is not None:
            raise self._already_routed(session, ticket.id, ticket.reference, ticket.team)
        suggestion = session.scalar(
            select(Suggestion).where(Suggestion.ticket_id == ticket.id).order_by(Suggestion.id.desc()).limit(1)
        )
        suggested = suggestion.team if suggestion else None
        chosen = team or suggested
        if chosen is None:
            raise RoutingError(f"{ticket.reference} has no suggested team (the model abstained)",
                               f"choose a team: {', '.join(sorted(self.teams))}")
        if chosen not in self.teams:
            raise RoutingError(f"unknown team {chosen!r}", f"teams: {', '.join(sorted(self.teams))}")
        now = self._clock()
        claimed: CursorResult[Any] = session.execute(  # type: ignore[assignment]
            update(Ticket).where(Ticket.id == ticket.id, Ticket.team.is_(None))
            .values(team=chosen, updated_at=now, clock_stale_at=utcnow(),
                    status=case((Ticket.status == TicketStatus.new, TicketStatus.open), else_=Ticket.status))
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:  # decided meanwhile (only an engine without the lock above gets here)
            session.expire(ticket)
            raise self._already_routed(session, ticket.id, ticket.reference, ticket.team or "another team")
        session.refresh(ticket)
        agreed = suggested == chosen
        session.add(Decision(
            ticket_id=ticket.id, suggestion_id=suggestion.id if suggestion else None, suggested_team=suggested,
            team=chosen, agreed=agreed, actor=actor, decided_at=now,
        ))
        session.add(Event(
            ticket_id=ticket.id, at=now, actor=actor, action="routed",
            detail={"team": chosen, "suggested": suggested, "agreed": agreed,
                    "confidence": round(suggestion.confidence, 3) if suggestion else None},
        ))
        reference = ticket.reference
        if self._on_routed is not None:  # the hand-off: its failure is recorded, never undoes the decision
            savepoint = session.begin_nested()
            try:
                self._on_routed(session, ticket, chosen, actor, now)
                savepoint.commit()
            except Exception as exc:  # noqa: BLE001 - the outbox records its own failures; this is the last guard
                savepoint.rollback()
                self._record_failure(session, reference, "handoff-failed", exc, actor)
        return {"reference": reference, "team": chosen, "suggested": suggested, "agreed": agreed}

    @staticmethod
    def _already_routed(session: Session, ticket_id: int, reference: str, team: str) -> AlreadyRouted:
        by = session.scalar(select(Decision.actor).where(Decision.ticket_id == ticket_id)
                            .order_by(Decision.id.desc()).limit(1))
        return AlreadyRouted(reference, team, by)

    # -- learn -------------------------------------------------------------------------------

    def examples_from_decisions(self, session: Session) -> list[Example]:
        """Every decision is a labelled example: the ticket's first mail, labelled with the chosen team."""
        decisions = list(session.execute(select(Decision.ticket_id, Decision.team).order_by(Decision.decided_at,
                                                                                             Decision.id)))
        latest = {ticket_id: team for ticket_id, team in decisions}
        messages = _first_inbound(session, list(latest))
        languages = _languages(session, list(messages))
        out = []
        for ticket_id, team in latest.items():
            if ticket_id in messages:
                example = example_from_message(messages[ticket_id], languages.get(ticket_id))
                out.append(Example(example.subject, example.body, example.sender, example.headers, team, example.date,
                                   example.language))
        return out

    def stats(self, session: Session) -> dict[str, Any]:
        """Agreement between suggestions and decisions and the model's coverage (suggestions naming a
        team), overall and by week: as the liaison decides and the model retrains, both should rise."""
        day = day_of(session, Decision.decided_at)
        weeks: dict[str, list[int]] = {}  # week -> [decisions, agreed, suggestions, naming a team]
        for d, n, a in session.execute(select(day, func.count(), func.sum(cast(Decision.agreed, Integer))).group_by(day)):
            row = weeks.setdefault(iso_week(d), [0, 0, 0, 0])  # the ISO week of the UTC day, as the reports
            row[0] += int(n)
            row[1] += int(a or 0)
        made = day_of(session, Suggestion.created_at)
        for d, n, named in session.execute(select(made, func.count(), func.count(Suggestion.team)).group_by(made)):
            row = weeks.setdefault(iso_week(d), [0, 0, 0, 0])
            row[2] += int(n)
            row[3] += int(named or 0)
        by_week = [{"week": w, "decisions": n, "agreed": a, "agreement": round(a / n, 3) if n else None,
                    "suggestions": s, "named": k, "coverage": round(k / s, 3) if s else None}
                   for w, (n, a, s, k) in sorted(weeks.items())]
        total = session.scalar(select(func.count()).select_from(Suggestion)) or 0
        named = session.scalar(select(func.count()).select_from(Suggestion).where(Suggestion.team.is_not(None))) or 0
        decided = session.scalar(select(func.count()).select_from(Decision)) or 0
        agreed = session.scalar(select(func.count()).select_from(Decision).where(Decision.agreed.is_(True))) or 0
        waiting = session.scalar(
            select(func.count()).select_from(Ticket)
            .where(Ticket.team.is_(None), Ticket.status != TicketStatus.resolved)
        ) or 0
        return {
            "suggestions": total,
            "coverage": round(named / total, 3) if total else None,
            "decisions": decided,
            "agreement": round(agreed / decided, 3) if decided else None,
            "waiting": waiting,
            "by_week": by_week,
            "model_version": self.model_version,
        }
