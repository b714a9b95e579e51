"""The routing classifier: learning, ranking, abstaining, explaining, evaluating, safe model files."""

from __future__ import annotations

import json
import pickle
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from classifiers import (
    Classifier,
    Example,
    LinearRouter,
    ModelFileError,
    NotFittedError,
    Suggestion,
    TrainingDataError,
    UnsafeModelError,
    load_model,
)
from classifiers.artefact import training_set_sha256
from classifiers.calibration import NEVER, choose_threshold, expected_calibration_error
from classifiers.evaluation import evaluate, timeline
from tests.routing_topics import FILLER, START, TOPICS


def synthetic(per_team: int = 30, seed: int = 0, teams: Sequence[str] = tuple(TOPICS)) -> list[Example]:
    """Mails whose team shows in a few topical words among shared filler."""
    rng = random.Random(seed)
    out = []
    for i in range(per_team):
        for team in teams:
            topic = TOPICS[team].split()
            words = rng.sample(topic, 3) + rng.sample(FILLER, 5)
            rng.shuffle(words)
            out.append(Example(
                subject=f"{rng.choice(topic)} {rng.choice(FILLER)}", body=" ".join(words),
                sender=f"v{rng.randrange(40)}@{team}-friends.example", label=team,
                date=START + timedelta(hours=len(out)),
            ))
    return out


def fixed_clock() -> datetime:
    return datetime(2026, 11, 24, 9, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def router() -> LinearRouter:
    model = LinearRouter(clock=fixed_clock)
    model.fit(synthetic())
    return model


def ask(subject: str, body: str, sender: str = "someone@elsewhere.example") -> Example:
    return Example(subject=subject, body=body, sender=sender)


def test_default_router_satisfies_the_interface(router: LinearRouter) -> None:
    """The default model is a `Classifier` and knows the teams it was trained on."""
    assert isinstance(router, Classifier)
    assert router.labels == ["legal", "press", "tech"]


def test_learns_teams_from_examples(router: LinearRouter) -> None:
    """A mail in a team's words gets that team, ranked first, with probabilities summing to one."""
    [s] = router.predict([ask("court letter", "a lawyer sent a takedown about our trademark")])
    assert s.ranked[0][0] == "legal"
    assert [p for _, p in s.ranked] == sorted((p for _, p in s.ranked), reverse=True)
    assert sum(p for _, p in s.ranked) == pytest.approx(1.0)
    assert {t for t, _ in s.ranked} == {"legal", "press", "tech"}


def test_learns_from_a_new_decision() -> None:
    """Examples of a team the model never saw teach it that team after refitting."""
    model = LinearRouter()
    model.fit(synthetic(teams=("legal", "press")))
    new_team = [Example("event venue booking", "venue catering badges schedule", "x@y.example", label="events")]
    model.fit(synthetic(teams=("legal", "press")) + new_team * 12)
    [s] = model.predict([ask("venue", "catering and badges for the venue")])
    assert s.ranked[0][0] == "events"


def test_abstains_below_the_threshold(router: LinearRouter) -> None:
    """A mail with no known evidence gets no team, but still the full ranking and its confidence."""
    [s] = router.predict([ask("zzz", "qqq xxyz")])
    assert s.team is None and s.abstained
    assert s.confidence < s.threshold == router.threshold.value
    assert len(s.ranked) == 3


def test_suggests_above_the_threshold(router: LinearRouter) -> None:
    """A clear mail gets a team when its confidence reaches the threshold, and carries the model version."""
    [s] = router.predict([ask("password reset", "login crash after password reset, server outage")])
    assert s.confidence >= s.threshold
    assert s.team == "tech"
    assert s.model_version == router.version


def test_threshold_reaches_target_precision() -> None:
    """The chosen threshold is the lowest whose suggestions meet the target precision; none if unreachable."""
    confidence = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.5])
    correct = np.array([True, True, True, True, False, False])
    t = choose_threshold(confidence, correct, 0.9)
    assert (t.value, t.coverage, t.precision) == (0.7, 4 / 6, 1.0)
    assert choose_threshold(confidence, correct, 0.6).value == 0.5
    never = choose_threshold(np.array([0.9, 0.8]), np.array([False, True]), 0.9)
    assert never.value == NEVER and never.coverage == 0.0


