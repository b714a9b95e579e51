"""What both engines' searches share: the filters, a hit, and the SQL around the match.

A backend (`sqlite.SQLiteSearch`, `postgres.PostgresSearch`) only says how a kind's rows match
the query, in which order, and how its snippet is made; which ticket a document belongs to, who
may see it and the filters are the same SQL on both engines, written here once per kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session
from sqlalchemy.types import Integer, String

from triage.search.kinds import Kind
from triage.search.query import Query, Segment
from triage.store.db import UTCDateTime


@dataclass(frozen=True)
class SearchFilters:
    team: str | None = None  # "" for tickets no team owns yet
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None  # exclusive
    language: str | None = None  # the ticket's contact's language (ISO code), as the queue filters
    kinds: tuple[str, ...] = ()  # only these kinds of document; all when empty
    tag: str | None = None  # only contacts with this label (tickets, messages, notes: their contact's)


@dataclass(frozen=True)
class Scope:
    """Which tickets the actor may find: None for all, else only this team's (staff)."""

    team_only: str | None = None
    staff: bool = False


@dataclass(frozen=True)
class Hit:
    kind: str
    id: int
    at: datetime | None
    reference: str | None  # the ticket, or None for mail stored without one
    ticket_subject: str | None
    status: str | None
    team: str | None
    title: str | None  # the message's subject, the ticket's subject; None for a note
    who: str | None  # the message's sender, the note's author, the contact's primary address
    snippet: tuple[Segment, ...] = field(default=())

    @property
    def url(self) -> str | None:
        """Where the hit is read: a contact's page, else its ticket's (None for mail without one)."""
        if self.kind == "contact":
            return f"/contacts/{self.id}"
        return f"/tickets/{self.reference}" if self.reference else None


# Per kind: the document's table alias is d, its ticket t (joined), the contact c (only when the
# language filter asks); its time, title and author, and (`contact`) the SQL naming its person.
# A contact has no ticket: it stands for itself (c is d), and the ticket filters ask whether the
# person has such a ticket (`tickets`).
_SHAPE: dict[str, dict[str, str]] = {
    "ticket": {"join": "JOIN tickets t ON t.id = d.id", "at": "d.created_at", "title": "d.subject",
               "who": "NULL", "contact": "t.contact_id"},
    "message": {"join": "LEFT JOIN tickets t ON t.id = d.ticket_id", "at": "d.received_at", "title": "d.subject",
                "who": "coalesce(d.from_name, d.from_addr)", "contact": "t.contact_id"},
    "note": {"join": "JOIN tickets t ON t.id = d.ticket_id", "at": "d.at", "title": "NULL", "who": "d.actor",
             "contact": "t.contact_id"},
    "contact": {"join": "", "at": "d.last_seen", "title": "d.name",
                "who": "(SELECT a.address FROM contact_addresses a WHERE a.contact_id = d.id AND a.is_primary)",
                "contact": "d.id", "tickets": "SELECT 1 FROM tickets t WHERE t.contact_id = d.id"},
}


def shape(kind: Kind) -> dict[str, str]:
    return _SHAPE[kind.name]


def columns(kind: Kind) -> str:
    s = shape(kind)
    if "tickets" in s:
        return (f"d.id AS id, {s['at']} AS at, NULL AS reference, NULL AS ticket_subject, NULL AS status, "
                f"NULL AS team, {s['title']} AS title, {s['who']} AS who")
    return (f"d.id AS id, {s['at']} AS at, t.reference AS reference, t.subject AS ticket_subject, "
            f"t.status AS status, t.team AS team, {s['title']} AS title, {s['who']} AS who")


def joins(kind: Kind, filters: SearchFilters) -> str:
    s = shape(kind)
    contact = " LEFT JOIN contacts c ON c.id = t.contact_id" if filters.language and "tickets" not in s else ""
    return f" {s['join']}{contact}"


