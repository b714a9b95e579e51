"""Full-text search (triage.search) on SQLite FTS5 and PostgreSQL: tickets, messages and notes are
found with highlighted snippets; the index follows every write (ingest's bulk inserts, an update
that blanks a body, a delete) in the same transaction; hostile queries answer or are Invalid; staff
find only their team's tickets; filters narrow; the rebuild gives the same answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, select, update

from tests.conftest import make_mail
from triage.bootstrap import App
from triage.desk.actions import add_note
from triage.desk.actors import Actor
from triage.desk.errors import Invalid
from triage.ingest.pipeline import IncomingMail
from triage.search.query import MARK_CLOSE, MARK_OPEN, parse, segments
from triage.search.service import SearchFilters, rebuild, search
from triage.store.models import Contact, Event, Message, Ticket, TicketStatus
from triage.store.web_models import Role

LIAISON = Actor("ada", Role.liaison)
STAFF = Actor("sam", Role.staff, "legal")
VIEWER = Actor("vic", Role.viewer)


def store(app: App, message_id: str, *, subject: str = "Question about the logo",
          body: str = "Hello,\n\nmay our chapter use the logo on a banner?\n", team: str | None = None,
          sender: str = "Ada Volunteer <ada@volunteers.example>", date: datetime | None = None) -> str:
    """One mail through the real ingest (Core bulk inserts); its ticket's reference."""
    [outcome] = app.ingestor().ingest_many([IncomingMail(make_mail(
        message_id=message_id, subject=subject, body=body, sender=sender, date=date), source="test")])
    assert outcome.ticket_reference
    if team:
        with app.sessions.begin() as session:
            session.scalars(select(Ticket).where(Ticket.reference == outcome.ticket_reference)).one().team = team
    return outcome.ticket_reference


def found(app: App, text: str, actor: Actor = LIAISON, **filters: object) -> set[tuple[str, str | None]]:
    return {(hit.kind, hit.reference) for hit in search(app, actor, text, SearchFilters(**filters)).hits}  # type: ignore[arg-type]


def test_messages_tickets_and_notes_are_found_with_marked_snippets(app: App) -> None:
    """A word in a body, a subject, a sender, a ticket reference and a note each finds its document."""
    ref = store(app, "<a@v.example>", subject="Scholarship for Wikimania", body="I need a travel grant to Katowice.\n")
    other = store(app, "<b@v.example>", subject="Logo", body="Banner question\n", sender="Bo <bo@chapter.example>")
    add_note(app, LIAISON, ref, "Asked the grants committee about Katowice deadlines")
    assert found(app, "katowice") == {("message", ref), ("note", ref)}
    assert ("ticket", ref) in found(app, "wikimania")
    assert ("message", other) in found(app, "bo@chapter.example")
    assert ("ticket", other) in found(app, other)
    [hit] = [h for h in search(app, LIAISON, "travel grant").hits if h.kind == "message"]
    assert ("travel", True) in hit.snippet and ("grant", True) in hit.snippet
    assert any(not marked and "Katowice" in text for text, marked in hit.snippet)


def test_words_match_without_case_and_on_sqlite_without_accents(app: App) -> None:
    """Search folds case; SQLite's FTS5 folds diacritics too (PostgreSQL would need the unaccent
    extension, which a plain database owner may not be able to install)."""
    ref = store(app, "<c@v.example>", body="Réunion à Zürich pour la communauté\n")
    assert ("message", ref) in found(app, "ZÜRICH Communauté")
    if app.engine.dialect.name == "sqlite":
        assert ("message", ref) in found(app, "zurich COMMUNAUTE")


