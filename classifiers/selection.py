"""Model selection on the desk's own mail: several well-understood linear candidates, judged on later mail.

No single model wins on every mailbox (the default router loses to a plain TF-IDF + LinearSVC on
some). So training tries a few candidates - the plain baseline always among them - with a
time-ordered validation: rolling origin, train on the past, validate on the mail that came next,
for the last few windows. The candidate right most often on that later mail wins; a simpler one
within one standard error of the paired difference wins instead (the "one-standard-error rule":
a difference the validation cannot tell from noise does not buy complexity). The winner is then
refitted on all the mail.

The same validation calibrates the winner: its temperature is fitted on the later-mail scores,
and its threshold is the lowest confidence at which the one-sided Clopper-Pearson lower bound of
the precision on that later mail reaches the target, so the margin below the target shrinks with
the desk's size instead of being left to chance.

The selected model is a `LinearRouter`: it predicts, abstains, explains, and is saved and loaded
exactly as before (the winner and the validation figures go into the model card).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from sklearn.metrics import f1_score
from sklearn.model_selection import GroupKFold

from classifiers.artefact import training_set_sha256
from classifiers.base import Example, TrainingDataError
from classifiers.calibration import (
    choose_threshold_bound,
    expected_calibration_error,
    fit_temperature,
    softmax,
)
from classifiers.estimators import Estimator, fit_linear
from classifiers.features import Block, BlockSpec, FeatureSpace
from classifiers.linear import DEFAULT_BLOCKS, LinearRouter, _utcnow, thread_key

WORDS = BlockSpec("words", "all", "word", (1, 1), min_df=2, max_df=0.5, weight=1.0)
"""The plain baseline's features: word unigrams of the whole mail, TfidfVectorizer(sublinear_tf,
min_df=2, max_df=0.5) in effect."""

ADDRESSES = next((b for b in DEFAULT_BLOCKS if b.analyzer == "address"),
                 BlockSpec("addresses", "addresses", "address", weight=0.5))


@dataclass(frozen=True, slots=True)
class Candidate:
    """One model to try: its features, its estimator and the estimator's settings."""

    name: str
    blocks: tuple[BlockSpec, ...]
    estimator: Estimator
    c: float = 1.0
    class_weight: str | None = None
    alpha: float = 0.1

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "estimator": self.estimator, "blocks": [b.name for b in self.blocks],
                "c": self.c, "class_weight": self.class_weight, "alpha": self.alpha}


BASELINE = Candidate("baseline", (WORDS,), "linear-svc", c=1.0, class_weight=None)

CANDIDATES: tuple[Candidate, ...] = (
    BASELINE,
    # alpha 0.1: scikit-learn's own text-classification example; TF-IDF values are below 1
    Candidate("complement-nb", (WORDS,), "complement-nb", alpha=0.1),
    Candidate("logistic-regression", (WORDS,), "logistic-regression", c=10.0, class_weight="balanced"),
    Candidate("words+addresses", (WORDS, ADDRESSES), "linear-svc", c=0.5, class_weight="balanced"),
    Candidate("default", tuple(DEFAULT_BLOCKS), "linear-svc", c=0.5, class_weight="balanced"),
)
"""Simplest first: on a tie the earlier one wins. The baseline is always the first."""

MIN_VALIDATION = 10
"""Fewer later mails than this per window cannot judge anything: the first candidate is used."""


# -- the pure core ------------------------------------------------------------------------------

def time_ordered(examples: Sequence[Example]) -> list[Example]:
    """Undated examples first, in the order given (seed data: older than the desk's own mail), then
    the dated ones, oldest first."""
    undated = [e for e in examples if e.date is None]
    return undated + sorted((e for e in examples if e.date is not None), key=lambda e: _aware(e.date))  # type: ignore[arg-type]


def _aware(date: datetime) -> datetime:
    return date if date.tzinfo else date.replace(tzinfo=UTC)


