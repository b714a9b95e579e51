"""Backscatter: acknowledgments never answer robots or forged senders, never flood one mailbox or domain,
and never carry more of a stranger's subject or name than it takes to recognise it. SQLite and PostgreSQL,
and end to end against the real SMTP sink."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

from sqlalchemy import select

from tests.conftest import Clock, make_mail
from tests.servers.smtp_sink import (  # noqa: F401 - fixtures, found by pytest under their names
    SmtpSink,
    fixture_make_smtp_sink,
    fixture_smtp_sink,
)
from tests.test_outbox import MakeApp, actions, fixture_make_app, outbox_rows  # noqa: F401 - fixture_make_app
from triage.ingest.pipeline import IncomingMail
from triage.outbox.mails import NAME_LIMIT, SUBJECT_LIMIT
from triage.outbox.queue import enqueue_handoff
from triage.outbox.sender import OutboxSender
from triage.store.models import Ticket

OURS = "Authentication-Results: mx.example.org; dmarc={} header.from=volunteers.example\n"


def undated(raw: bytes) -> bytes:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    del message["Date"]
    return message.as_bytes()


def parsed(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def test_robot_bulk_list_and_undated_mail_get_no_acknowledgment(make_app: MakeApp, clock: Clock) -> None:
    """Null Return-Path, Precedence bulk, List-* without List-Id, X-Auto-Response-Suppress, no Date: skipped, with codes."""
    app = make_app()
    ingestor = app.ingestor(clock=clock)
    cases = {
        "null-return-path": make_mail(sender="a@v.example", headers={"Return-Path": "<>"}),
        "bulk": make_mail(sender="b@v.example", headers={"Precedence": "bulk"}),
        "list-headers": make_mail(sender="c@v.example", headers={"List-Unsubscribe": "<mailto:u@lists.example>"}),
        "suppress-auto-reply": make_mail(sender="d@v.example", headers={"X-Auto-Response-Suppress": "All"}),
        "no-date": undated(make_mail(sender="e@v.example")),
    }
    for raw in cases.values():
        assert ingestor.ingest(raw).ticket_reference is not None  # each still opens its ticket
    assert outbox_rows(app) == []
    assert [d["reasons"] for d in actions(app, "mail-skipped")] == [[code] for code in cases]
    ingestor.ingest(make_mail(sender="f@v.example"))
    assert [row.to_addr for row in outbox_rows(app)] == ["f@v.example"]


def test_sub_addresses_share_one_rate_limit(make_app: MakeApp, clock: Clock) -> None:
    """victim+1@, Victim+2@ ...: one mailbox, three acknowledgments an hour in all."""
    app = make_app()
    ingestor = app.ingestor(clock=clock)
    for n in range(6):
        ingestor.ingest(make_mail(sender=f"{'Victim' if n % 2 else 'victim'}+{n}@victim.example",
                                  subject=f"Question {n}"))
    assert len(outbox_rows(app)) == 3
    assert [d["reasons"] for d in actions(app, "mail-skipped")] == [["rate-limit"]] * 3


def test_one_domain_gets_at_most_its_hourly_acknowledgments(make_app: MakeApp, clock: Clock) -> None:
    """Many addresses at one domain: the per-domain limit; other domains and the next hour are unaffected."""
    app = make_app(TRIAGE_OUTBOX_RATE_LIMIT_PER_DOMAIN_PER_HOUR="4")
    ingestor = app.ingestor(clock=clock)
    for n in range(6):
        ingestor.ingest(make_mail(sender=f"user{n}@victim.example", subject=f"Question {n}"))
    ingestor.ingest(make_mail(sender="ada@volunteers.example"))
    assert [row.to_addr.split("@")[1] for row in outbox_rows(app)] == ["victim.example"] * 4 + ["volunteers.example"]
    assert [d["reasons"] for d in actions(app, "mail-skipped")] == [["domain-rate-limit"]] * 2
    clock.advance(minutes=61)
    ingestor.ingest(make_mail(sender="user9@victim.example", date=clock.now))
    assert outbox_rows(app)[-1].to_addr == "user9@victim.example"


def test_a_forged_from_gets_no_acknowledgment(make_app: MakeApp, clock: Clock) -> None:
    """Our server's DMARC fail: never acknowledged; with acknowledge_unauthenticated off, only a pass is."""
    app = make_app(TRIAGE_MAIL_TRUSTED_AUTHSERV_IDS="mx.example.org")
    ingestor = app.ingestor(clock=clock)
    ingestor.ingest(OURS.format("fail").encode() + make_mail())
    assert outbox_rows(app) == [] and actions(app, "mail-skipped")[0]["reasons"] == ["dmarc-fail"]

    strict = make_app(TRIAGE_MAIL_TRUSTED_AUTHSERV_IDS="mx.example.org",
                      TRIAGE_OUTBOX_ACKNOWLEDGE_UNAUTHENTICATED="false")
    ingestor = strict.ingestor(clock=clock)
    ingestor.ingest(make_mail(message_id="<n1@volunteers.example>", subject="No result"))
    ingestor.ingest(OURS.format("pass").encode() + make_mail(message_id="<p1@volunteers.example>", subject="Pass"))
    [row] = outbox_rows(strict)
    assert row.subject.endswith("Re: Pass") and actions(strict, "mail-skipped")[-1]["reasons"] == ["unauthenticated"]


