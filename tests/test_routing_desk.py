"""Routing in the pipeline: suggestions per new ticket, the liaison's decisions, stats, learning."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from classifiers import default_classifier
from tests.conftest import Clock, make_mail
from triage.bootstrap import App
from triage.cli import cli
from triage.routing.desk import Router, load_teams
from triage.routing.errors import RoutingError
from triage.routing.model_store import current_model
from triage.routing.training_data import load_examples
from triage.store.models import Decision, Event, Suggestion, Ticket

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module", name="model_dir")
def fixture_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained on the shipped seed data, saved once for the module (test_desk_routing imports it)."""
    path = tmp_path_factory.mktemp("model") / "model"
    model = default_classifier()
    model.fit(load_examples(DATA / "seed" / "seed.csv").examples)
    model.save(path)
    return path


@pytest.fixture
def router(app: App, clock: Clock, model_dir: Path) -> Router:
    from classifiers import load_model

    return Router(app.sessions, load_model(str(model_dir)), load_teams(DATA / "teams.toml"), clock=clock)


def ingest(app: App, clock: Clock, *mails: bytes) -> list[str]:
    ingestor = app.ingestor(clock=clock)
    return [ingestor.ingest(raw).ticket_reference or "" for raw in mails]


DONATION = make_mail(subject="Donation receipt for my tax return", message_id="<r1@v.example>",
                     body="Hello, I donated 50 euros by card in March. Could you send me a donation receipt "
                          "for my tax return? Thank you.")
VAGUE = make_mail(subject="hello", message_id="<r2@v.example>", sender="bo@v.example", body="hi, quick question")


def test_every_new_ticket_gets_a_stored_suggestion_with_evidence(app: App, clock: Clock, router: Router) -> None:
    """Suggestions carry team, confidence, model version and evidence; an unsure model abstains."""
    ingest(app, clock, DONATION, VAGUE)
    assert router.suggest_pending() == 2
    assert router.suggest_pending() == 0  # idempotent: one per ticket and model version
    with app.sessions() as session:
        by_ticket = {s.ticket_id: s for s in session.scalars(select(Suggestion))}
        assert by_ticket[1].team == "fundraising" and by_ticket[1].confidence >= by_ticket[1].confidence
        assert by_ticket[1].model_version == router.model_version and by_ticket[1].evidence
        assert any(e["term"] in ("receipt", "donation", "donated") and e["term"] in e["sentence"].lower()
                   for e in by_ticket[1].evidence)
        assert by_ticket[2].team is None  # below the threshold: the liaison routes it
        assert [e.action for e in session.scalars(select(Event).where(Event.ticket_id == 1))][-1] == "suggested"


def test_approve_accepts_or_corrects_and_logs_who(app: App, clock: Clock, router: Router) -> None:
    """approve takes the suggestion; --team corrects it; both record the decision and the actor."""
    first, second = ingest(app, clock, DONATION, VAGUE)
    router.suggest_pending()
    accepted = router.approve(first, actor="liaison:ana")
    assert accepted == {"reference": first, "team": "fundraising", "suggested": "fundraising", "agreed": True}
    with pytest.raises(RoutingError, match="abstained"):
        router.approve(second, actor="liaison:ana")
    with pytest.raises(RoutingError, match="unknown team"):
        router.approve(second, actor="liaison:ana", team="catering")
    corrected = router.approve(second, actor="liaison:ana", team="technology")
    assert corrected["agreed"] is False and corrected["team"] == "technology"
    with pytest.raises(RoutingError, match="already routed"):
        router.approve(second, actor="liaison:ana", team="legal")
    with app.sessions() as session:
        decisions = list(session.scalars(select(Decision).order_by(Decision.id)))
        assert [(d.team, d.agreed, d.actor) for d in decisions] == [
            ("fundraising", True, "liaison:ana"), ("technology", False, "liaison:ana")]
        routed = session.scalars(select(Event).where(Event.action == "routed")).all()
        assert {e.actor for e in routed} == {"liaison:ana"} and routed[0].at == clock.now
        assert session.get_one(Ticket, 1).team == "fundraising"
    with app.sessions() as session:
        assert router.queue(session) == []


