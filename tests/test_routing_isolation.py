"""Routing survives one bad ticket and one model swap: a bulk approval goes on past a ticket that
fails, a hand-off that fails never undoes its approval, and a suggestion is stored under the
version of the model that made it even when the retrain runner swaps the model mid-pass."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from classifiers import Example, Suggestion
from tests.conftest import Clock, make_mail
from tests.test_outbox import MakeApp, fixture_make_app, outbox_rows  # noqa: F401 - fixture_make_app: make_app
from triage.bootstrap import App
from triage.cli import cli
from triage.outbox import queue
from triage.routing.desk import Router, load_teams
from triage.store.models import Contact, Decision, Event, Ticket
from triage.store.models import Suggestion as StoredSuggestion
from triage.store.outbox_models import OutboxStatus

DATA = Path(__file__).resolve().parents[1] / "data"
TEAMS = ("legal", "fundraising", "technology")


class FixedModel:
    """A model that names `team` for every mail and explains it with `feature`: what it suggests
    is known in advance, so a test can tell which model made a stored suggestion."""

    def __init__(self, version: str, team: str, feature: str,
                 on_predict: Callable[[], None] | None = None) -> None:
        self.version, self.team, self.feature, self.on_predict = version, team, feature, on_predict
        self.labels = list(TEAMS)

    def fit(self, examples: Sequence[Example]) -> None:
        raise NotImplementedError

    def predict(self, examples: Sequence[Example]) -> list[Suggestion]:
        if self.on_predict is not None:
            self.on_predict()  # what the retrain runner's thread may do at this very moment
        return [Suggestion(self.team, 0.9, ((self.team, 0.9),), 0.5, self.version) for _ in examples]

    def explain(self, example: Example, top_k: int = 8) -> list[tuple[str, float]]:
        return [(self.feature, 1.0)]


def ingest(app: App, clock: Clock, *mails: bytes) -> list[str]:
    ingestor = app.ingestor(clock=clock)
    return [ingestor.ingest(raw).ticket_reference or "" for raw in mails]


def mails(n: int) -> list[bytes]:
    return [make_mail(message_id=f"<q{i}@v.example>", sender=f"v{i}@volunteers.example",
                      subject=f"Question {i} on alpha and bravo") for i in range(n)]


def test_a_model_swapped_mid_pass_never_mixes_versions(app: App, clock: Clock) -> None:
    """The retrain runner replaces Router.model while suggest_pending runs: every suggestion of
    the pass is stored with the version, team and evidence of the one model that made it."""
    ingest(app, clock, *mails(3))
    new = FixedModel("model-B", "technology", "words:bravo")
    router = Router(app.sessions, None, load_teams(DATA / "teams.toml"), clock=clock)
    router.model = FixedModel("model-A", "legal", "words:alpha", on_predict=lambda: setattr(router, "model", new))  # type: ignore[assignment]
    assert router.suggest_pending() == 3
    with app.sessions() as session:
        stored = list(session.scalars(select(StoredSuggestion)))
    assert [(s.model_version, s.team, [(e["term"], e["weight"]) for e in s.evidence]) for s in stored] \
        == [("model-A", "legal", [("alpha", 1.0)])] * 3
    assert router.model is new and router.suggest_pending() == 3  # the next pass is the new model's
    with app.sessions() as session:
        latest = session.scalars(select(StoredSuggestion).where(StoredSuggestion.model_version == "model-B")).all()
    assert {(s.team, tuple((e["term"], e["weight"]) for e in s.evidence)) for s in latest} \
        == {("technology", (("bravo", 1.0),))}


@pytest.fixture
def desk(make_app: MakeApp) -> Iterator[tuple[App, Router]]:
    app = make_app(TRIAGE_OUTBOX_AUTO_ACKNOWLEDGE="false")
    router = Router(app.sessions, None, load_teams(DATA / "teams.toml"), on_routed=app.handoff)
    yield app, router


def suggest(app: App, router: Router, team_for: dict[str, str]) -> None:
    """Store a confident suggestion per ticket reference (as a model would)."""
    for reference, team in team_for.items():
        router.model = FixedModel("m1", team, "because")  # type: ignore[assignment]
        with app.sessions.begin() as session:
            ticket = session.scalars(select(Ticket).where(Ticket.reference == reference)).one()
            session.add(StoredSuggestion(ticket_id=ticket.id, team=team, confidence=0.95, model_version=f"m-{team}",
                                         ranked=[[team, 0.95]], evidence=[], created_at=ticket.created_at))


def test_bulk_approval_goes_on_past_a_ticket_that_fails(desk: tuple[App, Router], clock: Clock) -> None:
    """approve --min-confidence: a suggestion naming a team gone from the teams file fails alone
    (an `approval-failed` event, the ticket still waiting); every other ticket is approved."""
    app, router = desk
    refs = ingest(app, clock, *mails(3))
    suggest(app, router, {refs[0]: "legal", refs[1]: "catering", refs[2]: "fundraising"})
    results = router.approve_confident(0.5, actor="liaison:ana")
    assert [(r["reference"], r.get("team"), "error" in r) for r in results] == [
        (refs[0], "legal", False), (refs[1], None, True), (refs[2], "fundraising", False)]
    assert "unknown team 'catering'" in results[1]["error"]
    with app.sessions() as session:
        assert {t.reference: t.team for t in session.scalars(select(Ticket))} == {
            refs[0]: "legal", refs[1]: None, refs[2]: "fundraising"}
        failed = session.scalars(select(Event).where(Event.action == "approval-failed")).one()
        assert failed.ticket_id == 2 and "catering" in failed.detail["why"]
        assert len(session.scalars(select(Decision)).all()) == 2


def test_a_poison_volunteer_fails_only_its_own_handoff(desk: tuple[App, Router], clock: Clock) -> None:
    """A volunteer address the standard library chokes on (an unclosed domain literal, stored
    before the parser cleaned such input): the approval stands, the team is told, the notice to
    the volunteer is a failed outbox row with the reason, and the other approvals go on."""
    app, router = desk
    refs = ingest(app, clock, *mails(3))
    with app.sessions.begin() as session:
        session.get_one(Contact, 2).address = "x@[192.0.2.7"
    suggest(app, router, dict.fromkeys(refs, "legal"))
    results = router.approve_confident(0.5, actor="liaison:ana")
    assert [r.get("team") for r in results] == ["legal"] * 3
    rows = outbox_rows(app)
    by_ticket = {(r.ticket_id, r.template): r for r in rows}
    assert len(rows) == 6 and all(r.status is OutboxStatus.pending for k, r in by_ticket.items() if k != (2, "handoff-volunteer"))
    poison = by_ticket[(2, "handoff-volunteer")]
    assert poison.status is OutboxStatus.failed and poison.raw is None and "x@[192.0.2.7" in (poison.last_error or "")
    with app.sessions() as session:
        [event] = session.scalars(select(Event).where(Event.action == "mail-failed")).all()
        assert event.ticket_id == 2 and event.detail["outbox"] == poison.id


def test_any_exception_in_one_handoff_is_recorded_and_never_undoes_an_approval(
    desk: tuple[App, Router], clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not only ComposeError: any exception while one ticket's hand-off is built (injected here:
    no real part raises one on demand now) is a failed row on that ticket; the bulk goes on."""
    app, router = desk
    refs = ingest(app, clock, *mails(3))
    real = queue._render_compose

    def flaky(*args: object, **kwargs: object) -> object:
        if kwargs["view"].ticket.reference == refs[1]:  # type: ignore[attr-defined]
            raise RuntimeError("the disk of the template cache is on fire")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(queue, "_render_compose", flaky)
    suggest(app, router, dict.fromkeys(refs, "legal"))
    assert [r.get("team") for r in router.approve_confident(0.5, actor="liaison:ana")] == ["legal"] * 3
    failed = [r for r in outbox_rows(app) if r.status is OutboxStatus.failed]
    assert {(r.ticket_id, r.template) for r in failed} == {(2, "handoff-team"), (2, "handoff-volunteer")}
    assert all("RuntimeError: the disk of the template cache is on fire" in (r.last_error or "") for r in failed)
    assert len([r for r in outbox_rows(app) if r.status is OutboxStatus.pending]) == 4


