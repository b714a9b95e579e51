"""Model selection on the desk's own mail: judged on later mail only, the baseline always a candidate."""

from __future__ import annotations

import random
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from classifiers import Classifier, Example, LinearRouter, SelectingRouter, default_classifier, load_model
from classifiers.calibration import NEVER, choose_threshold, choose_threshold_bound, precision_lower_bound
from classifiers.evaluation import evaluate, timeline
from classifiers.selection import (
    BASELINE,
    CANDIDATES,
    later_mail_folds,
    pick,
    rolling_origin,
    time_ordered,
    validate,
)
from tests.routing_topics import FILLER, START, TOPICS
from triage.routing.training_data import load_examples

SEED = Path(__file__).resolve().parents[1] / "data" / "seed" / "seed.csv"
DEFAULT = next(c for c in CANDIDATES if c.name == "default")


def drifting(n: int = 240, seed: int = 0) -> list[Example]:
    """Mail whose team shows in its body; a third of the way in, the volunteers moved desks: their
    addresses and subject lines now name the team they used to write to. The default router's extra
    blocks (subject characters, addresses) learnt the old habit, and it misleads them on later mail."""
    rng = random.Random(seed)
    teams = list(TOPICS)
    out = []
    for i in range(n):
        team = teams[i % 3]
        shown = team if i < n // 3 else teams[(i + 1) % 3]
        words = rng.sample(TOPICS[team].split(), 2) + rng.sample(FILLER, 6)
        rng.shuffle(words)
        out.append(Example(subject=f"{shown} desk {rng.choice(TOPICS[shown].split())}", body=" ".join(words),
                           sender=f"v{rng.randrange(5)}@{shown}-desk.example", label=team,
                           date=START + timedelta(hours=i)))
    return out


def shuffled(examples: list[Example], seed: int = 1) -> list[Example]:
    out = list(examples)
    random.Random(seed).shuffle(out)
    return out


def test_the_baseline_wins_where_the_default_models_extra_features_hurt() -> None:
    """On mail where addresses and subjects drifted, the plain baseline beats the default on later
    mail, and the selection promotes it."""
    model = SelectingRouter((BASELINE, DEFAULT))
    model.fit(shuffled(drifting()))
    figures = model.card["selection"]["candidates"]
    assert figures["baseline"]["accuracy"] > figures["default"]["accuracy"] + 0.03
    assert model.card["selection"]["chosen"] == "baseline"
    assert [b.name for b in model.blocks] == ["words"]
    [s] = model.predict([Example("tech desk court", "a lawyer wrote about the trademark", "v1@tech-desk.example")])
    assert s.ranked[0][0] == "legal"


def test_the_default_wins_where_its_extra_features_help() -> None:
    """The same selection keeps the richer model when only the subject's word stems carry the team
    (every subject word has its own ending: whole words never repeat, character n-grams do)."""
    rng = random.Random(3)
    teams = list(TOPICS)

    def ending() -> str:
        return "".join(rng.choice("bdfgjkqvwxz") for _ in range(4))

    data = [
        Example(f"{rng.choice(TOPICS[t].split())}{ending()}", " ".join(rng.sample(FILLER, 6)), "v@example.org",
                label=t, date=START + timedelta(hours=i))
        for i, t in enumerate(teams[i % 3] for i in range(150))
    ]
    model = SelectingRouter((BASELINE, DEFAULT))
    model.fit(data)
    assert model.card["selection"]["chosen"] == "default"


def test_rolling_origin_validates_only_on_later_mail() -> None:
    """Every fold trains on a prefix and validates on the window right after it; the last ends at n."""
    for n in (25, 100, 578, 3672):
        folds = rolling_origin(n, 3)
        assert len(folds) == 3 and folds[-1][1] == n
        window = n // 5
        for origin, end in folds:
            assert end - origin == window and origin >= 2 * window
        assert [f[1] for f in folds[:-1]] == [f[0] for f in folds[1:]]
    assert rolling_origin(4, 3) == []


def test_selection_sees_no_future_mail() -> None:
    """Changing the last window's mail (text and teams) leaves every earlier fold's scores unchanged:
    neither the models nor their vocabularies learnt from mail after their validation window."""
    data = time_ordered(shuffled(drifting(150)))
    labels = sorted(TOPICS)
    garbled = [*data[:120], *(replace(e, body="zzz " * 5, subject="qqq", label="press") for e in data[120:])]

    def run(examples: list[Example]) -> dict[str, np.ndarray]:
        y = np.array([labels.index(str(e.label)) for e in examples])
        return validate(CANDIDATES, examples, y, len(labels), later_mail_folds(examples, 3)).scores

    before, after = run(data), run(garbled)
    for name in before:  # folds 1 and 2 validate on [60, 90) and [90, 120): rows 0-59
        np.testing.assert_array_equal(before[name][:60], after[name][:60])
        assert not np.array_equal(before[name][60:], after[name][60:])


def test_selection_orders_by_date_whatever_the_input_order() -> None:
    """The input order of dated mail does not matter: it is sorted by date before the folds are cut."""
    data = drifting(150)
    one, two = SelectingRouter(), SelectingRouter()
    one.fit(data)
    two.fit(shuffled(data, seed=7))
    assert one.card["selection"]["candidates"].keys() == two.card["selection"]["candidates"].keys()
    for name, figures in one.card["selection"]["candidates"].items():
        assert figures["accuracy"] == two.card["selection"]["candidates"][name]["accuracy"]
    assert [e.date for e in time_ordered(shuffled(data))] == [e.date for e in data]