def test_the_index_follows_updates_and_deletes_in_the_same_transaction(app: App) -> None:
    """Blanking a body (as erasure will) or deleting a message removes it from the results at once;
    a rolled-back change leaves the index as it was."""
    ref = store(app, "<d@v.example>", body="secret plans for the zeppelin\n")
    assert found(app, "zeppelin") == {("message", ref)}
    session = app.sessions()
    session.begin()
    session.execute(update(Message).values(new_text="", body_text=""))
    session.rollback()
    assert found(app, "zeppelin") == {("message", ref)}
    with app.sessions.begin() as session:
        session.execute(update(Message).where(Message.message_id == "<d@v.example>").values(new_text="erased"))
    assert found(app, "zeppelin") == set()
    assert ("message", ref) in found(app, "erased")
    with app.sessions.begin() as session:
        session.execute(update(Event).where(Event.action == "note").values(detail={}))
        message = session.scalars(select(Message)).one()
        session.execute(delete(Event).where(Event.ticket_id == message.ticket_id))
        session.execute(delete(Message))
    with pytest.raises(Invalid):
        found(app, "")
    assert found(app, "erased") == set()


HOSTILE = ['"', '"unbalanced', "((( logo", "logo)))", "NEAR(logo banner)", "logo*", "^logo", "subject:logo",
           "logo AND", "OR logo", "logo OR", "- logo", "'; DROP TABLE messages; --", "logo\x00banner", "\\",
           "{logo}", "logo:*", "!logo", "<b>logo</b>", "logo & banner | !x", "ÿ̈ logo", 'l"o"g"o', "logo <-> x"]


def test_hostile_queries_answer_or_are_invalid(app: App) -> None:
    """Quotes, operators of either engine, NUL and markup never reach the engine as syntax."""
    ref = store(app, "<e@v.example>")
    for hostile in HOSTILE:
        try:
            search(app, LIAISON, hostile)
        except Invalid as error:
            assert error.hint, hostile
    assert ("message", ref) in found(app, "((logo!")
    assert ("message", ref) in found(app, "logo\x00 banner*")


def test_too_long_or_empty_queries_are_invalid_with_a_hint(app: App) -> None:
    """10 kB of text, too many words, or nothing but punctuation is a clear Invalid."""
    for text in ("x" * 10_000, " ".join(f"w{i}" for i in range(40)), "!!! ...", "-logo"):
        with pytest.raises(Invalid) as error:
            search(app, LIAISON, text)
        assert error.value.hint


def test_phrases_exclusions_and_or(app: App) -> None:
    """A quoted phrase keeps its order, -word leaves out, OR widens."""
    one = store(app, "<f@v.example>", subject="A", body="the red banner and the blue flag\n")
    two = store(app, "<g@v.example>", subject="B", body="the blue banner and the red flag\n")
    kinds = ["message"]
    assert found(app, '"red banner"', kinds=kinds) == {("message", one)}
    assert found(app, "banner -flag", kinds=kinds) == set()
    assert found(app, "banner -\"blue flag\"", kinds=kinds) == {("message", two)}
    assert found(app, '"red banner" OR "blue banner"', kinds=kinds) == {("message", one), ("message", two)}


def test_staff_find_only_their_team_and_viewers_read(app: App) -> None:
    """Staff see their team's tickets only (never mail without a ticket); a viewer finds everything."""
    legal = store(app, "<h@v.example>", body="trademark question\n", team="legal")
    tech = store(app, "<i@v.example>", body="trademark outage\n", team="technology")
    assert {ref for _, ref in found(app, "trademark", STAFF)} == {legal}
    assert {ref for _, ref in found(app, "trademark", VIEWER)} == {legal, tech}
    assert found(app, "trademark", Actor("nobody", Role.staff, None)) == set()


def test_filters_team_status_dates_and_language(app: App) -> None:
    """Team, status, date range and the contact's language narrow the hits."""
    start = datetime(2026, 11, 1, tzinfo=UTC)
    old = store(app, "<j@v.example>", body="budget question\n", team="legal", sender="x@a.example")
    new = store(app, "<k@v.example>", body="budget answer\n", sender="y@b.example")
    with app.sessions.begin() as session:
        session.execute(update(Message).where(Message.message_id == "<j@v.example>")
                        .values(received_at=start - timedelta(days=30)))
        session.execute(update(Ticket).where(Ticket.reference == new).values(status=TicketStatus.resolved))
        session.execute(update(Contact).where(Contact.address == "y@b.example").values(language="de"))
    kinds = ["message"]
    assert {r for _, r in found(app, "budget", team="legal", kinds=kinds)} == {old}
    assert {r for _, r in found(app, "budget", team="", kinds=kinds)} == {new}
    assert {r for _, r in found(app, "budget", status="resolved", kinds=kinds)} == {new}
    assert {r for _, r in found(app, "budget", since=start, kinds=kinds)} == {new}
    assert {r for _, r in found(app, "budget", until=start, kinds=kinds)} == {old}
    assert {r for _, r in found(app, "budget", language="de", kinds=kinds)} == {new}
    for bad in ({"status": "gone"}, {"language": "german!"}, {"kinds": ["person"]},
                {"since": start, "until": start}):
        with pytest.raises(Invalid):
            found(app, "budget", **bad)