def test_bulk_approval_takes_only_confident_suggestions(app: App, clock: Clock, router: Router) -> None:
    """--min-confidence approves suggestions at or above it and leaves abstentions waiting."""
    ingest(app, clock, DONATION, VAGUE)
    router.suggest_pending()
    done = router.approve_confident(0.5, actor="liaison:ana")
    assert [d["team"] for d in done] == ["fundraising"]
    with app.sessions() as session:
        assert [row["reference"] for row in router.queue(session)] == ["T-2026-00002"]


def test_decisions_are_examples_and_stats_measure_agreement(app: App, clock: Clock, router: Router) -> None:
    """Each decision becomes a labelled example; stats report agreement and coverage."""
    first, second = ingest(app, clock, DONATION, VAGUE)
    router.suggest_pending()
    router.approve(first, actor="a")
    router.approve(second, actor="a", team="technology")
    with app.sessions() as session:
        examples = router.examples_from_decisions(session)
        figures = router.stats(session)
    assert [(e.subject, e.label) for e in examples] == [
        ("Donation receipt for my tax return", "fundraising"), ("hello", "technology")]
    assert figures["decisions"] == 2 and figures["agreement"] == 0.5 and figures["coverage"] == 0.5
    assert sum(week["decisions"] for week in figures["by_week"]) == 2


def test_first_model_is_trained_from_seed_data(app: App, tmp_path: Path) -> None:
    """A fresh install with no model trains one from the seed data, and then loads it."""
    from triage.config import load_settings

    settings = load_settings(environ={
        "TRIAGE_ROUTING_MODEL_PATH": str(tmp_path / "model"),
        "TRIAGE_ROUTING_SEED_DATA": str(DATA / "seed" / "seed.csv"),
    })
    model = current_model(settings.routing, app.sessions)
    assert model is not None and (tmp_path / "model").is_dir()
    again = current_model(settings.routing, app.sessions)
    assert again is not None and again.version == model.version