def test_a_hook_that_raises_never_undoes_the_approval(app: App, clock: Clock) -> None:
    """The desk's last guard: whatever its on_routed hook raises, the decision is kept and the
    ticket's log says the hand-off failed."""
    [ref] = ingest(app, clock, *mails(1))

    def broken(*_: object) -> None:
        raise LookupError("no such outbox")

    router = Router(app.sessions, None, load_teams(DATA / "teams.toml"), clock=clock, on_routed=broken)
    assert router.approve(ref, actor="liaison:ana", team="legal")["team"] == "legal"
    with app.sessions() as session:
        assert session.get_one(Ticket, 1).team == "legal"
        [event] = session.scalars(select(Event).where(Event.action == "handoff-failed")).all()
        assert "LookupError: no such outbox" in event.detail["why"]


def test_approve_command_reports_the_ticket_it_could_not_approve(
    app: App, clock: Clock, db_url: str, tmp_path: Path
) -> None:
    """`triage approve --min-confidence`: a ticket whose suggested team is not in the teams file
    fails alone; the others are approved and listed, the failure goes to stderr with the reason,
    and the exit status says something failed."""
    teams = tmp_path / "teams.toml"
    teams.write_text('[teams.legal]\nname = "Legal"\naddress = "legal@example.org"\n\n'
                     '[teams.technology]\nname = "Technology"\naddress = "technology@example.org"\n')
    refs = ingest(app, clock, make_mail(
        subject="Donation receipt for my tax return", message_id="<d1@v.example>",
        body="Hello, I donated 50 euros by card in March. Could you send me a donation receipt for my tax return?"),
        make_mail(subject="Cannot log in, two-factor reset", message_id="<d2@v.example>", sender="bo@v.example",
                  body="I lost my phone and cannot log in to my account; please reset my two-factor authentication."))
    env = {"TRIAGE_DATABASE_URL": db_url, "TRIAGE_ROUTING_MODEL_PATH": str(tmp_path / "model"),
           "TRIAGE_ROUTING_TEAMS_FILE": str(teams), "TRIAGE_LOG_LEVEL": "error"}
    result = CliRunner().invoke(cli, ["approve", "--min-confidence", "0.5"], env=env)
    assert result.exit_code == 1, result.output
    assert f"{refs[1]} -> technology (accepted)" in result.stdout
    assert "1 approved at confidence >= 0.5, 1 failed" in result.stdout
    assert f"{refs[0]} not approved: unknown team 'fundraising'" in result.stderr
