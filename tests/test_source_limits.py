"""Local sources on real files: nothing read through a symlink (planted or swapped in), sizes checked
before reading, an oversize mail refused unread (an mbox one while streaming)."""

from __future__ import annotations

import json
import mailbox
import os
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from tests.conftest import make_mail
from triage.bootstrap import bootstrap
from triage.cli import cli
from triage.config import load_settings
from triage.ingest.oversize import HEAD_CAP
from triage.ingest.sources import NOT_A_FILE, OVERSIZE, SYMLINK, SourceError, open_source
from triage.store.blobs import get_blob
from triage.store.models import Blob, Message, Quarantine, Ticket

SECRET = b"TOKEN-3f9a-never-in-the-desk"
LIMIT = 1_000_000


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A 0600 file outside every source, shaped like a mail so a parser would happily store it."""
    path = tmp_path / "private" / "token.eml"
    path.parent.mkdir()
    path.write_bytes(make_mail(message_id="<secret@v.example>", body=SECRET.decode() + "\n"))
    path.chmod(0o600)
    return path


def mail(i: int, **kw: Any) -> bytes:
    return make_mail(message_id=f"<m{i}@v.example>", **kw)


def big(i: int, size: int = 3 * LIMIT) -> bytes:
    return make_mail(message_id=f"<big{i}@v.example>", subject=f"Scans {i}", body=("scan " * 15 + "\n") * (size // 76))


def read_all(path: Path) -> tuple[list[bytes], list[Any]]:
    source = open_source(path)
    mails = [raw for _, raw in source]
    return mails, getattr(source, "skipped", [])


def test_symlinks_in_an_eml_folder_are_skipped_with_a_reason(tmp_path: Path, secret: Path) -> None:
    """A link to a file, and a linked subfolder, are neither read nor entered; each is reported once."""
    folder = tmp_path / "eml"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.eml").write_bytes(mail(1))
    (folder / "sub" / "b.eml").write_bytes(mail(2))
    (folder / "link.eml").symlink_to(secret)
    (folder / "linked-dir").symlink_to(secret.parent, target_is_directory=True)
    mails, skipped = read_all(folder)
    assert all(SECRET not in raw for raw in mails)
    assert mails == [mail(1), mail(2)]
    assert [(s.label, s.reason) for s in skipped] == [(f"eml:{folder / 'link.eml'}", SYMLINK)]


def test_symlinks_in_a_maildir_are_skipped(tmp_path: Path, secret: Path) -> None:
    """A link dropped into cur/ or new/ of a maildir is not followed."""
    box = mailbox.Maildir(tmp_path / "md", create=True)
    box.add(mail(1))
    box.close()
    (tmp_path / "md" / "new" / "1700000000.evil.host").symlink_to(secret)
    (tmp_path / "md" / "cur" / "1700000001.evil.host:2,S").symlink_to(secret)
    os.mkfifo(tmp_path / "md" / "new" / "1700000002.fifo.host")
    mails, skipped = read_all(tmp_path / "md")
    assert mails == [mail(1)]
    assert sorted(s.reason for s in skipped) == sorted([SYMLINK, SYMLINK, NOT_A_FILE])


def test_a_file_swapped_for_a_symlink_after_the_listing_is_not_read(tmp_path: Path, secret: Path) -> None:
    """Between listing and reading, a mail file or a subfolder is replaced by a link: O_NOFOLLOW refuses it."""
    folder = tmp_path / "eml"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.eml").write_bytes(mail(1))
    (folder / "sub" / "token.eml").write_bytes(mail(2))
    (folder / "z.eml").write_bytes(mail(3))
    source = open_source(folder)
    (folder / "a.eml").unlink()
    (folder / "a.eml").symlink_to(secret)
    (folder / "sub").rename(tmp_path / "old-sub")
    (folder / "sub").symlink_to(secret.parent, target_is_directory=True)
    mails = [raw for _, raw in source]
    assert mails == [mail(3)]
    assert [(s.label.rsplit("/", 2)[-2:], s.reason) for s in source.skipped] == [
        (["eml", "a.eml"], SYMLINK), (["sub", "token.eml"], SYMLINK)
    ]


def test_a_fifo_named_like_mail_is_skipped_without_blocking(tmp_path: Path) -> None:
    """A FIFO listed as mail, or swapped in for one after the listing, is skipped: reading never blocks."""
    folder = tmp_path / "eml"
    folder.mkdir()
    os.mkfifo(folder / "pipe.eml")
    (folder / "later.eml").write_bytes(mail(1))
    source = open_source(folder)
    (folder / "later.eml").unlink()
    os.mkfifo(folder / "later.eml")
    assert list(source) == []
    assert [s.reason for s in source.skipped] == [NOT_A_FILE, NOT_A_FILE]


def test_an_mbox_swapped_after_it_was_opened_is_refused(tmp_path: Path, secret: Path) -> None:
    """The mbox is read through a descriptor checked to be the file that was listed, never a link."""
    path = tmp_path / "in.mbox"
    box = mailbox.mbox(path, create=True)
    box.add(mail(1))
    box.close()
    other = tmp_path / "other.mbox"  # made while the original exists, so it cannot reuse its inode number
    other.write_bytes(b"From x\n" + secret.read_bytes())
    source = open_source(path)
    path.unlink()
    path.symlink_to(secret)
    with pytest.raises(SourceError, match="replaced"):
        list(source.read())
    path.unlink()
    other.rename(path)  # a regular file, but not the one listed
    with pytest.raises(SourceError, match="replaced"):
        list(source.read())


def test_the_path_given_may_itself_be_a_symlink(tmp_path: Path) -> None:
    """The operator's own argument is theirs to point anywhere: a linked folder or mbox is read; labels keep
    the path as given."""
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "a.eml").write_bytes(mail(1))
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    box = mailbox.mbox(tmp_path / "real.mbox", create=True)
    box.add(mail(2))
    box.close()
    (tmp_path / "link.mbox").symlink_to(tmp_path / "real.mbox")
    (tmp_path / "link.eml").symlink_to(tmp_path / "real" / "a.eml")
    assert [(m.label, m.raw) for m in open_source(tmp_path / "link").read()] == [
        (f"eml:{tmp_path / 'link' / 'a.eml'}", mail(1))
    ]
    assert [m.raw for m in open_source(tmp_path / "link.mbox").read()] == [mail(2)]
    assert [m.raw for m in open_source(tmp_path / "link.eml").read()] == [mail(1)]


def _peak(read: Callable[[], Any]) -> tuple[Any, int]:
    tracemalloc.start()
    try:
        out = read()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_an_oversize_eml_is_not_read_only_its_header(tmp_path: Path) -> None:
    """A file over the limit yields its header section only; reading it costs a small fraction of its size."""
    folder = tmp_path / "eml"
    folder.mkdir()
    raw = big(1)
    (folder / "big.eml").write_bytes(raw)
    (folder / "small.eml").write_bytes(mail(2))
    mails, top = _peak(lambda: list(open_source(folder, max_size=LIMIT).read()))
    assert [(m.oversize, m.size) for m in mails] == [(True, len(raw)), (False, len(mail(2)))]
    head = mails[0].raw
    assert head == raw[: raw.index(b"\n\n") + 2] and len(head) <= HEAD_CAP
    assert top < len(raw) / 10, top
    within = list(open_source(folder, max_size=len(raw)).read())
    assert within[0].raw == raw and not within[0].oversize


def test_an_oversize_mbox_message_is_skipped_while_streaming(tmp_path: Path) -> None:
    """In an mbox, a message over the limit, even one single line of megabytes, is neither read whole to
    find the next message nor yielded whole; the messages around it are intact."""
    path = tmp_path / "in.mbox"
    one_line = b"From: x@v.example\nSubject: one line\n\n" + b"A" * (3 * LIMIT)
    box = mailbox.mbox(path, create=True)
    for raw in (mail(1), big(2), one_line, mail(4)):
        box.add(raw)
    box.close()
    mails, top = _peak(lambda: list(open_source(path, max_size=LIMIT).read()))
    assert [m.oversize for m in mails] == [False, True, True, False]
    assert mails[0].raw == mail(1) and mails[3].raw == mail(4)
    assert mails[1].raw.startswith(b"From: ") and b"scan" not in mails[1].raw
    assert mails[2].raw == b"From: x@v.example\nSubject: one line\n\n"
    assert top < LIMIT / 2, top
    source = open_source(path, max_size=LIMIT)
    assert [raw for _, raw in source] == [mail(1), mail(4)]  # plain iteration leaves them out, with a reason
    assert [s.reason for s in source.skipped] == [OVERSIZE, OVERSIZE]


def test_triage_ingest_refuses_oversize_and_never_reads_links(tmp_path: Path, secret: Path, db_url: str) -> None:
    """`triage ingest`: the oversize mail becomes a quarantine entry naming sender, subject and size (no
    ticket), the link is listed as skipped on stderr, and the secret's bytes are nowhere in the database."""
    folder = tmp_path / "eml"
    folder.mkdir()
    (folder / "a.eml").write_bytes(mail(1))
    (folder / "b.eml").write_bytes(big(2))
    (folder / "c.eml").symlink_to(secret)
    env = {"TRIAGE_DATABASE_URL": db_url, "TRIAGE_CONFIG": "", "TRIAGE_MAIL_MAX_SIZE_BYTES": str(LIMIT)}
    done = CliRunner().invoke(cli, ["ingest", str(folder)], env=env)
    assert done.exit_code == 0, done.stderr
    assert "1 stored" in done.stdout and "1 quarantined" in done.stdout and "refused unread" in done.stdout
    assert f"{folder / 'c.eml'}: {SYMLINK}" in done.stderr
    rows = json.loads(CliRunner().invoke(cli, ["quarantine", "--json"], env=env).stdout)
    assert [(r["stage"], r["source"]) for r in rows] == [("oversize", f"eml:{folder / 'b.eml'}")]
    assert "ada@volunteers.example" in rows[0]["error"] and "Scans 2" in rows[0]["error"]
    app = bootstrap(load_settings(environ=env))
    try:
        with app.sessions() as session:
            assert list(session.scalars(select(Message.message_id))) == ["<m1@v.example>"]
            assert len(list(session.scalars(select(Ticket.id)))) == 1
            assert all(SECRET not in get_blob(session, sha) for sha in session.scalars(select(Blob.sha256)))
            entry = session.scalars(select(Quarantine)).one()
            assert b"scan scan" not in get_blob(session, entry.raw_sha256)
    finally:
        app.close()


