"""The maildir spool on real files: mail stored then moved to cur/, links never followed, oversize mail
refused unread and kept, a crash between commit and move costing no duplicate."""

from __future__ import annotations

import mailbox
import os
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

import triage.runners.spool as spool_module
from tests.conftest import make_mail
from triage.bootstrap import App, bootstrap
from triage.config import load_settings
from triage.ingest.sources import SYMLINK
from triage.runners.spool import SpoolRunner
from triage.store.blobs import get_blob
from triage.store.models import Blob, Message, Quarantine, Ticket

SECRET = b"TOKEN-77c1-never-in-the-desk"
LIMIT = 50_000


@pytest.fixture
def desk(db_url: str) -> Any:
    app = bootstrap(load_settings(environ={"TRIAGE_DATABASE_URL": db_url, "TRIAGE_MAIL_MAX_SIZE_BYTES": str(LIMIT)}))
    yield app
    app.close()


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    mailbox.Maildir(tmp_path / "spool", create=True).close()
    return tmp_path / "spool"


def deliver(spool: Path, name: str, raw: bytes) -> Path:
    path = spool / "new" / name
    path.write_bytes(raw)
    return path


def count(app: App, model: type) -> int:
    with app.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "private" / "token"
    path.parent.mkdir()
    path.write_bytes(make_mail(message_id="<secret@v.example>", body=SECRET.decode() + "\n"))
    path.chmod(0o600)
    return path


def test_mail_is_stored_and_moved_a_link_is_moved_unread(desk: App, spool: Path, tmp_path: Path) -> None:
    """Delivered mail is stored and moved to cur/; a symlink planted in new/ is not read, is reported,
    and only the link moves (its target stays where it was)."""
    secret = secret_file(tmp_path)
    deliver(spool, "1.a.host", make_mail(message_id="<a@v.example>"))
    (spool / "new" / "2.evil.host").symlink_to(secret)
    runner = SpoolRunner(desk.ingestor(), spool, interval=1)
    assert runner.step() == 2
    assert sorted(p.name for p in (spool / "cur").iterdir()) == ["1.a.host:2,S", "2.evil.host:2,S"]
    with desk.sessions() as session:
        assert all(SECRET not in get_blob(session, sha) for sha in session.scalars(select(Blob.sha256)))
        assert list(session.scalars(select(Message.message_id))) == ["<a@v.example>"]
    assert (spool / "cur" / "2.evil.host:2,S").is_symlink() and secret.read_bytes().find(SECRET) > 0
    assert [(s.label, s.reason) for s in runner.skipped] == [(f"spool:{spool / 'new' / '2.evil.host'}", SYMLINK)]
    assert runner.step() == 0


def test_an_oversize_mail_is_refused_unread_and_kept(desk: App, spool: Path) -> None:
    """A mail over the limit: its header is quarantined with the reason, no message or ticket is made,
    and the file itself moves to cur/ unchanged."""
    raw = make_mail(message_id="<big@v.example>", subject="Scans", body=("scan " * 15 + "\n") * 2_000)
    deliver(spool, "1.big.host", raw)
    assert SpoolRunner(desk.ingestor(), spool, interval=1).step() == 1
    assert (spool / "cur" / "1.big.host:2,S").read_bytes() == raw
    assert count(desk, Message) == 0 and count(desk, Ticket) == 0
    with desk.sessions() as session:
        entry = session.scalars(select(Quarantine)).one()
        assert entry.stage == "oversize" and entry.source == f"spool:{spool / 'cur' / '1.big.host:2,S'}"
        assert f"({len(raw)} bytes)" in entry.error and 'subject "Scans"' in entry.error
        assert get_blob(session, entry.raw_sha256) == raw[: raw.index(b"\n\n") + 2]


def test_a_crash_between_commit_and_move_duplicates_nothing(
    desk: App, spool: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The move after the commit fails (a crash there cannot be produced on demand, so it is injected):
    the next pass finds the mail stored and the refusal recorded, and adds neither again."""
    deliver(spool, "1.a.host", make_mail(message_id="<a@v.example>"))
    deliver(spool, "2.big.host", make_mail(message_id="<big@v.example>", body="x" * (2 * LIMIT)))

    def crash(*args: Any, **kwargs: Any) -> None:
        raise OSError("killed before the move")

    monkeypatch.setattr(spool_module.os, "rename", crash)
    runner = SpoolRunner(desk.ingestor(), spool, interval=1)
    with pytest.raises(OSError, match="killed"):
        runner.step()
    with pytest.raises(OSError, match="killed"):
        runner.step()
    monkeypatch.undo()
    assert runner.step() == 2
    assert count(desk, Message) == 1 and count(desk, Quarantine) == 1
    assert sorted(os.listdir(spool / "new")) == []


def test_new_swapped_for_a_link_is_refused(desk: App, spool: Path, tmp_path: Path) -> None:
    """If new/ itself is replaced by a link, the pass fails loudly instead of reading another folder."""
    secret = secret_file(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.link(secret, elsewhere / "1.x.host")
    (spool / "new").rmdir()
    (spool / "new").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(OSError):
        SpoolRunner(desk.ingestor(), spool, interval=1).step()
    assert count(desk, Message) == 0 and (elsewhere / "1.x.host").exists()


def test_the_configured_spool_path_may_be_a_link(desk: App, spool: Path, tmp_path: Path) -> None:
    """The operator may point ingest.spool_maildir at a link to the real maildir."""
    (tmp_path / "spool-link").symlink_to(spool, target_is_directory=True)
    deliver(spool, "1.a.host", make_mail(message_id="<a@v.example>"))
    assert SpoolRunner(desk.ingestor(), tmp_path / "spool-link", interval=1).step() == 1
    assert count(desk, Message) == 1


def test_files_left_unreadable_in_new_never_stall_the_batch(
    desk: App, spool: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch counts mail moved, not names listed: a batch's worth of files the worker may not
    read (they stay in new/ until the operator fixes them) does not hide the mail behind them.
    Root reads any file, so the unreadable ones are simulated (the real fault needs another user)."""
    from triage.ingest.sources import Skipped

    for name in ("0.locked.host", "1.locked.host"):
        deliver(spool, name, make_mail())
    deliver(spool, "2.good.host", make_mail(message_id="<good@v.example>"))
    real = spool_module.read_mail_at

    def read(directory: int, name: str, **kwargs: Any) -> Any:
        if "locked" in name:
            return Skipped(f"spool:{name}", "permission denied")
        return real(directory, name, **kwargs)

    monkeypatch.setattr(spool_module, "read_mail_at", read)
    runner = SpoolRunner(desk.ingestor(), spool, interval=1, batch=2)
    assert runner.step() == 1
    assert [p.name for p in (spool / "cur").iterdir()] == ["2.good.host:2,S"]
    assert [s.reason for s in runner.skipped] == ["permission denied"] * 2
    runner.step()
    assert len(runner.skipped) == 2  # the last pass's, not every pass's since start