# The kinds whose time column is indexed (migration 0019): a date filter becomes id bounds.
WINDOWED = frozenset({"message", "ticket"})


def window_conditions(kind: Kind, filters: SearchFilters) -> tuple[str, dict[str, Any]] | None:
    """The date filter as a WHERE over the kind's time column (for the id bounds each engine looks
    up), or None when there is no date filter or the kind's time column has no index."""
    if kind.name not in WINDOWED or not (filters.since or filters.until):
        return None
    at = shape(kind)["at"]
    params = {name: value for name, value in (("since", filters.since), ("until", filters.until)) if value}
    where = [f"{at} >= :since"] * ("since" in params) + [f"{at} < :until"] * ("until" in params)
    return " AND ".join(where), params


def conditions(kind: Kind, filters: SearchFilters, scope: Scope) -> tuple[list[str], dict[str, Any]]:
    """The WHERE conditions (SQL with bound parameters only) for the filters and the actor's scope."""
    where, ticket, params = [], [], {}  # type: tuple[list[str], list[str], dict[str, Any]]
    s = shape(kind)
    if kind.where:
        where.append(kind.where.format(row="d"))
    # staff find their team's tickets only (mail without a ticket is not theirs), and the contacts
    # with a ticket of their team (as triage.desk.contacts.readable_filter)
    if scope.staff:
        (ticket if scope.team_only else where).append("t.team = :scope_team" if scope.team_only else "1 = 0")
        params["scope_team"] = scope.team_only
    if filters.team is not None:
        ticket.append("t.team = :team" if filters.team else "t.team IS NULL")
        params["team"] = filters.team
    if filters.status:
        ticket.append("t.status = :status")
        params["status"] = filters.status
    if "tickets" in s:  # a contact matches the ticket conditions when one of its tickets does
        where += [f"EXISTS ({s['tickets']} AND {' AND '.join(ticket)})"] if ticket else []
    else:
        where += ticket
    if filters.language:
        where.append(("d" if "tickets" in s else "c") + ".language = :language")
        params["language"] = filters.language
    if filters.tag:
        where.append(f"EXISTS (SELECT 1 FROM contact_labels l WHERE l.contact_id = {s['contact']} "
                     "AND l.value = :tag)")
        params["tag"] = filters.tag
    if filters.since:
        where.append(f"{shape(kind)['at']} >= :since")
        params["since"] = filters.since
    if filters.until:
        where.append(f"{shape(kind)['at']} < :until")
        params["until"] = filters.until
    return where, params


def run(session: Session, sql: str, params: dict[str, Any], kind: Kind) -> list[Hit]:
    statement = text(sql).bindparams(
        *(bindparam(name, type_=UTCDateTime()) for name in ("since", "until") if name in params),
    ).columns(id=Integer(), at=UTCDateTime(), reference=String(), ticket_subject=String(), status=String(),
              team=String(), title=String(), who=String())
    name = kind.name  # the columns are in Hit's order
    return [Hit(name, *row) for row in session.execute(statement, params)]


class Backend(Protocol):
    """One engine's full-text search over one kind of document, newest first. `search` finds the
    hits (without snippets); `snippets` cuts the snippets of the few that are shown, of every kind
    in one statement, as {(kind name, id): text with MARK_OPEN/MARK_CLOSE around matches}: making
    one reads the whole document."""

    def search(self, session: Session, kind: Kind, query: Query, filters: SearchFilters, scope: Scope,
               limit: int) -> list[Hit]: ...

    def snippets(self, session: Session, wanted: dict[Kind, list[int]], query: Query,
                 filters: SearchFilters) -> dict[tuple[str, int], str]: ...

    def bare(self, session: Session, kind: Kind, query: Query, limit: int) -> list[int]:
        """The bare index query (ids, newest first): the benchmark's baseline."""
        ...


__all__ = [
    "WINDOWED", "Backend", "Hit", "Scope", "SearchFilters", "columns", "conditions", "joins", "run", "shape",
    "window_conditions",
]
