"""Ingesting raw mail into tickets, on SQLite and PostgreSQL: threading, dedup, quarantine."""

from __future__ import annotations

import threading
from email.message import EmailMessage

from sqlalchemy import func, select

from tests.conftest import Clock, make_mail
from triage.bootstrap import App
from triage.desk.actors import cli_actor
from triage.desk.quarantine import list_quarantine
from triage.desk.tickets import ticket_view
from triage.ingest.pipeline import Ingestor
from triage.store.blobs import get_blob
from triage.store.models import Blob, Contact, Event, Message, Ticket, TicketStatus

LIAISON = cli_actor("test")


def ingestor(app: App, clock: Clock) -> Ingestor:
    return app.ingestor(clock=clock)


def count(app: App, model: type) -> int:
    with app.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_first_mail_opens_ticket_with_reference_contact_and_raw(app: App, clock: Clock) -> None:
    """A first mail creates contact, ticket (T-YYYY-NNNNN), message, event, and keeps the raw bytes."""
    raw = make_mail(message_id="<q1@volunteers.example>")
    outcome = ingestor(app, clock).ingest(raw, source="test")
    assert outcome.status == "stored"
    assert outcome.ticket_reference == "T-2026-00001"
    with app.sessions() as session:
        message = session.scalars(select(Message)).one()
        assert get_blob(session, message.raw_sha256) == raw
        assert message.thread_reason.startswith("no reference")
        contact = session.scalars(select(Contact)).one()
        assert (contact.address, contact.name) == ("ada@volunteers.example", "Ada Volunteer")
        assert contact.first_seen == clock.now
        ticket = session.scalars(select(Ticket)).one()
        assert ticket.status is TicketStatus.new and ticket.contact_id == contact.id
        assert [e.action for e in ticket.events] == ["created", "message"]


def test_reply_by_header_and_by_reference_thread_onto_same_ticket(app: App, clock: Clock) -> None:
    """In-Reply-To and a subject reference from the same volunteer both land on the first ticket."""
    ing = ingestor(app, clock)
    first = ing.ingest(make_mail(message_id="<a1@v.example>"))
    clock.advance(hours=1)
    second = ing.ingest(make_mail(message_id="<a2@v.example>", subject="Re: logo", in_reply_to="<a1@v.example>",
                                  references=["<a1@v.example>"]))
    third = ing.ingest(make_mail(message_id="<a3@v.example>", subject=f"Re: [{first.ticket_reference}] more"))
    assert first.ticket_reference == second.ticket_reference == third.ticket_reference
    assert count(app, Ticket) == 1 and count(app, Message) == 3
    with app.sessions() as session:
        reasons = [m.thread_reason for m in session.scalars(select(Message).order_by(Message.id))]
    assert reasons[1].startswith("In-Reply-To <a1@v.example>")
    assert reasons[2].startswith(f"subject reference {first.ticket_reference}")


def test_stranger_citing_reference_gets_linked_flagged_ticket(app: App, clock: Clock) -> None:
    """A stranger's mail citing another volunteer's ticket never joins it."""
    ing = ingestor(app, clock)
    first = ing.ingest(make_mail(message_id="<b1@v.example>"))
    leak = ing.ingest(
        make_mail(sender="Eve <eve@elsewhere.example>", message_id="<e1@elsewhere.example>",
                  subject=f"Fwd: [{first.ticket_reference}] logo")
    )
    assert leak.status == "stored" and leak.ticket_reference != first.ticket_reference
    detail = ticket_view(app, LIAISON, leak.ticket_reference or "")
    original = ticket_view(app, LIAISON, first.ticket_reference or "")
    assert detail.linked_ticket == first.ticket_reference and detail.flag
    assert len(original.messages) == 1


def test_follow_up_reopens_resolved_ticket(app: App, clock: Clock) -> None:
    """A volunteer writing again on a resolved ticket reopens it and logs the event."""
    ing = ingestor(app, clock)
    first = ing.ingest(make_mail(message_id="<c1@v.example>"))
    with app.sessions.begin() as session:
        session.scalars(select(Ticket)).one().status = TicketStatus.resolved
    ing.ingest(make_mail(message_id="<c2@v.example>", in_reply_to="<c1@v.example>"))
    with app.sessions() as session:
        ticket = session.scalars(select(Ticket)).one()
        assert ticket.reference == first.ticket_reference and ticket.status is TicketStatus.open
        assert "reopened" in [e.action for e in ticket.events]


def test_same_message_id_twice_is_stored_once(app: App, clock: Clock) -> None:
    """A resend or a delivery to two addresses stores one message; the other raw is kept as evidence."""
    ing = ingestor(app, clock)
    raw = make_mail(message_id="<d1@v.example>")
    resent = make_mail(message_id="<d1@v.example>", to="press@example.org")
    assert ing.ingest(raw).status == "stored"
    assert ing.ingest(raw).status == "duplicate"
    assert ing.ingest(resent).status == "duplicate"
    assert count(app, Message) == 1 and count(app, Ticket) == 1
    assert count(app, Blob) == 2
    with app.sessions() as session:
        actions = list(session.scalars(select(Event.action)))
    assert actions.count("duplicate-delivery") == 1


