"""A long-running worker or web server follows an edited teams file (routing.teams_file): the App
reads it again when its mtime or size changed, looking at most every `teams_recheck_seconds`, for
the outbox's hand-offs, the staff who may answer by mail and the router's team choices."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import select

from tests.conftest import Clock, make_mail
from tests.test_outbox import MakeApp, fixture_make_app  # noqa: F401 - fixture: make_app
from triage.bootstrap import App
from triage.ingest.pipeline import IncomingMail
from triage.store.outbox_models import Outbox

TEAMS = """
[teams.legal]
name = "Legal"
address = "{address}"
"""


def write_teams(path: Path, text: str, *, tick: int) -> None:
    path.write_text(text)
    os.utime(path, ns=(tick * 10**9, tick * 10**9))  # a distinct mtime however fast the test runs


def handoff_recipients(app: App) -> list[list[str]]:
    with app.reads() as session:
        return [row.recipients for row in session.scalars(
            select(Outbox).where(Outbox.template == "handoff-team").order_by(Outbox.id))]


def hand_to_legal(app: App, clock: Clock, n: int) -> str:
    [outcome] = app.ingestor(clock=clock).ingest_many([IncomingMail(make_mail(
        message_id=f"<v{n}@volunteers.example>", subject=f"logo {n}"), source="test")])
    assert outcome.ticket_reference
    app.router().approve(outcome.ticket_reference, actor="liaison:ana", team="legal")
    return outcome.ticket_reference


def test_an_edited_teams_file_is_used_by_the_next_handoff_and_a_broken_one_is_not(
        make_app: MakeApp, clock: Clock, tmp_path: Path) -> None:
    """Legal moves to a new address: within the recheck period the old one is still used (a stat()
    per period, not per mail); after it, the new one; a file broken mid-edit keeps the teams in use."""
    teams = tmp_path / "teams.toml"
    write_teams(teams, TEAMS.format(address="legal@example.org"), tick=1_000)
    app = make_app(TRIAGE_ROUTING_TEAMS_FILE=str(teams), TRIAGE_ROUTING_AUTO_TRAIN="false",
                   TRIAGE_ROUTING_MODEL_PATH=str(tmp_path / "no-model"))
    app.teams_recheck_seconds = 3600
    hand_to_legal(app, clock, 1)
    write_teams(teams, TEAMS.format(address="counsel@example.org"), tick=2_000)
    hand_to_legal(app, clock, 2)
    app.teams_recheck_seconds = 0
    hand_to_legal(app, clock, 3)
    write_teams(teams, "[teams.legal\nname = ", tick=3_000)  # half-saved
    hand_to_legal(app, clock, 4)
    assert handoff_recipients(app) == [["legal@example.org"], ["legal@example.org"], ["counsel@example.org"],
                                       ["counsel@example.org"]]


def test_a_new_team_can_be_chosen_and_its_staff_answer_by_mail(make_app: MakeApp, clock: Clock,
                                                               tmp_path: Path) -> None:
    """A team added to the file is a team the router accepts, and its address is staff on its ticket."""
    teams = tmp_path / "teams.toml"
    write_teams(teams, TEAMS.format(address="legal@example.org"), tick=1_000)
    app = make_app(TRIAGE_ROUTING_TEAMS_FILE=str(teams), TRIAGE_ROUTING_AUTO_TRAIN="false",
                   TRIAGE_ROUTING_MODEL_PATH=str(tmp_path / "no-model"))
    app.teams_recheck_seconds = 0
    assert sorted(app.router().teams) == ["legal"]
    ingestor = app.ingestor(clock=clock)  # a poller's, made at start-up
    write_teams(teams, TEAMS.format(address="legal@example.org")
                + '[teams.grants]\nname = "Grants"\naddress = "grants@example.org"\n', tick=2_000)
    [outcome] = ingestor.ingest_many([IncomingMail(make_mail(), source="test")])
    assert outcome.ticket_reference
    app.router().approve(outcome.ticket_reference, actor="liaison:ana", team="grants")
    assert handoff_recipients(app) == [["grants@example.org"]]
    with app.reads() as session:
        handoff_id = session.scalars(select(Outbox.message_id).where(Outbox.template == "handoff-team")).one()
    [answer] = ingestor.ingest_many([IncomingMail(make_mail(
        sender="Grants <grants@example.org>", message_id="<g1@example.org>", subject="Re: hand-off",
        in_reply_to=handoff_id, references=[handoff_id], body="Approved.\n"), source="test")])
    assert answer.staff == "reply" and answer.ticket_reference == outcome.ticket_reference
