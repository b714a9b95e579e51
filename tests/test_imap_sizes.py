"""IMAP and mail size against a real Dovecot: sizes asked first, oversize mail refused unread and
quarantined exactly once, batches bounded in bytes."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

import triage.runners.poll as poll_module
from tests.conftest import make_mail
from tests.servers.dovecot import Dovecot, fixture_dovecot_server, fixture_make_dovecot  # noqa: F401
from tests.test_imap_poll import append_many, imap_env
from tests.test_imap_runner import ROOT, _worker_env
from triage.bootstrap import App, bootstrap
from triage.config import Settings, load_settings
from triage.ingest.imap_connect import connect
from triage.ingest.imap_fetch import plan_batches
from triage.ingest.imap_poll import FolderPass, FolderPoller
from triage.ingest.oversize import HEAD_CAP
from triage.runners.poll import PollRunner
from triage.store.blobs import get_blob
from triage.store.models import ImapLedgerEntry, Message, Quarantine, Ticket
from triage.store.outbox_models import Outbox

LIMIT = 20_000  # mail.max_size_bytes in these tests, so an oversize mail is small and quick


def big_mail(tag: str, size: int = 3 * LIMIT) -> bytes:
    return make_mail(message_id=f"<{tag}@v.example>", sender="Bo Big <bo@v.example>", date=datetime.now(UTC),
                     subject=f"Photos of the fair {tag}", body=("photo " * 12 + "\n") * (size // 73))


def fresh_mail(tag: str) -> bytes:
    """A small mail dated now, so that it is acknowledged (an old one is not)."""
    return make_mail(message_id=f"<{tag}@v.example>", date=datetime.now(UTC))


@pytest.fixture
def sized_desk(dovecot_server: Dovecot, db_url: str) -> Iterator[Callable[..., tuple[Settings, App]]]:
    apps: list[App] = []

    def make(**overrides: str) -> tuple[Settings, App]:
        env = imap_env(dovecot_server, db_url, **overrides)
        env["TRIAGE_MAIL_MAX_SIZE_BYTES"] = str(LIMIT)
        env["TRIAGE_OUTBOX_AUTO_ACKNOWLEDGE"] = "true"
        app = bootstrap(load_settings(environ=env))
        apps.append(app)
        return app.settings, app

    yield make
    for app in apps:
        app.close()


class FetchSpy:
    """Records what the poller asks the real server for (the server still answers)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[list[int], list[str]]] = []
        monkeypatch.setattr(poll_module, "connect", self.connect)

    def connect(self, account: Any) -> Any:
        client = connect(account)
        real = client.fetch

        def fetch(messages: Any, data: Any, *args: Any, **kwargs: Any) -> Any:
            self.calls.append((list(messages), [str(d) for d in data]))
            return real(messages, data, *args, **kwargs)

        client.fetch = fetch
        return client

    def whole(self) -> list[list[int]]:
        return [uids for uids, data in self.calls if "BODY.PEEK[]" in data]


def poll(settings: Settings, app: App, **poller: Any) -> FolderPass:
    runner = PollRunner(settings.imap, app.ingestor())
    if poller:
        runner.poller = FolderPoller(settings.imap, app.ingestor(), app.sessions, stop=runner.stop_event, **poller)
    runner.run(once=True)
    return runner.last_pass[0]