def test_a_date_window_finds_exactly_its_rows_when_ids_do_not_follow_time(app: App) -> None:
    """SQLite bounds its FTS walk by the window's least and greatest id: a message stored later but
    received earlier (an old mail imported) is in or out by its time, not its id; an empty window
    finds nothing; every shown hit of every kind has its snippet (one statement for all kinds)."""
    start = datetime(2026, 6, 1, tzinfo=UTC)
    days = {"<w1@v.example>": 5, "<w2@v.example>": 60, "<w3@v.example>": 10, "<w4@v.example>": -40,
            "<w5@v.example>": 20}
    refs = {mid: store(app, mid, body=f"zeppelin hangar {n}\n", sender=f"s{n}@w.example")
            for n, mid in enumerate(days)}
    with app.sessions.begin() as session:
        for mid, day in days.items():
            session.execute(update(Message).where(Message.message_id == mid)
                            .values(received_at=start + timedelta(days=day)))
    window = {"since": start, "until": start + timedelta(days=30), "kinds": ["message"]}
    hits = search(app, LIAISON, "zeppelin", SearchFilters(**window)).hits  # type: ignore[arg-type]
    assert [hit.reference for hit in hits] == [refs["<w5@v.example>"], refs["<w3@v.example>"],
                                               refs["<w1@v.example>"]]
    assert all(("zeppelin", True) in hit.snippet for hit in hits)
    [newest] = search(app, LIAISON, "zeppelin", SearchFilters(**window), limit=1).hits  # type: ignore[arg-type]
    assert newest.reference == refs["<w5@v.example>"]
    assert {r for _, r in found(app, "zeppelin", since=start + timedelta(days=30), kinds=["message"])} == {
        refs["<w2@v.example>"]}
    assert {r for _, r in found(app, "zeppelin", until=start, kinds=["message"])} == {refs["<w4@v.example>"]}
    assert found(app, "zeppelin", since=start + timedelta(days=100), kinds=["message"]) == set()
    assert found(app, "zeppelin", since=start + timedelta(days=11), until=start + timedelta(days=19),
                 kinds=["message"]) == set()
    add_note(app, LIAISON, refs["<w1@v.example>"], "zeppelin note")
    mixed = search(app, LIAISON, "zeppelin").hits
    assert {hit.kind for hit in mixed} == {"message", "note"}
    assert all(("zeppelin", True) in hit.snippet for hit in mixed)


def test_known_language_is_stemmed_on_postgresql(app: App) -> None:
    """A ticket whose contact's language is known is indexed in it too: on PostgreSQL a search in
    that language finds other forms of a word; every engine still finds the exact word."""
    store(app, "<l@v.example>", body="we are organising meetups\n", sender="z@c.example")
    with app.sessions.begin() as session:
        session.execute(update(Contact).values(language="en"))
    rebuild(app)
    assert found(app, "meetups", kinds=["message"])
    if app.engine.dialect.name == "postgresql":
        assert found(app, "organised", language="en", kinds=["message"])
        assert not found(app, "organised", kinds=["message"])


def test_rebuild_gives_the_same_answers(app: App) -> None:
    """`rebuild` empties and refills the index: the same hits before and after."""
    ref = store(app, "<m@v.example>", body="conference venue\n")
    add_note(app, LIAISON, ref, "venue booked")
    before = found(app, "venue")
    counts = rebuild(app)
    assert counts["message"] >= 1 and found(app, "venue") == before == {("message", ref), ("note", ref)}


