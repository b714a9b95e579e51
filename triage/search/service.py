"""The search use cases: `search` (what the CLI and the workbench call) and `rebuild`.

One read transaction per search; each kind of document is searched newest first up to the limit
and the hits merged by time (a contact's time is when they last wrote), so a page of 20 costs at
most 20 rows per kind. Staff find only their team's tickets (and no mail stored without a ticket)
and the contacts with a ticket of their team; viewers and the liaison find everything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import CursorResult, text
from sqlalchemy.orm import Session

from triage.desk.actors import Actor
from triage.desk.errors import Invalid
from triage.search.backend import Backend, Hit, Scope, SearchFilters
from triage.search.kinds import KINDS, Kind, clear_statement, fill_statements
from triage.search.query import Query, parse, segments
from triage.search.sqlite import SQLiteSearch
from triage.store.models import TicketStatus
from triage.store.web_models import Role

if TYPE_CHECKING:
    from triage.bootstrap import App

DEFAULT_LIMIT = 20
MAX_LIMIT = 200
REBUILD_BATCH = 5_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
LANGUAGE_HINT = "a language is an ISO code such as en or de"
MAX_TAG_CHARS = 200  # as contact_labels.value
TAG_HINT = "a tag is one label of a contact, as the contact's page shows it"


@dataclass(frozen=True)
class SearchResult:
    query: Query
    filters: SearchFilters
    hits: list[Hit]
    limit: int

    @property
    def more(self) -> bool:
        """True when there may be more hits than shown."""
        return len(self.hits) >= self.limit


def backend_for(dialect: str) -> Backend:
    if dialect == "postgresql":
        from triage.search.postgres import PostgresSearch

        return PostgresSearch()
    return SQLiteSearch()


def check_filters(filters: SearchFilters) -> SearchFilters:
    """Invalid for a status, a language or a kind that cannot exist, or an empty date range."""
    if filters.status and filters.status not in {s.value for s in TicketStatus}:
        raise Invalid(f"unknown status {filters.status[:20]!r}", "one of: " + ", ".join(s.value for s in TicketStatus))
    if filters.language and not (filters.language.isascii() and filters.language.isalpha()
                                 and 2 <= len(filters.language) <= 3):
        raise Invalid(f"unknown language {filters.language[:20]!r}", LANGUAGE_HINT)
    unknown = set(filters.kinds) - {kind.name for kind in KINDS}
    if unknown:
        raise Invalid(f"unknown kind {min(unknown)[:20]!r}", "one of: " + ", ".join(k.name for k in KINDS))
    if filters.tag is not None and not 1 <= len(filters.tag) <= MAX_TAG_CHARS:
        raise Invalid("the tag is empty or too long", TAG_HINT)
    if filters.since and filters.until and filters.since >= filters.until:
        raise Invalid("the date range is empty", "give a start before the end")
    return filters


def scope_of(actor: Actor) -> Scope:
    return Scope(team_only=actor.team, staff=True) if actor.role is Role.staff else Scope()


def search(app: App, actor: Actor, text_: str, filters: SearchFilters | None = None, *,
           limit: int = DEFAULT_LIMIT) -> SearchResult:
    """The documents `actor` may see that match `text_`, newest first; Invalid for a bad query."""
    query = parse(text_)
    filters = filters or SearchFilters()
    if filters.tag is not None:  # as /contacts?tag= (labels are stored stripped)
        filters = replace(filters, tag=filters.tag.strip())
    filters = check_filters(filters)
    if not 1 <= limit <= MAX_LIMIT:
        raise Invalid(f"the limit must be between 1 and {MAX_LIMIT}", "ask for fewer results")
    scope = scope_of(actor)
    kinds = [kind for kind in KINDS if not filters.kinds or kind.name in filters.kinds]
    with app.reads() as session:
        backend = backend_for(session.get_bind().dialect.name)
        hits = [hit for kind in kinds for hit in backend.search(session, kind, query, filters, scope, limit)]
        hits.sort(key=lambda hit: (hit.at or EPOCH, hit.kind, hit.id), reverse=True)
        hits = hits[:limit]
        wanted = {kind: ids for kind in kinds if (ids := [hit.id for hit in hits if hit.kind == kind.name])}
        found = backend.snippets(session, wanted, query, filters) if wanted else {}
        hits = [replace(hit, snippet=segments(found.get((hit.kind, hit.id)))) for hit in hits]
    return SearchResult(query, filters, hits, limit)


def _rebuild_kind(session: Session, kind: Kind, step: Callable[[int], object]) -> int:
    dialect = session.get_bind().dialect.name
    session.execute(text(clear_statement(kind, dialect)))
    high = session.execute(text(f"SELECT coalesce(max(id), 0) FROM {kind.table}")).scalar_one()
    fill = text(fill_statements(kind, dialect))
    indexed = 0
    for low in range(0, high, REBUILD_BATCH):
        done = session.execute(fill, {"low": low, "high": min(high, low + REBUILD_BATCH)})
        indexed += done.rowcount if isinstance(done, CursorResult) else 0
        step(min(REBUILD_BATCH, high - low))
    return indexed


def rebuild_size(app: App) -> int:
    """How many row ids the rebuild walks (for a progress bar)."""
    with app.reads() as session:
        return sum(int(session.execute(text(f"SELECT coalesce(max(id), 0) FROM {kind.table}")).scalar_one())
                   for kind in KINDS)


def rebuild(app: App, *, step: Callable[[int], object] = lambda n: None) -> dict[str, int]:
    """Index every ticket, message, note and contact again (returns how many of each), in one transaction (searches see the old index
    until it commits); `step(n)` is told of each batch of n row ids done. The triggers keep the
    index in step by themselves: this is for repair, or after the language of contacts changed."""
    with app.sessions.begin() as session:
        return {kind.name: _rebuild_kind(session, kind, step) for kind in KINDS}


KIND_NAMES = tuple(kind.name for kind in KINDS)

__all__ = ["DEFAULT_LIMIT", "KIND_NAMES", "SearchFilters", "SearchResult", "rebuild", "rebuild_size", "search"]
