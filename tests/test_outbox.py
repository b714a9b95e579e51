"""The outbox in the database: queued with its decision, threaded, loop-protected, recovered after a crash."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from tests.conftest import Clock, make_mail
from triage.bootstrap import App, bootstrap
from triage.cli import cli
from triage.config import load_settings
from triage.outbox.queue import enqueue_handoff
from triage.outbox.sender import OutboxSender, worker_identity
from triage.store.models import Contact, Direction, Event, Message, Ticket, TicketStatus
from triage.store.outbox_models import Outbox, OutboxStatus, SmtpPhase

MakeApp = Callable[..., App]


@pytest.fixture(name="make_app")
def fixture_make_app(db_url: str) -> Iterator[MakeApp]:
    """Apps on the test database with the outbox wired to their settings (auto_acknowledge on unless told)."""
    made: list[App] = []

    def make(**env: str) -> App:
        environ = {"TRIAGE_DATABASE_URL": db_url, "TRIAGE_OUTBOX_AUTO_ACKNOWLEDGE": "true", **env}
        settings = load_settings(environ=environ)
        app = bootstrap(settings)
        made.append(app)
        return app

    try:
        yield make
    finally:
        for app in made:
            app.close()


def outbox_rows(app: App) -> list[Outbox]:
    with app.sessions() as session:
        return list(session.scalars(select(Outbox).order_by(Outbox.id)))


def actions(app: App, action: str) -> list[dict[str, object]]:
    with app.sessions() as session:
        return [e.detail for e in session.scalars(select(Event).where(Event.action == action).order_by(Event.id))]


def dsn(original_id: str, recipient: str, message_id: str = "<dsn-1@mx.volunteers.example>") -> bytes:
    """A Postfix-style delivery status notification for `original_id` (a fixed test sample)."""
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.volunteers.example>\r\n"
        "To: liaison@example.org\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: {message_id}\r\nDate: Mon, 02 Nov 2026 09:10:00 +0000\r\nAuto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.volunteers.example\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: liaison@example.org\r\nTo: {recipient}\r\nSubject: [T-2026-00001] Re: Logo\r\n"
        f"Message-ID: {original_id}\r\n"
        "--B--\r\n"
    ).encode()


def test_acknowledgment_is_queued_in_the_ingest_transaction(make_app: MakeApp, clock: Clock) -> None:
    """A new ticket from a normal mail gets one pending acknowledgment, also stored as an outbound message."""
    app = make_app()
    outcome = app.ingestor(clock=clock).ingest(make_mail(message_id="<a1@v.example>"))
    [row] = outbox_rows(app)
    assert row.status is OutboxStatus.pending and row.template == "acknowledgment"
    assert row.to_addr == "ada@volunteers.example" and row.auto_submitted == "auto-replied"
    assert row.next_attempt_at == clock.now and b"In-Reply-To: <a1@v.example>" in row.raw
    with app.sessions() as session:
        ticket = session.scalars(select(Ticket)).one()
        out = session.get_one(Message, row.message_pk)
        assert ticket.reference == outcome.ticket_reference and out.ticket_id == ticket.id == row.ticket_id
        assert out.direction is Direction.outbound and out.message_id == row.message_id
        assert out.to_addrs == ["ada@volunteers.example"] and out.in_reply_to == "<a1@v.example>"
    assert actions(app, "mail-queued")[0]["template"] == "acknowledgment"
    assert actions(app, "language")[0]["language"] == "en"


def test_reply_to_our_acknowledgment_threads_onto_the_ticket(make_app: MakeApp, clock: Clock) -> None:
    """The volunteer's answer to our mail (In-Reply-To our Message-ID, subject changed) joins the same ticket."""
    app = make_app()
    ingestor = app.ingestor(clock=clock)
    first = ingestor.ingest(make_mail(message_id="<a1@v.example>"))
    [ack] = outbox_rows(app)
    second = ingestor.ingest(make_mail(message_id="<a2@v.example>", subject="one more thing", in_reply_to=ack.message_id,
                                       references=["<a1@v.example>", ack.message_id]))
    assert second.ticket_reference == first.ticket_reference
    assert f"In-Reply-To {ack.message_id}" in second.reason
    assert len(outbox_rows(app)) == 1  # a follow-up is not acknowledged again