def test_cli_queue_approve_stats(db_url: str, tmp_path: Path, model_dir: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The liaison's commands: queue shows the suggestion, approve routes, stats counts it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.eml").write_bytes(DONATION)
    env = {"TRIAGE_CONFIG": "", "TRIAGE_DATABASE_URL": db_url, "TRIAGE_ROUTING_MODEL_PATH": str(model_dir),
           "TRIAGE_ROUTING_TEAMS_FILE": str(DATA / "teams.toml")}
    runner = CliRunner()
    assert runner.invoke(cli, ["ingest", "a.eml"], env=env).exit_code == 0
    waiting = json.loads(runner.invoke(cli, ["queue", "--json"], env=env).stdout)
    assert [(w["reference"], w["suggested_team"]) for w in waiting] == [("T-2026-00001", "fundraising")]
    done = runner.invoke(cli, ["approve", "T-2026-00001", "--actor", "liaison:test"], env=env)
    assert done.exit_code == 0 and "fundraising (accepted)" in done.stdout
    missing = runner.invoke(cli, ["approve", "T-2026-00099"], env=env)
    assert missing.exit_code == 1 and "no ticket" in missing.stderr
    figures = json.loads(runner.invoke(cli, ["stats", "--json"], env=env).stdout)
    assert figures["decisions"] == 1 and figures["agreement"] == 1.0
    assert figures["overdue_by_team"] == {}  # the ticket arrived just now: its first response is not due yet
    assert figures["median_first_response_hours"] == {}
    table = runner.invoke(cli, ["stats"], env=env)
    assert "overdue (first response past due): none" in table.stdout


def test_overdue_count_per_team(app: App, clock: Clock, router: Router) -> None:
    """An unanswered routed ticket counts as overdue for its team once its first response is past due."""
    from datetime import timedelta

    from triage.schedule.stats import overdue_by_team

    first, = ingest(app, clock, DONATION)
    router.suggest_pending()
    router.approve(first, actor="a")
    with app.sessions() as session:
        assert overdue_by_team(session, app.settings, clock.now) == {}
        assert overdue_by_team(session, app.settings, clock.now + timedelta(days=14)) == {"fundraising": 1}


def test_retrain_promotes_only_a_model_at_least_as_good(app: App, clock: Clock, router: Router,
                                                         tmp_path: Path) -> None:
    """Decisions teach a new team wording; retraining promotes it when held-out accuracy does not drop."""
    from triage.config import load_settings
    from triage.routing.retrain import retrain

    settings = load_settings(environ={"TRIAGE_ROUTING_MODEL_PATH": str(tmp_path / "m"),
                                      "TRIAGE_ROUTING_SEED_DATA": str(DATA / "seed" / "seed.csv"),
                                      "TRIAGE_ROUTING_MIN_NEW_DECISIONS": "10"}).routing
    assert not retrain(router, settings).promoted  # no decisions yet: it waits
    mails = [make_mail(subject=f"Quokka census form {i}", message_id=f"<q{i}@v.example>", sender=f"q{i}@v.example",
                       body=f"Where do I send the quokka census form number {i}?") for i in range(14)]
    refs = ingest(app, clock, *mails)
    router.suggest_pending()
    for ref in refs:
        clock.advance(minutes=1)
        router.approve(ref, actor="a", team="events")  # the liaison teaches: quokka census -> events
    result = retrain(router, settings)
    assert result.held_out == 5 and result.candidate_accuracy is not None
    assert result.candidate_accuracy >= (result.current_accuracy or 0)
    assert result.promoted and (tmp_path / "m").is_dir()
    assert result.selected is not None and result.selection_seconds is not None  # the candidate was a selection
    assert router.model is not None and router.model.predict(
        [__import__("classifiers").Example("Quokka census form 99", "quokka census form")])[0].ranked[0][0] == "events"


def test_stats_weeks_are_iso_weeks_on_both_engines(app: App, router: Router) -> None:
    """`triage stats` labels weeks as ISO weeks of the UTC day, like the reports, on SQLite too (it
    printed strftime's '%Y-%W' there): 30 Dec 2024 is in 2025-W01, 1 Jan 2027 in 2026-W53."""
    from tests.report_desk import add_routing, add_ticket

    for created in (datetime(2024, 12, 30, 9, tzinfo=UTC), datetime(2027, 1, 1, 9, tzinfo=UTC),
                    datetime(2027, 1, 3, 9, tzinfo=UTC)):
        ticket = add_ticket(app, team="legal", created=created, contact=None)
        add_routing(app, ticket, created, "legal", "legal" if created.day != 3 else "events")
    add_routing(app, add_ticket(app, team=None, created=datetime(2027, 1, 2, 9, tzinfo=UTC), contact=None),
                datetime(2027, 1, 2, 9, tzinfo=UTC), None, None)  # an abstention: coverage falls to 2/3
    with app.sessions() as session:
        figures = router.stats(session)
    assert figures["by_week"] == [
        {"week": "2025-W01", "decisions": 1, "agreed": 1, "agreement": 1.0, "suggestions": 1, "named": 1,
         "coverage": 1.0},
        {"week": "2026-W53", "decisions": 2, "agreed": 1, "agreement": 0.5, "suggestions": 3, "named": 2,
         "coverage": 0.667},
    ]


def test_a_huge_body_is_routed_by_its_start(app: App, clock: Clock, router: Router) -> None:
    """The model reads the first ROUTE_CHARS of a stored body, to suggest and to retrain: a 3 MB mail
    whose start is about a donation receipt is routed by that start; the text far below is never
    tokenised (on a 45 MB body that took 470 MB)."""
    from triage.routing.desk import ROUTE_CHARS, example_from_message
    from triage.store.models import Message

    opening = "Hello, I donated last month and need a receipt for my donation, for the tax office.\n"
    start = opening * (ROUTE_CHARS // len(opening) + 1)
    below = "Our chapter wants to print the logo on a banner for the election of the board.\n" * 40_000
    app.ingestor(clock=clock).ingest(make_mail(subject="Question", body=start + below), source="test")
    assert router.suggest_pending() == 1
    with app.sessions() as session:
        message = session.scalars(select(Message)).one()
        example = example_from_message(message)
        suggestion = session.scalars(select(Suggestion)).one()
    assert len(example.body) == ROUTE_CHARS and "logo" not in example.body
    assert suggestion.team == "fundraising"
