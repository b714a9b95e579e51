"""Issue 11's "done when" for class 1: one poison mail among good mail, acknowledgments on, through
the real peers. The IMAP poller (a real Dovecot), the spool, `triage ingest`, `triage approve
--min-confidence`, `triage remind` and `triage outbox --send` (a real aiosmtpd sink) each keep
working for every other ticket: every good mail is stored and answered exactly once, and the
poison mail is stored and why it was not answered is on its ticket's log.

The poison values reach the store as raw bytes (as an attacker sends them), whatever the parser
makes of them; the tests in test_outbox_isolation, test_routing_isolation and
test_schedule_isolation inject them after parsing as well.
"""

from __future__ import annotations

import email
import email.policy
import json
import mailbox
from collections import Counter
from datetime import UTC, datetime, time, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from tests.servers.dovecot import Dovecot, fixture_dovecot_server, fixture_make_dovecot  # noqa: F401 - fixtures
from tests.servers.smtp_sink import SmtpSink, fixture_make_smtp_sink, fixture_smtp_sink  # noqa: F401 - fixtures
from tests.test_imap_poll import append_many, imap_env
from triage.bootstrap import bootstrap
from triage.cli import cli
from triage.config import load_settings
from triage.runners.poll import PollRunner
from triage.runners.spool import SpoolRunner
from triage.store.models import Event, Message, Ticket

QUESTIONS = [  # what the seed model routes with confidence, so that the bulk approval takes them
    ("Donation receipt for my tax return",
     "Hello, I donated 50 euros by card in March. Could you send me a donation receipt for my tax return?"),
    ("May our chapter use the logo on a banner?",
     "Hello, may our chapter use the trademark logo on a banner at our event? We want permission for the logo use."),
    ("Cannot log in, two-factor reset",
     "I lost my phone and cannot log in to my account; please reset my two-factor authentication."),
]
POISON_HEADERS = {  # the class-1 examples, as raw header lines
    "domain-literal": {"From": "Mallory <x@[192.0.2.7>"},
    "splitlines": {"In-Reply-To": "<a\u2029b@volunteers.example>", "References": "<c\u2028d@v.example> <e\x85f@v.example>"},
    "separators": {"References": "<g\x1dh@v.example> <i\x1ej@v.example>", "In-Reply-To": "<k\x1cl@v.example>"},
    "space": {"Message-ID": "<p q@volunteers.example>", "In-Reply-To": "<r s@volunteers.example>"},
    "vt-ff": {"Message-ID": "<t\x0bu@volunteers.example>", "References": "<v\x0cw@v.example>"},
}


def raw_mail(key: str, n: int, headers: dict[str, str] | None = None) -> bytes:
    """A mail as it arrives, header lines as written (a poison value is no header the library would write)."""
    subject, body = QUESTIONS[n % len(QUESTIONS)]
    fields = {"From": f"Vol {key} <{key}@{key}.example>", "To": "liaison@example.org", "Subject": subject,
              "Date": format_datetime(datetime.now(UTC)), "Message-ID": f"<{key}@{key}.example>",
              "MIME-Version": "1.0", "Content-Type": "text/plain; charset=utf-8", **(headers or {})}
    head = "\r\n".join(f"{name}: {value}" for name, value in fields.items())
    return f"{head}\r\n\r\n{body}\r\n".encode()


def batch(source: str, poison: str) -> dict[str, bytes]:
    """Two good mails around one poison mail, keyed by the sender's local part."""
    return {f"{source}-good-a": raw_mail(f"{source}-good-a", 0),
            f"{source}-poison-{poison}": raw_mail(f"{source}-poison-{poison}", 1, POISON_HEADERS[poison]),
            f"{source}-good-b": raw_mail(f"{source}-good-b", 2)}


def next_weekday_morning(after: datetime) -> datetime:
    """10:00 UTC on the first Tuesday to Thursday at least three days after `after`: reminders are due."""
    day = (after + timedelta(days=3)).date()
    while day.weekday() not in (1, 2, 3):
        day += timedelta(days=1)
    return datetime.combine(day, time(10), tzinfo=UTC)


