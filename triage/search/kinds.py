"""What the index holds: one `Kind` per kind of document, and the DDL that keeps each kind's index
in step with its table inside the database, for SQLite and PostgreSQL.

Why triggers: every writer (the ingest's Core bulk inserts, the ORM, a later erasure that blanks a
body, a raw `DELETE`) changes the index in the same statement and so the same transaction, without
any writer knowing the index exists. On SQLite each kind is an FTS5 table with external content (a
view over the source table: the text is stored once, snippets read it back) kept by AFTER INSERT /
UPDATE / DELETE triggers; on PostgreSQL each source table has a `search_vector` tsvector column set
by a BEFORE INSERT OR UPDATE trigger (a generated column cannot read the contact's language from
another table) and a GIN index on it.

A kind whose text comes from other tables too (CONTACT: the name and notes of `contacts`, the
addresses in `contact_addresses`, the labels in `contact_labels`) names those tables as `children`.
On SQLite it gets an FTS5 table that stores its own copy of the text (an external-content 'delete'
needs the exact old text, which a child's change has already overwritten) and every trigger, on the
parent or a child, re-indexes the parent row: delete its entry by rowid, insert it anew. On
PostgreSQL a child's trigger recomputes the parent's `search_vector`.

Adding a kind is one more `Kind` here, its shape in `backend._SHAPE`, and a migration that calls
`create(conn, (KIND,), functions=False)`.
A migration passes the kinds it creates explicitly, so that a later change of a kind needs its own
migration (`drop`, then `create`) rather than changing what an old one built. A later migration that
rebuilds an indexed table in Alembic's batch mode runs inside `suspended`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Connection, text

# PostgreSQL text-search configurations for the languages the desk may know (ISO 639-1, as
# contacts.language holds them); any other or unknown language is indexed with 'simple'.
PG_CONFIGS = {
    "ar": "arabic", "da": "danish", "de": "german", "el": "greek", "en": "english", "es": "spanish",
    "fi": "finnish", "fr": "french", "hu": "hungarian", "id": "indonesian", "it": "italian",
    "lt": "lithuanian", "nl": "dutch", "no": "norwegian", "pt": "portuguese", "ro": "romanian",
    "ru": "russian", "sv": "swedish", "tr": "turkish",
}
# to_tsvector refuses more than 1 MB of lexemes: an oversize mail's fields are cut to this many
# characters for the PostgreSQL index (SQLite's FTS5 has no such limit and indexes everything).
PG_FIELD_CHARS = 100_000
VECTOR = "search_vector"
PG_STATISTICS = 1000


@dataclass(frozen=True)
class Field:
    """One indexed text: its name in the index, and its SQL over a row named `{row}` (on
    PostgreSQL `headline` is the text snippets are cut from, when it differs from the indexed one)."""

    name: str
    sqlite: str
    postgresql: str
    headline: str | None = None


@dataclass(frozen=True)
class Child:
    """A table whose rows hold part of a kind's text: `key` is the column naming the parent row,
    `watched` the columns whose change re-indexes it."""

    table: str
    key: str
    watched: tuple[str, ...]


def column(name: str) -> Field:
    return Field(name, f"{{row}}.{name}", f"{{row}}.{name}")


@dataclass(frozen=True)
class Kind:
    """A kind of document: the table it lives in, which rows of it (`where`, over `{row}`), its
    texts, the columns whose change re-indexes a row, and (PostgreSQL) the language of a row."""

    name: str
    table: str
    fields: tuple[Field, ...]
    watched: tuple[str, ...]
    where: str | None = None
    pg_language: str = "NULL"  # SQL over {row}: the ISO code the row's text is written in, if known
    children: tuple[Child, ...] = ()  # other tables the text comes from (then SQLite stores a copy)

    @property
    def fts(self) -> str:
        return f"search_{self.name}s"

    @property
    def content(self) -> str:
        return f"search_{self.name}_content"


TICKET = Kind(
    "ticket", "tickets", (column("reference"), column("subject")), ("reference", "subject", "contact_id"),
    pg_language="(SELECT c.language FROM contacts c WHERE c.id = {row}.contact_id)",
)
MESSAGE = Kind(
    "message", "messages",
    (column("subject"), column("from_name"),
     Field("from_addr", "{row}.from_addr", "concat_ws(' ', {row}.from_addr, translate({row}.from_addr, '@.', '  '))"),
     column("new_text"), column("quoted_text")),
    ("subject", "from_name", "from_addr", "new_text", "quoted_text", "ticket_id"),
    pg_language="(SELECT c.language FROM tickets t JOIN contacts c ON c.id = t.contact_id "
                "WHERE t.id = {row}.ticket_id)",
)
# An internal note is an event (desk.actions.add_note) whose detail holds the text.
NOTE = Kind(
    "note", "events", (Field("text", "json_extract({row}.detail, '$.text')", "({row}.detail ->> 'text')"),),
    ("action", "detail"), where="{row}.action = 'note'",
)


def _aggregate(table: str, value: str, dialect: str) -> str:
    """`value` (SQL over the child row `a`) of every row of `table` that belongs to the contact
    `{row}`, as one text in id order (so that a re-index gives the same text)."""
    if dialect == "sqlite":
        return (f"(SELECT group_concat(x.v, ' ') FROM (SELECT {value} AS v FROM {table} a "
                f"WHERE a.contact_id = {{row}}.id ORDER BY a.id) x)")
    return f"(SELECT string_agg({value}, ' ' ORDER BY a.id) FROM {table} a WHERE a.contact_id = {{row}}.id)"


# A person: their name, every address (an address's parts are words on PostgreSQL too, as for a
# message's sender), their labels (languages, projects, roles, tags) and the liaison's notes. A
# contact merged into another is not indexed: it is found as the survivor, which holds its addresses.
CONTACT = Kind(
    "contact", "contacts",
    (column("name"),
     Field("addresses", _aggregate("contact_addresses", "a.address", "sqlite"),
           _aggregate("contact_addresses", "a.address || ' ' || translate(a.address, '@.', '  ')", "postgresql"),
           headline=_aggregate("contact_addresses", "a.address", "postgresql")),
     Field("labels", _aggregate("contact_labels", "a.value", "sqlite"),
           _aggregate("contact_labels", "a.value", "postgresql")),
     column("notes")),
    ("name", "notes", "language", "merged_into_id"), where="{row}.merged_into_id IS NULL",
    pg_language="{row}.language",
    children=(Child("contact_addresses", "contact_id", ("address", "contact_id")),
              Child("contact_labels", "contact_id", ("value", "contact_id"))),
)
KINDS: tuple[Kind, ...] = (TICKET, MESSAGE, NOTE, CONTACT)


def _fields(kind: Kind, dialect: str, row: str) -> list[str]:
    return [getattr(field, dialect).format(row=row) for field in kind.fields]


def _where(kind: Kind, row: str, joiner: str = "WHERE") -> str:
    return f" {joiner} {kind.where.format(row=row)}" if kind.where else ""


def _changed(kind: Kind, pattern: str) -> str:
    """True when an UPDATE really changed a watched column (the ingest rewrites a ticket's reference
    and status in one statement: an unchanged reference must not re-index the ticket)."""
    return "(" + " OR ".join(pattern.format(name) for name in kind.watched) + ")"


def _reindex_sqlite(kind: Kind, key: str) -> str:
    """Trigger statements that index the parent row `key` again from what is stored now."""
    names = ", ".join(field.name for field in kind.fields)
    return (f"DELETE FROM {kind.fts} WHERE rowid = {key}; "
            f"INSERT INTO {kind.fts}(rowid, {names}) SELECT d.id, {', '.join(_fields(kind, 'sqlite', 'd'))} "
            f"FROM {kind.table} d WHERE d.id = {key}{_where(kind, 'd', 'AND')};")


def _sqlite_copy_ddl(kind: Kind) -> list[str]:
    """A kind with children: an FTS5 table with its own content, re-indexed row by row."""
    names, fts, source = ", ".join(field.name for field in kind.fields), kind.fts, kind.table
    statements = [
        f"CREATE VIRTUAL TABLE {fts} USING fts5({names}, tokenize='unicode61 remove_diacritics 2')",
        f"CREATE TRIGGER {fts}_insert AFTER INSERT ON {source} BEGIN {_reindex_sqlite(kind, 'new.id')} END",
        f"CREATE TRIGGER {fts}_delete AFTER DELETE ON {source} BEGIN DELETE FROM {fts} WHERE rowid = old.id; END",
        (f"CREATE TRIGGER {fts}_update AFTER UPDATE OF {', '.join(kind.watched)} ON {source} "
         f"WHEN {_changed(kind, 'old.{0} IS NOT new.{0}')} BEGIN DELETE FROM {fts} WHERE rowid = old.id; "
         f"{_reindex_sqlite(kind, 'new.id')} END"),
    ]
    for child in kind.children:
        name, key = f"{fts}_{child.table}", child.key
        changed = " OR ".join(f"old.{column} IS NOT new.{column}" for column in child.watched)
        statements += [
            (f"CREATE TRIGGER {name}_insert AFTER INSERT ON {child.table} BEGIN "
            f"{_reindex_sqlite(kind, f'new.{key}')} END"),
            (f"CREATE TRIGGER {name}_delete AFTER DELETE ON {child.table} BEGIN "
            f"{_reindex_sqlite(kind, f'old.{key}')} END"),
            (f"CREATE TRIGGER {name}_update AFTER UPDATE OF {', '.join(child.watched)} ON {child.table} "
            f"WHEN {changed} BEGIN {_reindex_sqlite(kind, f'old.{key}')} {_reindex_sqlite(kind, f'new.{key}')} END"),
        ]
    return statements


def sqlite_ddl(kind: Kind) -> list[str]:
    if kind.children:
        return _sqlite_copy_ddl(kind)
    names = ", ".join(field.name for field in kind.fields)
    new, old = ", ".join(_fields(kind, "sqlite", "new")), ", ".join(_fields(kind, "sqlite", "old"))
    fts, source = kind.fts, kind.table
    columns = ", ".join(f"{expr} AS {field.name}"
                        for expr, field in zip(_fields(kind, "sqlite", source), kind.fields, strict=True))
    view = f"CREATE VIEW {kind.content} AS SELECT id, {columns} FROM {source}{_where(kind, source)}"
    return [
        view,
        (f"CREATE VIRTUAL TABLE {fts} USING fts5({names}, content='{kind.content}', content_rowid='id', "
        "tokenize='unicode61 remove_diacritics 2')"),
        (f"CREATE TRIGGER {fts}_insert AFTER INSERT ON {source}"
        f"{' WHEN ' + kind.where.format(row='new') if kind.where else ''} BEGIN "
        f"INSERT INTO {fts}(rowid, {names}) VALUES (new.id, {new}); END"),
        (f"CREATE TRIGGER {fts}_delete AFTER DELETE ON {source}"
        f"{' WHEN ' + kind.where.format(row='old') if kind.where else ''} BEGIN "
        f"INSERT INTO {fts}({fts}, rowid, {names}) VALUES ('delete', old.id, {old}); END"),
        (f"CREATE TRIGGER {fts}_update AFTER UPDATE OF {', '.join(kind.watched)} ON {source} "
        f"WHEN {_changed(kind, 'old.{0} IS NOT new.{0}')} BEGIN "
        f"INSERT INTO {fts}({fts}, rowid, {names}) SELECT 'delete', old.id, {old}{_where(kind, 'old')}; "
        f"INSERT INTO {fts}(rowid, {names}) SELECT new.id, {new}{_where(kind, 'new')}; END"),
    ]


def sqlite_drop(kind: Kind) -> list[str]:
    return [*(f"DROP TRIGGER IF EXISTS {name}" for name, _table in triggers((kind,), "sqlite")),
            f"DROP TABLE IF EXISTS {kind.fts}", f"DROP VIEW IF EXISTS {kind.content}"]


def pg_vector(kind: Kind, row: str) -> str:
    """The row's tsvector: in its language's configuration and in 'simple' (so that an exact word
    matches whatever the language), or in 'simple' alone when the language is unknown."""
    # The parser reads "T-2026-00042" as 't', '-2026', '-00042' (signed numbers); the query's words
    # never carry a sign (query.parse keeps letters and digits), so hyphens are spaces here.
    body = "translate(concat_ws(' ', " + ", ".join(f"left({expr}, {PG_FIELD_CHARS})" for expr in
                                                   _fields(kind, "postgresql", row)) + "), '-', ' ')"
    return f"triage_search_vector({kind.pg_language.format(row=row)}, {body})"


PG_FUNCTIONS = [
    "CREATE FUNCTION triage_search_config(language text) RETURNS regconfig LANGUAGE sql IMMUTABLE AS $$ "
    "SELECT CASE lower(split_part(replace(coalesce(language, ''), '_', '-'), '-', 1)) "
    + " ".join(f"WHEN '{code}' THEN '{config}'::regconfig" for code, config in sorted(PG_CONFIGS.items()))
    + " ELSE 'simple'::regconfig END $$",
    ("CREATE FUNCTION triage_search_vector(language text, body text) RETURNS tsvector LANGUAGE sql IMMUTABLE AS $$ "
    "SELECT CASE WHEN triage_search_config(language) = 'simple'::regconfig THEN to_tsvector('simple', body) "
    "ELSE to_tsvector(triage_search_config(language), body) || to_tsvector('simple', body) END $$"),
]


def pg_ddl(kind: Kind) -> list[str]:
    table, function = kind.table, f"{kind.fts}_vector"
    when = f" WHEN ({kind.where.format(row='NEW')})" if kind.where else ""
    return [
        f"ALTER TABLE {table} ADD COLUMN {VECTOR} tsvector",
        (f"CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"NEW.{VECTOR} := {pg_vector(kind, 'NEW')}; RETURN NEW; END $$"),
        f"CREATE TRIGGER {function} BEFORE INSERT ON {table} FOR EACH ROW{when} EXECUTE FUNCTION {function}()",
        (f"CREATE TRIGGER {function}_update BEFORE UPDATE OF {', '.join(kind.watched)} ON {table} FOR EACH ROW "
         f"WHEN ({kind.where.format(row='NEW') + ' AND ' if kind.where else ''}"
         f"{_changed(kind, 'OLD.{0}::text IS DISTINCT FROM NEW.{0}::text')}) EXECUTE FUNCTION {function}()"),
        f"CREATE INDEX ix_{kind.fts} ON {table} USING gin ({VECTOR}){_where(kind, table)}",
        # Rare words must look rare to the planner (else it walks the newest rows hoping to meet
        # 20 matches soon): keep statistics of many more lexemes than the default 100.
        f"ALTER TABLE {table} ALTER COLUMN {VECTOR} SET STATISTICS {PG_STATISTICS}",
        *(statement for child in kind.children for statement in _pg_child_ddl(kind, child)),
    ]


def _pg_child_ddl(kind: Kind, child: Child) -> list[str]:
    """A child row's change recomputes its parent's vector (both parents when it moved); setting
    only the vector does not fire the parent's own trigger, which watches the text columns."""
    function = f"{kind.fts}_{child.table}"
    update = f"UPDATE {kind.table} p SET {VECTOR} = {pg_vector(kind, 'p')} WHERE p.id = {{0}}.{child.key}"
    return [
        (f"CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
         f"IF TG_OP <> 'INSERT' THEN {update.format('OLD')}; END IF; "
         f"IF TG_OP <> 'DELETE' THEN {update.format('NEW')}; END IF; RETURN NULL; END $$"),
        (f"CREATE TRIGGER {function} AFTER INSERT OR DELETE OR UPDATE OF {', '.join(child.watched)} "
         f"ON {child.table} FOR EACH ROW EXECUTE FUNCTION {function}()"),
    ]


