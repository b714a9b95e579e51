"""SQLite FTS5: each kind's FTS5 table (external content, kept by triggers: see kinds.py) matched
with the query's FTS5 rendering, newest first (FTS5 walks its index by rowid, so a LIMIT stops
early however many rows match); snippet() around the matched words, for the hits shown only.

A date filter bounds the FTS rowid as well (`_window`): without the bounds FTS5 walks a common
word's matches from the newest down to the window and drops every one outside it (1.8 s at
1,000,000 messages for a 30-day window in the middle); with them it seeks into the window. The
bounds are the least and greatest id of the rows in the window, read from the time column's index,
so they stay exact even where ids do not grow with time.

The statements run on the session's DBAPI cursor (`_rows`): SQLite answers a search in about a
millisecond, and SQLAlchemy's result machinery (cache keys, cursor metadata, row objects) cost
several times that per statement; the dates go through the column type's own processors."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from triage.search.backend import (
    Hit,
    Scope,
    SearchFilters,
    columns,
    conditions,
    joins,
    window_conditions,
)
from triage.search.kinds import Kind
from triage.search.query import ELLIPSIS, MARK_CLOSE, MARK_OPEN, Query
from triage.store.db import UTCDateTime

SNIPPET_TOKENS = 16
_DATE = UTCDateTime()


def _rows(session: Session, sql: str, params: dict[str, Any]) -> list[Any]:
    """The rows of one statement on the session's own connection (its transaction), as tuples."""
    dialect = session.get_bind().dialect
    to_db = _DATE.dialect_impl(dialect).bind_processor(dialect)
    values = {name: to_db(value) if to_db and name in ("since", "until") else value
              for name, value in params.items()}
    cursor = session.connection().connection.cursor()
    try:
        cursor.execute(sql, values)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def _in(name: str, ids: list[int], values: dict[str, Any]) -> str:
    """`(:name_0, :name_1, ...)` for an IN list, its values added to `values`."""
    values.update({f"{name}_{n}": id_ for n, id_ in enumerate(ids)})
    return "(" + ", ".join(f":{name}_{n}" for n in range(len(ids))) + ")"


def _window(session: Session, kind: Kind, filters: SearchFilters) -> tuple[int, int] | None | bool:
    """(least, greatest) id of the kind's rows in the date filter's window; False when no row is in
    it; None when there is no date filter or the kind's time column has no index."""
    window = window_conditions(kind, filters)
    if window is None:
        return None
    where, params = window
    [(low, high)] = _rows(session, f"SELECT min(d.id), max(d.id) FROM {kind.table} d WHERE {where}", params)
    return False if low is None else (low, high)


class SQLiteSearch:
    def search(self, session: Session, kind: Kind, query: Query, filters: SearchFilters, scope: Scope,
               limit: int) -> list[Hit]:
        window = _window(session, kind, filters)
        if window is False:
            return []
        where, params = conditions(kind, filters, scope)
        fts = kind.fts
        if isinstance(window, tuple):
            where.append(f"{fts}.rowid BETWEEN :window_low AND :window_high")
            params.update(window_low=window[0], window_high=window[1])
        sql = (f"SELECT {columns(kind)} FROM {fts} JOIN {kind.table} d ON d.id = {fts}.rowid{joins(kind, filters)} "
               f"WHERE {fts} MATCH :query{''.join(' AND ' + c for c in where)} "
               f"ORDER BY {fts}.rowid DESC LIMIT :limit")
        rows = _rows(session, sql, {**params, "query": query.fts5(), "limit": limit})
        dialect = session.get_bind().dialect
        from_db = _DATE.dialect_impl(dialect).result_processor(dialect, None)
        name = kind.name  # the columns are in Hit's order, the time second
        return [Hit(name, id_, from_db(at) if from_db else at, *rest) for id_, at, *rest in rows]

    def snippets(self, session: Session, wanted: dict[Kind, list[int]], query: Query,
                 filters: SearchFilters) -> dict[tuple[str, int], str]:
        """The snippets of every kind's shown rows in one statement (a UNION ALL of one SELECT per
        kind): one round trip and one parse of the query instead of one per kind."""
        parts, values = [], {"query": query.fts5(), "mark_open": MARK_OPEN, "mark_close": MARK_CLOSE,
                             "ellipsis": ELLIPSIS}  # type: tuple[list[str], dict[str, Any]]
        for n, (kind, ids) in enumerate(wanted.items()):
            fts = kind.fts
            # The range lets FTS5 seek to the shown rows instead of walking every match of a common word.
            parts.append(f"SELECT {n}, rowid, snippet({fts}, -1, :mark_open, :mark_close, :ellipsis, "
                         f"{SNIPPET_TOKENS}) FROM {fts} WHERE {fts} MATCH :query "
                         f"AND rowid BETWEEN :low{n} AND :high{n} AND rowid IN {_in(f'ids{n}', ids, values)}")
            values.update({f"low{n}": min(ids), f"high{n}": max(ids)})
        if not parts:
            return {}
        names = [kind.name for kind in wanted]
        return {(names[n], id_): snippet for n, id_, snippet in _rows(session, " UNION ALL ".join(parts), values)}

    def bare(self, session: Session, kind: Kind, query: Query, limit: int) -> list[int]:
        sql = f"SELECT rowid FROM {kind.fts} WHERE {kind.fts} MATCH :query ORDER BY rowid DESC LIMIT :limit"
        return list(session.execute(text(sql), {"query": query.fts5(), "limit": limit}).scalars())
