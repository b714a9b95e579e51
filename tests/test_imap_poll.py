"""The IMAP poller against a real Dovecot: ledger, first contact, marking, poison, UIDVALIDITY, accounts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

import triage.runners.poll as poll_module
from tests.conftest import make_mail
from tests.servers.dovecot import Dovecot, fixture_dovecot_server, fixture_make_dovecot  # noqa: F401
from triage.bootstrap import App, bootstrap
from triage.config import Settings, load_settings
from triage.ingest.imap_connect import connect
from triage.ingest.imap_poll import FolderPass
from triage.runners.poll import PollRunner
from triage.store.models import ImapFolderState, ImapLedgerEntry, Message, Quarantine, Ticket


def imap_env(server: Dovecot, db_url: str, user: str | None = None, **overrides: str) -> dict[str, str]:
    user = user or server.user
    env = {
        "TRIAGE_DATABASE_URL": db_url,
        "TRIAGE_IMAP_HOST": server.host,
        "TRIAGE_IMAP_PORT": str(server.port),
        "TRIAGE_IMAP_SECURITY": "none",
        "TRIAGE_IMAP_USER": user,
        "TRIAGE_IMAP_PASSWORD": server.users[user],
        "TRIAGE_IMAP_START": "all",
        "TRIAGE_IMAP_TIMEOUT_SECONDS": "10",
    }
    env.update({f"TRIAGE_IMAP_{key.upper()}": value for key, value in overrides.items()})
    return env


@pytest.fixture
def desk(dovecot_server: Dovecot, db_url: str) -> Any:
    """A function (overrides) -> (settings, app) for this Dovecot and database; apps closed at teardown."""
    apps: list[App] = []

    def make(**overrides: str) -> tuple[Settings, App]:
        settings = load_settings(environ=imap_env(dovecot_server, db_url, **overrides))
        app = bootstrap(settings)
        apps.append(app)
        return settings, app

    yield make
    for app in apps:
        app.close()


def poll_once(settings: Settings, app: App, account: int = 0) -> FolderPass:
    runner = PollRunner(settings.imap_all[account], app.ingestor())
    runner.run(once=True)
    assert len(runner.last_pass) == 1
    return runner.last_pass[0]


def count(app: App, model: type, *where: Any) -> int:
    with app.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def append_many(server: Dovecot, raws: list[bytes], folder: str = "INBOX", when: datetime | None = None) -> None:
    with server.client() as imap:
        for raw in raws:
            imap.append(folder, raw, msg_time=when)


def test_new_mail_is_stored_once_and_marked_seen(dovecot_server: Dovecot, desk: Callable[..., Any]) -> None:
    """Each mail becomes one message with a ledger row, is marked \\Seen after commit, and is not fetched again."""
    settings, app = desk()
    append_many(dovecot_server, [make_mail(message_id=f"<n{i}@v.example>") for i in range(3)])
    first = poll_once(settings, app)
    assert (first.fetched, first.stored, first.marked) == (3, 3, 3)
    assert first.first_contact == "all"
    assert all(b"\\Seen" in flags for flags in dovecot_server.flags().values())
    assert count(app, ImapLedgerEntry, ImapLedgerEntry.marked_at.is_not(None)) == 3
    again = poll_once(settings, app)
    assert again.fetched == 0 and count(app, Message) == 3
    with app.sessions() as session:
        state = session.scalars(select(ImapFolderState)).one()
        assert state.last_uid == max(dovecot_server.list_uids())


def test_first_contact_from_now_imports_nothing_old(dovecot_server: Dovecot, desk: Callable[..., Any]) -> None:
    """start = now: a full mailbox is left alone; only mail arriving afterwards is ingested, none deleted."""
    append_many(dovecot_server, [make_mail(message_id=f"<old{i}@v.example>") for i in range(20)])
    settings, app = desk(start="now")
    assert poll_once(settings, app).fetched == 0
    append_many(dovecot_server, [make_mail(message_id="<fresh@v.example>")])
    later = poll_once(settings, app)
    assert (later.fetched, later.stored) == (1, 1)
    assert len(dovecot_server.list_uids()) == 21


def test_first_contact_since_date(dovecot_server: Dovecot, desk: Callable[..., Any]) -> None:
    """start = since: only mail whose arrival date is on or after the date is ingested."""
    append_many(dovecot_server, [make_mail(message_id="<2020@v.example>")], when=datetime(2020, 5, 1, tzinfo=UTC))
    append_many(dovecot_server, [make_mail(message_id="<2026@v.example>")], when=datetime(2026, 5, 1, tzinfo=UTC))
    settings, app = desk(start="since", since="2026-01-01")
    result = poll_once(settings, app)
    assert result.stored == 1
    with app.sessions() as session:
        assert list(session.scalars(select(Message.message_id))) == ["<2026@v.example>"]


def test_poison_mail_is_quarantined_and_the_rest_flow(dovecot_server: Dovecot, desk: Callable[..., Any]) -> None:
    """A mail that cannot be parsed is quarantined with its bytes; the ledger moves past it."""
    settings, app = desk()
    junk = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    append_many(dovecot_server, [make_mail(message_id="<p1@v.example>"), junk, make_mail(message_id="<p3@v.example>")])
    result = poll_once(settings, app)
    assert (result.stored, result.quarantined) == (2, 1)
    with app.sessions() as session:
        ledger = list(session.scalars(select(ImapLedgerEntry.outcome).order_by(ImapLedgerEntry.uid)))
        assert ledger == ["stored", "quarantined", "stored"]
        assert session.scalars(select(Quarantine)).one().source.endswith(";UID=2")
    assert poll_once(settings, app).fetched == 0


def test_uidvalidity_change_resyncs_without_duplicates(dovecot_server: Dovecot, desk: Callable[..., Any]) -> None:
    """After the server renumbers a folder, known mails are recognised and new ones stored once."""
    settings, app = desk()
    append_many(dovecot_server, [make_mail(message_id=f"<u{i}@v.example>") for i in range(4)])
    assert poll_once(settings, app).stored == 4
    new_validity = dovecot_server.change_uidvalidity()
    append_many(dovecot_server, [make_mail(message_id="<u-new@v.example>")])
    result = poll_once(settings, app)
    assert result.resynced_from is not None and result.uidvalidity == new_validity
    assert (result.stored, result.duplicate) == (1, 4)
    assert count(app, Message) == 5 and count(app, Ticket) == 5
    assert poll_once(settings, app).fetched == 0


def test_failed_move_after_commit_is_retried_never_reimported(
    dovecot_server: Dovecot, desk: Callable[..., Any]
) -> None:
    """A MOVE that fails after the commit leaves the mail stored once; the next pass moves it."""
    settings, app = desk(mark="move", move_to="Done")
    append_many(dovecot_server, [make_mail(message_id=f"<mv{i}@v.example>") for i in range(3)])
    failed = poll_once(settings, app)
    assert failed.stored == 3 and failed.mark_errors and failed.marked == 0
    assert len(dovecot_server.list_uids()) == 3
    dovecot_server.create_folder("Done")
    retried = poll_once(settings, app)
    assert retried.fetched == 0 and retried.marked == 3 and not retried.mark_errors
    assert dovecot_server.list_uids() == [] and len(dovecot_server.list_uids("Done")) == 3
    assert count(app, Message) == 3


def test_failed_flag_after_commit_is_retried(
    dovecot_server: Dovecot, desk: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A STORE that fails after the commit (a fault Dovecot cannot make on demand, so injected) is retried."""
    settings, app = desk(mark="keyword", keyword="$Triaged")
    append_many(dovecot_server, [make_mail(message_id="<fl@v.example>")])

    def connect_with_broken_store(account: Any) -> Any:
        client = connect(account)

        def broken(*args: Any, **kwargs: Any) -> Any:
            raise ConnectionResetError("connection lost during STORE")

        client.add_flags = broken
        return client

    monkeypatch.setattr(poll_module, "connect", connect_with_broken_store)
    runner = PollRunner(settings.imap, app.ingestor())
    runner.run(once=True)
    monkeypatch.undo()
    assert runner.last_pass[0].stored == 1 and runner.last_pass[0].mark_errors
    assert count(app, ImapLedgerEntry, ImapLedgerEntry.marked_at.is_(None)) == 1
    result = poll_once(settings, app)
    assert result.fetched == 0 and result.marked == 1
    assert b"$Triaged" in next(iter(dovecot_server.flags().values()))