def pg_drop(kind: Kind) -> list[str]:
    return [*(statement for child in kind.children for statement in (
                f"DROP TRIGGER IF EXISTS {kind.fts}_{child.table} ON {child.table}",
                f"DROP FUNCTION IF EXISTS {kind.fts}_{child.table}()")),
            f"DROP TRIGGER IF EXISTS {kind.fts}_vector ON {kind.table}",
            f"DROP TRIGGER IF EXISTS {kind.fts}_vector_update ON {kind.table}",
            f"DROP FUNCTION IF EXISTS {kind.fts}_vector()",
            f"DROP INDEX IF EXISTS ix_{kind.fts}",
            f"ALTER TABLE {kind.table} DROP COLUMN IF EXISTS {VECTOR}"]


def fill_statements(kind: Kind, dialect: str) -> str:
    """One statement that indexes the rows with :low < id <= :high (rebuild and migration)."""
    if dialect == "postgresql":
        return (f"UPDATE {kind.table} d SET {VECTOR} = {pg_vector(kind, 'd')} "
                f"WHERE d.id > :low AND d.id <= :high{_where(kind, 'd', 'AND')}")
    names = ", ".join(field.name for field in kind.fields)
    return (f"INSERT INTO {kind.fts}(rowid, {names}) SELECT d.id, {', '.join(_fields(kind, 'sqlite', 'd'))} "
            f"FROM {kind.table} d WHERE d.id > :low AND d.id <= :high{_where(kind, 'd', 'AND')}")


