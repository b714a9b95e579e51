"""Property test: hostile mail bytes through parse -> store (a real SQLite file) -> compose.

Whatever the headers of an arriving mail hold, with acknowledgments on: the mail is stored or
quarantined (never an exception out of the ingest), and every mail triage then builds about
its ticket (the acknowledgment, the hand-off, the liaison's reply) is either a valid message
or a ComposeError that is handled: recorded as a failed outbox row (automatic mail) or refused
with the reason (the liaison's reply). Bounded: one database for the module, 60 mails.
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from datetime import UTC, datetime
from email.errors import ObsoleteHeaderDefect
from email.utils import format_datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from triage.bootstrap import App, bootstrap
from triage.config import load_settings
from triage.ingest.pipeline import Ingestor
from triage.outbox import wiring
from triage.outbox.compose import ComposeError, to_bytes
from triage.outbox.queue import OutboxError, build_reply, enqueue_handoff
from triage.store.models import Event, Message, Ticket
from triage.store.outbox_models import Outbox, OutboxStatus

HOSTILE = ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\x00", "\x1b", " ", "\t", "<", ">",
           "[", "]", "(", ")", '"', "\\", ",", ";", ":", "@", "=?utf-8?q?=C3=A9?=", "é", "😀", "..", "\r\n ", "\n"]
WORD = st.text(st.sampled_from("abcxyz019.-_+"), min_size=1, max_size=10)
VALUE = st.lists(st.one_of(WORD, st.sampled_from(HOSTILE), st.text(max_size=8)), min_size=1, max_size=5).map("".join)
ADDRESS = st.one_of(
    st.builds(lambda local, domain: f"{local}@{domain}", VALUE, VALUE),
    st.builds(lambda local, literal: f"{local}@[{literal}", WORD, st.sampled_from(["192.0.2.7", "192.0.2.7]x", ""])),
    st.builds(lambda name, local: f"{name} <{local}@volunteers.example>", VALUE, WORD),
)
MSG_ID = st.one_of(st.builds(lambda left, right: f"<{left}@{right}>", VALUE, VALUE), VALUE)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    url = f"sqlite:///{tmp_path_factory.mktemp('poison') / 'triage.db'}"
    settings = load_settings(environ={"TRIAGE_DATABASE_URL": url, "TRIAGE_OUTBOX_AUTO_ACKNOWLEDGE": "true",
                                      "TRIAGE_OUTBOX_RATE_LIMIT_PER_HOUR": "1000",
                                      "TRIAGE_OUTBOX_RATE_LIMIT_PER_DOMAIN_PER_HOUR": "1000",
                                      "TRIAGE_LOG_LEVEL": "error"})
    application = bootstrap(settings)
    wiring.install(settings)
    yield application
    wiring.uninstall()
    application.close()


def raw_mail(n: int, sender: str, message_id: str, in_reply_to: str | None, references: list[str], subject: str,
             encoding: str) -> bytes:
    """A mail as an attacker writes it: header lines joined by hand, each value whatever was drawn."""
    lines = [f"From: {sender}", "To: liaison@example.org", f"Subject: {subject}",
             f"Date: {format_datetime(datetime.now(UTC))}", f"Message-ID: {message_id}"]
    if in_reply_to is not None:
        lines.append(f"In-Reply-To: {in_reply_to}")
    if references:
        lines.append("References: " + " ".join(references))
    lines += ["MIME-Version: 1.0", f"Content-Type: text/plain; charset={encoding}", "", f"Mail number {n}, hello."]
    return "\r\n".join(lines).encode(encoding, "surrogateescape" if encoding == "utf-8" else "replace")


def assert_valid(raw: bytes) -> None:
    """What triage would send: 7-bit CRLF lines within 998 octets, addresses read back without defects."""
    assert raw.isascii() and max(len(line) for line in raw.split(b"\r\n")) <= 998
    back = email.message_from_bytes(raw, policy=email.policy.default)
    for name in ("From", "To", "Reply-To"):
        assert back[name].addresses and not [d for d in back[name].defects if not isinstance(d, ObsoleteHeaderDefect)]
    for name in ("Message-ID", "In-Reply-To", "References"):
        wire = email.message_from_bytes(raw, policy=email.policy.compat32)[name]
        assert wire is None or all(i.isprintable() and i.isascii() and i[0] == "<" for i in str(wire).split())


counter = iter(range(10**9))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@example(sender="x@[192.0.2.7", message_id="<a\x0bb@v.example>", in_reply_to="<c\u2028d@v.example>",
         references=["<e f@v.example>", "<g\x85h@v.example>"], subject="Re: \x1c hi", encoding="utf-8")
@given(sender=ADDRESS, message_id=MSG_ID, in_reply_to=st.one_of(st.none(), MSG_ID),
       references=st.lists(MSG_ID, max_size=3), subject=VALUE, encoding=st.sampled_from(["utf-8", "latin-1"]))
def test_hostile_headers_through_parse_store_and_compose(
    app: App, sender: str, message_id: str, in_reply_to: str | None, references: list[str], subject: str,
    encoding: str,
) -> None:
    """Hostile header values: stored or quarantined; each mail about the ticket valid, or its failure handled."""
    n = next(counter)
    outcome = Ingestor(app.sessions, app.settings.mail).ingest(
        raw_mail(n, sender, message_id, in_reply_to, references, subject, encoding))
    assert outcome.status in ("stored", "duplicate", "quarantined")
    if outcome.status != "stored" or outcome.message_pk is None:
        return
    with app.sessions.begin() as session:
        ticket_id = session.get_one(Message, outcome.message_pk).ticket_id
        if ticket_id is None:
            return
        ticket = session.get_one(Ticket, ticket_id)
        handoff = enqueue_handoff(session, ticket, "legal", "liaison:test", datetime.now(UTC))
        assert [r.template for r in handoff]  # queued, skipped or failed: never raised
        try:
            _, reply = build_reply(session, ticket, template="reply", body="On it.", now=datetime.now(UTC))
            assert_valid(to_bytes(reply))
        except (ComposeError, OutboxError) as refused:  # `triage reply` prints it and exits 2
            assert str(refused)
    with app.sessions() as session:
        rows = session.scalars(select(Outbox).where(Outbox.ticket_id == ticket_id)).all()
        failures = session.scalars(select(Event).where(Event.ticket_id == ticket_id,
                                                       Event.action == "mail-failed")).all()
    for row in rows:
        if row.raw is None:
            assert row.status is OutboxStatus.failed and (row.last_error or "").startswith("not built: ")
            assert row.id in {e.detail["outbox"] for e in failures}
        else:
            assert row.status is OutboxStatus.pending
            assert_valid(row.raw)


def test_the_module_database_is_a_real_file(app: App) -> None:
    """The property test above runs against a real SQLite file, not an in-memory stand-in."""
    assert Path(app.engine.url.database or "").is_file()