def test_same_mail_in_two_accounts_is_one_message(
    make_dovecot: Callable[..., Dovecot], db_url: str
) -> None:
    """liaison@ and press@ both receive a mail: one message, one ticket, a ledger row in each account."""
    server = make_dovecot(extra_users={"press": "presspw"})
    raw = make_mail(message_id="<both@v.example>", to="liaison@example.org, press@example.org")
    server.append(raw)
    server.append(raw, user="press")
    env = imap_env(server, db_url)
    settings = load_settings(environ=env)
    press = settings.imap.model_copy(update={"name": "press", "user": "press", "password": SecretStr("presspw")})
    settings = settings.model_copy(update={"imap_accounts": {"press": press}})
    app = bootstrap(settings)
    try:
        results = [poll_once(settings, app, 0), poll_once(settings, app, 1)]
        assert [(r.account, r.stored, r.duplicate) for r in results] == [("liaison", 1, 0), ("press", 0, 1)]
        assert count(app, Message) == 1 and count(app, Ticket) == 1 and count(app, ImapLedgerEntry) == 2
    finally:
        app.close()


@pytest.mark.parametrize("db_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)  # SQLite: bench_imap
def test_batch_of_a_thousand(dovecot_server: Dovecot, desk: Callable[..., Any]) -> None:
    """1,000 mails in one pass, fetched in batches: all stored, ledger at the last UID."""
    settings, app = desk(batch_size="150")
    append_many(dovecot_server, [make_mail(message_id=f"<k{i}@v.example>", sender=f"v{i % 50}@v.example")
                                 for i in range(1000)])
    result = poll_once(settings, app)
    assert (result.fetched, result.stored, result.marked) == (1000, 1000, 1000)
    assert count(app, Message) == 1000 and count(app, ImapLedgerEntry) == 1000


def test_parse_pool_stores_what_inline_parsing_stores(dovecot_server: Dovecot, desk: Callable[..., Any]) -> None:
    """With parse workers, batches are parsed (and their blobs compressed) ahead in the pool;
    commits stay in UID order, a poison mail is still quarantined alone, every blob reads back."""
    import os
    from email.message import EmailMessage

    from triage.store.blobs import get_blob, sha256_hex
    from triage.store.models import Attachment, Blob

    settings, app = desk(parse_workers="2", batch_size="3")
    with_pdf = EmailMessage()
    with_pdf["From"], with_pdf["To"], with_pdf["Subject"] = "ada@v.example", "liaison@example.org", "Report"
    with_pdf["Message-ID"] = "<pdf@v.example>"
    with_pdf.set_content("Our report is attached.\n")
    noise = os.urandom(30_000)
    with_pdf.add_attachment(noise, maintype="application", subtype="pdf", filename="report.pdf")
    raws = [make_mail(message_id=f"<q{i}@v.example>", sender=f"v{i}@v.example", subject=f"Question {i}")
            for i in range(4)]
    raws.insert(2, b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    raws.append(with_pdf.as_bytes())
    raws.append(make_mail(message_id="<r0@v.example>", sender="v0@v.example", subject="Re: Question 0",
                          in_reply_to="<q0@v.example>", references=["<q0@v.example>"]))
    append_many(dovecot_server, raws)
    result = poll_once(settings, app)
    assert (result.fetched, result.stored, result.quarantined, result.marked) == (7, 6, 1, 7)
    with app.sessions() as session:
        ledger = list(session.scalars(select(ImapLedgerEntry.outcome).order_by(ImapLedgerEntry.uid)))
        assert ledger == ["stored", "stored", "quarantined", "stored", "stored", "stored", "stored"]
        reply = session.scalars(select(Message).where(Message.message_id == "<r0@v.example>")).one()
        first = session.scalars(select(Message).where(Message.message_id == "<q0@v.example>")).one()
        assert reply.ticket_id == first.ticket_id is not None  # threaded across batches
        attachment = session.scalars(select(Attachment)).one()
        assert get_blob(session, attachment.blob_sha256) == noise
        assert session.scalar(select(Blob.codec).where(Blob.sha256 == attachment.blob_sha256)) == "raw"
        for message in session.scalars(select(Message)):
            stored = get_blob(session, message.raw_sha256)
            assert sha256_hex(stored) == message.raw_sha256
            assert stored.replace(b"\r\n", b"\n") in raws  # Dovecot hands mail back with CRLF
    assert poll_once(settings, app).fetched == 0


def test_parse_pool_detects_the_languages_of_new_tickets(dovecot_server: Dovecot, desk: Callable[..., Any]) -> None:
    """With parse workers, a mail's language is detected in the pool with its parsing (not in the
    store's transaction); the tickets get the same languages as inline."""
    from triage.store.models import Ticket

    settings, app = desk(parse_workers="2", batch_size="2")
    bodies = ["Guten Tag, dürfen wir das Logo für unser Banner beim Stammtisch verwenden?",
              "Hello, could you tell me who handles the grant reports this year?",
              "Bonjour, je voudrais savoir qui gère les subventions cette année.",
              "Hola, ¿podemos usar el logotipo en la pancarta de nuestro encuentro?"]
    append_many(dovecot_server, [make_mail(message_id=f"<l{i}@v.example>", sender=f"l{i}@v.example",
                                           subject="Frage" if i == 0 else "Question", body=body)
                                 for i, body in enumerate(bodies)])
    runner = PollRunner(settings.imap, app.ingestor())
    try:
        runner.run(once=True)
        assert runner.last_pass[0].stored == 4 and runner.parse_pool is not None and runner.parse_pool.starts == 1
    finally:
        runner.close()
    with app.sessions() as session:
        assert list(session.scalars(select(Ticket.language).order_by(Ticket.id))) == ["de", "en", "fr", "es"]


def test_parse_pool_starts_only_for_a_pass_of_several_batches(
    dovecot_server: Dovecot, desk: Callable[..., Any]
) -> None:
    settings, app = desk(parse_workers="2", batch_size="4")
    runner = PollRunner(settings.imap, app.ingestor())
    try:
        append_many(dovecot_server, [make_mail(message_id=f"<s{i}@v.example>") for i in range(3)])
        runner.run(once=True)
        assert runner.parse_pool is not None
        assert runner.last_pass[0].stored == 3 and runner.parse_pool.starts == 0  # one batch: parsed inline
        append_many(dovecot_server, [make_mail(message_id=f"<b{i}@v.example>") for i in range(9)])
        runner.run(once=True)
        assert runner.last_pass[0].stored == 9 and runner.parse_pool.starts == 1
    finally:
        runner.close()


def test_parse_workers_exit_when_the_poller_is_killed(tmp_path: Any) -> None:
    """A poller killed with SIGKILL (cron's timeout, the OOM killer) leaves no parse worker behind."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    code = (
        "import os, signal\n"
        "from triage.ingest.parse_worker import start_parse_pool\n"
        "pool = start_parse_pool(2)\n"
        "pids = {pool.submit(os.getpid).result() for _ in range(6)}\n"
        "print(' '.join(map(str, sorted(pids))), flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    workers = [int(pid) for pid in done.stdout.split()]
    assert done.returncode == -9 and workers

    def alive(pid: int) -> bool:
        status = Path(f"/proc/{pid}/status")
        try:
            return "\nState:\tZ" not in status.read_text()  # a zombie has exited
        except FileNotFoundError:
            return False

    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(alive(pid) for pid in workers), workers


def test_a_parse_worker_killed_under_the_pool_costs_no_mail(dovecot_server: Dovecot, desk: Callable[..., Any]) -> None:
    """A dead worker breaks the process pool: that batch is parsed inline and the pool is started afresh."""
    import os
    from concurrent.futures import BrokenExecutor

    settings, app = desk(parse_workers="2", batch_size="4")
    runner = PollRunner(settings.imap, app.ingestor())
    assert runner.parse_pool is not None
    try:
        doomed = runner.parse_pool.get().submit(os._exit, 1)  # as the OOM killer would
        with pytest.raises(BrokenExecutor):
            doomed.result(timeout=30)
        append_many(dovecot_server, [make_mail(message_id=f"<w{i}@v.example>") for i in range(10)])
        runner.run(once=True)
        assert runner.last_pass[0].stored == 10 and runner.last_pass[0].quarantined == 0
        assert runner.parse_pool.restarts == 1 and runner.parse_pool.starts == 2  # dropped, started afresh
        append_many(dovecot_server, [make_mail(message_id=f"<x{i}@v.example>") for i in range(10)])
        runner.run(once=True)  # the new pool works
        assert runner.last_pass[0].stored == 10 and runner.parse_pool.restarts == 1
    finally:
        runner.close()
