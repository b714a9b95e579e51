"""A person's data on request (triage.desk.privacy) on SQLite and PostgreSQL: the export holds
everything under names the desk gives, erasure is the liaison's alone, one transaction and
harmless to repeat, a waiting mail to the person is never sent; the retention run empties old
resolved tickets once, on the worker's clock; `triage contact export|erase` at the terminal."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from structlog.testing import capture_logs

from tests.conftest import Clock, make_mail
from tests.privacy_people import ADDRESS, LIAISON, PRIVATE_BYTES, SHARED_BYTES, populate
from triage.bootstrap import App, bootstrap
from triage.cli import cli
from triage.config import ConfigError, load_settings
from triage.desk.actions import set_status
from triage.desk.actors import Actor
from triage.desk.errors import Forbidden, NotFound
from triage.desk.privacy import erase_person, export_person, person_view
from triage.ingest.pipeline import IncomingMail
from triage.privacy import erase as erase_module
from triage.privacy.erase import scrub_detail
from triage.privacy.export import safe_extension
from triage.privacy.retention import months_before, run_retention
from triage.runners.retention import retention_runners
from triage.store.models import Contact, Message, Ticket
from triage.store.outbox_models import Outbox, OutboxStatus
from triage.store.privacy_models import Erasure
from triage.store.web_models import Role

STAFF = Actor("sam", Role.staff, "events")
VIEWER = Actor("vic", Role.viewer)


def test_export_holds_everything_under_names_the_desk_gives(app: App) -> None:
    """The zip's person.json has the contact, tickets with events, suggestions and decisions, messages
    with headers, text and HTML, the outbox and quarantine; raw mails and attachments are files
    named by id, the sender's filename only data."""
    people = populate(app)
    export = export_person(app, LIAISON, ADDRESS)
    archive = zipfile.ZipFile(io.BytesIO(export.zip_bytes()))
    document = json.loads(archive.read("person.json"))
    person, merged = document["contacts"]  # theirs, and the contact merged into it (kept for undo)
    assert person["address"] == ADDRESS and person["name"] == "Quillon V. Vexmartha"
    assert {a["address"] for a in person["addresses"]} == {ADDRESS, "qvex@quillmail.example"}
    assert merged["merged_into"] == person["id"] and merged["addresses"] == []
    assert {"kind": "tag", "value": "wibbleton-organiser"} in person["labels"]
    assert person["notes"].startswith("Quarklebeam")
    assert any(h["field"] == "name" and h["old"] == "Quillon Vexmartha" for h in person["history"])
    [ticket] = document["tickets"]
    assert ticket["reference"] == people.reference and ticket["subject"] == "Brindlewick banner for our meetup"
    assert any(e["action"] == "note" and "Plinkerdoodle" in e["detail"]["text"] for e in ticket["events"])
    assert ticket["suggestions"][0]["evidence"] == ["brindlewick", "glorptastic"] and ticket["decisions"]
    inbound = [m for m in document["messages"] if m["direction"] == "inbound"]
    assert [m["message_id"] for m in inbound] == ["<vexmid-1@zorblat.example>", "<vexmid-2@zorblat.example>"]
    assert "Snarfquiddle" in inbound[0]["body_html"] and "Frobnitzer" in inbound[0]["signature"]
    assert any("Yarrowmuffin" in o["subject"] or o["raw"] for o in document["outbox"])
    assert all(m["raw"] in archive.namelist() for m in document["messages"])
    names = {a["filename"]: a["file"] for a in inbound[0]["attachments"]}
    assert set(names) == {"Wumpelgrist-plan.bin", "guidelines.pdf"}
    assert archive.read(names["Wumpelgrist-plan.bin"]) == PRIVATE_BYTES
    assert archive.read(names["guidelines.pdf"]) == SHARED_BYTES
    assert all(n.split("/")[0] in {"person.json", "mails", "attachments", "outbox", "quarantine"}
               for n in archive.namelist())
    assert all("wumpelgrist" not in n.lower() and "guidelines" not in n for n in archive.namelist())
    assert len(document["quarantine"]) == 1 and document["quarantine"][0]["raw"] in archive.namelist()
    assert b"otto" not in archive.read("person.json").lower()


def test_a_hostile_attachment_name_never_becomes_a_path(app: App) -> None:
    """An attachment called ../../etc/passwd is stored under attachments/<id>.bin."""
    from tests.privacy_people import mail

    raw = mail("Eve <eve@x.example>", "hi", "hi", message_id="<eve@x.example>",
               attachments=(("../../etc/passwd", b"root:x:0:0"),))
    app.ingestor().ingest_many([IncomingMail(raw, source="test")])
    export = export_person(app, LIAISON, "eve@x.example")
    [attachment] = export.document["messages"][0]["attachments"]
    assert attachment["filename"] == "../../etc/passwd"
    assert attachment["file"].startswith("attachments/") and attachment["file"].endswith(".bin")
    assert ".." not in "".join(export.files) and safe_extension("text/html; charset=utf-8") == ".html"


