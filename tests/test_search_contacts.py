"""Contacts in the full-text search, on SQLite and PostgreSQL: a person is found by their name, any
of their addresses, a label or a word of the notes; an edit re-indexes them (from the contact or
from an address or label row); a merged contact is found as the survivor; staff find only contacts
with a ticket of their team; the tag filter narrows contacts and the tickets of such contacts."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sqlalchemy import delete, select, text, update
from starlette.testclient import TestClient

from tests.test_search import LIAISON, STAFF, VIEWER, found, store
from tests.test_web_actions import logged_in
from tests.workbench import Account
from triage.bootstrap import App
from triage.desk.actors import Actor
from triage.desk.contact_merge import merge_contacts, unmerge_contact
from triage.desk.contacts import ContactEdit, edit_contact
from triage.desk.errors import Invalid
from triage.search.service import SearchFilters, rebuild, search
from triage.store.contact_models import ContactLabel
from triage.store.models import Contact, ContactAddress
from triage.store.web_models import Role


def contact_id(app: App, address: str) -> int:
    with app.sessions() as session:
        return session.scalars(select(ContactAddress.contact_id).where(ContactAddress.address == address)).one()


def people(app: App, words: str, actor: Actor = LIAISON, **filters: object) -> set[int]:
    chosen = SearchFilters(kinds=("contact",), **filters)  # type: ignore[arg-type]
    return {hit.id for hit in search(app, actor, words, chosen).hits}


def ada(app: App) -> tuple[str, int]:
    ref = store(app, "<p1@v.example>", sender="Ada Quillfeather <ada@volunteers.example>", team="legal")
    edit_contact(app, LIAISON, "ada@volunteers.example", ContactEdit(
        notes="Met her at the Katowice summit", add_labels=(("tag", "eyes and ears"), ("role", "press")),
        add_addresses=("ada.q@chapter.example",)))
    return ref, contact_id(app, "ada@volunteers.example")


def test_a_contact_is_found_by_name_address_label_and_notes(app: App) -> None:
    """Each of the person's texts finds them, with a link to their page and a marked snippet."""
    _, person = ada(app)
    for words in ("quillfeather", "ada.q@chapter.example", "chapter", "ears", "press", "katowice"):
        assert people(app, words) == {person}, words
    [hit] = [h for h in search(app, LIAISON, "katowice").hits if h.kind == "contact"]
    assert hit.url == f"/contacts/{person}" and hit.title == "Ada Quillfeather" and hit.reference is None
    assert hit.who == "ada@volunteers.example" and ("Katowice", True) in hit.snippet
    assert people(app, "nobody") == set()


def test_edits_reindex_the_contact_from_every_table(app: App) -> None:
    """A new name, a removed address or label, and raw writes to the child tables all follow at once;
    a deleted contact is gone from the index."""
    _, person = ada(app)
    edit_contact(app, LIAISON, str(person), ContactEdit(name="Ada Lovelace", remove_addresses=("ada.q@chapter.example",),
                                                        remove_labels=(("role", "press"),)))
    assert people(app, "quillfeather") == set() and people(app, "lovelace") == {person}
    assert people(app, "chapter") == set() and people(app, "press") == set()
    with app.sessions.begin() as session:
        session.execute(update(ContactLabel).where(ContactLabel.value == "eyes and ears").values(value="zeppelin"))
        session.execute(update(ContactAddress).values(address="ada@airship.example"))
    assert people(app, "ears") == set() and people(app, "zeppelin") == people(app, "airship") == {person}
    assert found(app, "lovelace", kinds=["contact"]) == {("contact", None)}
    with app.sessions.begin() as session:
        session.execute(delete(ContactLabel))
        session.execute(delete(ContactAddress))
        session.execute(update(Contact).values(notes=""))
    assert people(app, "zeppelin") == people(app, "airship") == people(app, "katowice") == set()
    assert people(app, "lovelace") == {person}
    rebuild(app)
    assert people(app, "lovelace") == {person} and people(app, "zeppelin") == set()


