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
from triage.ingest.pipeline import IngestOutcome
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
    yield application
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
    outcome = app.ingestor().ingest(
        raw_mail(n, sender, message_id, in_reply_to, references, subject, encoding))
    assert_answered_or_handled(app, outcome)


def assert_answered_or_handled(app: App, outcome: IngestOutcome) -> None:
    """The mail is stored or quarantined; every mail about its ticket is valid, or its failure handled."""
    assert outcome.status in ("stored", "duplicate", "quarantined")
    if outcome.status != "stored" or outcome.message_pk is None:
        return
    with app.sessions.begin() as session:
        ticket_id = session.get_one(Message, outcome.message_pk).ticket_id
        if ticket_id is None:
            return
        ticket = session.get_one(Ticket, ticket_id)
        handoff = enqueue_handoff(session, ticket, "legal", "liaison:test", datetime.now(UTC), wiring=app.wiring)
        assert [r.template for r in handoff]  # queued, skipped or failed: never raised
        try:
            _, reply = build_reply(session, ticket, template="reply", body="On it.", now=datetime.now(UTC), wiring=app.wiring)
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


# -- MIME structure: hostile trees of parts, each value and boundary drawn ---------------------

CTYPES = ["text/plain", "text/html", "text/enriched", "image/png", "application/octet-stream", "message/rfc822",
          "message/delivery-status", "text/rfc822-headers", "multipart/mixed", "bild/png\u00e9", "a/b/c", "", "text"]
CHARSETS = ["utf-8", "latin-1", "utf-16", "x-unknown", "iso-2022-jp", "", '"utf-8', "utf-8\x0b"]
ENCODINGS = ["7bit", "8bit", "base64", "quoted-printable", "x-uuencode", "binary", "b\u2028ase64", ""]
BOUNDARY = st.one_of(WORD, VALUE, st.just(""), st.just("--"), st.just("a" * 200))
LEAF_BODY = st.one_of(st.binary(max_size=300), VALUE.map(lambda v: v.encode("utf-8", "surrogateescape")),
                      st.just(b"=?=\r\n=\r\n=3D"), st.just(b"QUJD\r\n!!!\r\nREVG==="))


def _head(ctype: str, params: str, encoding: str, filename: str | None) -> list[str]:
    lines = [f"Content-Type: {ctype}{params}"]
    if encoding:
        lines.append(f"Content-Transfer-Encoding: {encoding}")
    if filename is not None:
        lines.append(f'Content-Disposition: attachment; filename="{filename}"')
    return lines


@st.composite
def mime_part(draw: st.DrawFn, depth: int = 0) -> tuple[list[str], bytes]:
    """(header lines, body bytes) of one part: a leaf, or a multipart whose boundaries may lie."""
    if depth < 3 and draw(st.integers(0, 2)) == 0:
        boundary = draw(BOUNDARY)
        subtype = draw(st.sampled_from(["mixed", "alternative", "related", "report", "digest", "signed"]))
        children = draw(st.lists(mime_part(depth + 1), max_size=4))
        chunks = [draw(st.sampled_from([b"", b"preamble\r\n"]))]
        for head, body in children:
            chunks.append(f"--{boundary}\r\n".encode("utf-8", "surrogateescape"))
            chunks.append("\r\n".join(head).encode("utf-8", "surrogateescape") + b"\r\n\r\n" + body + b"\r\n")
        if draw(st.booleans()):  # a close boundary, or none: the mail ends inside the multipart
            chunks.append(f"--{boundary}--\r\n".encode("utf-8", "surrogateescape"))
        return [f'Content-Type: multipart/{subtype}; boundary="{boundary}"'], b"".join(chunks)
    ctype = draw(st.sampled_from(CTYPES))
    params = draw(st.sampled_from(["", "; charset={}", "; name={}", "; format=flowed; delsp=yes"]))
    params = params.format(draw(st.sampled_from(CHARSETS)) if "charset" in params else draw(VALUE))
    filename = draw(st.one_of(st.none(), VALUE, st.just("../../etc/passwd"), st.just("=?utf-8?b?Li4vLi4v?="),
                              st.just("n" * 3000 + ".pdf")))
    return _head(ctype, params, draw(st.sampled_from(ENCODINGS)), filename), draw(LEAF_BODY)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(tree=mime_part())
def test_hostile_mime_structure_through_parse_store_and_compose(app: App, tree: tuple[list[str], bytes]) -> None:
    """Hostile MIME trees (lying boundaries, unknown types and charsets, broken encodings, file
    names that look like paths): stored or quarantined, never raised; the mails about the ticket valid."""
    n = next(counter)
    head, body = tree
    top = [f"From: Vol {n} <vol{n}@volunteers.example>", "To: liaison@example.org", f"Subject: Tree {n}",
           f"Date: {format_datetime(datetime.now(UTC))}", f"Message-ID: <tree{n}@volunteers.example>",
           "MIME-Version: 1.0", *head]
    raw = "\r\n".join(top).encode("utf-8", "surrogateescape") + b"\r\n\r\n" + body
    outcome = app.ingestor().ingest(raw)
    assert outcome.status in ("stored", "quarantined")
    if outcome.status == "stored" and outcome.message_pk is not None:
        with app.sessions() as session:
            stored = session.get_one(Message, outcome.message_pk)
            assert "\x00" not in stored.body_text  # binary data never becomes the ticket's text
            assert all(a.filename is None or len(a.filename) <= 255 for a in stored.attachments)
    assert_answered_or_handled(app, outcome)


def test_the_module_database_is_a_real_file(app: App) -> None:
    """The property test above runs against a real SQLite file, not an in-memory stand-in."""
    assert Path(app.engine.url.database or "").is_file()
