"""The reminder run: fires each due reminder once through the outbox, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from triage.bootstrap import App, bootstrap
from triage.cli import cli
from triage.config import Settings, load_settings
from triage.desk.actors import cli_actor
from triage.desk.tickets import as_json, ticket_view
from triage.outbox.queue import enqueue_reply
from triage.schedule.run import RunReport, run_reminders
from triage.store.models import Contact, Event, Ticket, TicketStatus
from triage.store.outbox_models import Outbox
from triage.store.schedule_models import Reminder

CREATED = datetime(2026, 11, 2, 9, tzinfo=UTC)  # a Monday, opening time
LEVEL1 = datetime(2026, 11, 3, 10, tzinfo=UTC)  # 8 business hours later, and one more


@pytest.fixture
def remind_app(db_url: str) -> Iterator[App]:
    app = bootstrap(load_settings(environ={"TRIAGE_DATABASE_URL": db_url}))
    yield app
    app.close()


def add_ticket(app: App, n: int, *, team: str | None = "legal", created: datetime = CREATED,
               status: TicketStatus = TicketStatus.open) -> int:
    with app.sessions() as session, session.begin():
        ticket = Ticket(reference=f"T-2026-{n:05d}", subject=f"Question {n}", status=status, team=team,
                        created_at=created, updated_at=created)
        session.add(ticket)
        session.flush()
        return ticket.id


def answer(app: App, ticket_id: int, at: datetime, *, reopen: bool = False) -> None:
    """The liaison's reply queued on the ticket at `at` (a person's answer); `reopen`: the volunteer wrote back."""
    with app.sessions() as session, session.begin():
        contact = Contact(address="ada@volunteers.example", name="Ada", first_seen=CREATED, last_seen=CREATED)
        session.add(contact)
        session.flush()
        ticket = session.get_one(Ticket, ticket_id)
        ticket.contact_id = contact.id
        enqueue_reply(session, ticket, template="reply", body="On it.", actor="liaison:test", now=at,
                      wiring=app.wiring)
        if reopen:
            ticket.status = TicketStatus.open


def logged(app: App, ticket_id: int) -> list[dict[str, Any]]:
    """The ticket's event log entries for reminders, as `triage show` prints them."""
    events = as_json(ticket_view(app, cli_actor("test"), str(ticket_id)).events)
    return [e for e in events if e["action"] in ("reminded", "escalated")]


def counts(app: App) -> tuple[int, int, int]:
    with app.sessions() as session:
        tickets = list(session.scalars(select(Ticket.id)))
        rows = (session.scalar(select(func.count()).select_from(Reminder)) or 0,
                session.scalar(select(func.count(Outbox.id))) or 0)
    return (*rows, sum(len(logged(app, t)) for t in tickets))


def test_a_due_ticket_is_reminded_once_and_a_second_run_sends_nothing(remind_app: App) -> None:
    """The first run queues the reminder to the team and logs it; running again fires nothing."""
    add_ticket(remind_app, 1)
    young = add_ticket(remind_app, 2, created=LEVEL1 - timedelta(hours=1))
    report = run_reminders(remind_app.sessions, remind_app.settings, now=LEVEL1)
    assert [(f.reference, f.level, f.template, f.to) for f in report.fired] == [
        ("T-2026-00001", 1, "reminder", "legal@example.org")]
    assert counts(remind_app) == (1, 1, 1)
    again = run_reminders(remind_app.sessions, remind_app.settings, now=LEVEL1 + timedelta(minutes=5))
    assert again.fired == []
    assert counts(remind_app) == (1, 1, 1)
    assert young not in {s.ticket_id for s in again.skipped}  # too young: never selected
    with remind_app.sessions() as session:
        row = session.scalars(select(Outbox)).one()
        assert row.auto_submitted == "auto-generated" and "Reminder: Question 1" in row.subject


