"""The weekly digest: its content for a hand-made week, exactly one per team and week (repeated,
concurrent, after a crash), opt-in, the worker's runner, `triage digest`, and the real SMTP sink;
on SQLite and PostgreSQL."""

from __future__ import annotations

import email
import email.policy
import json
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from tests.conftest import Clock
from tests.digest_data import SEND, WEEK, add_ticket, env, hand_made_week, teams_file
from tests.servers.smtp_sink import (  # noqa: F401 - fixtures, found by pytest under their names
    SmtpSink,
    fixture_make_smtp_sink,
    fixture_smtp_sink,
)
from triage.bootstrap import App, bootstrap
from triage.cli import cli
from triage.config import load_settings
from triage.desk.actors import Actor, cli_actor
from triage.desk.digests import overview, run
from triage.desk.errors import Forbidden, Invalid, NotFound
from triage.digest import run as digest_run
from triage.digest.run import Outcome, run_digests
from triage.digest.weeks import parse_week
from triage.outbox.sender import OutboxSender
from triage.store.digest_models import Digest
from triage.store.outbox_models import Outbox, OutboxStatus
from triage.store.web_models import Role

MakeApp = Callable[..., App]


@pytest.fixture(name="make_app")
def fixture_make_app(db_url: str, tmp_path: Path) -> Iterator[MakeApp]:
    made: list[App] = []

    def make(**extra: str) -> App:
        app = bootstrap(load_settings(environ=env(db_url, tmp_path, **extra)))
        made.append(app)
        return app

    try:
        yield make
    finally:
        for app in made:
            app.close()


@pytest.fixture
def desk(make_app: MakeApp) -> App:
    app = make_app()
    hand_made_week(app)
    return app


def digests(app: App) -> list[tuple[str, str, int | None]]:
    with app.reads() as session:
        return [(d.team, d.week, d.outbox_id) for d in session.scalars(select(Digest).order_by(Digest.id))]


def digest_mails(app: App) -> list[Outbox]:
    with app.reads() as session:
        return list(session.scalars(select(Outbox).where(Outbox.template == "digest").order_by(Outbox.id)))


def status_of(outcomes: list[Outcome]) -> dict[str, str]:
    return {o.team: o.status for o in outcomes}