def test_autoreplies_list_mail_and_our_own_mail_get_no_acknowledgment(make_app: MakeApp, clock: Clock) -> None:
    """Out-of-office, list mail and mail with our own Message-ID open no acknowledgment; the reasons are logged."""
    app = make_app()
    ingestor = app.ingestor(clock=clock)
    ingestor.ingest(make_mail(sender="Bo <bo@v.example>", message_id="<o1@v.example>", subject="Out of office",
                              headers={"Auto-Submitted": "auto-replied"}))
    ingestor.ingest(make_mail(sender="Cy <cy@v.example>", message_id="<l1@v.example>",
                              headers={"List-Id": "Volunteers <volunteers.lists.example.org>"}))
    ingestor.ingest(make_mail(sender="Di <di@v.example>", message_id="<loop@example.org>"))
    assert outbox_rows(app) == []
    reasons = [d["reasons"] for d in actions(app, "mail-skipped")]
    assert ["mailing-list"] in reasons and ["own-mail"] in reasons


def test_rate_limit_caps_automatic_mail_per_address(make_app: MakeApp, clock: Clock) -> None:
    """At most three automatic mails an hour to one address; the fourth is skipped, and allowed again later."""
    app = make_app()
    ingestor = app.ingestor(clock=clock)
    for n in range(4):
        ingestor.ingest(make_mail(message_id=f"<r{n}@v.example>", subject=f"Question {n}"))
        clock.advance(minutes=1)
    assert len(outbox_rows(app)) == 3
    assert [d["reasons"] for d in actions(app, "mail-skipped")] == [["rate-limit"]]
    clock.advance(minutes=60)
    ingestor.ingest(make_mail(message_id="<r9@v.example>", subject="Question 9", date=clock.now))
    assert len(outbox_rows(app)) == 4


def test_rate_limit_is_configurable(make_app: MakeApp, clock: Clock) -> None:
    """outbox.rate_limit_per_hour = 1 lets one automatic mail an hour through."""
    app = make_app(TRIAGE_OUTBOX_RATE_LIMIT_PER_HOUR="1")
    ingestor = app.ingestor(clock=clock)
    for n in range(3):
        ingestor.ingest(make_mail(message_id=f"<q{n}@v.example>", subject=f"Question {n}"))
    assert len(outbox_rows(app)) == 1


def test_acknowledgment_is_off_unless_configured(make_app: MakeApp, clock: Clock) -> None:
    """By default triage answers nobody on its own (an imported archive must not mail hundreds of people)."""
    app = make_app(TRIAGE_OUTBOX_AUTO_ACKNOWLEDGE="false")
    app.ingestor(clock=clock).ingest(make_mail())
    assert outbox_rows(app) == [] and actions(app, "mail-skipped") == []
    assert load_settings(environ={}).outbox.auto_acknowledge is False


def test_acknowledgment_speaks_the_volunteers_language(make_app: MakeApp, clock: Clock) -> None:
    """A mail in French is acknowledged in French; a contact record saying Spanish wins over detection."""
    app = make_app()
    ingestor = app.ingestor(clock=clock)
    ingestor.ingest(make_mail(sender="Luc <luc@v.example>", subject="Banderole",
                              body="Bonjour, est-ce que notre groupe peut utiliser le logo sur une banderole ?"))
    with app.sessions.begin() as session:
        session.add(Contact(address="ana@v.example", name="Ana", language="es", first_seen=clock.now,
                            last_seen=clock.now))
    ingestor.ingest(make_mail(sender="Ana <ana@v.example>", subject="Logo", body="Hello, may we use the logo?"))
    french, spanish = outbox_rows(app)
    assert b"Content-Language: fr" in french.raw and b"Content-Language: es" in spanish.raw


def test_bounce_of_our_mail_is_attached_and_marks_the_address(make_app: MakeApp, clock: Clock) -> None:
    """A DSN for our acknowledgment joins its ticket, marks the contact bouncing, and stops automatic mail to it."""
    app = make_app()
    ingestor = app.ingestor(clock=clock)
    first = ingestor.ingest(make_mail(message_id="<a1@v.example>"))
    [ack] = outbox_rows(app)
    bounce = ingestor.ingest(dsn(ack.message_id, "ada@volunteers.example"))
    assert bounce.ticket_reference == first.ticket_reference
    with app.sessions() as session:
        ada = select(Contact.bouncing).where(Contact.address == "ada@volunteers.example")
        assert session.scalars(ada).one() is True
        assert session.get_one(Message, bounce.message_pk).kind == "bounce"
    assert actions(app, "bounced")[0]["addresses"] == ["ada@volunteers.example"]
    assert "bounced for ada@volunteers.example" in (outbox_rows(app)[0].last_error or "")
    ingestor.ingest(make_mail(message_id="<a9@v.example>", subject="Another question"))
    assert len(outbox_rows(app)) == 1
    assert actions(app, "mail-skipped")[-1]["reasons"] == ["bouncing"]