def test_calibration_error_measures_overconfidence() -> None:
    """ECE is 0 when confidence matches the hit rate and grows with over-confidence."""
    hits = np.array([True, True, True, False] * 25)
    assert expected_calibration_error(np.full(100, 0.75), hits) == pytest.approx(0.0)
    assert expected_calibration_error(np.full(100, 0.95), hits) == pytest.approx(0.2)


def test_explain_names_features_of_the_top_team(router: LinearRouter) -> None:
    """Evidence lists the mail's own features that raised the top team's score, strongest first."""
    example = ask("interview request", "a journalist wants an interview for a newspaper article")
    evidence = router.explain(example, top_k=4)
    assert 0 < len(evidence) <= 4
    assert [w for _, w in evidence] == sorted((w for _, w in evidence), reverse=True)
    assert all(w > 0 for _, w in evidence)
    words = {name.split(":", 1)[1] for name, _ in evidence if name.startswith("words:")}
    assert words and words <= {"journalist", "interview", "newspaper", "article", "request"}


def test_single_and_batch_predictions_agree(router: LinearRouter) -> None:
    """The one-mail fast path gives the same probabilities as the batch path."""
    examples = synthetic(per_team=2, seed=7)
    batch = router.predict_proba(examples)
    one_by_one = np.vstack([router.predict_proba([e]) for e in examples])
    np.testing.assert_allclose(one_by_one, batch, rtol=1e-12, atol=1e-12)


def test_two_teams_work() -> None:
    """With two teams the model still ranks both with probabilities."""
    model = LinearRouter()
    model.fit(synthetic(teams=("legal", "tech")))
    [s] = model.predict([ask("server", "outage and crash on the server")])
    assert s.ranked[0][0] == "tech" and len(s.ranked) == 2


def test_training_needs_two_labelled_teams() -> None:
    """Fitting on one team, or on unlabelled mail, is refused with a reason."""
    with pytest.raises(TrainingDataError, match="two teams"):
        LinearRouter().fit(synthetic(teams=("legal",)))
    with pytest.raises(TrainingDataError, match="label"):
        LinearRouter().fit([*synthetic(), ask("x", "y")])


def test_unfitted_router_says_so() -> None:
    """Predicting before training raises NotFittedError."""
    with pytest.raises(NotFittedError):
        LinearRouter().predict([ask("a", "b")])


def test_round_trip_gives_identical_predictions(router: LinearRouter, tmp_path: Path) -> None:
    """A saved and reloaded model gives exactly the same probabilities, threshold and evidence."""
    router.save(tmp_path / "model")
    loaded = load_model(str(tmp_path / "model"))
    examples = synthetic(per_team=3, seed=3)
    np.testing.assert_array_equal(loaded.predict_proba(examples), router.predict_proba(examples))
    np.testing.assert_array_equal(loaded.predict_proba(examples[:1]), router.predict_proba(examples[:1]))
    assert loaded.threshold == router.threshold and loaded.labels == router.labels
    assert loaded.explain(examples[0]) == router.explain(examples[0])
    assert loaded.card == router.card


def test_artefact_metadata(router: LinearRouter, tmp_path: Path) -> None:
    """model.json records format, version, date, training-set hash, labels, metrics and threshold."""
    router.save(tmp_path / "model")
    meta = json.loads((tmp_path / "model" / "model.json").read_text())
    examples = synthetic()
    assert meta["format"] == "triage-routing-model" and meta["format_version"] == 1
    assert meta["created"] == "2026-11-24T09:30:00+00:00"
    assert meta["training_set_sha256"] == training_set_sha256(examples) == training_set_sha256(examples[::-1])
    assert meta["version"] == f"20261124T093000Z-{meta['training_set_sha256'][:8]}"
    assert meta["labels"] == ["legal", "press", "tech"]
    assert meta["n_examples"] == len(examples)
    assert set(meta["metrics"]) >= {"protocol", "accuracy", "macro_f1", "coverage_at_threshold",
                                    "precision_at_threshold"}
    assert meta["threshold"]["target_precision"] == 0.9
    assert 0.0 <= meta["threshold"]["coverage"] <= 1.0


class _Boom:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("this would have run",))


