"""The address book's use cases (triage.desk.contacts, contact_merge, contact_files) on SQLite and
PostgreSQL: a contact is a person found by any of their addresses, edits are logged, a merge is
undone exactly, duplicates are suggested, files are previewed before they are written."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text

from tests.conftest import make_mail
from triage.bootstrap import App
from triage.cli import cli
from triage.desk.actors import Actor
from triage.desk.contact_files import duplicate_contacts, export_records, import_contacts
from triage.desk.contact_merge import merge_contacts, unmerge_contact
from triage.desk.contacts import ContactEdit, contact_page, edit_contact, list_contacts
from triage.desk.errors import Conflict, Forbidden, Invalid, NotFound
from triage.ingest.pipeline import IncomingMail
from triage.store.db import make_engine
from triage.store.models import Contact, ContactAddress, Ticket
from triage.store.schema import upgrade
from triage.store.web_models import Role

LIAISON = Actor("ada", Role.liaison)
STAFF = Actor("sam", Role.staff, "legal")
OTHER_STAFF = Actor("tom", Role.staff, "technology")
VIEWER = Actor("vic", Role.viewer)


def mail(app: App, sender: str, message_id: str, *, subject: str = "Logo", body: str | None = None,
         team: str | None = None) -> str:
    extra = {"body": body} if body else {}
    [outcome] = app.ingestor().ingest_many([IncomingMail(make_mail(
        sender=sender, message_id=message_id, subject=subject, **extra), source="test")])
    assert outcome.ticket_reference
    if team:
        with app.sessions.begin() as session:
            session.scalars(select(Ticket).where(Ticket.reference == outcome.ticket_reference)).one().team = team
    return outcome.ticket_reference


def contact_of(app: App, reference: str) -> int:
    with app.reads() as session:
        found = session.scalar(select(Ticket.contact_id).where(Ticket.reference == reference))
        assert found is not None
        return found


def owners(app: App) -> dict[str, int]:
    with app.reads() as session:
        return dict(session.execute(select(ContactAddress.address, ContactAddress.contact_id)).all())


def ticket_owners(app: App) -> dict[str, int | None]:
    with app.reads() as session:
        return dict(session.execute(select(Ticket.reference, Ticket.contact_id)).all())


def test_ingest_finds_the_person_by_any_of_their_addresses(app: App) -> None:
    """A second address added to a contact makes mail from it land on the same person."""
    first = mail(app, "Ada <ada@v.example>", "<a1@v.example>")
    ada = contact_of(app, first)
    edit_contact(app, LIAISON, "ada@v.example", ContactEdit(add_addresses=("Ada@Home.example",)))
    second = mail(app, "Ada L <ada@home.example>", "<a2@v.example>", subject="Other")
    assert contact_of(app, second) == ada
    with app.reads() as session:
        contact = session.get_one(Contact, ada)
        assert contact.address == "ada@v.example" and contact.name == "Ada"  # primary and name kept
        assert session.scalar(select(Contact.id).where(Contact.address == "ada@v.example")) == ada
    assert [c.id for c in list_contacts(app, LIAISON)] == [ada]


def test_edits_are_logged_with_old_and_new_values(app: App) -> None:
    """Every edited field is one history row: who, which field, old and new value."""
    ref = mail(app, "Ada <ada@v.example>", "<e1@v.example>")
    changed = edit_contact(app, LIAISON, "ada@v.example", ContactEdit(
        name="Ada Lovelace", notes="Met at the <b>summit</b>", consent=True,
        add_labels=(("tag", "eyes and ears"), ("role", "affiliate organiser"), ("project", "dewiki"),
                    ("language", "de"))))
    assert changed == 7
    edit_contact(app, LIAISON, str(contact_of(app, ref)), ContactEdit(remove_labels=(("tag", "eyes and ears"),)))
    page = contact_page(app, LIAISON, "ada@v.example")
    assert page.name == "Ada Lovelace" and page.consent and page.notes == "Met at the <b>summit</b>"
    assert page.labels["role"] == ["affiliate organiser"] and page.labels["tag"] == []
    history = [(c.actor, c.field, c.old, c.new) for c in page.history]
    assert history[0] == ("liaison:ada", "tag", "eyes and ears", None)
    assert ("liaison:ada", "name", "Ada", "Ada Lovelace") in history
    assert ("liaison:ada", "consent", "no", "yes") in history
    assert [t.reference for t in page.tickets] == [ref]
    assert [c.id for c in list_contacts(app, VIEWER, tag="affiliate organiser")] == [page.id]
    assert [c.id for c in list_contacts(app, VIEWER, "lovelace")] == [page.id]
    assert list_contacts(app, VIEWER, "nobody") == []
    assert edit_contact(app, LIAISON, "ada@v.example", ContactEdit(name="Ada Lovelace")) == 0


def test_who_may_read_and_edit(app: App) -> None:
    """Staff read only contacts with a ticket on their team; only the liaison edits; viewers read."""
    mail(app, "Ada <ada@v.example>", "<w1@v.example>", team="legal")
    assert contact_page(app, STAFF, "ada@v.example").name == "Ada"
    assert contact_page(app, VIEWER, "ada@v.example").name == "Ada"
    with pytest.raises(NotFound):
        contact_page(app, OTHER_STAFF, "ada@v.example")
    assert list_contacts(app, OTHER_STAFF) == []
    for actor in (STAFF, VIEWER):
        with pytest.raises(Forbidden):
            edit_contact(app, actor, "ada@v.example", ContactEdit(name="X"))
    with pytest.raises(NotFound):
        contact_page(app, LIAISON, "nobody@v.example")
    with pytest.raises(Invalid):
        edit_contact(app, LIAISON, "ada@v.example", ContactEdit(add_addresses=("not an address",)))
    with pytest.raises(Invalid):
        edit_contact(app, LIAISON, "ada@v.example", ContactEdit(name="two\nlines"))


def test_merge_and_undo_restore_exactly_what_belonged_to_whom(app: App) -> None:
    """A merge moves addresses and tickets; later mail from the merged address lands on the survivor;
    the undo puts every address and ticket back, the one opened since included."""
    a1 = mail(app, "Ada <ada@work.example>", "<m1@v.example>")
    mail(app, "Ada <ada@work.example>", "<m2@v.example>", subject="Two")
    b1 = mail(app, "Ada Lovelace <ada@home.example>", "<m3@v.example>", subject="Three")
    edit_contact(app, LIAISON, "ada@work.example", ContactEdit(add_labels=(("tag", "press"),)))
    work, home = contact_of(app, a1), contact_of(app, b1)
    before_addresses, before_tickets = owners(app), ticket_owners(app)

    done = merge_contacts(app, LIAISON, "ada@work.example", str(home))
    assert (done["addresses"], done["tickets"]) == (1, 2)
    assert set(owners(app).values()) == {home} and set(ticket_owners(app).values()) == {home}
    later = mail(app, "Ada <ada@work.example>", "<m4@v.example>", subject="Four")
    assert contact_of(app, later) == home
    page = contact_page(app, LIAISON, str(home))
    assert page.labels["tag"] == ["press"] and {a.address for a in page.addresses} == {
        "ada@work.example", "ada@home.example"}
    assert page.address == "ada@home.example" and [m.id for m in page.merged_from] == [work]
    assert [c.id for c in list_contacts(app, LIAISON)] == [home]
    with pytest.raises(Conflict):
        merge_contacts(app, LIAISON, str(work), str(home))
    with pytest.raises(Conflict):
        edit_contact(app, LIAISON, str(work), ContactEdit(name="x"))

    undone = unmerge_contact(app, LIAISON, "ada@work.example")  # the address it brought names it
    assert undone["tickets"] == 3
    assert owners(app) == before_addresses
    assert ticket_owners(app) == {**before_tickets, later: work}
    page = contact_page(app, LIAISON, str(home))
    assert page.labels["tag"] == [] and page.merged_from == []
    assert contact_page(app, LIAISON, str(work)).address == "ada@work.example"
    assert [c.action for c in contact_page(app, LIAISON, str(work)).history][:2] == ["unmerge", "merge"]
    with pytest.raises(NotFound):
        unmerge_contact(app, LIAISON, str(work))
    with pytest.raises(Forbidden):
        merge_contacts(app, VIEWER, str(work), str(home))


def test_duplicates_are_suggested(app: App) -> None:
    """Same name and domain, a plus-address, an address in another contact's signature."""
    mail(app, "Ada Lovelace <ada@wiki.example>", "<d1@v.example>")
    mail(app, "ada lovelace <a.lovelace@wiki.example>", "<d2@v.example>")
    mail(app, "Bob <bob@x.example>", "<d3@v.example>")
    mail(app, "Bob Wiki <bob+wiki@x.example>", "<d4@v.example>")
    mail(app, "Carol <carol@y.example>", "<d5@v.example>", body="Hi\n\n-- \nCarol\nalso carol.p@home.example\n")
    mail(app, "C P <carol.p@home.example>", "<d6@v.example>")
    found = {(d.keep_address, d.merge_address): d.reasons for d in duplicate_contacts(app, LIAISON)}
    assert found[("ada@wiki.example", "a.lovelace@wiki.example")] == ("same name and domain (ada lovelace at wiki.example)",)
    assert found[("bob@x.example", "bob+wiki@x.example")] == ("plus-address of bob@x.example",)
    assert ("carol@y.example", "carol.p@home.example") in found
    assert len(found) == 3