def body(row: Outbox) -> str:
    assert row.raw is not None
    message = email.message_from_bytes(row.raw, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    plain = message.get_body(("plain",))
    assert isinstance(plain, email.message.EmailMessage)
    return str(plain.get_content())


def test_the_digest_of_a_hand_made_week_says_what_came_in_what_waits_and_what_rises(desk: App) -> None:
    """Legal's 2026-W48: ten new tickets, nine open (two waiting on the volunteer), the oldest
    waiting first, and takedown rising (0 of 40 before, 4 of 10 now) with its tickets as examples;
    logo (half of the tickets, then and now), zebra (once) and the law firm's address do not."""
    outcomes = run_digests(desk.sessions, desk.wiring, now=SEND, clock=lambda: SEND, reads=desk.reads)
    assert status_of(outcomes) == {"events": "not-due", "legal": "sent", "technology": "opted-out"}
    [row] = digest_mails(desk)
    assert row.to_addr == "legal@example.org" and row.auto_submitted == "auto-generated" and row.ticket_id is None
    assert row.subject == "Weekly digest for Legal, 2026-W48: 10 new, 9 open"
    text = body(row)
    assert "digest of week 2026-W48 (2026-11-23 to 2026-11-29, UTC)" in text
    assert "- T-2026-00041: Takedown notice for our wiki (open)" in text
    assert "Open now: 9 (0 new, 7 open, 2 waiting on the volunteer)" in text
    waiting = text.split("Waiting longest for your answer:")[1].split("Topics rising")[0]
    assert [line.split(":")[0] for line in waiting.strip().splitlines()] == [
        "- T-2026-00041", "- T-2026-00048", "- T-2026-00042", "- T-2026-00049", "- T-2026-00043"]
    assert "T-2026-00041: Takedown notice for our wiki (waiting 6 days)" in waiting
    rising = text.split("Topics rising (this week against the 8 weeks before):")[1]
    assert '- "takedown": in 4 of 10 new tickets (40%), 0.0% before' in rising
    for ref in ("T-2026-00046", "T-2026-00044", "T-2026-00042"):  # newest first, three at most
        assert f"    {ref}: " in rising
    for word in ("logo", "zebra", "lawfirm", "counsel", "notice"):
        assert f'"{word}"' not in rising
    assert digests(desk) == [("legal", WEEK, row.id)]
    with desk.reads() as session:
        assert session.scalars(select(Digest)).one().summary == {
            "new": 10, "open": 9, "oldest_days": 6, "rising": ["takedown"]}


def test_running_again_sends_nothing_and_an_opted_out_team_gets_nothing(desk: App) -> None:
    """A second run (and a third, a week later for the same week) finds legal's row; technology never gets one."""
    first = run_digests(desk.sessions, desk.wiring, now=SEND, reads=desk.reads)
    again = run_digests(desk.sessions, desk.wiring, now=SEND + timedelta(hours=1), reads=desk.reads)
    forced = run_digests(desk.sessions, desk.wiring, now=SEND, week=parse_week(WEEK), reads=desk.reads)
    assert status_of(first)["legal"] == "sent" and status_of(again)["legal"] == "already-sent"
    assert status_of(forced) == {"events": "sent", "legal": "already-sent", "technology": "opted-out"}
    assert [(team, week) for team, week, _ in digests(desk)] == [("legal", WEEK), ("events", WEEK)]
    assert sorted(row.to_addr for row in digest_mails(desk)) == ["events@example.org", "legal@example.org"]


def test_each_team_is_due_at_its_own_weekday_and_hour(desk: App) -> None:
    """events asked for Wednesday 09:00: nothing on Monday, its digest of the week before on Wednesday."""
    monday = run_digests(desk.sessions, desk.wiring, now=SEND, reads=desk.reads)
    assert [(o.status, o.due_at) for o in monday if o.team == "events"] == [
        ("not-due", "2026-12-02T09:00:00+00:00")]
    wednesday = run_digests(desk.sessions, desk.wiring, now=SEND + timedelta(days=2, hours=1), reads=desk.reads)
    assert status_of(wednesday)["events"] == "sent"
    before_eight = run_digests(desk.sessions, desk.wiring, now=SEND - timedelta(minutes=1), reads=desk.reads)
    assert status_of(before_eight)["legal"] == "not-due"


def test_a_crash_before_the_commit_leaves_nothing_and_the_next_run_sends_once(
        desk: App, monkeypatch: pytest.MonkeyPatch) -> None:
    """The claim and the mail commit together: a run that dies after queueing the mail but before
    its commit leaves neither, and the next run sends the digest exactly once."""
    real = digest_run._send

    def crash(*args: Any, **kwargs: Any) -> Outcome:
        real(*args, **kwargs)
        raise RuntimeError("the worker died here")

    monkeypatch.setattr(digest_run, "_send", crash)
    with pytest.raises(RuntimeError):
        run_digests(desk.sessions, desk.wiring, now=SEND, reads=desk.reads)
    assert digests(desk) == [] and digest_mails(desk) == []
    monkeypatch.setattr(digest_run, "_send", real)
    assert status_of(run_digests(desk.sessions, desk.wiring, now=SEND, reads=desk.reads))["legal"] == "sent"
    assert len(digest_mails(desk)) == 1


def test_two_workers_at_once_send_one_digest_per_team_and_week(make_app: MakeApp) -> None:
    """Two workers (each its own engine) run at the same instant, several times: one digest each
    for legal and events, never two."""
    apps = [make_app(), make_app()]
    hand_made_week(apps[0])
    barrier = threading.Barrier(2)
    results: list[list[Outcome]] = []
    errors: list[BaseException] = []

    def work(app: App) -> None:
        try:
            for _ in range(3):
                barrier.wait()
                results.append(run_digests(app.sessions, app.wiring, now=SEND, week=parse_week(WEEK),
                                           reads=app.reads))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(app,)) for app in apps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    sent = [o.team for outcomes in results for o in outcomes if o.status == "sent"]
    assert sorted(sent) == ["events", "legal"]
    assert sorted(row.to_addr for row in digest_mails(apps[0])) == ["events@example.org", "legal@example.org"]
    with apps[0].reads() as session:
        assert session.scalar(select(func.count()).select_from(Digest)) == 2


