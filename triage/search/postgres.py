"""PostgreSQL full-text search: each kind's `search_vector` column (kept by a trigger, GIN-indexed:
see kinds.py) matched with websearch_to_tsquery, newest first; ts_headline only for the rows shown.

The query is parsed in the configuration of the language filter when one is given (stemmed words
match the rows indexed in that language), else in 'simple', which every row's vector also holds.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BindParameter, bindparam, text
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
        f"left({field.postgresql.format(row='d')}, {PG_FIELD_CHARS})" for field in kind.fields
        if field.name != "from_addr") + ")"


class PostgresSearch:
    def search(self, session: Session, kind: Kind, query: Query, filters: SearchFilters, scope: Scope,
               limit: int) -> list[Hit]:
        where, params = conditions(kind, filters, scope)
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