CSV = (
    "Name,Email,Tags,Roles,Consent,Notes\n"
    "Ada Lovelace,ada@v.example; ada@home.example,press,,yes,\n"
    "New Person,new@v.example,eyes and ears,affiliate organiser,,=1+2\n"
    "Broken,not-an-address,,,,\n"
    "Twice,new@v.example,,,,\n"
    "Consent?,c@v.example,,,maybe,\n"
)


def test_import_previews_then_applies(app: App) -> None:
    """The preview writes nothing and says per row: create, merge (by address) or refuse, and why;
    --apply writes the same; export neutralises formulas."""
    ref = mail(app, "Ada <ada@v.example>", "<i1@v.example>")
    preview = import_contacts(app, LIAISON, CSV.encode(), "book.csv")
    assert [(line.line, line.outcome) for line in preview.lines] == [
        (2, "merge"), (3, "create"), (4, "refuse"), (5, "refuse"), (6, "refuse")]
    assert "not an address" in preview.lines[2].reason and "line 3" in preview.lines[3].reason
    assert "consent" in preview.lines[4].reason
    assert len(owners(app)) == 1  # nothing written
    applied = import_contacts(app, LIAISON, CSV.encode(), "book.csv", apply=True)
    assert [line.outcome for line in applied.lines] == [line.outcome for line in preview.lines]
    ada = contact_page(app, LIAISON, "ada@home.example")
    assert ada.id == contact_of(app, ref) and ada.name == "Ada" and ada.consent and ada.labels["tag"] == ["press"]
    new = contact_page(app, LIAISON, "new@v.example")
    assert new.notes == "=1+2" and new.labels["role"] == ["affiliate organiser"]
    assert {c.action for c in new.history} == {"import"}
    again = import_contacts(app, LIAISON, CSV.encode(), "book.csv")
    assert [line.outcome for line in again.lines][:2] == ["unchanged", "unchanged"]
    with pytest.raises(Invalid):
        import_contacts(app, LIAISON, b"name,phone\nx,1\n", "x.csv")
    with pytest.raises(Invalid):
        import_contacts(app, LIAISON, b"\xff\xfe\x00garbage", "x.csv")
    with pytest.raises(Forbidden):
        import_contacts(app, VIEWER, CSV.encode(), "book.csv")
    records = {r.name: r for r in export_records(app, VIEWER)}
    assert records["New Person"].notes == "=1+2"


