"""Several routing workers on one database: they suggest for different tickets and never store a
suggestion twice; a model is promoted once (compare-and-set), published by an atomic link swap
that a reader never sees half-done, and picked up by every other process."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from classifiers import Example, LinearRouter, Suggestion, default_classifier, load_model
from tests.conftest import Clock, make_mail
from tests.together import run_together
from triage.bootstrap import App
from triage.config import RoutingSettings, load_settings
from triage.ingest.pipeline import IncomingMail
from triage.routing import retrain as retrain_module
from triage.routing.desk import Router, load_teams
from triage.routing.model_store import KEEP_VERSIONS, ModelStore
from triage.routing.training_data import load_examples
from triage.store.db import make_engine, make_session_factory
from triage.store.models import Event, RoutingModel
from triage.store.models import Suggestion as StoredSuggestion

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
TICKETS = 120


class SlowModel:
    """Names `legal` for every mail and notes each mail it was asked about; pauses per batch, so
    that two passes started together overlap."""

    def __init__(self, version: str = "m1") -> None:
        self.version, self.labels = version, ["legal", "technology"]
        self.seen: list[str] = []

    def fit(self, examples: Sequence[Example]) -> None:
        raise NotImplementedError

    def predict(self, examples: Sequence[Example]) -> list[Suggestion]:
        time.sleep(0.05)
        self.seen.extend(e.subject for e in examples)
        return [Suggestion("legal", 0.9, (("legal", 0.9),), 0.5, self.version) for _ in examples]

    def explain(self, example: Example, top_k: int = 8) -> list[tuple[str, float]]:
        return [("because", 1.0)]


@pytest.fixture
def worker_sessions(db_url: str) -> list[sessionmaker[Session]]:
    """Two session factories, each on an engine of its own, as two workers have."""
    engines = [make_engine(db_url) for _ in range(2)]
    yield [make_session_factory(engine) for engine in engines]  # type: ignore[misc]
    for engine in engines:
        engine.dispose()


def test_two_suggest_passes_at_once_predict_different_tickets_and_store_each_once(
    app: App, clock: Clock, worker_sessions: list[sessionmaker[Session]]
) -> None:
    """Two routing workers with the same model run a pass at the same moment over 120 waiting
    tickets: between them every ticket is predicted once (no ticket by both), each has one
    suggestion and one `suggested` event, and on PostgreSQL both did part of the work."""
    app.ingestor(clock=clock).ingest_many([
        IncomingMail(make_mail(sender=f"V{i} <v{i}@volunteers{i}.example>", message_id=f"<s{i}@v.example>",
                               subject=f"Question {i}")) for i in range(TICKETS)])
    teams = load_teams(DATA / "teams.toml")
    models = [SlowModel(), SlowModel()]
    routers = [Router(sessions, model, teams, clock=clock) for sessions, model in zip(worker_sessions, models,
                                                                                       strict=True)]
    made = run_together(*(router.suggest_pending for router in routers))
    assert sum(made) == TICKETS, made
    if app.engine.dialect.name == "postgresql":  # SQLite runs one writer at a time: the first may do it all
        assert all(made), made
    assert not set(models[0].seen) & set(models[1].seen)
    assert len(models[0].seen) + len(models[1].seen) == TICKETS
    with app.sessions() as session:
        stored = Counter(session.scalars(select(StoredSuggestion.ticket_id)))
        logged = Counter(session.scalars(select(Event.ticket_id).where(Event.action == "suggested")))
    assert len(stored) == TICKETS and set(stored.values()) == {1}
    assert logged == stored
    assert [router.suggest_pending() for router in routers] == [0, 0]


# -- the model artefact -----------------------------------------------------------------------


@pytest.fixture(scope="module", name="trained")
def fixture_trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two different models (vocabularies, versions), saved once for the module: `a` from the seed
    data, `b` from it plus a team wording of its own."""
    seed = load_examples(DATA / "seed" / "seed.csv").examples
    extra = [Example(f"Quokka census form {i}", f"Where do I send quokka census form {i}?", f"q{i}@v.example", {},
                     "events") for i in range(20)]
    folders = {}
    for name, examples in (("a", seed), ("b", [*seed, *extra])):
        model = default_classifier()
        model.fit(examples)
        folders[name] = tmp_path_factory.mktemp("trained") / name
        model.save(folders[name])
    return folders


def fresh(trained: dict[str, Path], name: str) -> LinearRouter:
    return load_model(str(trained[name]))


def routing_settings(tmp_path: Path) -> RoutingSettings:
    return load_settings(environ={"TRIAGE_ROUTING_MODEL_PATH": str(tmp_path / "model"),
                                  "TRIAGE_ROUTING_SEED_DATA": str(DATA / "seed" / "seed.csv")}).routing