def clear_statement(kind: Kind, dialect: str) -> str:
    if dialect == "postgresql":
        return f"UPDATE {kind.table} SET {VECTOR} = NULL WHERE {VECTOR} IS NOT NULL"
    if kind.children:  # 'delete-all' is for external content only
        return f"DELETE FROM {kind.fts}"
    return f"INSERT INTO {kind.fts}({kind.fts}) VALUES ('delete-all')"


def create(conn: Connection, kinds: Sequence[Kind], *, functions: bool = True) -> None:
    """The index objects of `kinds` (and PostgreSQL's shared functions), then index existing rows."""
    dialect = conn.dialect.name
    statements = ([*PG_FUNCTIONS] if functions else []) if dialect == "postgresql" else []
    for kind in kinds:
        statements += pg_ddl(kind) if dialect == "postgresql" else sqlite_ddl(kind)
    for statement in statements:
        conn.exec_driver_sql(statement)
    for kind in kinds:
        high = conn.execute(text(f"SELECT coalesce(max(id), 0) FROM {kind.table}")).scalar_one()
        conn.execute(text(fill_statements(kind, dialect)), {"low": 0, "high": high})


def drop(conn: Connection, kinds: Sequence[Kind], *, functions: bool = True) -> None:
    dialect = conn.dialect.name
    for kind in kinds:
        for statement in pg_drop(kind) if dialect == "postgresql" else sqlite_drop(kind):
            conn.exec_driver_sql(statement)
    if dialect == "postgresql" and functions:
        conn.exec_driver_sql("DROP FUNCTION IF EXISTS triage_search_vector(text, text)")
        conn.exec_driver_sql("DROP FUNCTION IF EXISTS triage_search_config(text)")


