"""PostgreSQL full-text search: each kind's `search_vector` column (kept by a trigger, GIN-indexed:
see kinds.py) matched with websearch_to_tsquery, newest first; ts_headline only for the rows shown.

The query is parsed in the configuration of the language filter when one is given (stemmed words
match the rows indexed in that language), else in 'simple', which every row's vector also holds.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BindParameter, bindparam, text
from sqlalchemy.orm import Session

from triage.search.backend import (
    Hit,
    Scope,
    SearchFilters,
    columns,
    conditions,
    joins,
    run,
    window_conditions,
)
from triage.search.kinds import PG_FIELD_CHARS, VECTOR, Kind
from triage.search.query import ELLIPSIS, MARK_CLOSE, MARK_OPEN, Query
from triage.store.db import UTCDateTime

HEADLINE = (f'StartSel={MARK_OPEN}, StopSel={MARK_CLOSE}, MaxWords=24, MinWords=10, MaxFragments=2, '
            f'FragmentDelimiter=" {ELLIPSIS} "')
TSQUERY = "websearch_to_tsquery(triage_search_config(CAST(:language AS text)), :query)"


def _body(kind: Kind) -> str:
    """The text the snippet is cut from: the kind's fields, each cut like the index cuts it."""
    return "concat_ws(' | ', " + ", ".join(
        f"left({(field.headline or field.postgresql).format(row='d')}, {PG_FIELD_CHARS})" for field in kind.fields
        if field.name != "from_addr") + ")"


def _window(session: Session, kind: Kind, filters: SearchFilters) -> tuple[int, int] | None | bool:
    """(least, greatest) id of the kind's rows in the date filter's window (False: none; None: no
    date filter, or no index on the kind's time). With it the planner's favourite plan for a LIMIT,
    the primary key walked backwards, starts inside the window: without it a common word with a
    30-day window in the middle walked every newer match first (0.5 s at 200,000 messages)."""
    window = window_conditions(kind, filters)
    if window is None:
        return None
    where, params = window
    # `+ 0`: else the planner answers min() and max() by walking the primary key from each end up
    # to the window, the very walk the bounds are there to avoid; with it, a range of the time index.
    statement = text(f"SELECT min(d.id + 0), max(d.id + 0) FROM {kind.table} d WHERE {where}").bindparams(
        *(bindparam(name, type_=UTCDateTime()) for name in params))
    low, high = session.execute(statement, params).one()
    return False if low is None else (low, high)


class PostgresSearch:
    def search(self, session: Session, kind: Kind, query: Query, filters: SearchFilters, scope: Scope,
               limit: int) -> list[Hit]:
        window = _window(session, kind, filters)
        if window is False:
            return []
        where, params = conditions(kind, filters, scope)
        if isinstance(window, tuple):
            where.append("d.id BETWEEN :window_low AND :window_high")
            params.update(window_low=window[0], window_high=window[1])
        sql = (f"SELECT {columns(kind)} FROM {kind.table} d{joins(kind, filters)} "
               f"WHERE d.{VECTOR} @@ {TSQUERY}{''.join(' AND ' + c for c in where)} ORDER BY d.id DESC LIMIT :limit")
        return run(session, sql, {**params, "query": query.websearch(), "limit": limit,
                                  "language": filters.language}, kind)

    def snippets(self, session: Session, wanted: dict[Kind, list[int]], query: Query,
                 filters: SearchFilters) -> dict[tuple[str, int], str]:
        """The snippets of every kind's shown rows in one statement (a UNION ALL, one per kind)."""
        parts: list[str] = []
        binds: list[BindParameter[Any]] = []
        values: dict[str, Any] = {"query": query.websearch(), "headline": HEADLINE, "language": filters.language}
        for n, (kind, ids) in enumerate(wanted.items()):
            parts.append(f"SELECT {n}, d.id, ts_headline(triage_search_config(CAST(:language AS text)), "
                         f"{_body(kind)}, {TSQUERY}, :headline) FROM {kind.table} d WHERE d.id IN :ids{n}")
            values[f"ids{n}"] = ids
            binds.append(bindparam(f"ids{n}", expanding=True))
        if not parts:
            return {}
        names = [kind.name for kind in wanted]
        rows = session.execute(text(" UNION ALL ".join(parts)).bindparams(*binds), values)
        return {(names[n], id_): snippet for n, id_, snippet in rows}

    def bare(self, session: Session, kind: Kind, query: Query, limit: int) -> list[int]:
        where = f" AND {kind.where.format(row='d')}" if kind.where else ""
        sql = (f"SELECT d.id FROM {kind.table} d WHERE d.{VECTOR} @@ "
               f"websearch_to_tsquery('simple', :query){where} ORDER BY d.id DESC LIMIT :limit")
        return list(session.execute(text(sql), {"query": query.websearch(), "limit": limit}).scalars())