def test_an_oversize_mail_handed_over_in_memory_opens_no_ticket(db_url: str) -> None:
    """A caller that hands the pipeline an oversize mail whole gets it quarantined raw (no message, ticket
    or acknowledgment); after the limit is raised, `quarantine --retry` stores it."""
    env = {"TRIAGE_DATABASE_URL": db_url, "TRIAGE_MAIL_MAX_SIZE_BYTES": str(LIMIT),
           "TRIAGE_OUTBOX_AUTO_ACKNOWLEDGE": "true"}
    raw = big(1)
    app = bootstrap(load_settings(environ=env))
    try:
        outcome = app.ingestor().ingest(raw, source="test")
        assert outcome.status == "quarantined" and "max_size_bytes" in outcome.reason
        with app.sessions() as session:
            assert list(session.scalars(select(Message.id))) == [] and list(session.scalars(select(Ticket.id))) == []
            entry = session.scalars(select(Quarantine)).one()
            assert get_blob(session, entry.raw_sha256) == raw
    finally:
        app.close()
    raised = bootstrap(load_settings(environ={**env, "TRIAGE_MAIL_MAX_SIZE_BYTES": str(2 * len(raw))}))
    try:
        assert [o.status for _, o in raised.ingestor().retry_quarantined()] == ["stored"]
    finally:
        raised.close()


def test_the_refusal_names_sender_subject_and_size_safely() -> None:
    """The reason quotes the decoded sender and subject with control characters escaped and length capped."""
    from triage.ingest.oversize import refusal_reason

    head = (b"From: =?utf-8?q?Bo_=1B]0;pwned=07?= <bo@v.example>\r\nSubject: =?utf-8?q?Fotos_=1B[2J?=" + b"x" * 500
            + b"\r\n\r\n")
    reason = refusal_reason(head, size=52_428_800, limit=26_214_400)
    assert "bo@v.example" in reason and "Fotos" in reason and "50.0 MiB (52428800 bytes)" in reason
    assert not any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in reason)  # escaped or dropped, never raw
    assert len(reason) < 600 and "\n" not in reason
    assert "unknown" in refusal_reason(b"Subject: hi\r\n\r\n", size=2, limit=1)