def test_the_ladder_escalates_to_lead_then_liaison(remind_app: App) -> None:
    """Level 2 goes to the team (no lead configured) as an escalation, level 3 to the liaison address."""
    ticket = add_ticket(remind_app, 1)
    run_reminders(remind_app.sessions, remind_app.settings, now=LEVEL1)
    second = run_reminders(remind_app.sessions, remind_app.settings, now=datetime(2026, 11, 4, 10, tzinfo=UTC))
    third = run_reminders(remind_app.sessions, remind_app.settings, now=datetime(2026, 11, 5, 10, tzinfo=UTC))
    assert [(f.level, f.template, f.to) for f in second.fired + third.fired] == [
        (2, "escalation", "legal@example.org"), (3, "escalation", "liaison@example.org")]
    assert [e["action"] for e in logged(remind_app, ticket)] == ["reminded", "escalated", "escalated"]
    assert [e["detail"]["address"] for e in logged(remind_app, ticket)] == [
        "legal@example.org", "legal@example.org", "liaison@example.org"]


def test_dry_run_sends_and_records_nothing(remind_app: App) -> None:
    """--dry-run reports what would fire, and leaves no reminder, mail or event behind."""
    add_ticket(remind_app, 1)
    report = run_reminders(remind_app.sessions, remind_app.settings, now=LEVEL1, dry_run=True)
    assert [f.level for f in report.fired] == [1] and report.fired[0].outbox_id is None
    assert counts(remind_app) == (0, 0, 0)


def test_skips_are_reported_with_reasons(remind_app: App) -> None:
    """Waiting on the volunteer, no business hours now, and an answered ticket each say why."""
    waiting = add_ticket(remind_app, 1, status=TicketStatus.waiting)
    with remind_app.sessions() as session, session.begin():
        session.add(Event(ticket_id=waiting, at=CREATED + timedelta(hours=1), actor="test", action="status",
                          detail={"old": "open", "new": "waiting"}))
    add_ticket(remind_app, 2)
    night = run_reminders(remind_app.sessions, remind_app.settings, now=datetime(2026, 11, 3, 22, tzinfo=UTC))
    assert night.fired == []
    assert night.reasons == {"outside-business-hours": 1, "waiting-on-volunteer": 1}


def runs_at_once(apps: list[App], now: datetime) -> list[RunReport]:
    """One reminder run per app, all released at the same instant from their own threads."""
    barrier = threading.Barrier(len(apps))
    reports: list[RunReport] = []
    errors: list[BaseException] = []

    def work(app: App) -> None:
        try:
            barrier.wait()
            reports.append(run_reminders(app.sessions, app.settings, now=now))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(app,)) for app in apps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    return reports


def test_two_concurrent_runs_never_send_twice(db_url: str) -> None:
    """Two workers running at the same instant, each with its own engine, queue each reminder once."""
    apps = [bootstrap(load_settings(environ={"TRIAGE_DATABASE_URL": db_url})) for _ in range(2)]
    try:
        for n in range(1, 21):
            add_ticket(apps[0], n)
        reports = [len(report.fired) for report in runs_at_once(apps, LEVEL1)]
        assert sum(reports) == 20
        reminders, mails, events = counts(apps[0])
        assert (reminders, events) == (20, 20) and 1 <= mails <= 2  # one digest per run that won tickets
        with apps[0].sessions() as session:
            per_ticket = session.execute(select(Reminder.ticket_id, func.count()).group_by(Reminder.ticket_id)).all()
            assert len(per_ticket) == 20 and all(n == 1 for _, n in per_ticket)
    finally:
        for app in apps:
            app.close()


