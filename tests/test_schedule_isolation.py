"""The reminder run for all teams survives one poison ticket, and queues its mail at the real time.

A ticket whose mail cannot be built fails only its own reminder: a failed outbox row (the
level is spent, so no run retries it forever) and a `mail-failed` event on the ticket; every
other ticket is reminded in the same run, its digest without the poison one. `triage remind
--now T` queues mail due at the real time, not at T.
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from tests.test_schedule_run import CREATED, LEVEL1, add_ticket
from triage.bootstrap import App, bootstrap
from triage.cli import cli
from triage.config import load_settings
from triage.schedule import run as run_module
from triage.schedule.run import run_reminders
from triage.store.blobs import put_blob
from triage.store.models import Contact, Direction, Event, Message
from triage.store.outbox_models import Outbox, OutboxStatus
from triage.store.schedule_models import Reminder


@pytest.fixture
def remind_app(db_url: str) -> Iterator[App]:
    app = bootstrap(load_settings(environ={"TRIAGE_DATABASE_URL": db_url}))
    yield app
    app.close()


def rows(app: App) -> list[Outbox]:
    with app.sessions() as session:
        return list(session.scalars(select(Outbox).order_by(Outbox.id)))


def failing_compose_for(monkeypatch: pytest.MonkeyPatch, needle: str) -> None:
    """Make composition raise (not a ComposeError: any exception) for a mail whose text names `needle`."""
    real = run_module.compose

    def compose(rendered: Any, **kwargs: Any) -> Any:
        if needle in rendered.text or needle in kwargs["to"][0].address:
            raise OverflowError(f"cannot build a mail about {needle}")
        return real(rendered, **kwargs)

    monkeypatch.setattr(run_module, "compose", compose)


def test_a_poison_ticket_fails_only_its_own_reminder(remind_app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three legal tickets and one grants ticket are due; the mail about ticket 2 cannot be built
    (injected). Tickets 1 and 3 go in the legal digest without it, 4 gets its own, and 2 gets a
    failed row its reminder names; a second run sends and records nothing more."""
    legal = [add_ticket(remind_app, n) for n in (1, 2, 3)]
    grants = add_ticket(remind_app, 4, team="grants")
    failing_compose_for(monkeypatch, "T-2026-00002")
    report = run_reminders(remind_app.sessions, remind_app.settings, now=LEVEL1)
    assert sorted(f.ticket_id for f in report.fired) == [legal[0], legal[2], grants]
    assert [(s.ticket_id, s.reason) for s in report.skipped] == [(legal[1], "mail-failed")]
    by_addr = {(r.to_addr, r.status): r for r in rows(remind_app)}
    digest = by_addr[("legal@example.org", OutboxStatus.pending)]
    assert digest.raw is not None and "2 tickets" in digest.subject
    assert b"T-2026-00001" in digest.raw and b"T-2026-00003" in digest.raw and b"T-2026-00002" not in digest.raw
    failed = by_addr[("legal@example.org", OutboxStatus.failed)]
    assert failed.raw is None and failed.ticket_id == legal[1] and failed.template == "reminder"
    assert "OverflowError: cannot build a mail about T-2026-00002" in (failed.last_error or "")
    assert by_addr[("grants@example.org", OutboxStatus.pending)].ticket_id == grants
    with remind_app.sessions() as session:
        named = dict(session.execute(select(Reminder.ticket_id, Reminder.outbox_id)).all())
        assert named == {legal[0]: digest.id, legal[1]: failed.id, legal[2]: digest.id,
                         grants: by_addr[("grants@example.org", OutboxStatus.pending)].id}
        [event] = session.scalars(select(Event).where(Event.action == "mail-failed")).all()
        assert event.ticket_id == legal[1] and event.detail["outbox"] == failed.id
    again = run_reminders(remind_app.sessions, remind_app.settings, now=LEVEL1 + timedelta(minutes=5))
    assert again.fired == [] and len(rows(remind_app)) == 3  # exactly once, the failure too