def test_of_two_promotions_against_one_model_exactly_one_wins(
    app: App, tmp_path: Path, trained: dict[str, Path], worker_sessions: list[sessionmaker[Session]]
) -> None:
    """Two workers promote a candidate measured against the same model at the same moment: one
    is recorded and linked, the other is refused and its folder removed; a candidate measured
    against a model no longer in use is refused too."""
    settings = routing_settings(tmp_path)
    stores = [ModelStore(settings, sessions, promoted_by=f"worker-{i}") for i, sessions in enumerate(worker_sessions)]
    base = stores[0].promote(fresh(trained, "a"), replaces=None, scores={})
    assert base is not None
    results = run_together(*(lambda s=s: s.promote(fresh(trained, "b"), replaces=base, scores={}) for s in stores))
    winners = [r for r in results if r is not None]
    assert len(winners) == 1, results
    [winner] = winners
    assert stores[0].recorded() == stores[1].recorded() == winner
    assert sorted(p.name for p in stores[0].versions.iterdir()) == sorted([base.folder, winner.folder])
    assert Path(os.readlink(settings.model_path)).name == winner.folder
    assert load_model(settings.model_path).version == fresh(trained, "b").version
    assert stores[1].promote(fresh(trained, "a"), replaces=base, scores={}) is None  # stale: `winner` is in use
    with app.sessions() as session:
        rows = session.scalars(select(RoutingModel).order_by(RoutingModel.id)).all()
    assert [(r.folder, r.replaces) for r in rows] == [(base.folder, 0), (winner.folder, base.id)]


def test_a_reader_always_loads_a_complete_model_while_the_link_is_swapped(
    app: App, tmp_path: Path, trained: dict[str, Path]
) -> None:
    """A reader loads the model by its path in a loop while twelve promotions swap the link
    between two models of different shapes: every load succeeds, whole (a mix of the two would
    be refused as inconsistent; a missing link as no model), and both models were seen."""
    settings = routing_settings(tmp_path)
    store = ModelStore(settings, app.sessions)
    record = store.promote(fresh(trained, "a"), replaces=None, scores={})
    loads: Counter[str] = Counter()
    errors: list[Exception] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                loads[load_model(settings.model_path).version] += 1
            except Exception as exc:  # noqa: BLE001 - every failure is the finding
                errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for n in range(12):
            record = store.promote(fresh(trained, "ba"[n % 2]), replaces=record, scores={})
            assert record is not None
            time.sleep(0.01)
    finally:
        stop.set()
        reader.join()
    assert errors == []
    assert set(loads) == {fresh(trained, "a").version, fresh(trained, "b").version}, loads


def test_old_versions_are_pruned_and_the_last_ones_kept(app: App, tmp_path: Path, trained: dict[str, Path],
                                                        clock: Clock) -> None:
    """After six promotions a few minutes apart, the folders of the last KEEP_VERSIONS remain;
    a crashed writer's old dot-folder is removed, a fresh one (a writer at work) is kept."""
    store = ModelStore(routing_settings(tmp_path), app.sessions, clock=clock)
    record = None
    records = []
    for n in range(6):
        clock.advance(minutes=5)
        if n == 5:
            crashed, working = store.versions / ".incoming-crashed", store.versions / ".incoming-working"
            crashed.mkdir(), working.mkdir()
            os.utime(crashed, (time.time() - 7200, time.time() - 7200))
        record = store.promote(fresh(trained, "ab"[n % 2]), replaces=record, scores={"n": n})
        records.append(record)
    assert sorted(p.name for p in store.versions.iterdir()) == sorted(
        [".incoming-working", *(r.folder for r in records[-KEEP_VERSIONS:] if r is not None)])


def test_a_plain_model_folder_is_adopted_by_the_first_promotion(app: App, tmp_path: Path,
                                                                trained: dict[str, Path]) -> None:
    """`model_path` written before versions (a plain folder) is loaded as it is, then moved into
    the versions and recorded as the model the first promotion replaces; the path becomes the link.
    A plain folder put back later is moved into the versions too, before the link replaces it."""
    settings = routing_settings(tmp_path)
    fresh(trained, "a").save(settings.model_path)
    store = ModelStore(settings, app.sessions)
    model, record = store.current()
    assert record is None and model is not None and model.version == fresh(trained, "a").version
    promoted = store.promote(fresh(trained, "b"), replaces=None, scores={})
    assert promoted is not None and Path(settings.model_path).is_symlink()
    assert load_model(settings.model_path).version == fresh(trained, "b").version
    with app.sessions() as session:
        rows = session.scalars(select(RoutingModel).order_by(RoutingModel.id)).all()
    assert [(r.version, r.replaces) for r in rows] == [(model.version, 0), (promoted.version, rows[0].id)]
    assert rows[0].promoted_by.startswith("adopted from ")
    assert load_model(str(store.versions / rows[0].folder)).version == model.version
    Path(settings.model_path).unlink()
    fresh(trained, "a").save(settings.model_path)  # a plain folder put back by hand over the link
    assert store.promote(fresh(trained, "a"), replaces=promoted, scores={}) is not None
    assert Path(settings.model_path).is_symlink() and load_model(settings.model_path).version == model.version
    assert len([p for p in store.versions.iterdir() if "-adopted-" in p.name]) == 2  # kept, never overwritten


