"""The `triage` command: parse contract, ingest, tickets, show, quarantine, errors on stderr."""

from __future__ import annotations

import json
import mailbox
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.conftest import make_mail
from triage.cli import cli

CONTRACT_KEYS = {
    "message_id", "from_addr", "from_name", "to", "cc", "subject", "date", "in_reply_to", "references",
    "body_text", "new_text", "attachments", "kind", "list_id", "defects",
}


@pytest.fixture
def run(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args: str) -> object:
        return runner.invoke(cli, list(args), env={"TRIAGE_DATABASE_URL": db_url, "TRIAGE_CONFIG": ""})

    return invoke


def test_parse_json_contract_single_and_lines(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    """One file prints one object with every contract key; several print JSON Lines in order, errors inline."""
    good = tmp_path / "good.eml"
    good.write_bytes(make_mail(subject="=?utf-8?q?Caf=C3=A9?=", message_id="<p1@v.example>"))
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\x00\x01\x02 not a mail \xff" * 10)
    one = run("parse", str(good), "--json")
    assert one.exit_code == 0, one.stderr
    obj = json.loads(one.stdout)
    assert CONTRACT_KEYS <= set(obj)
    assert obj["subject"] == "Café" and obj["from_addr"] == "ada@volunteers.example"
    assert obj["message_id"] == "<p1@v.example>" and obj["kind"] == "normal"
    many = run("parse", str(good), str(bad), str(tmp_path / "missing.eml"), "--json")
    assert many.exit_code != 0
    lines = [json.loads(line) for line in many.stdout.splitlines()]
    assert [line["file"] for line in lines] == [str(good), str(bad), str(tmp_path / "missing.eml")]
    assert "error" not in lines[0] and lines[1]["error"] and lines[2]["error"]
    assert "bad.bin" in many.stderr


def test_ingest_twice_adds_nothing_and_tickets_lists(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    """Re-running ingest on the same mbox adds nothing; tickets and show report what was stored."""
    box = mailbox.mbox(tmp_path / "in.mbox", create=True)
    box.add(make_mail(message_id="<i1@v.example>", subject="Banner"))
    box.add(make_mail(message_id="<i2@v.example>", subject="Re: Banner", in_reply_to="<i1@v.example>"))
    box.add(make_mail(sender="bo@v.example", message_id="<i3@v.example>", subject="Grant report"))
    box.close()
    first = run("ingest", str(tmp_path / "in.mbox"))
    assert first.exit_code == 0, first.stderr
    assert "3 stored" in first.stdout
    again = run("ingest", str(tmp_path / "in.mbox"))
    assert "0 stored, 3 duplicates" in again.stdout
    listed = json.loads(run("tickets", "--json").stdout)
    assert [(t["subject"], t["messages"]) for t in listed] == [("Banner", 2), ("Grant report", 1)]
    assert json.loads(run("tickets", "--json", "--status", "resolved").stdout) == []
    shown = run("show", listed[0]["reference"], "--json")
    detail = json.loads(shown.stdout)
    assert [m["message_id"] for m in detail["messages"]] == ["<i1@v.example>", "<i2@v.example>"]
    table = run("tickets")
    assert listed[1]["reference"] in table.stdout and "Grant report" in table.stdout


def test_errors_go_to_stderr_with_nonzero_exit(run) -> None:  # type: ignore[no-untyped-def]
    """An unknown ticket and a bad config value are one line on stderr and exit status 2."""
    missing = run("show", "T-2026-99999")
    assert missing.exit_code == 2 and "no ticket" in missing.stderr and missing.stdout == ""
    runner = CliRunner()
    bad = runner.invoke(cli, ["tickets"], env={"TRIAGE_MAIL_MAX_SIZE_BYTES": "lots", "TRIAGE_CONFIG": ""})
    assert bad.exit_code == 2 and "mail.max_size_bytes" in bad.stderr


def test_quarantine_lists_and_retries(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    """A junk file is quarantined by ingest, listed, and still failing on retry (exit 1)."""
    (tmp_path / "eml").mkdir()
    (tmp_path / "eml" / "a.eml").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    (tmp_path / "eml" / "b.eml").write_bytes(make_mail(message_id="<q2@v.example>"))
    out = run("ingest", str(tmp_path / "eml"))
    assert "1 stored" in out.stdout and "1 quarantined" in out.stdout
    rows = json.loads(run("quarantine", "--json").stdout)
    assert len(rows) == 1 and rows[0]["source"].endswith("a.eml")
    retry = run("quarantine", "--retry")
    assert retry.exit_code == 1 and "0 of 1 released" in retry.stdout


def test_unmatched_lists_the_bounce_no_ticket_holds(run) -> None:  # type: ignore[no-untyped-def]
    """The sample mailbox's bounce (of a reply this database never sent) is listed with the address
    that bounced; its autoreply, threaded onto a ticket, is not; --kind filters."""
    assert run("unmatched").stdout.strip() == "no unmatched mail"
    sample = Path(__file__).resolve().parents[1] / "data" / "sample-mailbox"
    assert run("ingest", str(sample)).exit_code == 0
    rows = json.loads(run("unmatched", "--json").stdout)
    assert [(r["kind"], r["bounced_recipients"]) for r in rows] == [
        ("bounce", ["tomasz.wisniewski@poczta.example.pl"])]
    assert json.loads(run("unmatched", "--kind", "autoreply", "--json").stdout) == []
    text = run("unmatched").stdout
    assert "[bounce]" in text and "bounced: tomasz.wisniewski@poczta.example.pl" in text


@pytest.mark.parametrize("command", [[], ["parse"], ["ingest"], ["tickets"], ["show"], ["quarantine"], ["unmatched"],
                                     ["poll"], ["remind"],
                                     ["db"], ["db", "upgrade"], ["db", "current"], ["config", "check"],
                                     ["config", "example"]])
def test_every_command_has_help(command: list[str]) -> None:
    """--help works on every command, through the installed console script's module."""
    result = subprocess.run(
        [sys.executable, "-m", "triage", *command, "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout


def test_config_check_hides_secrets() -> None:
    """`config check` prints effective values but never a password, in [imap] or in the database URL."""
    runner = CliRunner()
    result = runner.invoke(cli, ["config", "check"], env={
        "TRIAGE_CONFIG": "", "TRIAGE_IMAP_HOST": "imap.example.org", "TRIAGE_IMAP_USER": "liaison",
        "TRIAGE_IMAP_PASSWORD": "hunter2-secret", "TRIAGE_DATABASE_URL": "postgresql+psycopg://u:dbpass99@h/db",
    })
    assert result.exit_code == 0, result.stderr
    assert "imap.host = 'imap.example.org'" in result.stdout
    assert "hunter2-secret" not in result.stdout and "dbpass99" not in result.stdout