def purge_deleted(conn: Connection, kinds: Sequence[Kind] = KINDS) -> None:
    """Make the index forget text that was deleted or overwritten (an erasure). FTS5 records a
    delete as a marker and keeps the old terms in its segments until they are merged: 'optimize'
    merges every segment into one without them (its cost grows with the index, so erasure calls it
    once per request or retention run, not per row). PostgreSQL keeps a row's tsvector in the row
    itself: the old version is gone from every query at once and from the disk at the next VACUUM."""
    if conn.dialect.name != "sqlite":
        return
    for kind in kinds:
        conn.exec_driver_sql(f"INSERT INTO {kind.fts}({kind.fts}) VALUES ('optimize')")


def triggers(kinds: Iterable[Kind], dialect: str) -> list[tuple[str, str]]:
    """(name, table) of the triggers that keep `kinds` indexed (the benchmark drops them to compare)."""
    kinds = tuple(kinds)
    events = ("insert", "delete", "update")
    if dialect == "postgresql":
        return [*((f"{kind.fts}_vector{event}", kind.table) for kind in kinds for event in ("", "_update")),
                *((f"{kind.fts}_{child.table}", child.table) for kind in kinds for child in kind.children)]
    return [*((f"{kind.fts}_{event}", kind.table) for kind in kinds for event in events),
            *((f"{kind.fts}_{child.table}_{event}", child.table) for kind in kinds for child in kind.children
              for event in events)]


def is_search_object(name: str | None, type_: str, _parents: object = None) -> bool:
    """For Alembic's `include_name`: the index objects are built by migrations' DDL, not the models
    (FTS5 tables and their shadow tables, the tsvector columns and their GIN indexes)."""
    if name is None:
        return False
    return (type_ == "table" and name.startswith("search_")) or (type_ == "column" and name == VECTOR) or (
        type_ == "index" and name.startswith("ix_search_"))


def include_name(name: str | None, type_: str, parents: object) -> bool:
    return not is_search_object(name, type_, parents)


@contextmanager
def suspended(conn: Connection, kinds: Sequence[Kind] = KINDS) -> Iterator[None]:
    """For a later migration that rebuilds an indexed table (Alembic's batch mode on SQLite copies
    tickets, messages or events to a new table, which the search views and triggers refuse: "error
    in view search_message_content: no such table"): drop the index objects, run the block, create
    them again and index every row. On PostgreSQL the same keeps the tsvector column out of the way.

        with suspended(op.get_bind()):
            with op.batch_alter_table("messages") as batch: ...
    """
    drop(conn, kinds)
    yield
    create(conn, kinds)