def test_retrain_discards_its_candidate_when_another_promotion_came_first(
    app: App, clock: Clock, tmp_path: Path, trained: dict[str, Path], worker_sessions: list[sessionmaker[Session]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While this worker trains its candidate, another worker promotes its own (injected at the
    end of the fit: the moment a real race would hit): the candidate, though better, is discarded,
    the other's model stays in use, and this worker then loads that one."""
    settings = routing_settings(tmp_path)
    store = ModelStore(settings, app.sessions)
    base = store.promote(fresh(trained, "a"), replaces=None, scores={})
    assert base is not None
    router = Router(app.sessions, fresh(trained, "a"), load_teams(DATA / "teams.toml"), clock=clock, models=store,
                    record=base)
    refs = [app.ingestor(clock=clock).ingest(make_mail(
        subject=f"Quokka census form {i}", message_id=f"<q{i}@v.example>", sender=f"q{i}@v.example",
        body=f"Where do I send the quokka census form number {i}?")).ticket_reference or "" for i in range(8)]
    for ref in refs:
        clock.advance(minutes=1)
        router.approve(ref, actor="liaison:ana", team="events")
    other = ModelStore(settings, worker_sessions[0], promoted_by="the other worker")
    theirs: list[object] = []

    def racing_classifier(**options: object) -> LinearRouter:
        candidate = default_classifier(**options)
        fit = candidate.fit

        def fit_then_lose_the_race(examples: Sequence[Example]) -> None:
            fit(examples)
            theirs.append(other.promote(fresh(trained, "b"), replaces=base, scores={}))

        candidate.fit = fit_then_lose_the_race  # type: ignore[method-assign]
        return candidate

    monkeypatch.setattr(retrain_module, "default_classifier", racing_classifier)
    result = retrain_module.retrain(router, settings, force=True)
    assert theirs != [None] and result.candidate_accuracy is not None and result.current_accuracy is not None
    assert result.candidate_accuracy >= result.current_accuracy  # it would have been promoted
    assert not result.promoted and "discarded" in result.reason
    assert store.recorded() == theirs[0] and router.held[1] == base
    assert sorted(p.name for p in store.versions.iterdir()) == sorted([base.folder, theirs[0].folder])  # type: ignore[attr-defined]
    assert router.refresh_model(now=True) and router.model_version == fresh(trained, "b").version
    with app.sessions() as session:
        assert session.scalar(select(func.count()).select_from(RoutingModel)) == 2


FOLLOWER = """
import sys, time
from triage.bootstrap import bootstrap
from triage.config import load_settings
from triage.logging import configure_logging
settings = load_settings()
configure_logging(settings.log)  # as the worker does: logs to stderr, the versions alone on stdout
app = bootstrap(settings)
router = app.router()
router.model_recheck_seconds = 0.2
first = router.model_version
print(first, flush=True)
sys.stdin.readline()
deadline = time.monotonic() + 30
while router.model_version == first and time.monotonic() < deadline:
    router.suggest_pending()
    time.sleep(0.05)
print(router.model_version, flush=True)
"""


def test_another_process_picks_up_a_promoted_model(db_url: str, app: App, tmp_path: Path,
                                                   trained: dict[str, Path]) -> None:
    """A second process (a worker or the web server) holds the model in use; this one promotes a
    new model; the other's suggestion passes load it within its recheck period."""
    settings = routing_settings(tmp_path)
    store = ModelStore(settings, app.sessions)
    base = store.promote(fresh(trained, "a"), replaces=None, scores={})
    env = {**os.environ, "TRIAGE_DATABASE_URL": db_url, "TRIAGE_ROUTING_MODEL_PATH": settings.model_path,
           "TRIAGE_ROUTING_TEAMS_FILE": str(DATA / "teams.toml"), "TRIAGE_LOG_LEVEL": "error",
           "PYTHONPATH": str(ROOT)}
    env.pop("TRIAGE_CONFIG", None)
    follower = subprocess.Popen([sys.executable, "-c", FOLLOWER], cwd=tmp_path, env=env, text=True,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert follower.stdout is not None and follower.stdin is not None
        assert follower.stdout.readline().strip() == fresh(trained, "a").version
        assert store.promote(fresh(trained, "b"), replaces=base, scores={}) is not None
        follower.stdin.write("\n")
        follower.stdin.flush()
        assert follower.stdout.readline().strip() == fresh(trained, "b").version
        assert follower.wait(timeout=30) == 0
    finally:
        if follower.poll() is None:
            follower.kill()
        follower.wait()