def test_a_digest_that_cannot_be_built_is_a_failed_row_that_spends_the_week(
        desk: App, monkeypatch: pytest.MonkeyPatch) -> None:
    """A template error: a failed outbox row with the reason, named by the claim; the next run does
    not try again every five minutes."""
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("the template broke")

    monkeypatch.setattr(digest_run, "build_mail", broken)
    outcomes = run_digests(desk.sessions, desk.wiring, now=SEND, reads=desk.reads)
    assert status_of(outcomes)["legal"] == "mail-failed"
    [row] = digest_mails(desk)
    assert row.status is OutboxStatus.failed and "the template broke" in (row.last_error or "")
    assert digests(desk) == [("legal", WEEK, row.id)]
    assert status_of(run_digests(desk.sessions, desk.wiring, now=SEND, reads=desk.reads))["legal"] == "already-sent"


def test_the_worker_runner_sends_what_is_due_by_its_clock(desk: App) -> None:
    """The digest runner in the worker: nothing before Monday 08:00, legal's digest at 08:00, then nothing."""
    from triage.runners.digest import DigestRunner, digest_runners

    clock = Clock(SEND - timedelta(hours=1))
    runner = DigestRunner(desk, 60.0, clock=clock)
    assert runner.step() == 0
    clock.advance(hours=1)
    assert runner.step() == 1
    assert runner.step() == 0
    assert [r.name for r in digest_runners(desk)] == ["digest"]


def test_the_use_cases_check_roles(desk: App) -> None:
    """Only the liaison sends; staff preview their own team's digest only; a week must be well-formed."""
    staff = Actor("sam", Role.staff, team="legal")
    with pytest.raises(Forbidden):
        run(desk, staff, week=WEEK)
    assert [o.team for o in run(desk, staff, week=WEEK, dry_run=True)] == ["legal"]
    with pytest.raises(NotFound):
        run(desk, staff, team="technology", dry_run=True)
    with pytest.raises(Invalid, match="ISO week"):
        run(desk, cli_actor("liaison"), week="2026-48")
    assert [row["key"] for row in overview(desk, staff, now=SEND)] == ["legal"]
    rows = overview(desk, cli_actor("liaison"), now=SEND)
    assert [(r["key"], r["digest"], r["preview_week"]) for r in rows] == [
        ("events", True, WEEK), ("legal", True, WEEK), ("technology", False, WEEK)]
    assert rows[0]["schedule"] == "Wednesday 09:00 (UTC)" and rows[1]["last"] is None
    assert digests(desk) == []  # previews write nothing


def test_a_week_not_over_is_not_sent(desk: App) -> None:
    """`--week` of the current week sends nothing until it is over (a dry run previews it)."""
    outcomes = run_digests(desk.sessions, desk.wiring, now=SEND, week=parse_week("2026-W49"), reads=desk.reads)
    assert status_of(outcomes)["legal"] == "week-not-over" and digests(desk) == []


