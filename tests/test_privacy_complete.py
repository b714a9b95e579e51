"""Erasure is complete: after `erase_person`, no string that names or quotes the person remains in
any column of any table (text, JSON, binary; blobs decompressed; on SQLite, full-text tables too),
while the bystander's mail and their shared attachment are intact. The scan reads every table the
database has and proves it covered every table and column the models declare."""

from __future__ import annotations

import json
import zlib
from typing import Any

from sqlalchemy import Engine, inspect, select, text

from tests.privacy_people import ADDRESS, KEPT, LIAISON, NEEDLES, SHARED_BYTES, populate
from triage.bootstrap import App
from triage.desk.privacy import erase_person
from triage.ingest.pipeline import IncomingMail
from triage.privacy.fingerprint import ERASED_REASON
from triage.store.blobs import get_blob
from triage.store.models import Contact, Message, Ticket
from triage.store.tables import metadata


def readable(value: Any) -> str:
    """Every form a stored value can hide text in, lower-cased: text, JSON, bytes raw and inflated."""
    if value is None:
        return ""
    if isinstance(value, memoryview):
        value = value.tobytes()
    if isinstance(value, bytes):
        forms = [value]
        try:
            forms.append(zlib.decompress(value))
        except zlib.error:
            pass
        return "\n".join(f.decode("utf-8", "replace") for f in forms).lower()
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False).lower()
    return str(value).lower()


def scan(engine: Engine, needles: tuple[str, ...]) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(needle -> the table.column holding it, table -> the columns read) over every table."""
    found: dict[str, set[str]] = {n: set() for n in needles}
    covered: dict[str, set[str]] = {}
    inspector = inspect(engine)
    with engine.connect() as connection:
        for table in inspector.get_table_names():
            quoted = connection.dialect.identifier_preparer.quote(table)
            result = connection.execute(text(f"SELECT * FROM {quoted}"))
            columns = list(result.keys())
            covered[table] = set(columns)
            for row in result:
                for column, value in zip(columns, row, strict=True):
                    seen = readable(value)
                    for needle in needles:
                        if needle in seen:
                            found[needle].add(f"{table}.{column}")
        if engine.dialect.name == "sqlite":  # full-text tables: ask the index itself for each word
            virtual = connection.execute(text(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE '%USING fts%'")).scalars().all()
            for table in virtual:
                quoted = connection.dialect.identifier_preparer.quote(table)
                for needle in needles:
                    hits = connection.execute(text(f"SELECT count(*) FROM {quoted} WHERE {quoted} MATCH :q"),
                                              {"q": f'"{needle}"'}).scalar()
                    if hits:
                        found[needle].add(f"{table} (full-text match)")
    return found, covered


def test_erasure_leaves_nothing_of_the_person_and_keeps_the_bystander(app: App) -> None:
    """Every column of every table is free of the person's strings after erasure, also after their
    mail is read again; the bystander and the shared attachment are untouched; tickets stay."""
    people = populate(app)

    before, covered = scan(app.engine, NEEDLES + KEPT)
    assert set(metadata.tables) <= set(covered), "the scan must read every table the models declare"
    for name, table in metadata.tables.items():
        assert {c.name for c in table.columns} <= covered[name], f"the scan must read every column of {name}"
    missing = [n for n in NEEDLES + KEPT if not before[n]]
    assert not missing, f"the fixture must put these where the scan sees them: {missing}"
    assert "blobs.data" in before["wumpelgrist"] and "attachments.filename" in before["wumpelgrist"]
    assert "blobs.data" in before["kx4471"], "the scan must read inside compressed and raw blobs"
    assert {"outbox.raw", "messages.body_text"} <= before["yarrowmuffin"]
    assert "events.detail" in before["plinkerdoodle"] and "suggestions.evidence" in before["brindlewick"]
    assert "imap_ledger.message_id" in before["zorblat"] and "quarantine.raw_sha256" not in before["zorblat"]
    with app.reads() as session:
        tickets_before = session.scalar(select(Ticket.id).order_by(Ticket.id.desc()).limit(1))
        messages_before = len(session.scalars(select(Message.id)).all())

    done = erase_person(app, LIAISON, ADDRESS)
    assert done.tickets == (people.reference,) and not done.already
    assert done.counts["attachments"] == 2 and done.counts["quarantine"] == 1 and done.counts["notes"] == 1

    after, _ = scan(app.engine, NEEDLES + KEPT)
    left = {n: sorted(where) for n, where in after.items() if n in NEEDLES and where}
    assert not left, f"erased data remains: {left}"
    assert all(after[k] for k in KEPT), {k: after[k] for k in KEPT}

    with app.reads() as session:
        assert session.scalar(select(Ticket.id).order_by(Ticket.id.desc()).limit(1)) == tickets_before
        assert len(session.scalars(select(Message.id)).all()) == messages_before, "messages stay as shells"
        shell = session.scalars(select(Ticket).where(Ticket.reference == people.reference)).one()
        assert (shell.subject, shell.contact_id, shell.status.value) == (None, None, "open")
        assert session.scalar(select(Contact.name).where(Contact.id == people.other_contact_id)) == "Otto Bystander"
        other = session.scalars(select(Message).where(Message.from_addr == "otto@elsewhere.example")).one()
        assert "tolkienesque" in other.body_text and len(other.attachments) == 1
        assert get_blob(session, other.attachments[0].blob_sha256) == SHARED_BYTES
        assert get_blob(session, other.raw_sha256).startswith(b"From: Otto Bystander")

    # Read again (a mailbox re-scanned, a copy with other headers): recognised, not stored anew.
    again = app.ingestor().ingest_many([
        IncomingMail(people.follow_up_raw, source="test"),
        IncomingMail(b"Received: from relay.example\r\n" + people.follow_up_raw, source="test")])
    assert [(o.status, o.reason, o.ticket_reference) for o in again] == [("duplicate", ERASED_REASON, None)] * 2
    assert all(o.message_id and o.message_id.startswith("erased:") for o in again)
    after_again, _ = scan(app.engine, NEEDLES)
    assert not {n: w for n, w in after_again.items() if w}

    repeat = erase_person(app, LIAISON, str(people.contact_id))
    assert repeat.already and repeat.erasure_id == done.erasure_id