def test_three_runs_at_once_name_each_ticket_in_exactly_one_mail(db_url: str) -> None:
    """Three workers firing 40 due tickets at the same instant: every ticket is reminded once and
    listed in exactly one of the digests that were queued (a run that loses tickets to another
    redoes its mail without them)."""
    apps = [bootstrap(load_settings(environ={"TRIAGE_DATABASE_URL": db_url})) for _ in range(3)]
    try:
        tickets = [add_ticket(apps[0], n) for n in range(1, 41)]
        run_reminders(apps[0].sessions, apps[0].settings, now=CREATED + timedelta(hours=1))  # clocks computed
        fired = [[f.ticket_id for f in report.fired] for report in runs_at_once(apps, LEVEL1)]
        assert sorted(t for run in fired for t in run) == tickets
        with apps[0].sessions() as session:
            mails = [row.raw.decode() for row in session.scalars(select(Outbox))]
        for n in range(1, 41):
            assert sum(f"T-2026-{n:05d}" in mail for mail in mails) == 1, n
    finally:
        for app in apps:
            app.close()


def test_remind_command_json_and_dry_run(db_url: str, tmp_path: object) -> None:
    """`triage remind --dry-run --now ISO --json` prints fired and skipped with reasons, sending nothing."""
    settings: Settings = load_settings(environ={"TRIAGE_DATABASE_URL": db_url})
    app = bootstrap(settings)
    try:
        add_ticket(app, 1)
        add_ticket(app, 2, status=TicketStatus.waiting)
        runner = CliRunner()
        env = {"TRIAGE_DATABASE_URL": db_url}
        result = runner.invoke(cli, ["remind", "--dry-run", "--now", "2026-11-03T11:00:00+01:00", "--json"], env=env)
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        assert data["dry_run"] is True
        assert [f["reference"] for f in data["fired"]] == ["T-2026-00001"]
        assert data["skip_reasons"] == {"waiting-on-volunteer": 1}
        assert counts(app) == (0, 0, 0)
        text = runner.invoke(cli, ["remind", "--now", "2026-11-03T10:00:00Z"], env=env)
        assert text.exit_code == 0, text.output
        assert "T-2026-00001: sent level 1 (team) reminder to legal@example.org" in text.stdout
        assert counts(app) == (1, 1, 1)
        bad = runner.invoke(cli, ["remind", "--now", "2026-11-03T10:00"], env=env)
        assert bad.exit_code == 2 and "time zone" in bad.output
    finally:
        app.close()


def test_the_worker_runner_runs_the_reminders(remind_app: App) -> None:
    """run_worker.py's remind runner fires what is due as of its clock, once per step."""
    from triage.runners.remind import RemindRunner, remind_runners

    add_ticket(remind_app, 1)
    runner = RemindRunner(remind_app, 60.0, clock=lambda: LEVEL1)
    assert runner.step() == 1
    assert runner.step() == 0
    assert [r.name for r in remind_runners(remind_app)] == ["remind"]


def test_a_ticket_answered_by_a_person_is_never_escalated(remind_app: App) -> None:
    """Once the liaison's own mail (not automatic) is queued on a ticket, no reminder or escalation follows."""
    answered = add_ticket(remind_app, 1)
    add_ticket(remind_app, 2)
    answer(remind_app, answered, CREATED + timedelta(hours=1), reopen=True)  # open again, yet answered once
    report = run_reminders(remind_app.sessions, remind_app.settings, now=datetime(2026, 11, 5, 10, tzinfo=UTC))
    assert [f.reference for f in report.fired] == ["T-2026-00002"]
    with remind_app.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Reminder).where(Reminder.ticket_id == answered)) == 0


def test_stats_count_overdue_per_team_and_median_first_response(remind_app: App) -> None:
    """Overdue: unanswered past the first-response time, per team; the median counts answered tickets."""
    from triage.schedule.stats import median_first_response_hours, overdue_by_team

    add_ticket(remind_app, 1)
    add_ticket(remind_app, 2, team="press")
    add_ticket(remind_app, 3, created=LEVEL1 - timedelta(hours=1))  # not yet due
    answered = add_ticket(remind_app, 4)
    answer(remind_app, answered, CREATED + timedelta(hours=3))
    with remind_app.sessions() as session:
        assert overdue_by_team(session, remind_app.settings, LEVEL1) == {"legal": 1, "press": 1}
        assert median_first_response_hours(session, CREATED - timedelta(days=1)) == {"*": 3.0, "legal": 3.0}