def test_a_team_whose_mail_fails_never_stops_the_other_teams(
    remind_app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The legal digest fails with no ticket at fault (its address, injected): one failed row stands
    for it, each of its tickets says so in its log, and the grants team is reminded all the same."""
    legal = [add_ticket(remind_app, n) for n in (1, 2)]
    grants = add_ticket(remind_app, 3, team="grants")
    failing_compose_for(monkeypatch, "legal@example.org")
    report = run_reminders(remind_app.sessions, remind_app.settings, now=LEVEL1)
    assert [f.ticket_id for f in report.fired] == [grants]
    assert sorted((s.ticket_id, s.reason) for s in report.skipped) == [(t, "mail-failed") for t in legal]
    [failed] = [r for r in rows(remind_app) if r.status is OutboxStatus.failed]
    assert failed.ticket_id is None and failed.to_addr == "legal@example.org" and failed.raw is None
    with remind_app.sessions() as session:
        events = session.scalars(select(Event).where(Event.action == "mail-failed")).all()
        assert sorted(e.ticket_id for e in events) == legal and {e.detail["outbox"] for e in events} == {failed.id}


def test_a_poison_msg_id_on_a_ticket_never_rolls_back_the_run(remind_app: App) -> None:
    """No injection: a ticket alone in its team whose last mail carries poison msg-ids (VT in its
    Message-ID, U+2028 in References, stored before the parser cleaned such input) is reminded,
    its threading headers without the poison, and the other team's ticket is reminded too."""
    alone = add_ticket(remind_app, 1, team="grants")
    add_ticket(remind_app, 2)
    with remind_app.sessions.begin() as session:
        contact = Contact(address="ada@volunteers.example", name="Ada", first_seen=CREATED, last_seen=CREATED)
        session.add(contact)
        session.flush()
        session.add(Message(
            ticket_id=alone, direction=Direction.inbound, message_id="<p\x0bq@volunteers.example>",
            in_reply_to="<r\u2029s@v.example>", references=["<ok@v.example>", "<p\u2028q@v.example>"],
            from_addr=contact.address, from_name="Ada", to_addrs=["liaison@example.org"], cc_addrs=[],
            subject="Question 1", date=CREATED, received_at=CREATED, body_text="Hello", new_text="Hello",
            quoted_text="", signature="", body_html=None, kind="normal", kind_reason=None, list_id=None, defects=[],
            size=5, oversize=False, raw_sha256=put_blob(session, b"Hello"), source="test", thread_reason="test", extra={}))
    report = run_reminders(remind_app.sessions, remind_app.settings, now=LEVEL1)
    assert sorted(f.ticket_id for f in report.fired) == [1, 2] and report.skipped == []
    mail = next(r for r in rows(remind_app) if r.ticket_id == alone)
    wire = email.message_from_bytes(mail.raw or b"", policy=email.policy.compat32)
    assert wire["In-Reply-To"] is None and str(wire["References"]).split() == ["<ok@v.example>"]


def test_remind_now_in_the_future_queues_mail_due_at_the_real_time(db_url: str) -> None:
    """`triage remind --now T` for a T days ahead (a catch-up run, or a check of what is due):
    the mail is queued due now, dated now, not at T, so the sender delivers it at once."""
    app = bootstrap(load_settings(environ={"TRIAGE_DATABASE_URL": db_url}))
    try:
        created = datetime(2030, 11, 4, 9, tzinfo=UTC)  # a Monday, years ahead of any test machine's clock
        add_ticket(app, 1, created=created)
        before = datetime.now(UTC)
        result = CliRunner().invoke(cli, ["remind", "--now", "2030-11-05T10:00:00Z"],
                                    env={"TRIAGE_DATABASE_URL": db_url, "TRIAGE_LOG_LEVEL": "error"})
        after = datetime.now(UTC)
        assert result.exit_code == 0 and "1 fired" in result.stdout, result.output
        [row] = rows(app)
        assert before <= row.next_attempt_at <= after and before <= row.created_at <= after
        date = parsedate_to_datetime(str(email.message_from_bytes(row.raw or b"")["Date"]))
        assert before - timedelta(seconds=1) <= date <= after
        with app.sessions() as session:  # the reminder itself is the run's, as of T
            assert session.scalars(select(Reminder.fired_at)).one() == datetime(2030, 11, 5, 10, tzinfo=UTC)
    finally:
        app.close()