def test_snippet_marks_are_split_and_stray_sentinels_dropped() -> None:
    """The engine's sentinels become marked segments; the text between stays plain text."""
    assert segments(f"a <b>{MARK_OPEN}logo{MARK_CLOSE} & c") == (("a <b>", False), ("logo", True), (" & c", False))
    assert segments(None) == ()
    query = parse('logo "red  banner" OR flag -x NEAR(')
    assert query.fts5() == '(("logo" AND "red banner") OR ("flag" AND "near")) NOT "x"'
    assert query.websearch() == '"logo" "red banner" or "flag" -"x" "near"'


def test_cli_search_lists_prints_json_and_rebuilds(db_url: str) -> None:
    """`triage search` prints hits with [marks] or JSON, errors on bad input, and --rebuild reports counts."""
    import json

    from click.testing import CliRunner

    from triage.cli import cli

    runner = CliRunner()
    env = {"TRIAGE_DATABASE_URL": db_url, "TRIAGE_CONFIG": ""}
    assert runner.invoke(cli, ["db", "upgrade"], env=env).exit_code == 0
    from triage.bootstrap import bootstrap
    from triage.config import load_settings

    app = bootstrap(load_settings(environ={"TRIAGE_DATABASE_URL": db_url}))
    try:
        ref = store(app, "<cli@v.example>", body="the zeppelin is late\n")
    finally:
        app.close()
    shown = runner.invoke(cli, ["search", "zeppelin"], env=env)
    assert shown.exit_code == 0 and ref in shown.output and "[zeppelin]" in shown.output
    listed = json.loads(runner.invoke(cli, ["search", "zeppelin", "--json", "--kind", "message"], env=env).output)
    assert [(h["kind"], h["reference"]) for h in listed] == [("message", ref)]
    assert {"text": "zeppelin", "mark": True} in listed[0]["snippet"]
    assert runner.invoke(cli, ["search", "zeppelin", "--until", "2000-01-01"], env=env).output.strip() == "nothing found"
    bad = runner.invoke(cli, ["search", "!!!"], env=env)
    assert bad.exit_code == 2 and "nothing to search for" in bad.output
    rebuilt = runner.invoke(cli, ["search", "--rebuild"], env=env)
    assert rebuilt.exit_code == 0 and "1 messages" in rebuilt.output
    assert runner.invoke(cli, ["search"], env=env).exit_code == 2


def test_a_later_batch_migration_of_an_indexed_table_runs_inside_suspended(db_url: str) -> None:
    """Alembic's batch mode rebuilds the table on SQLite: inside `suspended` it works and the index
    follows the rows afterwards (without it, SQLite refuses: the search view names the table)."""
    from alembic.migration import MigrationContext
    from alembic.operations import Operations
    from sqlalchemy import Column as SAColumn
    from sqlalchemy import Integer, text

    from triage.bootstrap import bootstrap
    from triage.config import load_settings
    from triage.search.kinds import suspended
    from triage.store.db import make_engine
    from triage.store.schema import ensure_schema

    engine = make_engine(db_url)
    try:
        ensure_schema(engine, auto_migrate=True)
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO tickets (id, reference, subject, status, created_at, updated_at) "
                              "VALUES (1, 'T-2026-00001', 'zeppelin', 'open', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
            op = Operations(MigrationContext.configure(conn, opts={"render_as_batch": True}))
            recreate = "always" if conn.dialect.name == "sqlite" else "auto"
            with suspended(conn), op.batch_alter_table("tickets", recreate=recreate) as batch:
                batch.add_column(SAColumn("extra_column", Integer))
            conn.execute(text("UPDATE tickets SET subject = 'airship'"))
        app = bootstrap(load_settings(environ={"TRIAGE_DATABASE_URL": db_url}))
        try:
            assert found(app, "airship") == {("ticket", "T-2026-00001")} and found(app, "zeppelin") == set()
        finally:
            app.close()
    finally:
        engine.dispose()