def test_handoff_mails_the_team_and_tells_the_volunteer(make_app: MakeApp, clock: Clock) -> None:
    """The routing approval's hook queues the team's introduction and the volunteer's notice; the team's reply threads."""
    app = make_app(TRIAGE_OUTBOX_AUTO_ACKNOWLEDGE="false")
    ingestor = app.ingestor(clock=clock)
    first = ingestor.ingest(make_mail(message_id="<h1@v.example>"))
    with app.sessions.begin() as session:
        ticket = session.scalars(select(Ticket)).one()
        ticket.team = "legal"
        results = enqueue_handoff(session, ticket, "legal", "liaison", clock.now, wiring=app.wiring)
    assert [r.template for r in results] == ["handoff-team", "handoff-volunteer"]
    team, notice = outbox_rows(app)
    assert team.recipients == ["legal@example.org"] and team.auto_submitted == "auto-generated"
    assert b"may our chapter use the logo" in team.raw.replace(b"=\r\n", b"")
    assert notice.recipients == ["ada@volunteers.example"] and b"Legal" in notice.raw
    answer = ingestor.ingest(make_mail(sender="Legal <legal@example.org>", message_id="<l1@example.net>",
                                       subject="Logo question", in_reply_to=team.message_id))
    assert answer.ticket_reference == first.ticket_reference


def test_handoff_to_a_team_without_address_says_why(make_app: MakeApp, clock: Clock) -> None:
    """An unknown team queues nothing and leaves the reason on the ticket."""
    app = make_app()
    app.ingestor(clock=clock).ingest(make_mail())
    with app.sessions.begin() as session:
        results = enqueue_handoff(session, session.scalars(select(Ticket)).one(), "nonexistent", "liaison", clock.now, wiring=app.wiring)
    assert results[0].reason.startswith("team 'nonexistent' has no address")
    assert len(outbox_rows(app)) == 1  # only the acknowledgment


def test_queued_mail_rolls_back_with_the_decision(make_app: MakeApp, clock: Clock) -> None:
    """A hand-off queued in a transaction that then fails leaves no outbox row and no message."""
    app = make_app(TRIAGE_OUTBOX_AUTO_ACKNOWLEDGE="false")
    app.ingestor(clock=clock).ingest(make_mail())
    with pytest.raises(RuntimeError), app.sessions.begin() as session:
        enqueue_handoff(session, session.scalars(select(Ticket)).one(), "legal", "liaison", clock.now, wiring=app.wiring)
        raise RuntimeError("the approval failed after queueing")
    assert outbox_rows(app) == []
    with app.sessions() as session:
        assert session.scalar(select(func.count(Message.id))) == 1


def dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    return int(done.stdout)


def test_recovery_retries_before_the_final_dot_and_flags_after_it(make_app: MakeApp, clock: Clock) -> None:
    """A dead worker's row: before the final dot it is retried at once; after it, flagged uncertain, never resent."""
    app = make_app()
    ingestor = app.ingestor(clock=clock)
    for n in range(3):
        ingestor.ingest(make_mail(sender=f"V{n} <v{n}@v.example>", message_id=f"<k{n}@v.example>"))
    me = worker_identity()
    host = me.split(":")[0]
    with app.sessions.begin() as session:
        claimed, data_end, alive = session.scalars(select(Outbox).order_by(Outbox.id)).all()
        for row, phase, owner in [(claimed, SmtpPhase.claimed, f"{host}:{dead_pid()}:aa"),
                                  (data_end, SmtpPhase.data_end, f"{host}:{dead_pid()}:bb"),
                                  (alive, SmtpPhase.data_end, "elsewhere:1:cc")]:
            row.status, row.smtp_phase, row.claimed_by, row.claimed_at = OutboxStatus.sending, phase, owner, clock.now
    sender = OutboxSender(app.sessions, app.settings, clock=clock, worker=me)
    report = sender.recover()
    assert (report.recovered, report.uncertain) == (1, 1)
    statuses = [r.status for r in outbox_rows(app)]
    assert statuses == [OutboxStatus.pending, OutboxStatus.uncertain, OutboxStatus.sending]
    assert "--mark-sent" in (outbox_rows(app)[1].last_error or "")
    clock.advance(seconds=app.settings.outbox.lease_seconds + 1)
    sender.recover()
    assert outbox_rows(app)[2].status is OutboxStatus.uncertain  # another host's claim, after the lease