def rows(app: App, model: type, *where: Any) -> int:
    with app.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_oversize_mail_is_refused_unread_quarantined_and_left_on_the_server(
    dovecot_server: Dovecot, sized_desk: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An oversize mail is never fetched whole: its header is quarantined naming sender, subject and size,
    no message, ticket or acknowledgment is made, it stays unread on the server, and the ledger moves on."""
    settings, app = sized_desk()
    spy = FetchSpy(monkeypatch)
    big = big_mail("big")
    append_many(dovecot_server, [fresh_mail("s1"), big, fresh_mail("s3")])
    result = poll(settings, app)
    assert spy.calls[0][1] == ["RFC822.SIZE"]
    assert all(2 not in uids for uids in spy.whole()), spy.calls
    with app.sessions() as session:
        entry = session.scalars(select(Quarantine)).one()
        assert entry.stage == "oversize" and entry.source.endswith(";UID=2") and entry.attempts == 1
        assert "bo@v.example" in entry.error and "Photos of the fair big" in entry.error
        on_server = len(big.replace(b"\n", b"\r\n"))  # Dovecot stores CRLF
        assert f"({on_server} bytes)" in entry.error and "mail.max_size_bytes" in entry.error
        head = get_blob(session, entry.raw_sha256)
        assert head.endswith(b"\r\n\r\n") and b"photo" not in head and len(head) <= HEAD_CAP
        assert b"Message-ID: <big@v.example>" in head
        ledger = list(session.execute(select(ImapLedgerEntry.uid, ImapLedgerEntry.outcome).order_by(ImapLedgerEntry.uid)))
        assert ledger == [(1, "stored"), (2, "oversize"), (3, "stored")]
        assert session.scalar(select(Message).where(Message.message_id == "<big@v.example>")) is None
    assert rows(app, Ticket) == 2 and rows(app, Outbox) == 2  # the good mails acknowledged, the big one not
    flags = dovecot_server.flags()
    assert b"\\Seen" in flags[1] and b"\\Seen" in flags[3] and b"\\Seen" not in flags[2]
    again = poll(settings, app)
    assert again.fetched == 0 and again.marked == 0 and rows(app, Quarantine) == 1
    assert b"\\Seen" not in dovecot_server.flags()[2]
    assert app.ingestor().retry_quarantined() == []  # a header alone is never stored as the mail
    assert (result.stored, result.quarantined, result.refused, result.marked) == (2, 1, 1, 2)


def test_a_raised_limit_fetches_the_mail_whole(dovecot_server: Dovecot, sized_desk: Callable[..., Any]) -> None:
    """Within the limit the same mail is stored whole, as before."""
    settings, app = sized_desk()
    append_many(dovecot_server, [big_mail("fits", size=LIMIT // 2)])
    result = poll(settings, app)
    assert result.stored == 1 and rows(app, Quarantine) == 0
    assert rows(app, Message, Message.message_id == "<fits@v.example>", Message.size > LIMIT // 2) == 1


def test_batches_are_bounded_in_bytes_not_only_in_count(
    dovecot_server: Dovecot, sized_desk: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mails of ~9 kB with a 20 kB batch budget are fetched two at a time; one larger than the budget
    (but within the limit) is fetched alone; every mail is stored once and the pass ends at the last UID."""
    settings, app = sized_desk(batch_size="200")
    spy = FetchSpy(monkeypatch)
    raws = [big_mail(f"m{i}", size=9_000) for i in range(6)]
    raws.insert(3, big_mail("alone", size=LIMIT - 2_000))
    append_many(dovecot_server, raws)
    sizes = {uid: len(raw.replace(b"\n", b"\r\n")) for uid, raw in enumerate(raws, start=1)}
    result = poll(settings, app, batch_bytes=20_000)
    assert (result.fetched, result.stored) == (7, 7)
    whole = spy.whole()
    assert sorted(uid for uids in whole for uid in uids) == list(range(1, 8))
    assert [4] in whole
    assert all(len(uids) == 1 or sum(sizes[u] for u in uids) <= 20_000 for uids in whole), whole
    assert max(len(uids) for uids in whole) == 2


@given(
    sizes=st.lists(st.one_of(st.none(), st.integers(0, 5_000)), max_size=40),
    max_count=st.integers(1, 6), max_bytes=st.integers(1, 8_000), max_size=st.integers(0, 4_000),
)
@settings(max_examples=200, deadline=None)
def test_plan_batches_bounds_count_and_bytes(
    sizes: list[int | None], max_count: int, max_bytes: int, max_size: int
) -> None:
    """Every UID lands once, in order; a batch never exceeds the count, nor the bytes unless it holds one
    mail; exactly the mails over the limit are refused; a mail without a size (expunged) is neither."""
    sized = list(enumerate(sizes, start=1))
    plans = list(plan_batches(sized, max_count=max_count, max_bytes=max_bytes, max_size=max_size))
    assert [uid for plan in plans for uid in plan.uids] == [uid for uid, _ in sized]
    by_uid = dict(sized)
    for plan in plans:
        assert 1 <= len(plan.uids) <= max_count
        load = sum(by_uid[u] or 0 for u in plan.whole) + HEAD_CAP * len(plan.refused)
        assert load <= max_bytes or len(plan.uids) == 1 or all(by_uid[u] is None for u in plan.uids[1:])
        assert set(plan.refused) == {u for u in plan.uids if (by_uid[u] or 0) > max_size and by_uid[u] is not None}
        assert set(plan.whole) == {u for u in plan.uids if by_uid[u] is not None and by_uid[u] <= max_size}


def test_a_crash_before_the_commit_refuses_the_mail_once(
    dovecot_server: Dovecot, sized_desk: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refusal commits with its ledger row: a failure before the commit leaves nothing, and the
    next pass writes the one quarantine entry (attempts 1); passes after it do not touch it."""
    settings, app = sized_desk()
    append_many(dovecot_server, [make_mail(message_id="<c1@v.example>"), big_mail("crash")])
    real = FolderPoller._write_ledger

    def dies(*args: Any, **kwargs: Any) -> None:
        real(*args, **kwargs)
        raise ConnectionResetError("database gone before the commit")

    monkeypatch.setattr(FolderPoller, "_write_ledger", dies)
    with pytest.raises(ConnectionResetError):
        poll(settings, app)
    assert rows(app, Quarantine) == 0 and rows(app, ImapLedgerEntry) == 0 and rows(app, Message) == 0
    monkeypatch.setattr(FolderPoller, "_write_ledger", real)
    after = poll(settings, app)
    assert poll(settings, app).fetched == 0
    with app.sessions() as session:
        assert list(session.execute(select(Quarantine.stage, Quarantine.attempts))) == [("oversize", 1)]
    assert after.refused == 1


@pytest.mark.slow
@pytest.mark.parametrize("db_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)  # one engine: the ledger code is the same
def test_sigkill_during_a_pass_with_oversize_mail_refuses_each_exactly_once(
    dovecot_server: Dovecot, db_url: str
) -> None:
    """`triage poll --once` killed at random instants over a mailbox with oversize mail among good mail,
    then run to the end: each good mail stored once, each oversize mail one quarantine entry (attempts 1),
    never marked, and the ledger holds every UID once."""
    total, every = 150, 10
    raws = [big_mail(f"k{i}") if i % every == 3 else make_mail(message_id=f"<k{i}@v.example>") for i in range(total)]
    append_many(dovecot_server, raws)
    env = _worker_env(dovecot_server, db_url, batch_size="4")
    env["TRIAGE_MAIL_MAX_SIZE_BYTES"] = str(LIMIT)
    rng = random.Random(4321)
    kills = 0
    for _ in range(8):
        proc = subprocess.Popen([sys.executable, "-m", "triage", "poll", "--once"], env=env, cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.8, 2.0))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    final = subprocess.run([sys.executable, "-m", "triage", "poll", "--once"], env=env, cwd=ROOT,
                           capture_output=True, text=True, check=False)
    assert final.returncode == 0, final.stderr
    assert kills >= 2, "the pass finished too fast for the kills to land mid-pass"
    app = bootstrap(load_settings(environ=env))
    try:
        with app.sessions() as session:
            ids = sorted(session.scalars(select(Message.message_id)))
            refused = list(session.execute(select(Quarantine.source, Quarantine.attempts, Quarantine.stage)))
            ledger = sorted(session.scalars(select(ImapLedgerEntry.uid)))
        big = {i for i in range(total) if i % every == 3}
        assert ids == sorted(f"<k{i}@v.example>" for i in range(total) if i not in big)
        assert sorted(int(src.rsplit("=", 1)[1]) for src, _, _ in refused) == sorted(i + 1 for i in big)
        assert {(attempts, stage) for _, attempts, stage in refused} == {(1, "oversize")}
        assert ledger == dovecot_server.list_uids()
        flags = dovecot_server.flags()
        assert all((b"\\Seen" in flags[uid]) == (uid - 1 not in big) for uid in flags)
    finally:
        app.close()
