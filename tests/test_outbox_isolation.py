"""One ticket's mail never stops anyone else's: acknowledgments, bounces and delivery, one ticket at a time.

The poison values of issue 11 class 1 (line breaks `str.splitlines()` knows inside a msg-id,
an unclosed domain literal in From, a space inside a msg-id) are injected into the parsed mail
after parsing, as a parser that let them through would leave them, so these tests hold whatever
the parser learns to clean. A fault no real part raises on demand (any exception at all) is
injected where said.
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from tests.conftest import Clock, make_mail
from tests.servers.smtp_sink import SmtpSink, fixture_make_smtp_sink, fixture_smtp_sink  # noqa: F401 - fixtures
from tests.test_outbox import MakeApp, actions, dsn, fixture_make_app, outbox_rows  # noqa: F401 - fixture: make_app
from triage.cli import cli
from triage.ingest.parse import parse_mail
from triage.ingest.pipeline import IncomingMail
from triage.outbox import bounces, queue
from triage.outbox.sender import OutboxSender
from triage.store.models import Contact, Message, Ticket
from triage.store.outbox_models import Outbox, OutboxStatus

POISONS: dict[str, dict[str, Any]] = {  # ParsedMail fields as a lax parser could leave them
    "domain literal in From": {"from_addr": "x@[192.0.2.7"},
    "VT in Message-ID": {"message_id": "<p\x0bx@volunteers.example>"},
    "U+2028 in In-Reply-To": {"in_reply_to": "<p\u2028x@volunteers.example>"},
    "NEL and GS in References": {"references": ["<ok@volunteers.example>", "<p\x85x@v.example>", "<q\x1dy@v.example>"]},
    "space in msg-ids": {"message_id": "<p x@volunteers.example>", "in_reply_to": "<a b@volunteers.example>"},
    "U+2029 in In-Reply-To, FF and RS in References": {"in_reply_to": "<a\u2029b@v.example>",
                                                        "references": ["<c\x0cd@v.example>", "<e\x1ef@v.example>"]},
}


def mail_from(n: int, **changes: Any) -> IncomingMail:
    """A volunteer's mail (its own domain, so no per-domain limit interferes), parsed, then changed."""
    raw = make_mail(sender=f"Vol {n} <vol{n}@volunteers{n}.example>", message_id=f"<m{n}@volunteers{n}.example>",
                    subject=f"Question {n}")
    return IncomingMail(raw, source=f"test:{n}", parsed=dataclasses.replace(parse_mail(raw), **changes))


def wire(raw: bytes | None) -> email.message.Message:
    assert raw is not None
    return email.message_from_bytes(raw, policy=email.policy.compat32)  # ids as written


def test_poison_values_never_stop_the_batch_nor_another_acknowledgment(make_app: MakeApp, clock: Clock) -> None:
    """Good and poison mail in one ingest batch, acknowledgments on: every mail is stored; each good
    one gets its acknowledgment; a poison msg-id is left out of the answer's threading headers; a
    poison address is a failed outbox row without bytes and a `mail-failed` event on its ticket."""
    app = make_app()
    batch = [mail_from(0), *(mail_from(n, **poison) for n, poison in enumerate(POISONS.values(), start=1)),
             mail_from(len(POISONS) + 1)]
    outcomes = app.ingestor(clock=clock).ingest_many(batch)
    assert [o.status for o in outcomes] == ["stored"] * len(batch)
    rows = {row.ticket_id: row for row in outbox_rows(app)}
    assert len(rows) == len(batch)
    poison_ticket = 1 + list(POISONS).index("domain literal in From") + 1
    failed = rows.pop(poison_ticket)
    assert failed.status is OutboxStatus.failed and failed.raw is None and failed.message_pk is None
    assert failed.last_error is not None and "x@[192.0.2.7" in failed.last_error
    assert failed.to_addr == "x@[192.0.2.7" and failed.template == "acknowledgment"
    [event] = actions(app, "mail-failed")
    assert event["outbox"] == failed.id and "x@[192.0.2.7" in str(event["why"])
    for row in rows.values():
        assert row.status is OutboxStatus.pending and row.raw is not None
        headers = wire(row.raw)
        ids = str(headers["In-Reply-To"] or "").split() + str(headers["References"] or "").split()
        assert all(i.startswith("<") and i.endswith(">") and i.isascii() and i.isprintable() for i in ids), ids
    assert str(wire(rows[1].raw)["In-Reply-To"]) == "<m0@volunteers0.example>"  # a good mail is threaded as ever