def test_one_digest_per_team_and_level_lists_its_tickets(remind_app: App) -> None:
    """Three overdue legal tickets make one reminder mail naming all three; another team gets its own."""
    legal = [add_ticket(remind_app, n) for n in (1, 2, 3)]
    grants = add_ticket(remind_app, 4, team="grants")
    add_ticket(remind_app, 5, team="press")  # not in the teams file: nobody to remind at level 1
    report = run_reminders(remind_app.sessions, remind_app.settings, now=LEVEL1)
    assert sorted(f.ticket_id for f in report.fired) == sorted([*legal, grants])
    assert [s.reason for s in report.skipped] == ["unknown-team"]
    with remind_app.sessions() as session:
        mails = {row.to_addr: row for row in session.scalars(select(Outbox))}
        assert set(mails) == {"legal@example.org", "grants@example.org"}
        digest = mails["legal@example.org"]
        assert digest.ticket_id is None and "3 tickets" in digest.subject
        text = digest.raw.decode()
        assert all(f"T-2026-0000{n}" in text for n in (1, 2, 3)) and "T-2026-00004" not in text
        single = mails["grants@example.org"]
        assert single.ticket_id == grants and "Reminder: Question 4" in single.subject
        by_ticket = dict(session.execute(select(Reminder.ticket_id, Reminder.outbox_id)).all())
        assert {by_ticket[t] for t in legal} == {digest.id} and by_ticket[grants] == single.id
        digest_id, single_id = digest.id, single.id
    details = [e["detail"] for t in [*legal, grants] for e in logged(remind_app, t)]  # the ticket's log
    assert sorted(d["outbox"] for d in details) == sorted([digest_id] * 3 + [single_id])
    assert {d["due_at"] for d in details} == {"2026-11-03T09:00:00+00:00"}  # 8 h used up at Monday's close
    assert {(d["level"], d["to"]) for d in details} == {(1, "team")}


def test_a_reply_after_the_clock_was_set_stops_the_reminder(remind_app: App) -> None:
    """The clock is computed before the ticket is answered; the reply makes it stale, so nothing fires."""
    from triage.store.schedule_models import TicketClock

    ticket_id = add_ticket(remind_app, 1)
    early = run_reminders(remind_app.sessions, remind_app.settings, now=CREATED + timedelta(hours=1))
    assert early.fired == [] and early.reasons == {"not-due": 1} and early.refreshed == 1
    with remind_app.sessions() as session:
        assert session.get_one(Ticket, ticket_id).clock_stale_at is None
        clock = session.get_one(TicketClock, ticket_id)
        assert clock.next_at is not None and clock.next_at > CREATED and clock.stopped is None
    answer(remind_app, ticket_id, CREATED + timedelta(hours=2))
    with remind_app.sessions() as session:
        assert session.get_one(Ticket, ticket_id).clock_stale_at is not None  # the reply made it stale
    with remind_app.sessions() as session, session.begin():
        session.get_one(Ticket, ticket_id).status = TicketStatus.open  # the volunteer wrote back: open, answered once
    later = run_reminders(remind_app.sessions, remind_app.settings, now=LEVEL1)
    assert later.fired == [] and later.reasons == {"answered": 1}