def test_undated_mail_is_compared_by_cross_validation() -> None:
    """Mail without dates (a folder export, sorted by team) has no time order: grouped cross-validation
    judges the candidates, not windows that would hold only teams the training part never saw."""
    by_team = sorted((replace(e, date=None) for e in drifting(150)), key=lambda e: str(e.label))
    model = SelectingRouter()
    model.fit(by_team)
    assert model.card["metrics"]["protocol"].startswith("no dates on the validation mail: 3-fold")
    assert model.card["metrics"]["accuracy"] > 0.8


def test_pick_prefers_the_simpler_within_one_standard_error() -> None:
    """A lead the validation cannot tell from noise goes to the simpler (earlier) candidate."""
    hits = np.array([True] * 90 + [False] * 10)
    one_more = hits.copy()
    one_more[[90, 91]], one_more[0] = True, False  # right on two more, wrong on one: +0.01, SE 0.017
    assert pick({"baseline": hits, "default": one_more}).name == "baseline"
    much_better = np.ones(100, dtype=bool)
    assert pick({"baseline": hits, "default": much_better}).name == "default"


def test_threshold_bound_needs_enough_evidence() -> None:
    """The threshold's precision must hold as a 95% lower bound: 10 of 10 right is not enough for
    0.90, 30 of 30 is; the bounded threshold never covers more than the plain one."""
    assert precision_lower_bound(np.array([10.0, 30.0]), np.array([10.0, 30.0]), 0.95).tolist() == pytest.approx(
        [0.05 ** (1 / 10), 0.05 ** (1 / 30)])
    assert choose_threshold_bound(np.linspace(1.0, 0.5, 10), np.ones(10, dtype=bool), 0.9).value == NEVER
    assert choose_threshold_bound(np.linspace(1.0, 0.5, 30), np.ones(30, dtype=bool), 0.9).value == 0.5
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.3, 1.0, 2000)
    correct = rng.uniform(size=2000) < confidence
    bounded, plain = choose_threshold_bound(confidence, correct, 0.9), choose_threshold(confidence, correct, 0.9)
    assert plain.value < bounded.value < NEVER and bounded.precision >= 0.9
    assert bounded.coverage < plain.coverage


def test_a_small_desk_trains_in_seconds_and_saves_a_router(tmp_path: Path) -> None:
    """The seed set (578 mails, dated here as a desk's decisions would be) selects and trains in
    seconds; the saved model loads as a LinearRouter with the same predictions and the selection in its card."""
    examples = [replace(e, date=START + timedelta(hours=i)) for i, e in enumerate(load_examples(SEED).examples)]
    model = default_classifier()
    start = time.perf_counter()
    model.fit(examples)
    assert time.perf_counter() - start < 30.0
    selection = model.card["selection"]
    assert selection["chosen"] in {c.name for c in CANDIDATES}
    assert set(selection["candidates"]) == {c.name for c in CANDIDATES}
    assert model.card["metrics"]["protocol"].startswith("time-ordered validation")
    model.save(tmp_path / "m")
    loaded = load_model(str(tmp_path / "m"))
    assert isinstance(loaded, LinearRouter) and isinstance(loaded, Classifier)
    assert loaded.card["selection"]["chosen"] == selection["chosen"]
    np.testing.assert_allclose(loaded.predict_proba(examples[:50]), model.predict_proba(examples[:50]))
    assert loaded.threshold == model.threshold
    assert loaded.explain(examples[0]) == model.explain(examples[0])


def test_a_model_saved_by_the_plain_router_still_loads(tmp_path: Path) -> None:
    """Models saved before selection (a LinearRouter, no selection in the card) load unchanged."""
    old = LinearRouter()
    old.fit(drifting(60))
    old.save(tmp_path / "old")
    loaded = load_model(str(tmp_path / "old"))
    assert "selection" not in loaded.card
    np.testing.assert_allclose(loaded.predict_proba(drifting(60)[:10]), old.predict_proba(drifting(60)[:10]))


def test_too_few_mails_to_validate_use_the_baseline() -> None:
    """Below ten later mails per window, the simplest candidate is trained and says why."""
    model = SelectingRouter()
    model.fit(drifting(30))
    assert model.card["selection"]["chosen"] == "baseline"
    assert "too few" in model.card["selection"]["reason"]
    assert evaluate(model, drifting(30))["accuracy"] > 0.5
    one_thread = [replace(e, subject="Re: the same thread", date=None) for e in drifting(60)]
    model.fit(one_thread)  # undated and a single thread: nothing to cross-validate on either
    assert model.card["selection"]["chosen"] == "baseline"


def test_timeline_runs_the_selection_at_every_step() -> None:
    """Each timeline step selects on its own training part; the chosen candidates are counted."""
    result = timeline(drifting(150), default_classifier, step=50)
    assert [s["train"] for s in result["splits"]] == [50, 100]
    assert all(s["chosen"] for s in result["splits"])
    assert sum(result["chosen"].values()) == 2
    assert "precision_at_threshold_pooled" in result and "calibration_error" in result
