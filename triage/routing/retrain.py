"""Retrain from the liaison's decisions; promote the new model only if it is at least as good.

The gate is the selection's own protocol one level up: train on the past, judge on what came
after. Both models are scored on the same held-out decisions (the most recent fifth, by decision
time): the candidate is the model selection (`SelectingRouter`: the plain baseline and the other
linear candidates, judged on the later part of its own training mail) run on the seed data plus
the older decisions, and it replaces the model in use only if its accuracy on the held-out
decisions is at least the current one's,
and only if the model it was measured against is still the one in use: another worker's
promotion in between wins, and this candidate is discarded (`ModelStore.promote`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import func, select

from classifiers import Classifier, Example, default_classifier
from triage.config import RoutingSettings
from triage.routing.desk import Router
from triage.routing.model_store import ModelStore
from triage.routing.training_data import load_examples
from triage.store.models import Decision

log = structlog.get_logger(__name__)

HELD_OUT_SHARE = 0.2
MIN_HELD_OUT = 5


@dataclass(frozen=True)
class RetrainResult:
    promoted: bool
    reason: str
    decisions: int
    held_out: int = 0
    current_accuracy: float | None = None
    candidate_accuracy: float | None = None
    candidate_version: str | None = None
    selected: str | None = None
    selection_seconds: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def accuracy(model: Classifier | None, examples: list[Example]) -> float:
    """Share of examples whose top-ranked team is the decided one (abstentions count by their ranking)."""
    if model is None or not examples:
        return 0.0
    suggestions = model.predict(examples)
    hits = sum(1 for s, e in zip(suggestions, examples, strict=True) if s.ranked and s.ranked[0][0] == e.label)
    return hits / len(examples)


def retrain(router: Router, settings: RoutingSettings, *, force: bool = False) -> RetrainResult:
    router.refresh_model(now=True)  # measured against the latest model, not one another worker replaced
    current, measured_against = router.held
    with router.sessions() as session:
        examples = router.examples_from_decisions(session)
        decided = int(session.scalar(select(func.count()).select_from(Decision)) or 0)
    if not force and decided < settings.min_new_decisions:
        return RetrainResult(False, f"only {decided} decisions; retraining waits for {settings.min_new_decisions}",
                             decided)
    held = max(MIN_HELD_OUT, int(len(examples) * HELD_OUT_SHARE))
    if len(examples) < held + 1:
        return RetrainResult(False, f"too few decided tickets ({len(examples)}) to hold {held} out", decided)
    train_part, held_out = examples[:-held], examples[-held:]
    seed = Path(settings.seed_data)
    base = load_examples(seed).examples if seed.exists() else []
    candidate = default_classifier(target_precision=settings.target_precision)
    candidate.fit([*base, *train_part])
    current_score = accuracy(current, held_out)
    candidate_score = accuracy(candidate, held_out)
    selection = candidate.card.get("selection", {})
    better = candidate_score >= current_score
    reason = (f"candidate {candidate_score:.3f} {'>=' if better else '<'} current {current_score:.3f} "
              f"on {len(held_out)} held-out decisions")
    promoted = False
    if better:
        models = router.models or ModelStore(settings, router.sessions)
        record = models.promote(candidate, replaces=measured_against, scores={
            "decisions": decided, "held_out": len(held_out), "current_accuracy": round(current_score, 4),
            "candidate_accuracy": round(candidate_score, 4), "selected": selection.get("chosen"),
        })
        if record is None:
            reason += "; but another promotion replaced the current model meanwhile: this candidate is discarded"
        else:
            router.use(candidate, record)
            promoted = True
    log.info("routing.retrained", promoted=promoted, reason=reason, selected=selection.get("chosen"),
             selection_seconds=selection.get("seconds"))
    return RetrainResult(promoted, reason, decided, len(held_out), round(current_score, 4),
                         round(candidate_score, 4), candidate.version, selection.get("chosen"),
                         selection.get("seconds"))
