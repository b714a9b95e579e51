"""The outbox and quarantine use cases (triage.desk.outbox, triage.desk.quarantine) on both engines:
the liaison's decisions, their refusals with reasons, the event log, and who may do what."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from sqlalchemy import select, update

from tests.conftest import make_mail
from tests.mail_states import (  # noqa: F401 - fixture_acknowledging_settings: the settings fixture
    acknowledged_tickets,
    fixture_acknowledging_settings,
    quarantine_mail,
    rows_by_id,
    set_outbox_states,
)
from triage.bootstrap import App
from triage.desk import outbox, quarantine
from triage.desk.actors import Actor
from triage.desk.errors import Forbidden, Invalid, NotFound
from triage.store.db import utcnow
from triage.store.models import Event, Ticket
from triage.store.outbox_models import Outbox, OutboxStatus
from triage.store.web_models import Role

LIAISON = Actor("ada", Role.liaison)
VIEWER = Actor("vic", Role.viewer)
STAFF = Actor("sam", Role.staff, team="events")


def logged(app: App, action: str) -> list[tuple[str | None, str, dict[str, object]]]:
    """(ticket reference, actor, detail) of each event of `action`."""
    with app.reads() as session:
        return [(ref, e.actor, e.detail) for e, ref in session.execute(
            select(Event, Ticket.reference).outerjoin(Ticket, Ticket.id == Event.ticket_id)
            .where(Event.action == action).order_by(Event.id))]


def statuses(app: App) -> dict[int, OutboxStatus]:
    with app.reads() as session:
        return {i: s for i, s in session.execute(select(Outbox.id, Outbox.status))}


def test_the_liaison_marks_uncertain_mail_sent_and_retries_failed_mail(app: App) -> None:
    """Mark sent applies to uncertain mail, retry to failed or uncertain mail; each is logged on the
    mail's ticket with the user; every other mail is refused with the reason."""
    uncertain, failed, doubtful, pending, sent = acknowledged_tickets(app, 5)
    set_outbox_states(app, {uncertain: OutboxStatus.uncertain, failed: OutboxStatus.failed,
                            doubtful: OutboxStatus.uncertain, sent: OutboxStatus.sent})

    marked = outbox.mark_sent(app, LIAISON, [uncertain, failed, pending, sent, 999])
    assert marked.done == [uncertain]
    assert marked.refused == {failed: "failed: the server refused it, so it did not arrive; retry it instead",
                              pending: "pending: the outbox is still delivering it", sent: "already sent",
                              999: "no such mail"}
    retried = outbox.retry(app, LIAISON, [failed, doubtful, uncertain, pending])
    assert retried.done == [failed, doubtful]
    assert retried.refused == {uncertain: "already sent", pending: "pending: the outbox is still delivering it"}

    assert statuses(app) == {uncertain: OutboxStatus.sent, failed: OutboxStatus.pending,
                             doubtful: OutboxStatus.pending, pending: OutboxStatus.pending, sent: OutboxStatus.sent}
    with app.reads() as session:
        confirmed = session.get_one(Outbox, uncertain)
        assert confirmed.smtp_reply == "confirmed by liaison:ada" and confirmed.sent_at is not None
        assert session.get_one(Outbox, failed).attempts == 0  # a fresh start, due now
    assert logged(app, "mail-confirmed") == [("T-2026-00001", "liaison:ada", {
        "outbox": uncertain, "message_id": confirmed.message_id})]
    assert [(ref, who) for ref, who, _ in logged(app, "mail-retry")] == [
        ("T-2026-00002", "liaison:ada"), ("T-2026-00003", "liaison:ada")]


def test_two_liaisons_deciding_the_same_mail_apply_it_once(app: App) -> None:
    """While one liaison's retry of a failed mail is being written, a second liaison's retry of the
    same mail waits for it, then is refused: the decision is applied once, logged once."""
    (row,) = acknowledged_tickets(app, 1)
    set_outbox_states(app, {row: OutboxStatus.failed})
    second: list[object] = []
    with app.sessions.begin() as session:  # the first liaison's decision, not yet committed
        session.execute(update(Outbox).where(Outbox.id == row).values(status=OutboxStatus.pending))
        session.add(Event(ticket_id=1, at=utcnow(), actor="liaison:bea", action="mail-retry", detail={}))
        racer = threading.Thread(target=lambda: second.append(outbox.retry(app, LIAISON, [row])))
        racer.start()
        racer.join(0.5)
        assert racer.is_alive()  # waiting for the first decision
    racer.join(10)
    assert [(d.done, d.refused) for d in second] == [([], {row: "pending: the outbox is still delivering it"})]
    assert [who for _, who, _ in logged(app, "mail-retry")] == ["liaison:bea"]


def test_a_mail_never_built_is_not_retried(app: App) -> None:
    """A failed mail without bytes has nothing to send: retry refuses it and says what to do."""
    (row,) = acknowledged_tickets(app, 1)
    set_outbox_states(app, {row: OutboxStatus.failed}, unbuilt=(row,))
    result = outbox.retry(app, LIAISON, [row])
    assert result.done == [] and "never built" in result.refused[row] and "its error says what to fix" in result.refused[row]
    assert rows_by_id(outbox.list_outbox(app, LIAISON))[row]["actions"] == []
    assert statuses(app) == {row: OutboxStatus.failed} and logged(app, "mail-retry") == []


