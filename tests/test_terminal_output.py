"""Terminal injection: mail text never reaches the liaison's terminal as control characters.

Hostile strings (ESC/OSC/CSI sequences, C0 and C1 controls, every line break `str.splitlines()`
knows, bidi overrides) are written into every field the commands print, in a real SQLite
database, and the real `triage` commands run over it: human output holds no control character
but the newlines of its own layout, and `--json` output is exactly one object per line under
`str.splitlines()`, losing nothing of the stored text.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from triage.bootstrap import bootstrap
from triage.cli import cli
from triage.config import load_settings
from triage.store.blobs import put_blob
from triage.store.db import utcnow
from triage.store.models import (
    Attachment,
    Contact,
    Direction,
    Event,
    Message,
    Quarantine,
    Suggestion,
    Ticket,
    TicketStatus,
)
from triage.store.outbox_models import Outbox, OutboxStatus
from triage.terminal import escape, escape_text, json_line

ROOT = Path(__file__).resolve().parents[1]
# What a terminal must never receive from mail: C0 but LF, DEL, C1, the Unicode line and paragraph
# separators and the bidi embeddings, overrides and isolates.
FORBIDDEN = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
ATTACKS = [
    "\x1b[31m", "\x1b[2J\x1b[H", "\x1b]0;owned\x07", "\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\",
    "\x9b31m", "\x9d0;owned\x9c", "\r", "\r\n", "\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85",
    "\u2028", "\u2029", "\u202e", "\u2066\u202dabc\u2069", "\x00", "\x7f", "\x08\x08", "\t",
]
hostile = st.lists(
    st.one_of(st.sampled_from(ATTACKS), st.text(st.characters(codec="utf-8"), max_size=6)),
    min_size=1, max_size=5,
).map(lambda parts: "".join(parts) + "\x1b[0m")
FIELDS = ("subject", "name", "addr", "body", "reason", "source", "team", "word", "flag")


def clean(text: str) -> bool:
    return FORBIDDEN.search(text) is None


def test_escape_shows_every_control_character_and_keeps_text() -> None:
    """escape() turns each dangerous character into a visible escape; ordinary text is unchanged."""
    assert escape("Caf\u00e9 \u05e9\u05dc\u05d5\u05dd \U0001f600") == "Caf\u00e9 \u05e9\u05dc\u05d5\u05dd \U0001f600"
    assert escape("a\x1b]0;t\x07b\r\nc\u202ed\x9be\u2028") == "a\\x1b]0;t\\x07b\\r\\nc\\u202ed\\x9be\\u2028"
    assert escape_text("line 1\r\nline\t2\x1b[2J\n") == "line 1\nline    2\\x1b[2J\n"
    for code in [*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]:
        assert clean(escape(chr(code))), hex(code)
    value = {"s": "".join(ATTACKS)}
    assert json.loads(json_line(value)) == value and len(json_line(value).splitlines()) == 1


@pytest.fixture
def desk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Callable[..., Result], Any]:
    """The real CLI over a real SQLite file, run from an empty folder."""
    monkeypatch.chdir(tmp_path)
    env = {
        "TRIAGE_CONFIG": "", "TRIAGE_DATABASE_URL": f"sqlite:///{tmp_path / 'triage.db'}",
        "TRIAGE_ROUTING_MODEL_PATH": str(tmp_path / "model"),
        "TRIAGE_ROUTING_TEAMS_FILE": str(ROOT / "data" / "teams.toml"),
        "TRIAGE_ROUTING_AUTO_TRAIN": "false",  # queue lists the planted suggestions; no model needed
    }
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(cli, list(args), env=env, catch_exceptions=False)

    app = bootstrap(load_settings(environ=env))
    yield invoke, app
    app.close()


def plant(app: Any, n: int, text: dict[str, str]) -> str:
    """One ticket, its message, attachment, event and suggestion, an unmatched bounce, a
    quarantined mail and a failed outbox row, every text field hostile. Returns the reference."""
    now = utcnow()
    with app.sessions.begin() as session:
        contact = Contact(address=f"{n}{text['addr']}", name=text["name"], first_seen=now, last_seen=now)
        ticket = Ticket(reference=f"T-2026-9{n:04d}", subject=text["subject"], status=TicketStatus.new,
                        contact=contact, flag=text["flag"], created_at=now, updated_at=now)
        raws = [f"{kind} {n} {text['body']}".encode() for kind in ("mail", "bounce", "junk")]
        common = {"references": [], "cc_addrs": [], "received_at": now, "date": now, "extra": {}, "size": 10}
        message = Message(
            ticket=ticket, direction=Direction.inbound, message_id=f"<{n}.{text['addr']}>", from_addr=text["addr"],
            from_name=text["name"], to_addrs=[text["addr"]], subject=text["subject"], body_text=text["body"],
            new_text=text["body"], kind="normal", kind_reason=text["reason"], defects=[text["reason"]],
            raw_sha256=put_blob(session, raws[0]), source=text["source"], thread_reason=text["reason"], **common,
        )
        session.add(Attachment(message=message, blob_sha256=message.raw_sha256, filename=text["name"],
                               content_type=text["reason"][:255], size=3))
        session.add(Event(ticket=ticket, at=now, actor=text["name"][:200], action=text["word"][:64],
                          detail={"why": text["reason"]}))
        session.add(Message(
            direction=Direction.inbound, message_id=f"<b{n}.{text['addr']}>", from_addr=text["addr"],
            to_addrs=[], subject=text["subject"], kind="bounce", kind_reason=text["reason"], defects=[],
            raw_sha256=put_blob(session, raws[1]), thread_reason=text["reason"],
            **{**common, "extra": {"bounced_recipients": [text["addr"]]}},
        ))
        session.add(Quarantine(raw_sha256=put_blob(session, raws[2]), source=text["source"], stage="parse",
                               error=text["reason"], created_at=now, updated_at=now))
        session.flush()
        session.add(Suggestion(ticket_id=ticket.id, team=text["team"][:64], confidence=0.5,
                               model_version=text["word"][:100], ranked=[[text["team"], 0.5]],
                               evidence=[{"term": text["word"], "weight": 0.25, "sentence": text["body"]},
                                         [f"words:{text['word']}", 0.2]], created_at=now))
        session.add(Outbox(
            message_id=f"<o{n}@example.org>", ticket_id=ticket.id, template=text["word"][:64],
            envelope_from="liaison@example.org", recipients=[text["addr"]], to_addr=text["addr"][:320],
            subject=text["subject"], raw=b"x", status=OutboxStatus.failed, attempts=1, next_attempt_at=now,
            last_error=text["reason"], actor=text["name"][:200], created_at=now, updated_at=now,
        ))
        return ticket.reference


def hostile_mail(text: dict[str, str]) -> bytes:
    """A mail whose display name, subject and body decode to the hostile text."""
    def word(value: str) -> str:
        return "=?utf-8?b?" + base64.b64encode(value.encode()).decode() + "?="

    return (
        f"From: {word(text['name'])} <a@b.example>\r\nTo: liaison@example.org\r\nSubject: {word(text['subject'])}\r\n"
        f"Message-ID: <p@b.example>\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Transfer-Encoding: base64\r\n\r\n"
    ).encode() + base64.encodebytes(text["body"].encode())


HUMAN = [["tickets"], ["show", "{ref}"], ["queue"], ["unmatched"], ["quarantine"], ["outbox"], ["stats"],
         ["remind", "--dry-run"], ["parse", "{mail}"], ["reply", "{ref}", "--preview", "--body-file", "{body}"]]
JSON = [["tickets", "--json"], ["show", "{ref}", "--json"], ["queue", "--json"], ["unmatched", "--json"],
        ["quarantine", "--json"], ["outbox", "--json"], ["stats", "--json"], ["remind", "--dry-run", "--json"],
        ["parse", "{mail}", "{mail}", "--json"]]


# An example runs every command twice; shrinking a failure would take minutes, so a failure is
# reported as generated (the listing of commands in the assertion says which printed what).
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
          phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(text=st.fixed_dictionaries({field: hostile for field in FIELDS}))
def test_no_command_prints_a_control_character_from_mail(desk: Any, tmp_path: Path, text: dict[str, str]) -> None:
    """Every human-readable listing escapes what mail put in any field; every --json output is one
    object per line under str.splitlines() and round-trips the stored text."""
    invoke, app = desk
    n = len(list(tmp_path.glob("mail-*.eml")))
    ref = plant(app, n, text)
    mail = tmp_path / f"mail-{n}.eml"
    mail.write_bytes(hostile_mail(text))
    body = tmp_path / "body.txt"
    body.write_text("Thanks, we will look into it.\n")
    values = {"ref": ref, "mail": str(mail), "body": str(body)}
    dirty = []
    for command in HUMAN:
        result = invoke(*[part.format(**values) for part in command])
        if not (clean(result.stdout) and clean(result.stderr)):
            dirty.append((command, result.stdout, result.stderr))
    for command in JSON:
        result = invoke(*[part.format(**values) for part in command])
        lines = result.stdout.splitlines()
        if len(lines) != (command.count("{mail}") or 1) or not (clean(result.stdout) and clean(result.stderr)):
            dirty.append((command, result.stdout, result.stderr))
            continue
        for line in lines:
            json.loads(line)
    assert not dirty, dirty
    shown = invoke("show", ref).stdout
    assert escape(text["subject"]) in shown and escape_text(text["body"].rstrip()) in shown
    detail = json.loads(invoke("show", ref, "--json").stdout)
    assert detail["subject"] == text["subject"] and detail["messages"][0]["new_text"] == text["body"]
    assert detail["contact"]["name"] == text["name"]


def test_show_keeps_the_bodys_lines_and_escapes_the_rest(desk: Any) -> None:
    """`show` prints a body's own lines as lines; a forged row, a link with a hidden target and a
    reversed extension are shown for what they are."""
    invoke, app = desk
    text = dict.fromkeys(FIELDS, "x")
    text.update(subject="Invoice\x1b]8;;https://evil.example/\x1b\\pay here\x1b]8;;\x1b\\",
                name="Ada\rT-2026-00001 resolved", body="Hello,\n\nsee invoice\u202egpj.exe\nBye\x1b[2J")
    ref = plant(app, 1, text)
    out = invoke("show", ref).stdout
    assert "Invoice\\x1b]8;;https://evil.example/\\x1b\\pay here" in out
    assert "Hello,\n\nsee invoice\\u202egpj.exe\nBye\\x1b[2J" in out
    table = invoke("tickets").stdout
    assert len(table.splitlines()) == 2 and "Invoice\\x1b]8;;" in table


@pytest.mark.parametrize("log_format", ["console", "json"])
def test_log_lines_never_carry_raw_control_characters(log_format: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A subject or address quoted in a log field could clear the operator's screen or forge a log
    line; both formats show such characters escaped, and one event stays one line."""
    import structlog

    from triage.config import LogSettings
    from triage.logging import configure_logging

    configure_logging(LogSettings(format=log_format))
    try:
        structlog.get_logger("t").warning("mail.odd", subject="\x1b[2Jwiped\nlevel=info event=forged\u202e")
    finally:
        structlog.reset_defaults()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "\x1b" not in err and "\u202e" not in err and "wiped" in err