def test_a_merged_contact_is_found_as_the_survivor(app: App) -> None:
    """After a merge only the survivor is found, by the merged person's address too; undo restores both."""
    store(app, "<p2@v.example>", sender="Bo Tallgrass <bo@one.example>")
    store(app, "<p3@v.example>", sender="Robert T <robert@two.example>")
    bo, robert = contact_id(app, "bo@one.example"), contact_id(app, "robert@two.example")
    merge_contacts(app, LIAISON, str(bo), str(robert))
    assert people(app, "tallgrass") == set() and people(app, "one") == {robert}
    rebuild(app)
    assert people(app, "tallgrass") == set() and people(app, "one") == {robert}
    unmerge_contact(app, LIAISON, str(bo))
    assert people(app, "tallgrass") == {bo} and people(app, "two") == {robert} and people(app, "one") == {bo}


def test_staff_find_only_contacts_with_a_ticket_of_their_team(app: App) -> None:
    """As the contacts pages: staff find people with a ticket of their team; viewers find everyone."""
    _, person = ada(app)
    store(app, "<p4@v.example>", sender="Cy Quillfeather <cy@v.example>", team="technology")
    cy = contact_id(app, "cy@v.example")
    assert people(app, "quillfeather", STAFF) == {person}
    assert people(app, "quillfeather", VIEWER) == {person, cy}
    assert people(app, "quillfeather", Actor("nobody", Role.staff, None)) == set()
    assert people(app, "quillfeather", team="technology") == {cy}
    assert people(app, "quillfeather", status="new") == {person, cy}
    assert people(app, "quillfeather", status="resolved") == set()


def test_tag_filter_narrows_contacts_and_their_tickets(app: App) -> None:
    """--tag keeps contacts with that label, and the tickets, messages and notes of such contacts."""
    ref, person = ada(app)
    other = store(app, "<p5@v.example>", sender="Di <di@v.example>")
    assert {r for _, r in found(app, "logo")} == {ref, other}
    assert {r for _, r in found(app, "logo", tag="eyes and ears")} == {ref}
    assert {r for _, r in found(app, "logo", tag=" press ")} == {ref}
    assert found(app, "logo", tag="nobody") == set()
    assert people(app, "ada", tag="eyes and ears") == {person} and people(app, "ada", tag="press2") == set()
    with pytest.raises(Invalid):
        found(app, "logo", tag="x" * 201)


def test_erasure_leaves_no_contact_text_in_the_index(app: App) -> None:
    """After erase_person nothing finds the person, and no table of the contact index holds their
    words (tests/test_privacy_complete.py scans every table of the database the same way)."""
    from triage.desk.privacy import erase_person

    ada(app)
    store(app, "<p6@v.example>", sender="Bystander Quillfeather <by@v.example>")
    erase_person(app, LIAISON, "ada@volunteers.example")
    assert people(app, "katowice") == people(app, "ears") == people(app, "chapter") == set()
    assert people(app, "quillfeather") == {contact_id(app, "by@v.example")}
    if app.engine.dialect.name == "sqlite":
        with app.engine.connect() as conn:
            tables = [row[0] for row in conn.execute(text(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'search_contacts%'"))]
            assert len(tables) >= 3
            for table in tables:
                for row in conn.execute(text(f"SELECT * FROM {table}")):
                    assert "katowice" not in repr(row).lower() and "volunteers" not in repr(row).lower(), table


def test_cli_and_web_find_contacts(app: App, db_url: str, make_account) -> None:  # type: ignore[no-untyped-def]
    """`triage search --kind contact --tag` lists the person with their page; /search links to it."""
    from triage.cli import cli
    from triage.web.app import create_app

    _, person = ada(app)
    env = {"TRIAGE_DATABASE_URL": db_url, "TRIAGE_CONFIG": ""}
    result = CliRunner().invoke(cli, ["search", "quillfeather", "--kind", "contact", "--tag", "press", "--json"],
                                env=env)
    assert result.exit_code == 0, result.output
    [hit] = json.loads(result.output)
    assert (hit["kind"], hit["id"], hit["url"]) == ("contact", person, f"/contacts/{person}")
    lines = CliRunner().invoke(cli, ["search", "quillfeather"], env=env).output
    assert f"contact {person}" in lines and "[Quillfeather]" in lines
    with TestClient(create_app(app), base_url="http://127.0.0.1") as client:
        account: Account = make_account()
        logged_in(client, account)
        page = client.get("/search", params={"q": "katowice", "tag": "eyes and ears"})
        assert page.status_code == 200 and f'href="/contacts/{person}"' in page.text
        assert "<mark>Katowice</mark>" in page.text and 'name="tag" value="eyes and ears"' in page.text
        assert "Nothing found" in client.get("/search", params={"q": "katowice", "tag": "nope"}).text