def test_time_waiting_on_the_volunteer_moves_the_next_reminder(remind_app: App) -> None:
    """A status change through the ORM makes the clock stale; the pause is not counted."""
    ticket_id = add_ticket(remind_app, 1)
    run_reminders(remind_app.sessions, remind_app.settings, now=CREATED + timedelta(hours=1))
    for at, old, new in ((CREATED + timedelta(hours=2), "open", "waiting"),
                         (CREATED + timedelta(days=1, hours=2), "waiting", "open")):  # paused one business day
        with remind_app.sessions() as session, session.begin():
            session.get_one(Ticket, ticket_id).status = TicketStatus(new)
            session.add(Event(ticket_id=ticket_id, at=at, actor="test", action="status",
                              detail={"old": old, "new": new}))
    assert run_reminders(remind_app.sessions, remind_app.settings, now=LEVEL1).fired == []  # would be due unpaused
    report = run_reminders(remind_app.sessions, remind_app.settings, now=LEVEL1 + timedelta(days=1))
    assert [f.level for f in report.fired] == [1]


def test_a_ticket_another_run_reminded_first_is_left_out_of_this_runs_mail(remind_app: App) -> None:
    """The insert loses a ticket to a reminder another run committed after this run read the clocks:
    the run redoes its mail without it, and the ticket's clock is recomputed from that reminder."""
    from triage.store.schedule_models import TicketClock

    first, second = add_ticket(remind_app, 1), add_ticket(remind_app, 2)
    run_reminders(remind_app.sessions, remind_app.settings, now=CREATED + timedelta(hours=1))  # clocks computed
    with remind_app.sessions() as session, session.begin():
        due = session.get_one(TicketClock, first).due_1
        assert due is not None
        session.add(Reminder(ticket_id=first, level=1, due_at=due, team="legal", fired_at=LEVEL1))  # the other run's row; its clock update not seen
    report = run_reminders(remind_app.sessions, remind_app.settings, now=LEVEL1)
    assert [f.ticket_id for f in report.fired] == [second]
    assert [(s.ticket_id, s.reason) for s in report.skipped] == [(first, "already-reminded")]
    with remind_app.sessions() as session:
        mail = session.scalars(select(Outbox)).one()
        assert mail.ticket_id == second and "T-2026-00001" not in mail.raw.decode()
        assert session.get_one(Ticket, first).clock_stale_at is not None
    later = run_reminders(remind_app.sessions, remind_app.settings, now=LEVEL1 + timedelta(minutes=5))
    assert later.fired == [] and later.refreshed == 1
    with remind_app.sessions() as session:
        clock = session.get_one(TicketClock, first)
        assert clock.reminded_level == 1 and clock.next_at is not None and clock.next_at > LEVEL1


def test_an_answer_the_clock_missed_still_stops_the_reminder(remind_app: App) -> None:
    """A write path that answered a ticket without marking its clock stale cannot make the run
    remind it: the run checks the answer in SQL and drops what its insert wrote beyond that."""
    from sqlalchemy import update

    answered, other = add_ticket(remind_app, 1), add_ticket(remind_app, 2)
    run_reminders(remind_app.sessions, remind_app.settings, now=CREATED + timedelta(hours=1))  # clocks computed
    answer(remind_app, answered, CREATED + timedelta(hours=2))
    with remind_app.sessions() as session, session.begin():  # as if that path had forgotten the clock
        session.execute(update(Ticket).where(Ticket.id == answered)
                        .values(clock_stale_at=None, status=TicketStatus.open))
    report = run_reminders(remind_app.sessions, remind_app.settings, now=LEVEL1)
    assert [f.ticket_id for f in report.fired] == [other]
    with remind_app.sessions() as session:
        assert list(session.scalars(select(Reminder.ticket_id))) == [other]
        digest = session.scalars(select(Outbox).where(Outbox.auto_submitted.is_not(None))).one()
        assert "T-2026-00001" not in digest.raw.decode()
        assert session.get_one(Ticket, answered).clock_stale_at is not None  # so the next run mends its clock
    later = run_reminders(remind_app.sessions, remind_app.settings, now=LEVEL1 + timedelta(minutes=5))
    assert later.fired == [] and later.refreshed == 1 and later.reasons == {"answered": 1, "not-due": 1}