def test_hostile_csv_never_crashes() -> None:
    """Broken quoting, NUL bytes, huge cells and formulas are refused or neutralised, row by row."""
    from triage.contacts.exchange import Record, read_csv, write_csv

    rows = read_csv(b'email,name\n"a@v.example,x\n')
    assert rows[0].refused
    rows = read_csv(b"email,name\na@v.example,ok\nb@v.example,bad\x00name\n")
    assert rows[0].card is not None and rows[1].refused
    rows = read_csv(b"email,name\n" + b"c@v.example," + b"x" * 300 + b"\n")
    assert rows[0].refused == "name longer than 200 characters"
    out = write_csv([Record(1, "u", "=HYPERLINK(\"http://x\")", ("a@v.example",), None,
                            {"tag": ["+1", "@x"]}, "-2", False)])
    assert "'=HYPERLINK" in out and ",'-2," in out and "'+1; @x" in out
    assert read_csv(out.encode())[0].card.name == '=HYPERLINK("http://x")'  # type: ignore[union-attr]


def test_vcard_round_trip_keeps_values_in_their_property() -> None:
    """vobject escapes every value: a name cannot add a property, and the file reads back."""
    from triage.contacts.exchange import Record, read_vcard, write_vcard

    out = write_vcard([Record(7, "uid7", "Ada; Lovelace, \\x", ("ada@v.example", "ada@home.example"), "de",
                              {"tag": ["press"], "role": ["former liaison"]}, "line one\nEMAIL:evil@x.example", True)])
    assert "\nEMAIL:evil" not in out.replace("\r\n", "\n")
    [row] = read_vcard(out.encode())
    assert row.card is not None and row.card.addresses == ("ada@v.example", "ada@home.example")
    assert row.card.name == "Ada; Lovelace, \\x" and row.card.notes == "line one\nEMAIL:evil@x.example"
    assert set(row.card.labels) == {("tag", "press"), ("role", "former liaison")} and row.card.consent


