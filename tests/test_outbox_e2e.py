"""The outbox against a real SMTP server (aiosmtpd on loopback): threading, retries, failures, TLS, and SIGKILL."""

from __future__ import annotations

import email
import email.policy
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from tests.conftest import Clock, make_mail
from tests.servers.dovecot import Dovecot, fixture_dovecot_server, fixture_make_dovecot  # noqa: F401 - fixtures
from tests.servers.smtp_sink import (  # noqa: F401 - fixtures, found by pytest under their names
    SmtpSink,
    fixture_make_smtp_sink,
    fixture_smtp_sink,
)
from tests.test_outbox import MakeApp, fixture_make_app, outbox_rows  # noqa: F401 - fixture_make_app: make_app
from triage.bootstrap import App
from triage.cli import cli
from triage.ingest.pipeline import IncomingMail
from triage.outbox.sender import OutboxSender
from triage.outbox.setup import make_sender
from triage.outbox.smtp import SmtpSecurityError
from triage.store.models import Message, Ticket
from triage.store.outbox_models import OutboxStatus, SmtpPhase

ROOT = Path(__file__).resolve().parents[1]
MAILS = 40


def smtp_env(sink: SmtpSink, **extra: str) -> dict[str, str]:
    return {"TRIAGE_SMTP_HOST": sink.host, "TRIAGE_SMTP_PORT": str(sink.port), "TRIAGE_SMTP_SECURITY": "none",
            **extra}


def sender_for(app: App, clock: Clock) -> OutboxSender:
    return OutboxSender(app.sessions, app.settings, clock=clock)