def test_any_exception_building_one_acknowledgment_is_recorded_and_isolated(
    make_app: MakeApp, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not only ComposeError: whatever raises while one ticket's acknowledgment is built (injected)
    rolls back that acknowledgment alone and is recorded; the batch and the others are kept."""
    app = make_app()
    real = queue._render_compose

    def flaky(*args: Any, **kwargs: Any) -> Any:
        if kwargs["to"].address == "vol1@volunteers1.example":
            raise KeyError("a template variable vanished")
        return real(*args, **kwargs)

    monkeypatch.setattr(queue, "_render_compose", flaky)
    outcomes = app.ingestor(clock=clock).ingest_many([mail_from(n) for n in range(3)])
    assert [o.status for o in outcomes] == ["stored"] * 3
    assert [(r.ticket_id, r.status) for r in outbox_rows(app)] == [
        (1, OutboxStatus.pending), (2, OutboxStatus.failed), (3, OutboxStatus.pending)]
    assert "KeyError: 'a template variable vanished'" in (outbox_rows(app)[1].last_error or "")
    with app.sessions() as session:  # nothing of the failed attempt is left behind
        assert session.scalars(select(Message).where(Message.ticket_id == 2)).all()[-1].direction.value == "inbound"


def test_one_bounce_that_fails_is_recorded_and_the_others_are_handled(
    make_app: MakeApp, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two bounces of our mail in one batch; handling the first raises (injected): it gets a
    `bounce-failed` event on its ticket, the second still marks its address, every mail is stored."""
    app = make_app()
    ingestor = app.ingestor(clock=clock)
    ingestor.ingest_many([mail_from(0), mail_from(1)])
    acks = outbox_rows(app)
    real = bounces._handle_one

    def flaky(session: Any, mail: Any, outcome: Any, sent: Outbox, now: Any) -> Any:
        if sent.id == acks[0].id:
            raise UnicodeError("a report in an encoding nobody knows")
        return real(session, mail, outcome, sent, now)

    monkeypatch.setattr(bounces, "_handle_one", flaky)
    outcomes = ingestor.ingest_many([
        IncomingMail(dsn(acks[0].message_id, "vol0@volunteers0.example", "<dsn-0@mx.example>")),
        IncomingMail(dsn(acks[1].message_id, "vol1@volunteers1.example", "<dsn-1@mx.example>")),
        IncomingMail(make_mail(sender="later@volunteers9.example", message_id="<later@volunteers9.example>")),
    ])
    assert [o.status for o in outcomes] == ["stored"] * 3
    [failure] = actions(app, "bounce-failed")
    assert failure["outbox"] == acks[0].id and "UnicodeError" in str(failure["why"])
    assert [a["outbox"] for a in actions(app, "bounced")] == [acks[1].id]
    with app.sessions() as session:
        assert {c.address: c.bouncing for c in session.scalars(select(Contact))}["vol1@volunteers1.example"]


@pytest.mark.parametrize("recipients", [
    ["vol0@volunteers0.example\r\nRCPT TO:<evil@attacker.example>"],  # smtplib would send vol0@ alone
    ["x@[192.0.2.7"],  # smtplib would send x@[192.0.2.7], another address
    ["vol0@volunteers0.example, evil@attacker.example"],
    [],  # no recipient at all: refused by name (smtplib itself would raise IndexError)
], ids=["crlf", "domain-literal", "two-in-one", "none"])
def test_the_sender_fails_a_mail_it_cannot_send_as_written_and_delivers_the_rest(
    make_app: MakeApp, smtp_sink: SmtpSink, clock: Clock, db_url: str, recipients: list[str]
) -> None:
    """`triage outbox --send`: a queued mail whose recipients cannot go out as written (as a row
    written before composition checked them could hold) fails alone, with the reason, before
    anything is sent; the session goes on and every other mail reaches the real SMTP server once."""
    env = {"TRIAGE_SMTP_HOST": smtp_sink.host, "TRIAGE_SMTP_PORT": str(smtp_sink.port), "TRIAGE_SMTP_SECURITY": "none"}
    app = make_app(**env)
    app.ingestor(clock=clock).ingest_many([mail_from(n) for n in range(3)])
    with app.sessions.begin() as session:
        session.execute(update(Outbox).where(Outbox.id == 1).values(recipients=recipients))
    runner = CliRunner()
    result = runner.invoke(cli, ["outbox", "--send"], env={"TRIAGE_DATABASE_URL": db_url, **env})
    assert "2 sent, 0 deferred, 1 failed" in result.stdout, result.output
    assert result.exit_code == 1  # something failed: the exit status says so
    assert sorted(m.rcpt_tos for m in smtp_sink.messages) == [("vol1@volunteers1.example",),
                                                               ("vol2@volunteers2.example",)]
    poison = outbox_rows(app)[0]
    assert poison.status is OutboxStatus.failed and "refused before sending" in (poison.last_error or "")
    assert recipients or (poison.last_error or "").endswith("refused before sending: the mail has no recipient")
    listing = runner.invoke(cli, ["outbox"], env={"TRIAGE_DATABASE_URL": db_url})
    assert "#1" in listing.stdout and "refused before sending" in listing.stdout


def test_a_mail_never_built_is_listed_never_sent_and_never_retried(
    make_app: MakeApp, smtp_sink: SmtpSink, clock: Clock, db_url: str
) -> None:
    """The failed row of an unbuilt mail shows in `triage outbox` with its reason; the sender never
    claims it (even if it were made pending by hand) and `--retry` refuses it."""
    env = {"TRIAGE_SMTP_HOST": smtp_sink.host, "TRIAGE_SMTP_PORT": str(smtp_sink.port), "TRIAGE_SMTP_SECURITY": "none"}
    app = make_app(**env)
    app.ingestor(clock=clock).ingest_many([mail_from(0, from_addr="x@[192.0.2.7")])
    [row] = outbox_rows(app)
    runner = CliRunner()
    listing = runner.invoke(cli, ["outbox"], env={"TRIAGE_DATABASE_URL": db_url})
    assert f"#{row.id}" in listing.stdout and "failed" in listing.stdout and "not built:" in listing.stdout
    retried = runner.invoke(cli, ["outbox", "--retry", str(row.id)], env={"TRIAGE_DATABASE_URL": db_url, **env})
    assert retried.exit_code == 1 and "queued again: none" in retried.output
    assert "never built" in retried.output
    with app.sessions.begin() as session:  # forced back into the queue by hand: still nothing to send
        session.execute(update(Outbox).values(status=OutboxStatus.pending))
    assert OutboxSender(app.sessions, app.settings, clock=clock).send_due().touched == 0
    assert smtp_sink.messages == [] and outbox_rows(app)[0].attempts == 0
    with app.sessions() as session:
        assert session.scalars(select(Ticket)).one().contact_id is not None  # the mail itself is stored
