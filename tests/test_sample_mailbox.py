"""The bundled sample mailbox, end to end: what the quickstart shows is what triage does."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from sqlalchemy import select

from tests.conftest import Clock
from triage.bootstrap import App
from triage.desk.actors import cli_actor
from triage.desk.lists import list_tickets
from triage.desk.tickets import ticket_view
from triage.ingest.pipeline import IncomingMail, Ingestor
from triage.ingest.sources import open_source
from triage.store.models import Contact, Event, Message, Ticket

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample-mailbox"

# ticket number -> messages on it, from data/sample-mailbox/README.md
EXPECTED_MESSAGES = {1: 2, 2: 2, 3: 2, 5: 2, 8: 2, 9: 2, 14: 2}


def test_sample_mailbox_threads_as_documented(app: App, clock: Clock) -> None:
    """30 mails: 21 tickets, follow-ups threaded, duplicate once, leak flagged, bounce and autoreply kinds."""
    ingestor = app.ingestor(clock=clock)
    outcomes = [ingestor.ingest(raw, source=label).status for label, raw in open_source(SAMPLE)]
    assert outcomes.count("stored") == 29 and outcomes.count("duplicate") == 1 and "quarantined" not in outcomes
    liaison = cli_actor("test")
    tickets = list_tickets(app, liaison, order="oldest", limit=None).rows
    assert [t.reference for t in tickets] == [f"T-2026-{n:05d}" for n in range(1, 22)]
    for number, ticket in enumerate(tickets, start=1):
        assert ticket.messages == EXPECTED_MESSAGES.get(number, 1), ticket
    leak = ticket_view(app, liaison, "T-2026-00020")
    assert leak.linked_ticket == "T-2026-00005" and leak.flag
    grant = ticket_view(app, liaison, "T-2026-00010")
    assert [a.filename for a in grant.messages[0].attachments] == ["Звіт_мікрогрант_Q3.pdf"]
    with app.sessions() as session:
        kinds = {m.kind for m in session.scalars(select(Message))}
        assert kinds == {"normal", "autoreply", "bounce"}
        autoreply = session.scalars(select(Message).where(Message.kind == "autoreply")).one()
        assert autoreply.ticket is not None and autoreply.ticket.reference == "T-2026-00008"
        bounce = session.scalars(select(Message).where(Message.kind == "bounce")).one()
        assert bounce.ticket_id is None  # the desk's bounced reply is not in this database
        listed = session.scalars(select(Message).where(Message.list_id.is_not(None))).one()
        assert listed.ticket is not None and listed.ticket.reference == "T-2026-00021"


def _snapshot(app: App) -> list[tuple[object, ...]]:
    with app.sessions() as session:
        rows = session.execute(
            select(Message.message_id, Message.raw_sha256, Message.thread_reason, Message.kind,
                   Ticket.reference, Ticket.status, Ticket.flag, Ticket.linked_ticket_id)
            .outerjoin(Ticket, Ticket.id == Message.ticket_id).order_by(Message.id)
        )
        messages = [tuple(r) for r in rows]
        events = [tuple(r) for r in session.execute(
            select(Ticket.reference, Event.action, Event.detail).join(Ticket, Ticket.id == Event.ticket_id)
            .order_by(Event.ticket_id, Event.action, Event.id)
        )]
        contacts = [tuple(r) for r in session.execute(select(Contact.address, Contact.name).order_by(Contact.address))]
    return messages + events + contacts  # type: ignore[operator]


def _hostile_batches(sample: list[IncomingMail]) -> list[list[IncomingMail]]:
    """Strangers, robots and a forged participant against the sample's tickets and tickets of their own batch."""
    from tests.conftest import make_mail
    from triage.ingest.parse import parse_mail

    lukas = parse_mail(sample[0].raw)  # opens T-2026-00001
    target = lukas.message_id or ""
    ours = b"Authentication-Results: mx.example.org; dmarc=fail header.from=mail.example.de\n"
    first = [
        make_mail(sender="Eve <eve@elsewhere.example>", message_id="<h1@elsewhere.example>", in_reply_to=target),
        make_mail(sender="Eve <eve@elsewhere.example>", message_id="<h2@elsewhere.example>",
                  subject="Re: [T-2026-00001] Logo", references=[target]),
        make_mail(sender="Bo <bo@elsewhere.example>", message_id="<h3@elsewhere.example>", subject="Out of office",
                  in_reply_to=target, headers={"Auto-Submitted": "auto-replied"}),
        ours + make_mail(sender=f"Lukas <{lukas.from_addr}>", message_id="<h4@mail.example.de>", in_reply_to=target),
        make_mail(sender=f"Lukas <{lukas.from_addr}>", message_id="<h5@mail.example.de>", in_reply_to=target),
        make_mail(sender="Zoe <zoe@new.example>", message_id="<z1@new.example>", subject="A new question"),
        make_mail(sender="Eve <eve@elsewhere.example>", message_id="<h6@elsewhere.example>", in_reply_to="<z1@new.example>"),
        make_mail(sender="Zoe <zoe@new.example>", message_id="<z2@new.example>", in_reply_to="<z1@new.example>"),
        make_mail(sender="Legal <legal@example.org>", message_id="<t1@example.org>", in_reply_to="<out1@example.org>"),
    ]
    second = [
        make_mail(sender="Eve <eve@elsewhere.example>", message_id="<h7@elsewhere.example>", in_reply_to="<z2@new.example>"),
        make_mail(sender="Zoe <zoe@new.example>", message_id="<z3@new.example>", references=["<h6@elsewhere.example>"]),
        make_mail(sender="Legal <legal@example.org>", message_id="<t2@example.org>", in_reply_to="<out1@example.org>"),
    ]
    return [[IncomingMail(raw) for raw in batch] for batch in (first, second)]