def headers(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def test_acknowledgment_arrives_threaded_and_the_answer_joins_the_ticket(
    make_app: MakeApp, smtp_sink: SmtpSink, clock: Clock
) -> None:
    """Ingest, send: the sink gets one acknowledgment threaded to the mail; the volunteer's reply joins the ticket."""
    app = make_app(**smtp_env(smtp_sink))
    ingestor = app.ingestor(clock=clock)
    first = ingestor.ingest(make_mail(message_id="<e1@volunteers.example>", references=["<e0@volunteers.example>"]))
    report = sender_for(app, clock).send_due()
    assert report.sent == 1
    [received] = smtp_sink.messages
    assert received.mail_from == "liaison@example.org" and received.rcpt_tos == ("ada@volunteers.example",)
    ack = headers(received.raw)
    assert ack["In-Reply-To"] == "<e1@volunteers.example>"
    assert str(ack["References"]).split() == ["<e0@volunteers.example>", "<e1@volunteers.example>"]
    assert ack["Auto-Submitted"] == "auto-replied" and str(ack["Message-ID"]).endswith("@example.org>")
    assert ack["Subject"] == f"[{first.ticket_reference}] Re: Question about the logo"
    assert ack["From"].addresses[0].addr_spec == "liaison@example.org"
    [row] = outbox_rows(app)
    assert row.status is OutboxStatus.sent and row.smtp_reply == "250 2.0.0 Message accepted"
    assert row.smtp_server == f"{smtp_sink.host}:{smtp_sink.port}" and row.attempts == 1

    answer = ingestor.ingest(make_mail(message_id="<e2@volunteers.example>", subject="Re: thanks",
                                       in_reply_to=str(ack["Message-ID"]),
                                       references=[*str(ack["References"]).split(), str(ack["Message-ID"])]))
    assert answer.ticket_reference == first.ticket_reference
    assert sender_for(app, clock).send_due().sent == 0 and len(smtp_sink.messages) == 1


def test_out_of_office_reply_is_stored_and_nothing_is_sent(
    make_app: MakeApp, smtp_sink: SmtpSink, clock: Clock
) -> None:
    """An out-of-office answer to our acknowledgment threads onto the ticket; triage sends nothing back."""
    app = make_app(**smtp_env(smtp_sink))
    ingestor = app.ingestor(clock=clock)
    first = ingestor.ingest(make_mail(message_id="<f1@volunteers.example>"))
    sender_for(app, clock).send_due()
    ack_id = smtp_sink.message_ids()[0]
    smtp_sink.clear()
    ooo = ingestor.ingest(make_mail(message_id="<f2@volunteers.example>", subject="Out of office: Re: logo",
                                    in_reply_to=ack_id, body="I am away until Monday.\n",
                                    headers={"Auto-Submitted": "auto-replied", "X-Autoreply": "yes"}))
    stray = ingestor.ingest(make_mail(sender="Bo <bo@volunteers.example>", message_id="<f3@volunteers.example>",
                                      subject="Automatic reply: away", headers={"Auto-Submitted": "auto-replied"}))
    assert ooo.ticket_reference == first.ticket_reference and stray.ticket_reference is None
    with app.sessions() as session:
        assert session.get_one(Message, ooo.message_pk).kind == "autoreply"
    assert sender_for(app, clock).send_due().touched == 0
    assert smtp_sink.messages == [] and smtp_sink.transactions == 0


def test_temporary_failure_is_retried_with_backoff_and_delivered_once(
    make_app: MakeApp, smtp_sink: SmtpSink, clock: Clock
) -> None:
    """A 451 defers the mail by the backoff; the next attempt after it delivers it, once."""
    app = make_app(**smtp_env(smtp_sink))
    app.ingestor(clock=clock).ingest(make_mail())
    smtp_sink.fail_next(451, stage="DATA")
    sender = sender_for(app, clock)
    assert sender.send_due().deferred == 1
    [row] = outbox_rows(app)
    assert row.status is OutboxStatus.pending and row.attempts == 1 and "451" in (row.last_error or "")
    assert (row.next_attempt_at - clock.now).total_seconds() == app.settings.smtp.backoff_base_seconds
    assert sender.send_due().touched == 0  # not due yet
    clock.advance(seconds=61)
    assert sender.send_due().sent == 1
    assert len(smtp_sink.messages) == 1 and outbox_rows(app)[0].attempts == 2


def test_temporary_failures_give_up_after_max_attempts(make_app: MakeApp, smtp_sink: SmtpSink, clock: Clock) -> None:
    """Backoff doubles; after smtp.max_attempts temporary failures the mail is failed, not retried forever."""
    app = make_app(**smtp_env(smtp_sink, TRIAGE_SMTP_MAX_ATTEMPTS="3"))
    app.ingestor(clock=clock).ingest(make_mail())
    smtp_sink.fail_next(421, times=3, stage="MAIL")
    sender = sender_for(app, clock)
    waits = []
    for _ in range(3):
        sender.send_due()
        row = outbox_rows(app)[0]
        waits.append((row.next_attempt_at - clock.now).total_seconds())
        clock.advance(hours=2)
    assert waits[:2] == [60.0, 120.0]
    assert row.status is OutboxStatus.failed and "gave up after 3 attempts" in (row.last_error or "")
    assert smtp_sink.messages == []


def test_permanent_failure_is_failed_and_visible(
    make_app: MakeApp, smtp_sink: SmtpSink, clock: Clock, db_url: str
) -> None:
    """A 550 at RCPT fails the mail at once; `triage outbox --send` exits 1 and `triage outbox` shows why."""
    app = make_app(**smtp_env(smtp_sink))
    app.ingestor(clock=clock).ingest(make_mail())
    smtp_sink.fail_next(550, stage="RCPT")
    runner = CliRunner()
    env = {"TRIAGE_DATABASE_URL": db_url, **smtp_env(smtp_sink)}
    sent = runner.invoke(cli, ["outbox", "--send"], env=env)
    assert sent.exit_code == 1 and "1 failed" in sent.output
    listed = runner.invoke(cli, ["outbox"], env=env)
    assert "failed" in listed.output and "permanent failure at RCPT: 550" in listed.output
    as_json = runner.invoke(cli, ["outbox", "--json"], env=env)
    assert '"status": "failed"' in as_json.output
    assert smtp_sink.messages == [] and outbox_rows(app)[0].attempts == 1


@pytest.mark.parametrize("deliver", [True, False])
def test_connection_lost_after_the_final_dot_is_flagged_not_resent(
    make_app: MakeApp, smtp_sink: SmtpSink, clock: Clock, deliver: bool
) -> None:
    """No reply to the final dot: the mail may have arrived, so it is `uncertain` and never resent automatically."""
    app = make_app(**smtp_env(smtp_sink))
    ingestor = app.ingestor(clock=clock)
    ingestor.ingest(make_mail(message_id="<u1@volunteers.example>"))
    ingestor.ingest(make_mail(sender="Bo <bo@volunteers.example>", message_id="<u2@volunteers.example>"))
    smtp_sink.disconnect_next(deliver=deliver)
    sender = sender_for(app, clock)
    first = sender.send_due()
    assert first.uncertain == 1 and first.sent == 0  # the session is gone: the second mail waits
    second = sender.send_due()
    assert second.sent == 1
    clock.advance(days=1)
    assert sender.send_due().touched == 0
    doubtful, fine = outbox_rows(app)
    assert doubtful.status is OutboxStatus.uncertain and fine.status is OutboxStatus.sent
    assert Counter(smtp_sink.message_ids())[doubtful.message_id] == (1 if deliver else 0)
    assert Counter(smtp_sink.message_ids())[fine.message_id] == 1


def test_starttls_with_login(make_app: MakeApp, make_smtp_sink: Callable[..., SmtpSink], clock: Clock) -> None:
    """security = starttls upgrades, verifies the server against ca_file, and logs in before sending."""
    sink = make_smtp_sink(starttls=True, auth=("desk", "s3cret"))
    app = make_app(**smtp_env(sink, TRIAGE_SMTP_SECURITY="starttls", TRIAGE_SMTP_CA_FILE=str(sink.ca_cert_path),
                              TRIAGE_SMTP_USER="desk", TRIAGE_SMTP_PASSWORD="s3cret"))
    app.ingestor(clock=clock).ingest(make_mail())
    assert sender_for(app, clock).send_due().sent == 1
    [received] = sink.messages
    assert received.over_tls and received.authenticated_as == "desk"


def test_implicit_tls(make_app: MakeApp, make_smtp_sink: Callable[..., SmtpSink], clock: Clock) -> None:
    """security = tls speaks TLS from the first byte (SMTPS)."""
    sink = make_smtp_sink(implicit_tls=True)
    app = make_app(**smtp_env(sink, TRIAGE_SMTP_SECURITY="tls", TRIAGE_SMTP_CA_FILE=str(sink.ca_cert_path)))
    app.ingestor(clock=clock).ingest(make_mail())
    assert sender_for(app, clock).send_due().sent == 1 and sink.messages[0].over_tls


def test_missing_starttls_is_an_error_never_a_plain_text_fallback(
    make_app: MakeApp, smtp_sink: SmtpSink, clock: Clock
) -> None:
    """A server without STARTTLS gets nothing when starttls is configured; the mail stays queued, unclaimed."""
    app = make_app(**smtp_env(smtp_sink, TRIAGE_SMTP_SECURITY="starttls"))
    app.ingestor(clock=clock).ingest(make_mail())
    with pytest.raises(SmtpSecurityError, match="does not offer STARTTLS"):
        sender_for(app, clock).send_due()
    [row] = outbox_rows(app)
    assert row.status is OutboxStatus.pending and row.attempts == 0 and smtp_sink.transactions == 0


def test_sent_folder_copy_and_confirmation_of_a_mail_in_doubt(
    make_app: MakeApp, smtp_sink: SmtpSink, clock: Clock, dovecot_server: Dovecot
) -> None:
    """A sent mail is copied to outbox.sent_folder; a mail in doubt found in outbox.confirm_folder counts as sent."""
    dovecot_server.create_folder("Sent")
    dovecot_server.create_folder("Server copies")
    app = make_app(**smtp_env(
        smtp_sink, TRIAGE_IMAP_HOST=dovecot_server.host, TRIAGE_IMAP_PORT=str(dovecot_server.port),
        TRIAGE_IMAP_SECURITY="none", TRIAGE_IMAP_USER=dovecot_server.user, TRIAGE_IMAP_PASSWORD=dovecot_server.password,
        TRIAGE_OUTBOX_SENT_FOLDER="Sent", TRIAGE_OUTBOX_CONFIRM_FOLDER="Server copies",
    ))
    ingestor = app.ingestor(clock=clock)
    for n in range(3):
        ingestor.ingest(make_mail(sender=f"V{n} <v{n}@volunteers.example>", message_id=f"<s{n}@volunteers.example>"))
    found, missing, normal = outbox_rows(app)
    with app.sessions.begin() as session:
        for row_id in (found.id, missing.id):  # a worker died after the final dot of these two
            row = session.get_one(type(found), row_id)
            row.status, row.smtp_phase, row.claimed_by = OutboxStatus.sending, SmtpPhase.data_end, "gone:1:x"
    dovecot_server.append(found.raw, folder="Server copies")  # the server filed its own copy of this one
    clock.advance(seconds=app.settings.outbox.lease_seconds + 1)
    report = make_sender(app, clock=clock).send_due()
    assert (report.sent, report.uncertain) == (2, 1)
    statuses = {r.id: (r.status, r.sent_copy) for r in outbox_rows(app)}
    assert statuses[found.id][0] is OutboxStatus.sent and statuses[missing.id][0] is OutboxStatus.uncertain
    assert statuses[normal.id] == (OutboxStatus.sent, "appended to Sent")
    assert smtp_sink.message_ids() == [normal.message_id]
    assert len(dovecot_server.list_uids("Sent")) == 1


def _kill_at_acceptance(sink: SmtpSink, target: list[subprocess.Popen[bytes] | None]) -> None:
    """Make the sink SIGKILL the sending process the moment it has accepted a mail, before it replies 250."""
    record = sink._record

    def record_then_kill(*args: Any) -> None:
        record(*args)
        proc = target[0]
        if proc is not None:
            target[0] = None
            os.kill(proc.pid, signal.SIGKILL)

    sink._record = record_then_kill  # type: ignore[method-assign]


def test_sigkill_anywhere_in_the_send_path_never_sends_twice(
    make_app: MakeApp, smtp_sink: SmtpSink, clock: Clock, db_url: str
) -> None:
    """SIGKILLed senders, restarted: no mail arrives twice; each is sent exactly once or flagged uncertain."""
    app = make_app(**smtp_env(smtp_sink))
    ingestor = app.ingestor(clock=clock)
    ingestor.ingest_many([
        IncomingMail(make_mail(sender=f"V{n} <v{n}@volunteers.example>", message_id=f"<c{n}@volunteers.example>"))
        for n in range(MAILS)
    ])
    env = {**os.environ, "TRIAGE_DATABASE_URL": db_url, "TRIAGE_LOG_LEVEL": "error", **smtp_env(smtp_sink)}
    env.pop("TRIAGE_CONFIG", None)
    rng = random.Random(5)
    at_acceptance: list[subprocess.Popen[bytes] | None] = [None]
    _kill_at_acceptance(smtp_sink, at_acceptance)
    kills = {"at-acceptance": 0, "in-send-path": 0}
    for round_no in range(9):
        if all(r.status in (OutboxStatus.sent, OutboxStatus.uncertain) for r in outbox_rows(app)):
            break
        before = smtp_sink.transactions
        proc = subprocess.Popen([sys.executable, "-m", "triage", "outbox", "--send"], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        mode = "at-acceptance" if round_no == 0 else "in-send-path"
        if mode == "at-acceptance":
            at_acceptance[0] = proc
            proc.wait(timeout=30)
            kills[mode] += at_acceptance[0] is None
            at_acceptance[0] = None
            continue
        deadline = time.monotonic() + 30
        while smtp_sink.transactions == before and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.001)
        threading.Event().wait(rng.uniform(0, 0.04))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills[mode] += 1
        proc.wait(timeout=30)
    done = subprocess.run([sys.executable, "run_worker.py", "--once"], cwd=ROOT, env=env, timeout=60,
                          capture_output=True, check=False)
    assert done.returncode == 0, done.stderr.decode()

    received = Counter(smtp_sink.message_ids())
    assert all(count == 1 for count in received.values()), received
    rows = outbox_rows(app)
    for row in rows:
        assert row.status in (OutboxStatus.sent, OutboxStatus.uncertain), (row.id, row.status, row.last_error)
        if row.status is OutboxStatus.sent:
            assert received[row.message_id] == 1
    uncertain = [r for r in rows if r.status is OutboxStatus.uncertain]
    assert kills["at-acceptance"] >= 1 and len(uncertain) >= kills["at-acceptance"]
    assert kills["in-send-path"] >= 1
    with app.sessions() as session:
        assert len(session.scalars(select(Ticket)).all()) == MAILS


def test_a_reminder_digest_reaches_the_team_once(make_app: MakeApp, smtp_sink: SmtpSink, clock: Clock) -> None:
    """Two overdue tickets routed to legal: the reminder run queues one digest, the sender delivers
    it to the team's address as automatic mail naming both, and neither runs again send it twice."""
    from triage.schedule.run import run_reminders

    app = make_app(**smtp_env(smtp_sink), TRIAGE_OUTBOX_AUTO_ACKNOWLEDGE="false")
    ingestor = app.ingestor(clock=clock)  # Monday 09:00
    references = [ingestor.ingest(make_mail(message_id=f"<r{n}@volunteers.example>", subject=f"Question {n}"))
                  .ticket_reference for n in (1, 2)]
    with app.sessions() as session, session.begin():
        for ticket in session.scalars(select(Ticket)):
            ticket.team = "legal"
    clock.advance(days=1, hours=2)  # Tuesday 11:00: eight business hours have passed
    report = run_reminders(app.sessions, app.settings, now=clock.now, clock=clock)  # the test's clock is real time
    assert sorted(f.reference for f in report.fired) == sorted(references)
    assert run_reminders(app.sessions, app.settings, now=clock.advance(minutes=5), clock=clock).fired == []
    sender = sender_for(app, clock)
    assert sender.send_due().sent == 1 and sender.send_due().touched == 0
    [received] = smtp_sink.messages
    assert received.rcpt_tos == ("legal@example.org",)
    digest = headers(received.raw)
    assert digest["Auto-Submitted"] == "auto-generated" and "2 tickets" in str(digest["Subject"])
    body = digest.get_body(("plain",))
    assert body is not None and all(ref in body.get_content() for ref in references)