@pytest.mark.slow
def test_poison_mail_among_good_mail_stops_no_source_and_no_command(
    dovecot_server: Dovecot, smtp_sink: SmtpSink, db_url: str, tmp_path: Path
) -> None:
    """Poller, spool, `ingest`, `approve --min-confidence`, `remind`, `outbox --send`: with a poison
    mail in each source, every good mail is stored and acknowledged once at the SMTP sink, and
    the poison mail is stored, with why it was not answered logged on its ticket."""
    env = {**imap_env(dovecot_server, db_url), "TRIAGE_OUTBOX_AUTO_ACKNOWLEDGE": "true",
           "TRIAGE_SMTP_HOST": smtp_sink.host, "TRIAGE_SMTP_PORT": str(smtp_sink.port),
           "TRIAGE_SMTP_SECURITY": "none", "TRIAGE_ROUTING_MODEL_PATH": str(tmp_path / "model"),
           "TRIAGE_LOG_LEVEL": "error"}
    settings = load_settings(environ=env)
    app = bootstrap(settings)
    runner = CliRunner()
    try:
        mails: dict[str, bytes] = {}
        # 1. the IMAP poller: one pass over a real Dovecot stores its whole batch
        imap = batch("imap", "domain-literal") | batch("imap2", "splitlines")
        append_many(dovecot_server, list(imap.values()))
        PollRunner(settings.imap_all[0], app.ingestor()).run(once=True)
        mails |= imap
        # 2. the spool (a maildir the MTA delivers into): the poison mail sorts first
        spool = batch("spool", "space")
        maildir = mailbox.Maildir(tmp_path / "spool", create=True)
        for key in sorted(spool, key=lambda k: "poison" not in k):
            maildir.add(spool[key])
        SpoolRunner(app.ingestor(), tmp_path / "spool", interval=1.0).run(once=True)
        assert list((tmp_path / "spool" / "new").iterdir()) == []
        mails |= spool
        # 3. `triage ingest` of a folder of .eml files
        folder = tmp_path / "eml"
        folder.mkdir()
        files = batch("files", "vt-ff") | batch("files2", "separators")
        for key, raw in files.items():
            (folder / f"{key}.eml").write_bytes(raw)
        result = runner.invoke(cli, ["ingest", str(folder)], env=env)
        assert result.exit_code == 0 and "6 stored" in result.stdout, result.output
        mails |= files

        with app.sessions() as session:
            stored = Counter(m.source.split(":")[0] for m in session.scalars(
                select(Message).where(Message.direction == "inbound")))
            assert sum(stored.values()) == len(mails), stored  # every mail stored, the poison ones too
            tickets = len(session.scalars(select(Ticket)).all())
        assert tickets == len(mails)

        # 4. the bulk approval, with the hand-off of every ticket (the poison volunteer's notice fails alone)
        approved = runner.invoke(cli, ["approve", "--min-confidence", "0.5", "--json"], env=env)
        assert approved.exit_code == 0, approved.output
        assert len([r for r in json.loads(approved.stdout) if "team" in r]) == len(mails)

        # 5. a catch-up reminder run as of a later day: every team is reminded
        later = next_weekday_morning(datetime.now(UTC))
        reminded = runner.invoke(cli, ["remind", "--now", later.isoformat(), "--json"], env=env)
        assert reminded.exit_code == 0, reminded.output
        assert len(json.loads(reminded.stdout)["fired"]) == len(mails)

        # 6. delivery: everything due now goes out once, the reminders included (queued at the real time)
        sent = runner.invoke(cli, ["outbox", "--send"], env=env)
        assert sent.exit_code == 0 and " 0 failed" in sent.stdout, sent.output
        assert runner.invoke(cli, ["outbox", "--send"], env=env).stdout.startswith("0 sent")
    finally:
        app.close()

    received = [email.message_from_bytes(m.raw, policy=email.policy.default) for m in smtp_sink.messages]
    acks = Counter(m["To"].addresses[0].addr_spec for m in received if m["Auto-Submitted"] == "auto-replied")
    answerable = [key for key in mails if "domain-literal" not in key]  # a poison msg-id is left out of the answer
    assert acks == {f"{key}@{key}.example": 1 for key in answerable}  # each answered once; the poison From never
    assert "x@[192.0.2.7" not in str([m.rcpt_tos for m in smtp_sink.messages])
    teams = Counter(rcpt for m in smtp_sink.messages for rcpt in m.rcpt_tos if rcpt.endswith("@example.org"))
    assert teams["legal@example.org"] >= 2 and teams["fundraising@example.org"] >= 2  # hand-offs and reminders

    # The poison From is dropped where the mail is read (a `bad-address:from` defect), so that
    # ticket has no one to answer: its acknowledgment and hand-off notice are skipped, with the
    # reason on its log, and nothing is left failed or waiting. (Values that reach compose after
    # parsing are refused there and listed as failed: test_outbox_isolation.)
    listing = runner.invoke(cli, ["outbox"], env=env)
    assert listing.stdout.startswith("nothing waiting, failed or uncertain"), listing.stdout
    app = bootstrap(settings)
    try:
        with app.sessions() as session:
            key = "imap-poison-domain-literal"
            poison = session.scalars(select(Message).where(Message.message_id == f"<{key}@{key}.example>")).one()
            assert poison.from_addr is None and "bad-address:from" in poison.defects
            skipped = session.scalars(select(Event).where(Event.action == "mail-skipped",
                                                          Event.ticket_id == poison.ticket_id)).all()
            assert {e.detail["template"] for e in skipped} == {"acknowledgment", "handoff-volunteer"}
            assert all("no-sender" in e.detail["reasons"] for e in skipped)
    finally:
        app.close()