def test_the_cli_previews_sends_once_and_reports_as_json(db_url: str, tmp_path: Path, desk: App) -> None:
    """`triage digest --week --team --dry-run` prints the exact mail and queues nothing; without
    --dry-run it queues it once; --json lists each team's outcome; mistakes exit 2."""
    runner = CliRunner()
    environ = env(db_url, tmp_path)
    preview = runner.invoke(cli, ["digest", "--week", WEEK, "--team", "legal", "--dry-run"], env=environ)
    assert preview.exit_code == 0, preview.output
    assert "== legal 2026-W48: would send to legal@example.org" in preview.stdout
    assert "Subject: Weekly digest for Legal, 2026-W48: 10 new, 9 open" in preview.stdout
    assert "Auto-Submitted: auto-generated" in preview.stdout and '"takedown"' in preview.stdout
    assert digests(desk) == []
    technology = runner.invoke(cli, ["digest", "--week", WEEK, "--team", "technology", "--dry-run", "--json"],
                               env=environ)
    assert json.loads(technology.stdout)[0]["status"] == "would-send"  # previewed, though not opted in
    sent = runner.invoke(cli, ["digest", "--week", WEEK, "--json"], env=environ)
    assert sent.exit_code == 0, sent.output
    data = {row["team"]: row for row in json.loads(sent.stdout)}
    assert {team: row["status"] for team, row in data.items()} == {
        "events": "sent", "legal": "sent", "technology": "opted-out"}
    assert data["legal"]["summary"]["rising"] == ["takedown"] and isinstance(data["legal"]["outbox_id"], int)
    again = runner.invoke(cli, ["digest", "--week", WEEK], env=environ)
    assert "legal 2026-W48: already sent" in again.stdout and len(digest_mails(desk)) == 2
    bad = runner.invoke(cli, ["digest", "--week", "48"], env=environ)
    assert bad.exit_code == 2 and "ISO week" in bad.stderr
    unknown = runner.invoke(cli, ["digest", "--team", "nobody"], env=environ)
    assert unknown.exit_code == 2 and "no team 'nobody'" in unknown.stderr


def test_the_digest_goes_out_through_the_real_smtp_sink(make_app: MakeApp, smtp_sink: SmtpSink) -> None:
    """Queued by the run, delivered by the outbox sender to aiosmtpd: to the team's address, from
    the desk, Auto-Submitted, with the week's content."""
    app = make_app(TRIAGE_SMTP_HOST=smtp_sink.host, TRIAGE_SMTP_PORT=str(smtp_sink.port),
                   TRIAGE_SMTP_SECURITY="none")
    hand_made_week(app)
    run_digests(app.sessions, app.wiring, now=SEND, clock=lambda: SEND, reads=app.reads)
    report = OutboxSender(app.sessions, app.settings, clock=lambda: SEND).send_due()
    assert report.sent == 1
    [received] = smtp_sink.messages
    assert received.mail_from == "liaison@example.org" and received.rcpt_tos == ("legal@example.org",)
    mail = email.message_from_bytes(received.raw, policy=email.policy.default)
    assert mail["Subject"] == "Weekly digest for Legal, 2026-W48: 10 new, 9 open"
    assert mail["Auto-Submitted"] == "auto-generated" and mail["X-Triage-Ticket"] is None
    assert '"takedown": in 4 of 10 new tickets' in received.raw.decode()
    assert [row.status for row in digest_mails(app)] == [OutboxStatus.sent]


def test_a_team_without_tickets_gets_a_quiet_digest(make_app: MakeApp, tmp_path: Path) -> None:
    """No tickets at all: the digest still goes out, saying none and nothing rising."""
    app = make_app()
    add_ticket(app, 1, team="technology", created=SEND - timedelta(days=3), subject="x", text="y")
    run_digests(app.sessions, app.wiring, now=SEND, reads=app.reads)
    [row] = digest_mails(app)
    text = body(row)
    assert "New tickets this week: 0" in text and "- none" in text and "nothing stands out this week" in text
    assert teams_file(tmp_path).exists()