def _our_mail_to_legal(app: App, clock: Clock) -> None:
    """An outbound mail of ours on T-2026-00002 to legal@example.org (as a hand-off stores it)."""
    from triage.store.blobs import put_blob
    from triage.store.models import Direction

    with app.sessions.begin() as session:
        ticket = session.scalars(select(Ticket).where(Ticket.reference == "T-2026-00002")).one()
        session.add(Message(
            ticket_id=ticket.id, direction=Direction.outbound, message_id="<out1@example.org>", in_reply_to=None,
            references=[], from_addr="liaison@example.org", from_name=None, to_addrs=["legal@example.org"],
            cc_addrs=[], subject="For Legal", date=clock.now, received_at=clock.now, body_text="", new_text="",
            quoted_text="", signature="", body_html=None, kind="normal", kind_reason=None, list_id=None, defects=[],
            size=1, oversize=False, raw_sha256=put_blob(session, b"For Legal"), source="outbox:handoff-team",
            thread_reason="sent by triage", extra={},
        ))


def test_set_based_and_per_mail_paths_store_the_same(app: App, clock: Clock, tmp_path: Path) -> None:
    """The fast batch path and the per-mail fallback produce the same tickets, threading, events, contacts,
    strangers, robots and forged participants included."""
    from triage.bootstrap import bootstrap
    from triage.config import load_settings

    mails = [IncomingMail(raw, source=label) for label, raw in open_source(SAMPLE)]
    mail_settings = app.settings.mail.model_copy(update={"trusted_authserv_ids": ["mx.example.org"]})
    fast = Ingestor(app.sessions, mail_settings, clock=clock, outbox=app.wiring)
    assert [o.status for o in fast.ingest_many(mails)].count("stored") == 29
    other = bootstrap(load_settings(environ={"TRIAGE_DATABASE_URL": f"sqlite:///{tmp_path / 'slow.db'}"}))
    try:
        slow = Ingestor(other.sessions, mail_settings, clock=clock, set_based=False, outbox=other.wiring)
        slow.ingest_many(mails)
        for each in (app, other):
            _our_mail_to_legal(each, clock)
        for batch in _hostile_batches(mails):
            assert {o.status for o in fast.ingest_many(batch)} == {"stored"}
            slow.ingest_many(batch)
        assert fast.fallbacks == 0  # the batch path stored it all, not the per-mail fallback
        assert _snapshot(app) == _snapshot(other)
        with app.sessions() as session:
            flagged = session.scalars(select(Ticket.flag).where(Ticket.flag.is_not(None))).all()
        assert len(flagged) == 1 + 6  # the sample's leak, then h1, h2, h4 (forged), h6, h7 and z3
    finally:
        other.close()


def test_one_unstorable_mail_in_a_batch_is_quarantined_alone(app: App, clock: Clock) -> None:
    """A mail that breaks the batch insert is isolated by the per-mail fallback; the rest are stored."""
    real = app.ingestor(clock=clock)
    mails = [raw for _, raw in open_source(SAMPLE)][:6]

    def parser(raw: bytes, *, max_size: int):  # type: ignore[no-untyped-def]
        parsed = real.parse(raw)
        if raw == mails[2]:
            return replace(parsed, defects=[object()])  # not JSON: the insert of this row fails
        return parsed

    ingestor = app.ingestor(clock=clock, parser=parser)
    outcomes = ingestor.ingest_many([IncomingMail(raw) for raw in mails])
    assert [o.status for o in outcomes].count("quarantined") == 1 and outcomes[2].status == "quarantined"
    assert ingestor.fallbacks == 1
    assert all(o.status in ("stored", "duplicate") for i, o in enumerate(outcomes) if i != 2)