def test_migration_moves_addresses_with_tickets_in_place(db_url: str) -> None:
    """0013 moves each contacts.address to contact_addresses (primary) and keeps tickets pointing at
    their contacts, on both engines, with rows that refer to the contacts."""
    engine = make_engine(db_url)
    try:
        upgrade(engine, "0012")
        with engine.begin() as conn:
            for cid, address in ((1, "a@v.example"), (2, "b@v.example")):
                conn.execute(text("INSERT INTO contacts (id, address, name, bouncing, first_seen, last_seen) "
                                  "VALUES (:i, :a, 'N', false, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"),
                             {"i": cid, "a": address})
            conn.execute(text("INSERT INTO tickets (id, reference, subject, status, contact_id, created_at, "
                              "updated_at) VALUES (1, 'T-1', 's', 'open', 2, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
        upgrade(engine)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT contact_id, address, is_primary FROM contact_addresses "
                                     "ORDER BY contact_id")).all() == [(1, "a@v.example", True),
                                                                       (2, "b@v.example", True)]
            assert conn.execute(text("SELECT contact_id FROM tickets")).scalar() == 2
            assert conn.execute(text("SELECT COUNT(DISTINCT uid) FROM contacts")).scalar() == 2
    finally:
        engine.dispose()


def test_cli_contact_commands(app: App, db_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`triage contact list/show/edit/merge/unmerge/duplicates/import` call the same use cases."""
    mail(app, "Ada Lovelace <ada@wiki.example>", "<c1@v.example>")
    mail(app, "Ada Lovelace <lovelace@wiki.example>", "<c2@v.example>")
    runner = CliRunner()
    env = {"TRIAGE_DATABASE_URL": db_url, "TRIAGE_CONFIG": ""}

    def run(*args: str) -> tuple[int, str]:
        result = runner.invoke(cli, ["contact", *args], env=env)
        return result.exit_code, result.output

    code, out = run("edit", "ada@wiki.example", "--add-tag", "press", "--consent", "yes", "--note", "hi")
    assert (code, out) == (0, "contact ada@wiki.example: 3 changes\n")
    code, out = run("show", "ada@wiki.example", "--json")
    shown = json.loads(out)
    assert code == 0 and shown["labels"]["tag"] == ["press"] and shown["history"][0]["actor"] == "liaison:liaison"
    code, out = run("list", "--json", "--tag", "press")
    assert code == 0 and [row["address"] for row in json.loads(out)] == ["ada@wiki.example"]
    code, out = run("duplicates", "--json")
    [dup] = json.loads(out)
    assert code == 0 and dup["merge_address"] == "lovelace@wiki.example"
    assert run("merge", str(dup["merge"]), str(dup["keep"]))[0] == 0
    code, out = run("list", "--csv")
    assert code == 0 and out.splitlines()[1].count("wiki.example") == 2
    assert "BEGIN:VCARD" in run("list", "--vcard")[1]
    assert run("unmerge", "lovelace@wiki.example")[0] == 0
    code, out = run("unmerge", "lovelace@wiki.example")
    assert code == 2 and "not merged" in out
    book = tmp_path / "book.csv"
    book.write_text("name,email\nNew,new@v.example\nBad,nope\n")
    code, out = run("import", str(book))
    assert code == 0 and "preview" in out and "1 create" in out and "1 refuse" in out
    assert run("import", str(book), "--apply")[0] == 0
    assert run("show", "new@v.example")[0] == 0
    for command in ("list", "show", "edit", "merge", "unmerge", "duplicates", "import"):
        assert "Usage:" in run(command, "--help")[1]