def rolling_origin(n: int, folds: int) -> list[tuple[int, int]]:
    """(origin, end) per fold: train on [0, origin), validate on [origin, end); the last window ends at n.

    The windows are the last `folds` slices of n // (folds + 2) examples, so the first fold trains on
    at least two windows' worth. Every validation mail is later than every mail its model learnt from.
    """
    window = n // (folds + 2)
    if window < 1:
        return []
    return [(n - (folds - i) * window, n - (folds - i - 1) * window) for i in range(folds)]


Fold = tuple[NDArray[np.int64], NDArray[np.int64]]
"""(training indices, validation indices) into the examples, oldest first."""


def later_mail_folds(examples: Sequence[Example], folds: int) -> list[Fold]:
    """The rolling-origin folds, if every validation mail is dated (else time says nothing: [])."""
    splits = rolling_origin(len(examples), folds)
    if not splits or any(e.date is None for e in examples[splits[0][0]:]):
        return []
    return [(np.arange(origin), np.arange(origin, end)) for origin, end in splits]


def thread_folds(examples: Sequence[Example], folds: int, random_state: int = 0) -> list[Fold]:
    """Without dates: k-fold cross-validation, a thread (subject without Re:/Fwd:) kept in one fold."""
    threads = [thread_key(e.subject) for e in examples]
    if len(set(threads)) < 2:
        return []
    n_folds = max(2, min(folds, len(set(threads))))
    splitter = GroupKFold(n_folds, shuffle=True, random_state=random_state)
    return [(np.asarray(a), np.asarray(b)) for a, b in splitter.split(np.zeros(len(examples)), groups=threads)]


@dataclass(frozen=True, slots=True)
class Choice:
    """The winner of a selection and why."""

    name: str
    reason: str


def pick(correct: dict[str, NDArray[np.bool_]]) -> Choice:
    """The simplest candidate (dict order) within one standard error of the most accurate one.

    `correct` holds, per candidate, whether its top team was right on each validation mail (the
    same mails for all); the standard error is that of the paired difference to the best.
    """
    means = {name: float(hits.mean()) for name, hits in correct.items()}
    best = max(means, key=lambda name: means[name])
    for name, hits in correct.items():
        diff = correct[best].astype(np.float64) - hits.astype(np.float64)
        se = float(diff.std(ddof=1) / np.sqrt(diff.size)) if diff.size > 1 else 0.0
        if diff.mean() <= se:
            why = ("the most accurate" if name == best else
                   f"within one standard error ({se:.4f}) of {best} ({means[best]:.4f}), and simpler")
            return Choice(name, f"{name}: accuracy {means[name]:.4f} on later mail, {why}")
    raise AssertionError("unreachable: the best candidate is within noise of itself")


# -- fitting -------------------------------------------------------------------------------------

class _Features:
    """Each block spec fitted once per training part and shared by the candidates that use it."""

    def __init__(self, train: Sequence[Example], others: Sequence[Example] = ()) -> None:
        self.train, self.others = train, others
        self._fitted: dict[BlockSpec, tuple[Block, sp.csr_matrix, sp.csr_matrix | None]] = {}

    def get(self, specs: Sequence[BlockSpec]) -> tuple[FeatureSpace, sp.csr_matrix, sp.csr_matrix | None]:
        parts = []
        for spec in specs:
            if spec not in self._fitted:
                space, x = FeatureSpace.fit([spec], self.train)
                other = space.transform(self.others) if self.others else None
                self._fitted[spec] = (space.blocks[0], x, other)
            parts.append(self._fitted[spec])
        x_train = sp.hstack([p[1] for p in parts], format="csr")
        others = [p[2] for p in parts]
        x_other = sp.hstack(others, format="csr") if all(o is not None for o in others) else None
        return FeatureSpace([p[0] for p in parts]), x_train, x_other