def test_liaison_can_retry_failed_and_confirm_uncertain_mail(make_app: MakeApp, clock: Clock) -> None:
    """--retry puts failed or uncertain mail back in the queue; --mark-sent confirms uncertain mail only."""
    app = make_app()
    ingestor = app.ingestor(clock=clock)
    for n in range(2):
        ingestor.ingest(make_mail(sender=f"V{n} <v{n}@v.example>", message_id=f"<m{n}@v.example>"))
    with app.sessions.begin() as session:
        failed, uncertain = session.scalars(select(Outbox).order_by(Outbox.id)).all()
        failed.status, failed.attempts, uncertain.status = OutboxStatus.failed, 8, OutboxStatus.uncertain
    sender = OutboxSender(app.sessions, app.settings, clock=clock)
    assert sender.mark_sent([1, 2], actor="liaison") == [2]
    assert sender.retry([1, 2], actor="liaison") == [1]
    first, second = outbox_rows(app)
    assert first.status is OutboxStatus.pending and first.attempts == 0
    assert second.status is OutboxStatus.sent and second.smtp_reply == "confirmed by liaison"


def test_reply_command_previews_then_queues(make_app: MakeApp, clock: Clock, db_url: str, tmp_path: Path) -> None:
    """`triage reply --preview` prints the mail and queues nothing; without it the reply is queued and listed."""
    app = make_app(TRIAGE_OUTBOX_AUTO_ACKNOWLEDGE="false")
    app.ingestor(clock=clock).ingest(make_mail(message_id="<p1@v.example>"))
    body = tmp_path / "reply.txt"
    body.write_text("Yes, the logo may be used on a banner.\n{{ 7*7 }}\n")
    runner = CliRunner()
    env = {"TRIAGE_DATABASE_URL": db_url}
    preview = runner.invoke(cli, ["reply", "T-2026-00001", "--body-file", str(body), "--preview"], env=env)
    assert preview.exit_code == 0, preview.output
    assert "In-Reply-To: <p1@v.example>" in preview.output and "Subject: [T-2026-00001] Re:" in preview.output
    assert "{{ 7*7 }}" in preview.output and "Auto-Submitted" not in preview.output
    assert outbox_rows(app) == []
    queued = runner.invoke(cli, ["reply", "T-2026-00001", "--body-file", str(body)], env=env)
    assert queued.exit_code == 0, queued.output
    assert queued.output.startswith("queued #1 <")
    listed = runner.invoke(cli, ["outbox"], env=env)
    assert "pending" in listed.output and "reply" in listed.output
    with app.sessions() as session:
        assert session.scalars(select(Ticket.status)).one() is TicketStatus.waiting
    missing = runner.invoke(cli, ["reply", "T-2026-00001", "--template", "../x", "--body-file", str(body)], env=env)
    assert missing.exit_code == 2 and "not a mail template name" in missing.output


def test_routing_approval_queues_the_handoff_in_its_transaction(make_app: MakeApp, clock: Clock) -> None:
    """The liaison's approval (routing desk with the outbox hook) routes the ticket and queues both hand-off mails."""
    from triage.routing.desk import Router, load_teams

    app = make_app(TRIAGE_OUTBOX_AUTO_ACKNOWLEDGE="false")
    outcome = app.ingestor(clock=clock).ingest(make_mail())
    teams = load_teams(Path(__file__).resolve().parents[1] / "data" / "teams.toml")
    router = Router(app.sessions, None, teams, clock=clock, on_routed=app.handoff)
    router.approve(outcome.ticket_reference or "", actor="liaison:ana", team="events")
    team, notice = outbox_rows(app)
    assert team.recipients == ["events@example.org"] and team.actor == "liaison:ana"
    assert notice.recipients == ["ada@volunteers.example"] and notice.ticket_id == team.ticket_id
