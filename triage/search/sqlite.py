"""SQLite FTS5: each kind's FTS5 table (external content, kept by triggers: see kinds.py) matched
with the query's FTS5 rendering, newest first (FTS5 walks its index by rowid, so a LIMIT stops
early however many rows match); snippet() around the matched words, for the hits shown only."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session

from triage.search.backend import Hit, Scope, SearchFilters, columns, conditions, joins, run
from triage.search.kinds import Kind
from triage.search.query import ELLIPSIS, MARK_CLOSE, MARK_OPEN, Query

SNIPPET_TOKENS = 16


class SQLiteSearch:
    def search(self, session: Session, kind: Kind, query: Query, filters: SearchFilters, scope: Scope,
               limit: int) -> list[Hit]:
        where, params = conditions(kind, filters, scope)
        fts = kind.fts
        sql = (f"SELECT {columns(kind)} FROM {fts} JOIN {kind.table} d ON d.id = {fts}.rowid{joins(kind, filters)} "
               f"WHERE {fts} MATCH :query{''.join(' AND ' + c for c in where)} "
               f"ORDER BY {fts}.rowid DESC LIMIT :limit")
        return run(session, sql, {**params, "query": query.fts5(), "limit": limit}, kind)

    def snippets(self, session: Session, kind: Kind, query: Query, filters: SearchFilters,
                 ids: list[int]) -> dict[int, str]:
        fts = kind.fts
        sql = text(f"SELECT rowid, snippet({fts}, -1, :mark_open, :mark_close, :ellipsis, {SNIPPET_TOKENS}) "
                   f"FROM {fts} WHERE {fts} MATCH :query AND rowid BETWEEN :low AND :high AND rowid IN :ids"
                   ).bindparams(bindparam("ids", expanding=True))
        # The range lets FTS5 seek to the shown rows instead of walking every match of a common word.
        values: dict[str, Any] = {"query": query.fts5(), "ids": ids, "low": min(ids), "high": max(ids),
                                  "mark_open": MARK_OPEN,
                                  "mark_close": MARK_CLOSE, "ellipsis": ELLIPSIS}
        return {row[0]: row[1] for row in session.execute(sql, values)}

    def bare(self, session: Session, kind: Kind, query: Query, limit: int) -> list[int]:
        sql = f"SELECT rowid FROM {kind.fts} WHERE {kind.fts} MATCH :query ORDER BY rowid DESC LIMIT :limit"
        return list(session.execute(text(sql), {"query": query.fts5(), "limit": limit}).scalars())