def test_only_the_liaison_sees_exports_or_erases(app: App) -> None:
    """Staff and viewers are refused; an unknown person is NotFound; nothing changes."""
    people = populate(app)
    for actor in (STAFF, VIEWER):
        for call in (person_view, export_person, erase_person):
            with pytest.raises(Forbidden):
                call(app, actor, ADDRESS)
    with pytest.raises(NotFound, match="no contact"):
        erase_person(app, LIAISON, "nobody@nowhere.example")
    assert person_view(app, LIAISON, str(people.contact_id)).messages == 3  # two in, the reply


def test_erasure_is_one_transaction_and_harmless_to_repeat(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure part-way leaves everything as it was; done, a second erasure of the contact id
    reports the first tombstone, and the export is refused as erased."""
    people = populate(app)

    def broken(*args: object) -> object:
        raise RuntimeError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(erase_module, "_erase_blobs", broken)
        with pytest.raises(RuntimeError):
            erase_person(app, LIAISON, str(people.contact_id))
    with app.reads() as session:
        assert session.scalar(select(Contact.name).where(Contact.id == people.contact_id)) == "Quillon V. Vexmartha"
        assert session.scalar(select(Message.subject).where(Message.id == people.first.message_pk))
    first = erase_person(app, LIAISON, str(people.contact_id), now=datetime(2026, 12, 1, tzinfo=UTC))
    again = erase_person(app, LIAISON, str(people.contact_id))
    assert again.already and again.erasure_id == first.erasure_id and again.tickets == (people.reference,)
    with pytest.raises(NotFound, match="was erased on 2026-12-01"):
        export_person(app, LIAISON, str(people.contact_id))
    with app.reads() as session:
        [tombstone] = session.scalars(select(Erasure)).all()
        assert (tombstone.actor, tombstone.reason, tombstone.contact_id) == ("liaison:ada", "request",
                                                                             people.contact_id)
        assert tombstone.counts["messages"] == 3 and "vexmartha" not in json.dumps(tombstone.counts).lower()


def test_a_waiting_mail_to_the_erased_person_is_never_sent(app: App) -> None:
    """Outbox rows to them lose their bytes and recipients; one still pending is failed."""
    populate(app)
    with app.reads() as session:
        pending = session.scalars(select(Outbox.id).where(Outbox.status == OutboxStatus.pending)).all()
    assert pending
    erase_person(app, LIAISON, ADDRESS)
    with app.reads() as session:
        rows = session.scalars(select(Outbox).where(Outbox.id.in_(pending))).all()
        assert {(r.status, r.raw, r.to_addr, tuple(r.recipients)) for r in rows} == {
            (OutboxStatus.failed, None, "", ())}


def test_scrub_detail_keeps_structure_only() -> None:
    """Numbers, flags, statuses, teams, references stay; text and addresses go."""
    assert scrub_detail({"text": "call Quillon", "old": "open", "new": "resolved", "into": "T-2026-00042",
                         "to": ["q@z.example"], "outbox": 7, "why": "set by liaison:ada", "team": "legal"}) == {
        "old": "open", "new": "resolved", "into": "T-2026-00042", "outbox": 7, "team": "legal", "erased": True}
    assert scrub_detail(None) == {"erased": True}


def test_months_before_clamps_the_day() -> None:
    """Whole calendar months back; 31 March less one month is the end of February."""
    assert months_before(datetime(2026, 3, 31, 12, tzinfo=UTC), 1) == datetime(2026, 2, 28, 12, tzinfo=UTC)
    assert months_before(datetime(2026, 1, 15, tzinfo=UTC), 13) == datetime(2024, 12, 15, tzinfo=UTC)


def test_retention_empties_old_resolved_tickets_once(db_url: str, clock: Clock) -> None:
    """retention_months = 6: a ticket resolved seven months ago is emptied (counts logged, no content),
    an open one and a recently resolved one are not; a second run does nothing; mail arriving on
    the shell later is emptied in its turn. Off by default: no runner."""
    assert retention_runners(bootstrap(load_settings(environ={"TRIAGE_DATABASE_URL": db_url}))) == []
    settings = load_settings(environ={"TRIAGE_DATABASE_URL": db_url, "TRIAGE_PRIVACY_RETENTION_MONTHS": "6"})
    app = bootstrap(settings)
    try:
        ingest = app.ingestor(clock=clock)
        old, still_open, recent = (ingest.ingest_many([IncomingMail(make_mail(
            subject=f"Zebulonish {n}", message_id=f"<ret{n}@v.example>"), source="test")])[0].ticket_reference
            for n in range(3))
        assert old and still_open and recent
        set_status(app, LIAISON, old, "resolved", now=clock())
        clock.advance(days=120)
        set_status(app, LIAISON, recent, "resolved", now=clock())
        clock.advance(days=100)
        [runner] = retention_runners(app, clock)
        with capture_logs() as logs:
            assert runner.step() == 1
        assert next(e for e in logs if e["event"] == "privacy.retention")["tickets"] == 1
        assert "zebulonish" not in json.dumps(logs, default=str).lower()
        with app.reads() as session:
            subjects = dict(session.execute(select(Ticket.reference, Ticket.subject)).all())
            assert subjects == {old: None, still_open: "Zebulonish 1", recent: "Zebulonish 2"}
            assert session.scalar(select(Erasure.reason)) == "retention"
        assert runner.step() == 0
        [late] = ingest.ingest_many([IncomingMail(make_mail(subject=f"Re: Zebulonish [{old}]",
                                                            message_id="<ret-late@v.example>"), source="test")])
        assert late.ticket_reference == old
        set_status(app, LIAISON, old, "resolved", expected="open", now=clock())
        assert run_retention(app.sessions, settings.privacy, now=clock()).tickets == 0  # changed just now
        clock.advance(days=200)
        assert run_retention(app.sessions, settings.privacy, now=clock()).tickets == 2  # old again, and recent
        with app.reads() as session:
            assert not session.scalars(select(Message.id).where(Message.subject.is_not(None))
                                       .join(Ticket, Ticket.id == Message.ticket_id)
                                       .where(Ticket.reference.in_([old, recent]))).all()
    finally:
        app.close()


def test_retention_months_is_validated() -> None:
    """A negative or absurd retention period stops start-up naming the key."""
    for bad in ("-1", "5000", "soon"):
        with pytest.raises(ConfigError, match="privacy.retention_months"):
            load_settings(environ={"TRIAGE_PRIVACY_RETENTION_MONTHS": bad})
    assert load_settings(environ={}).privacy.retention_months == 0


def test_cli_contact_export_and_erase(app: App, db_url: str, tmp_path: Path) -> None:
    """`triage contact export REF --out` writes the zip once; `erase` wants --yes off a terminal,
    erases, and says so again without change; --help everywhere."""
    people = populate(app)
    runner = CliRunner()
    env = {"TRIAGE_DATABASE_URL": db_url, "TRIAGE_CONFIG": ""}

    def run(*args: str) -> tuple[int, str]:
        result = runner.invoke(cli, list(args), env=env)
        return result.exit_code, result.stdout if "--json" in args else result.output

    out = tmp_path / "quillon.zip"
    code, output = run("contact", "export", ADDRESS, "--out", str(out), "--json")
    assert code == 0 and json.loads(output)["messages"] == 3
    assert "person.json" in zipfile.ZipFile(out).namelist() and out.stat().st_mode & 0o077 == 0
    code, output = run("contact", "export", ADDRESS, "--out", str(out))
    assert code == 2 and "exists" in output
    code, output = run("contact", "erase", ADDRESS)
    assert code == 2 and "--yes" in output
    code, output = run("contact", "erase", ADDRESS, "--yes", "--json")
    assert code == 0 and json.loads(output)["tickets"] == [people.reference]
    code, output = run("contact", "erase", str(people.contact_id), "--yes")
    assert code == 0 and "already erased" in output
    code, output = run("show", people.reference)
    assert code == 0 and people.reference in output and "Glorptastic" not in output
    code, output = run("contact", "erase", ADDRESS, "--yes")
    assert code == 2 and "no contact" in output
    for command in (("contact",), ("contact", "export"), ("contact", "erase")):
        assert "Usage:" in run(*command, "--help")[1]


def test_the_clock_is_the_workers(db_url: str) -> None:
    """A ticket resolved just now is not due however the wall clock stands: the run uses `now`."""
    settings = load_settings(environ={"TRIAGE_DATABASE_URL": db_url, "TRIAGE_PRIVACY_RETENTION_MONTHS": "1"})
    app = bootstrap(settings)
    try:
        past = Clock(datetime(2020, 1, 1, tzinfo=UTC))
        [mail] = app.ingestor(clock=past).ingest_many([IncomingMail(make_mail(), source="test")])
        assert mail.ticket_reference
        set_status(app, LIAISON, mail.ticket_reference, "resolved", now=past())
        assert run_retention(app.sessions, settings.privacy, now=past() + timedelta(days=20)).tickets == 0
        assert run_retention(app.sessions, settings.privacy, now=past() + timedelta(days=40)).tickets == 1
    finally:
        app.close()