def _fit(candidate: Candidate, x: sp.csr_matrix, y: NDArray[np.int64], n_labels: int,
         random_state: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    return fit_linear(candidate.estimator, x, y, n_labels, c=candidate.c, class_weight=candidate.class_weight,
                      alpha=candidate.alpha, random_state=random_state)


def _held_out_scores(scores: NDArray[np.float64], y_train: NDArray[np.int64], n_labels: int) -> NDArray[np.float64]:
    """A team the training part never saw ranks last, but not absurdly far (for the temperature)."""
    present = np.unique(y_train)
    absent = np.setdiff1d(np.arange(n_labels), present)
    if absent.size:
        scores[:, absent] = scores[:, present].min(axis=1, keepdims=True) - 1.0
    return scores


@dataclass
class Validation:
    """Every candidate's scores on the later mail of every fold, with the truth."""

    y: NDArray[np.int64]
    scores: dict[str, NDArray[np.float64]]
    seconds: dict[str, float]
    folds: list[tuple[int, int]]  # (trained on, validated on) mails per fold


def validate(
    candidates: Sequence[Candidate], examples: Sequence[Example], y: NDArray[np.int64], n_labels: int,
    splits: Sequence[Fold], random_state: int = 0, progress: Callable[[str], None] | None = None,
) -> Validation:
    """Every candidate trained on each fold's training part (vocabulary included) and scored on its
    validation part."""
    scores: dict[str, list[NDArray[np.float64]]] = {c.name: [] for c in candidates}
    seconds = dict.fromkeys(scores, 0.0)
    for train, val in splits:
        features = _Features([examples[i] for i in train], [examples[i] for i in val])
        y_train = y[train]
        for candidate in candidates:
            if progress:
                progress(f"{candidate.name}, trained on {train.size}, validated on {val.size}")
            start = time.perf_counter()
            _, x_train, x_val = features.get(candidate.blocks)
            assert x_val is not None
            coef, intercept = _fit(candidate, x_train, y_train, n_labels, random_state)
            fold = np.asarray(x_val @ coef.T) + intercept
            scores[candidate.name].append(_held_out_scores(fold, y_train, n_labels))
            seconds[candidate.name] += time.perf_counter() - start
    y_val = np.concatenate([y[val] for _, val in splits]) if splits else np.zeros(0, dtype=np.int64)
    return Validation(y_val, {k: np.vstack(v) for k, v in scores.items() if v}, seconds,
                      [(int(a.size), int(b.size)) for a, b in splits])


class SelectingRouter(LinearRouter):
    """A `LinearRouter` whose `fit` chooses its model among `candidates` on later mail (see the module).

    Mail without dates cannot be put in time order: when the validation windows would hold undated
    mail (a seed file, a folder export sorted by team), the candidates are compared by 3-fold
    cross-validation grouped by thread instead, and the model card says so.
    """

    def __init__(
        self,
        candidates: Sequence[Candidate] = CANDIDATES,
        *,
        target_precision: float = 0.90,
        folds: int = 3,
        confidence_level: float = 0.95,
        progress: bool = False,
        clock: Callable[[], datetime] = _utcnow,
        random_state: int = 0,
    ) -> None:
        if not candidates:
            raise ValueError("selection needs at least one candidate")
        first = candidates[0]
        super().__init__(first.blocks, c=first.c, class_weight=first.class_weight, target_precision=target_precision,
                         folds=folds, progress=progress, clock=clock, random_state=random_state)
        self.candidates = tuple(candidates)
        self.confidence_level = confidence_level
        self.chosen = first

    def fit(self, examples: Sequence[Example]) -> None:
        started = time.perf_counter()
        if any(e.label is None for e in examples):
            raise TrainingDataError("every training example needs a label (its team)")
        ordered = time_ordered(examples)
        labels = sorted({str(e.label) for e in ordered})
        if len(labels) < 2:
            raise TrainingDataError(f"training needs examples of at least two teams, got {labels or 'none'}")
        index = {label: i for i, label in enumerate(labels)}
        y = np.array([index[str(e.label)] for e in ordered], dtype=np.int64)
        splits = later_mail_folds(ordered, self.folds)
        protocol = f"time-ordered validation: {len(splits)} rolling-origin folds"
        if not splits:
            splits = thread_folds(ordered, self.folds, self.random_state)
            protocol = f"no dates on the validation mail: {len(splits)}-fold cross-validation grouped by thread"
        if not splits or min(val.size for _, val in splits) < MIN_VALIDATION:
            self._fit_first(examples, started)
            return
        validation = validate(self.candidates, ordered, y, len(labels), splits, self.random_state,
                              self._say if self.progress else None)
        correct = {name: s.argmax(axis=1) == validation.y for name, s in validation.scores.items()}
        choice = pick(correct)
        winner = next(c for c in self.candidates if c.name == choice.name)

        val_scores = validation.scores[winner.name]
        temperature = fit_temperature(val_scores, validation.y)
        probs = softmax(val_scores, temperature)
        confidence, right = probs.max(axis=1), correct[winner.name]
        threshold = choose_threshold_bound(confidence, right, self.target_precision, self.confidence_level)

        refit_start = time.perf_counter()
        space, x, _ = _Features(ordered).get(winner.blocks)
        coef, intercept = _fit(winner, x, y, len(labels), self.random_state)
        refit_seconds = time.perf_counter() - refit_start

        self._adopt(winner)
        self._labels, self._space = labels, space
        self._coef_t, self._intercept = np.ascontiguousarray(coef.T), intercept
        self.temperature, self.threshold = temperature, threshold
        n_val = int(validation.y.size)
        self.card = self._card(examples, y, labels, {
            "protocol": f"{protocol}, {n_val} held-out mails",
            "accuracy": float(right.mean()),
            "macro_f1": float(f1_score(validation.y, val_scores.argmax(axis=1), average="macro", zero_division=0)),
            "coverage_at_threshold": threshold.coverage,
            "precision_at_threshold": threshold.precision,
            "precision_bound_level": self.confidence_level,
            "calibration_error": float(expected_calibration_error(confidence, right)),
        }, {
            "chosen": winner.name,
            "reason": choice.reason,
            "candidate": winner.to_json(),
            "folds": [list(f) for f in validation.folds],
            "candidates": {
                name: {
                    "accuracy": float(correct[name].mean()),
                    "macro_f1": float(f1_score(validation.y, s.argmax(axis=1), average="macro", zero_division=0)),
                    "seconds": round(validation.seconds[name], 3),
                }
                for name, s in validation.scores.items()
            },
            "refit_seconds": round(refit_seconds, 3),
            "seconds": round(time.perf_counter() - started, 3),
        })

    # -- internals ------------------------------------------------------------------------------

    def _say(self, what: str) -> None:
        from tqdm import tqdm

        tqdm.write(f"selection: {what}")

    def _adopt(self, candidate: Candidate) -> None:
        self.chosen = candidate
        self.blocks, self.c, self.class_weight = candidate.blocks, candidate.c, candidate.class_weight

    def _fit_svm(
        self, x: sp.csr_matrix, y: NDArray[np.int64], n_labels: int
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """The chosen candidate's estimator, for `LinearRouter.fit` (used when too few mails to select)."""
        return _fit(self.chosen, x, y, n_labels, self.random_state)

    def _fit_first(self, examples: Sequence[Example], started: float) -> None:
        """Too few mails to validate on later ones: the first (simplest) candidate, calibrated by
        `LinearRouter`'s cross-validation."""
        first = self.candidates[0]
        self._adopt(first)
        super().fit(examples)
        self.card["selection"] = {
            "chosen": first.name, "candidate": first.to_json(),
            "reason": f"{len(examples)} mails are too few to validate on later mail; the simplest candidate",
            "seconds": round(time.perf_counter() - started, 3),
        }

    def _card(self, examples: Sequence[Example], y: NDArray[np.int64], labels: list[str],
              metrics: dict[str, Any], selection: dict[str, Any]) -> dict[str, Any]:
        created = self.clock().astimezone(UTC).replace(microsecond=0)
        sha = training_set_sha256(examples)
        metrics["accuracy"] = float(metrics["accuracy"])
        return {
            "version": f"{created:%Y%m%dT%H%M%SZ}-{sha[:8]}",
            "created": created.isoformat(),
            "training_set_sha256": sha,
            "n_examples": len(examples),
            "label_counts": {label: int(n) for label, n in zip(labels, np.bincount(y, minlength=len(labels)))},
            "metrics": metrics,
            "selection": selection,
        }