def test_echoed_subject_and_name_are_capped(make_app: MakeApp, clock: Clock) -> None:
    """An 884-character subject and a 500-character name reach the acknowledgment and hand-off notice capped."""
    app = make_app()
    pitch = "BUY CHEAP WATCHES AT spam.example " * 26  # 884 characters: stored whole (the column takes 1,000)
    name = "Visit spam.example now " * 22
    app.ingestor(clock=clock).ingest(
        make_mail(sender=f'"{name}" <ada@volunteers.example>', subject=pitch))
    with app.sessions.begin() as session:
        enqueue_handoff(session, session.scalars(select(Ticket)).one(), "legal", "liaison", clock.now, wiring=app.wiring)
    ack, _team, notice = outbox_rows(app)
    for row in (ack, notice):
        message = parsed(row.raw)
        subject = str(message["Subject"])
        assert subject.endswith("…") and len(subject) <= SUBJECT_LIMIT + 40
        [to] = message["To"].addresses
        assert len(to.display_name.replace(" ", "")) <= NAME_LIMIT  # a header parser may add a space in folding
        body = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert body.count("BUY CHEAP WATCHES") <= 4 and body.count("Visit spam.example") <= 3


def test_end_to_end_only_good_mail_is_acknowledged(make_app: MakeApp, smtp_sink: SmtpSink, clock: Clock) -> None:
    """One batch of volunteers and backscatter bait through ingest and the real SMTP sink: acks reach volunteers only."""
    app = make_app(TRIAGE_SMTP_HOST=smtp_sink.host, TRIAGE_SMTP_PORT=str(smtp_sink.port),
                   TRIAGE_SMTP_SECURITY="none", TRIAGE_MAIL_TRUSTED_AUTHSERV_IDS="mx.example.org")
    good = [make_mail(sender=f"Vol {n} <vol{n}@volunteers{n}.example>", subject=f"Question {n}") for n in range(3)]
    bait = [make_mail(sender=f"victim+{n}@victim.example", subject="x" * 500) for n in range(8)]
    bait += [make_mail(sender="list@lists.example", headers={"Precedence": "list"}),
             make_mail(sender="robot@robots.example", headers={"Return-Path": "<>"}),
             OURS.format("fail").encode() + make_mail(sender="ceo@volunteers.example"),
             undated(make_mail(sender="nodate@v.example"))]
    mails = [IncomingMail(raw) for pair in zip(bait, good + [b""] * len(bait), strict=False) for raw in pair if raw]
    outcomes = app.ingestor(clock=clock).ingest_many(mails)
    assert {o.status for o in outcomes} == {"stored"}
    assert OutboxSender(app.sessions, app.settings, clock=clock).send_due().sent == 6
    delivered = sorted(rcpt for m in smtp_sink.messages for rcpt in m.rcpt_tos)
    assert delivered == ["victim+0@victim.example", "victim+1@victim.example", "victim+2@victim.example"] + [
        f"vol{n}@volunteers{n}.example" for n in range(3)]
    assert all(len(str(parsed(m.raw)["Subject"])) <= SUBJECT_LIMIT + 40 for m in smtp_sink.messages)