def test_the_outbox_lists_what_needs_the_liaison_first(app: App) -> None:
    """The list has each mail's ticket, last error and SMTP reply and what may be done to it; sent
    mail only when asked; attention_first puts uncertain, then failed mail on top."""
    pending, failed, uncertain, sent = acknowledged_tickets(app, 4)
    set_outbox_states(app, {failed: OutboxStatus.failed, uncertain: OutboxStatus.uncertain,
                            sent: OutboxStatus.sent})
    rows = outbox.list_outbox(app, LIAISON)
    assert [r["id"] for r in rows] == [pending, failed, uncertain]
    assert [r["id"] for r in outbox.attention_first(rows)] == [uncertain, failed, pending]
    by_id = rows_by_id(outbox.list_outbox(app, VIEWER, include_sent=True))
    assert by_id[failed]["ticket"] == "T-2026-00002" and by_id[failed]["last_error"].startswith("permanent failure")
    assert by_id[failed]["smtp_reply"].startswith("550") and by_id[failed]["actions"] == ["retry"]
    assert by_id[uncertain]["actions"] == ["mark-sent", "retry"] and by_id[pending]["actions"] == []
    assert by_id[sent]["sent_at"] is not None and by_id[sent]["to"] == ["v3@volunteers.example"]


def test_only_the_liaison_decides_and_staff_see_neither_list(app: App) -> None:
    """A viewer reads the outbox and the quarantine but changes nothing; staff see neither (both hold
    every team's mail); nothing chosen is an error, not 'all'."""
    (row,) = acknowledged_tickets(app, 1)
    set_outbox_states(app, {row: OutboxStatus.uncertain})
    held = quarantine_mail(app, make_mail(message_id="<held@volunteers.example>"), "cannot read it")
    assert [r["id"] for r in outbox.list_outbox(app, VIEWER)] == [row]
    assert [r["id"] for r in quarantine.list_quarantine(app, VIEWER)] == [held]
    denied: list[tuple[Actor, Callable[[], object]]] = [
        (VIEWER, lambda: outbox.mark_sent(app, VIEWER, [row])), (VIEWER, lambda: outbox.retry(app, VIEWER, [row])),
        (VIEWER, lambda: outbox.send_due(app, VIEWER)),
        (VIEWER, lambda: quarantine.retry_quarantined(app, VIEWER, [held])),
        (VIEWER, lambda: quarantine.quarantined_raw(app, VIEWER, held)),
        (STAFF, lambda: outbox.list_outbox(app, STAFF)), (STAFF, lambda: quarantine.list_quarantine(app, STAFF)),
        (STAFF, lambda: outbox.mark_sent(app, STAFF, [row])), (STAFF, lambda: outbox.retry(app, STAFF, [row])),
        (STAFF, lambda: quarantine.retry_quarantined(app, STAFF, None)),
    ]
    for who, action in denied:
        with pytest.raises(Forbidden):
            action()
    assert statuses(app) == {row: OutboxStatus.uncertain}
    assert [r["id"] for r in quarantine.list_quarantine(app, LIAISON)] == [held]  # still held
    with pytest.raises(Invalid, match="no mail chosen"):
        outbox.retry(app, LIAISON, [])
    with pytest.raises(Invalid, match="no mail chosen"):
        quarantine.retry_quarantined(app, LIAISON, [])


def test_the_quarantine_shows_what_it_can_read_and_releases_on_retry(app: App) -> None:
    """A quarantined mail is listed with its reason, size, and the sender and subject its header
    gives; a retry with the real parser stores it, releases it and logs it on its new ticket;
    a missing or released id is refused with the reason; the raw bytes are there to download."""
    raw = make_mail(sender="Bo <bo@volunteers.example>", subject="Grant report", message_id="<q1@volunteers.example>")
    junk = b"\x89PNG\r\n\x1a\n" + bytes(100)
    held = quarantine_mail(app, raw, "the parser broke on purpose")
    unreadable = quarantine_mail(app, junk, "not a mail")
    rows = rows_by_id(quarantine.list_quarantine(app, LIAISON))
    assert rows[held]["sender"] == "Bo <bo@volunteers.example>" and rows[held]["subject"] == "Grant report"
    assert rows[held]["size"] == len(raw) and rows[held]["stage"] == "parse" and rows[held]["retryable"]
    assert "the parser broke on purpose" in rows[held]["error"]
    assert (rows[unreadable]["sender"], rows[unreadable]["subject"]) == (None, None)
    assert quarantine.quarantined_raw(app, LIAISON, held) == raw
    with pytest.raises(NotFound):
        quarantine.quarantined_raw(app, LIAISON, 999)

    done = quarantine.retry_quarantined(app, LIAISON, [held, 999])
    assert [(r["id"], r["status"], r["ticket"]) for r in done.results] == [(held, "stored", "T-2026-00001")]
    assert done.released == 1 and done.refused == {999: "no such mail"}
    assert [r["id"] for r in quarantine.list_quarantine(app, LIAISON)] == [unreadable]
    assert quarantine.retry_quarantined(app, LIAISON, [held]).refused == {held: "already released"}
    everything = quarantine.retry_quarantined(app, LIAISON, None)
    assert [(r["id"], r["status"]) for r in everything.results] == [(unreadable, "quarantined")]
    assert logged(app, "quarantine-retried") == [
        ("T-2026-00001", "liaison:ada", {"quarantine": held, "status": "stored"}),
        (None, "liaison:ada", {"quarantine": unreadable, "status": "quarantined"})]