def test_autoreply_is_stored_without_ticket(app: App, clock: Clock) -> None:
    """An out-of-office that matches no ticket is kept but opens no ticket."""
    raw = make_mail(subject="Automatic reply: away", headers={"Auto-Submitted": "auto-replied"})
    outcome = ingestor(app, clock).ingest(raw)
    assert outcome.status == "stored" and outcome.ticket_reference is None
    assert count(app, Ticket) == 0 and count(app, Message) == 1


def test_attachment_content_stored_once(app: App, clock: Clock) -> None:
    """Two mails carrying the same file share one blob; the sender's filename stays data."""
    def with_attachment(mid: str) -> bytes:
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"], msg["Message-ID"] = "a@v.example", "liaison@example.org", "f", mid
        msg.set_content("see attached")
        msg.add_attachment(b"%PDF-1.4 tiny", maintype="application", subtype="pdf", filename="../../etc/passwd")
        return msg.as_bytes()

    ing = ingestor(app, clock)
    ing.ingest(with_attachment("<f1@v.example>"))
    ing.ingest(with_attachment("<f2@v.example>"))
    detail = ticket_view(app, LIAISON, "1")
    assert detail.messages[0].attachments[0].filename == "../../etc/passwd"
    assert count(app, Blob) == 3  # two raw mails, one attachment


def test_not_a_mail_is_quarantined_and_the_next_mail_flows(app: App, clock: Clock) -> None:
    """Garbage is kept raw with the reason; the mail behind it is stored; retry counts attempts."""
    ing = ingestor(app, clock)
    junk = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))
    assert ing.ingest(junk, source="box#1").status == "quarantined"
    assert ing.ingest(make_mail(message_id="<g1@v.example>"), source="box#2").status == "stored"
    rows = list_quarantine(app, LIAISON)
    assert len(rows) == 1 and rows[0]["source"] == "box#1" and rows[0]["stage"] == "parse"
    with app.sessions() as session:
        assert get_blob(session, rows[0]["raw_sha256"]) == junk
    results = ing.retry_quarantined()
    assert [o.status for _, o in results] == ["quarantined"]
    assert list_quarantine(app, LIAISON)[0]["attempts"] == 2


def test_store_failure_quarantines_and_retry_releases(app: App, clock: Clock) -> None:
    """A mail that fails while storing is quarantined; after the fault is gone, retry stores and releases it."""
    calls = {"n": 0}
    real = app.ingestor(clock=clock)

    def flaky_parse(raw: bytes, *, max_size: int):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("parser bug")
        return real.parse(raw)

    ing = app.ingestor(clock=clock, parser=flaky_parse)
    assert ing.ingest(make_mail(message_id="<h1@v.example>")).status == "quarantined"
    results = ing.retry_quarantined()
    assert [o.status for _, o in results] == ["stored"]
    assert list_quarantine(app, LIAISON) == []
    assert list_quarantine(app, LIAISON, include_released=True)[0]["released_at"] is not None


def test_concurrent_ingest_of_same_mail_stores_once(app: App, clock: Clock) -> None:
    """Two workers racing on the same mail: one stores it, the other reports a duplicate."""
    raw = make_mail(message_id="<race@v.example>")
    results: list[str] = []
    barrier = threading.Barrier(4)

    def worker() -> None:
        ing = ingestor(app, clock)
        barrier.wait()
        results.append(ing.ingest(raw).status)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["duplicate", "duplicate", "duplicate", "stored"]
    assert count(app, Message) == 1 and count(app, Ticket) == 1 and count(app, Contact) == 1


def test_long_file_names_content_ids_and_list_ids_are_capped_not_quarantined(app: App) -> None:
    """Values longer than their columns (PostgreSQL's varchar(1000)) are cut with a defect, and the mail is stored."""
    long = "x" * 5000
    raw = (
        "From: a@b.example\r\nTo: l@example.org\r\nSubject: s\r\nDate: Mon, 2 Sep 2024 10:00:00 +0200\r\n"
        f"Message-ID: <m@b.example>\r\nList-Id: <{long}>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
        f"--zz\r\nContent-Type: application/pdf\r\nContent-ID: <{long}>\r\n"
        f"Content-Disposition: attachment; filename*=utf-8''{long}\r\n\r\nabc\r\n--zz--\r\n"
    ).encode()
    outcome = app.ingestor().ingest(raw)
    assert outcome.status == "stored", outcome.reason
    with app.sessions() as session:
        message = session.get_one(Message, outcome.message_pk)
        (attachment,) = message.attachments
        assert len(attachment.filename or "") == 255 and len(attachment.content_id or "") <= 998
        assert message.list_id is not None and len(message.list_id) == 255
        assert {"truncated:filename", "truncated:content-id", "truncated:list-id"} <= set(message.defects)