def test_refuses_a_pickle(tmp_path: Path, router: LinearRouter) -> None:
    """A pickle, as the model path or in place of the arrays, is refused before anything is unpickled."""
    bad = tmp_path / "model.pkl"
    bad.write_bytes(pickle.dumps(_Boom()))
    with pytest.raises(UnsafeModelError, match="pickle"):
        load_model(str(bad))
    router.save(tmp_path / "model")
    (tmp_path / "model" / "arrays.npz").write_bytes(pickle.dumps(_Boom()))
    with pytest.raises(UnsafeModelError, match="pickle"):
        load_model(str(tmp_path / "model"))


def test_refuses_object_arrays(tmp_path: Path, router: LinearRouter) -> None:
    """An npz holding an array of Python objects (pickled inside) is refused."""
    router.save(tmp_path / "model")
    np.savez(tmp_path / "model" / "arrays.npz", coef_t=np.array([_Boom()], dtype=object))
    with pytest.raises(UnsafeModelError, match="pickled"):
        load_model(str(tmp_path / "model"))


def test_missing_or_foreign_model_is_a_clear_error(tmp_path: Path) -> None:
    """A missing folder or a folder of something else says how to get a model."""
    with pytest.raises(ModelFileError, match="triage train"):
        load_model(str(tmp_path / "nowhere"))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "model.json").write_text('{"format": "something-else"}')
    np.savez(tmp_path / "other" / "arrays.npz", x=np.zeros(1))
    with pytest.raises(ModelFileError, match="not a triage routing model"):
        load_model(str(tmp_path / "other"))


def test_evaluation_report_keys(router: LinearRouter) -> None:
    """Evaluation reports accuracy, macro-F1, per-team precision/recall, coverage and the confusion matrix."""
    result = evaluate(router, synthetic(per_team=5, seed=11))
    assert set(result) >= {"n", "accuracy", "macro_f1", "coverage", "precision_at_threshold", "threshold",
                           "per_team", "labels", "confusion", "calibration_error"}
    assert set(result["per_team"]["legal"]) == {"precision", "recall", "f1", "support"}
    assert len(result["confusion"]) == len(result["labels"]) == 3
    assert sum(map(sum, result["confusion"])) == result["n"] == 15


class _Recorder:
    """A stand-in classifier that records what it was trained on and always answers its first label."""

    trained_on: ClassVar[list[list[Example]]] = []

    def __init__(self) -> None:
        self._labels: list[str] = []

    @property
    def labels(self) -> list[str]:
        return self._labels

    def fit(self, examples: Sequence[Example]) -> None:
        _Recorder.trained_on.append(list(examples))
        self._labels = sorted({str(e.label) for e in examples})

    def predict(self, examples: Sequence[Example]) -> list[Suggestion]:
        ranked = tuple((label, 1.0 / len(self._labels)) for label in self._labels)
        return [Suggestion(self._labels[0], ranked[0][1], ranked, 0.0, "test") for _ in examples]

    def explain(self, example: Example, top_k: int = 8) -> list[tuple[str, float]]:
        return []


def test_timeline_trains_on_the_past_and_tests_on_the_next_step() -> None:
    """Mail is sorted by date; split k trains on the first k*step and tests on the following step."""
    examples = synthetic(per_team=10)  # 30 dated mails
    shuffled = random.Random(1).sample(examples, len(examples))
    undated = Example("no date", "body", label="legal")
    _Recorder.trained_on = []
    result = timeline([*shuffled, undated], _Recorder, step=10)
    assert [s["train"] for s in result["splits"]] == [10, 20]
    assert all(s["test"] == 10 for s in result["splits"])
    assert result["undated"] == 1 and result["n"] == 30
    ordered = sorted(examples, key=lambda e: e.date or START)
    assert [e.date for e in _Recorder.trained_on[0]] == [e.date for e in ordered[:10]]
    assert set(result) >= {"protocol", "accuracy", "macro_f1", "coverage", "precision_at_threshold", "splits"}


def test_timeline_needs_enough_dated_mail() -> None:
    """Fewer than two steps of dated mail is refused with the counts."""
    with pytest.raises(TrainingDataError, match="at least 200 dated"):
        timeline(synthetic(per_team=10), _Recorder)
