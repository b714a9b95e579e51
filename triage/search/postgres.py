"""PostgreSQL full-text search: each kind's `search_vector` column (kept by a trigger, GIN-indexed:
see kinds.py) matched with websearch_to_tsquery, newest first; ts_headline only for the rows shown.

The query is parsed in the configuration of the language filter when one is given (stemmed words
match the rows indexed in that language), else in 'simple', which every row's vector also holds.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session

from triage.search.backend import Hit, Scope, SearchFilters, columns, conditions, joins, run
from triage.search.kinds import PG_FIELD_CHARS, VECTOR, Kind
from triage.search.query import ELLIPSIS, MARK_CLOSE, MARK_OPEN, Query

HEADLINE = (f'StartSel={MARK_OPEN}, StopSel={MARK_CLOSE}, MaxWords=24, MinWords=10, MaxFragments=2, '
            f'FragmentDelimiter=" {ELLIPSIS} "')
TSQUERY = "websearch_to_tsquery(triage_search_config(CAST(:language AS text)), :query)"


def _body(kind: Kind) -> str:
    """The text the snippet is cut from: the kind's fields, each cut like the index cuts it."""
    return "concat_ws(' | ', " + ", ".join(
        f"left({(field.headline or field.postgresql).format(row='d')}, {PG_FIELD_CHARS})" for field in kind.fields
        if field.name != "from_addr") + ")"


class PostgresSearch:
    def search(self, session: Session, kind: Kind, query: Query, filters: SearchFilters, scope: Scope,
               limit: int) -> list[Hit]:
        where, params = conditions(kind, filters, scope)
        sql = (f"SELECT {columns(kind)} FROM {kind.table} d{joins(kind, filters)} "
               f"WHERE d.{VECTOR} @@ {TSQUERY}{''.join(' AND ' + c for c in where)} ORDER BY d.id DESC LIMIT :limit")
        return run(session, sql, {**params, "query": query.websearch(), "limit": limit,
                                  "language": filters.language}, kind)

    def snippets(self, session: Session, kind: Kind, query: Query, filters: SearchFilters,
                 ids: list[int]) -> dict[int, str]:
        sql = text(f"SELECT d.id, ts_headline(triage_search_config(CAST(:language AS text)), {_body(kind)}, "
                   f"{TSQUERY}, :headline) FROM {kind.table} d WHERE d.id IN :ids"
                   ).bindparams(bindparam("ids", expanding=True))
        values: dict[str, Any] = {"query": query.websearch(), "ids": ids, "headline": HEADLINE,
                                  "language": filters.language}
        return {row[0]: row[1] for row in session.execute(sql, values)}

    def bare(self, session: Session, kind: Kind, query: Query, limit: int) -> list[int]:
        where = f" AND {kind.where.format(row='d')}" if kind.where else ""
        sql = (f"SELECT d.id FROM {kind.table} d WHERE d.{VECTOR} @@ "
               f"websearch_to_tsquery('simple', :query){where} ORDER BY d.id DESC LIMIT :limit")
        return list(session.execute(text(sql), {"query": query.websearch(), "limit": limit}).scalars())
