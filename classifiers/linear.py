"""The default router: weighted TF-IDF blocks, a linear SVM, temperature calibration, abstention.

Chosen by measurement (see classifiers/README.md): word unigrams over the whole mail, character
n-grams of the subject (robust to inflection, typos and the many languages volunteers write
in), and the sender's and recipients' addresses and domains, each block L2-normalised and
weighted, then a one-vs-rest LinearSVC. Probabilities come from temperature scaling of the SVM
scores, fitted on cross-validated scores; the same scores pick the abstention threshold.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import GroupKFold, KFold
from sklearn.svm import LinearSVC
from tqdm import tqdm

from classifiers.artefact import read_artefact, training_set_sha256, write_artefact
from classifiers.base import Example, ModelFileError, NotFittedError, Suggestion, TrainingDataError
from classifiers.calibration import (
    Threshold,
    choose_threshold,
    expected_calibration_error,
    fit_temperature,
    softmax,
)
from classifiers.features import Block, BlockSpec, FeatureSpace

KIND = "linear-router"

DEFAULT_BLOCKS = (
    BlockSpec("words", "all", "word", (1, 1), min_df=2, max_df=0.5, weight=1.0),
    BlockSpec("subject", "subject", "char_wb", (2, 5), min_df=2, max_df=1.0, weight=0.7),
    BlockSpec("addresses", "addresses", "address", (1, 1), min_df=1, max_df=1.0, weight=0.5),
)


_REPLY_PREFIX = re.compile(r"^\s*+((re|fwd?|aw|wg|sv|vs|tr|rv|res|enc)\s*+(\[\d+\])?\s*:\s*+)+", re.IGNORECASE)


def thread_key(subject: str) -> str:
    """The subject without reply/forward prefixes, lower-cased: mails sharing it share a thread."""
    return " ".join(_REPLY_PREFIX.sub("", subject).lower().split())


def _utcnow() -> datetime:
    return datetime.now(UTC)


class LinearRouter:
    """A `Classifier` that can also be saved to, and loaded from, a safe model folder."""

    def __init__(
        self,
        blocks: Sequence[BlockSpec] = DEFAULT_BLOCKS,
        *,
        c: float = 0.5,
        class_weight: str | None = "balanced",
        target_precision: float = 0.90,
        folds: int = 3,
        progress: bool = False,
        clock: Callable[[], datetime] = _utcnow,
        random_state: int = 0,
    ) -> None:
        if not 0.0 < target_precision <= 1.0:
            raise ValueError(f"target_precision must be in (0, 1], not {target_precision}")
        self.blocks = tuple(blocks)
        self.c = c
        self.class_weight = class_weight
        self.target_precision = target_precision
        self.folds = folds
        self.progress = progress
        self.clock = clock
        self.random_state = random_state
        self._labels: list[str] = []
        self._space: FeatureSpace | None = None
        self._coef_t: NDArray[np.float64] = np.zeros((0, 0))
        self._intercept: NDArray[np.float64] = np.zeros(0)
        self.temperature = 1.0
        self.threshold = Threshold(1.01, target_precision, 0.0, 0.0)
        self.card: dict[str, Any] = {}

    # -- the Classifier interface ---------------------------------------------------------------

    @property
    def labels(self) -> list[str]:
        return list(self._labels)

    @property
    def version(self) -> str:
        return str(self.card.get("version", "unfitted"))

    def fit(self, examples: Sequence[Example]) -> None:
        labels = sorted({e.label for e in examples if e.label is not None})
        if any(e.label is None for e in examples):
            raise TrainingDataError("every training example needs a label (its team)")
        if len(labels) < 2:
            raise TrainingDataError(f"training needs examples of at least two teams, got {labels or 'none'}")
        index = {label: i for i, label in enumerate(labels)}
        y = np.array([index[e.label] for e in examples if e.label is not None], dtype=np.int64)

        space, x = FeatureSpace.fit(self.blocks, examples, progress=self._bar)
        cv_scores = self._cross_val_scores(x, y, len(labels), [thread_key(e.subject) for e in examples])
        temperature = fit_temperature(cv_scores, y)
        cv_probs = softmax(cv_scores, temperature)
        cv_pred = cv_probs.argmax(axis=1)
        threshold = choose_threshold(cv_probs.max(axis=1), cv_pred == y, self.target_precision)
        coef, intercept = self._fit_svm(x, y, len(labels))

        self._labels, self._space = labels, space
        self._coef_t, self._intercept = np.ascontiguousarray(coef.T), intercept
        self.temperature, self.threshold = temperature, threshold
        created = self.clock().astimezone(UTC).replace(microsecond=0)
        sha = training_set_sha256(examples)
        self.card = {
            "version": f"{created:%Y%m%dT%H%M%SZ}-{sha[:8]}",
            "created": created.isoformat(),
            "training_set_sha256": sha,
            "n_examples": len(examples),
            "label_counts": {label: int(n) for label, n in zip(labels, np.bincount(y, minlength=len(labels)))},
            "metrics": {
                "protocol": f"{self._n_folds(len(y))}-fold cross-validation on the training set",
                "accuracy": float(accuracy_score(y, cv_pred)),
                "macro_f1": float(f1_score(y, cv_pred, average="macro", zero_division=0)),
                "coverage_at_threshold": threshold.coverage,
                "precision_at_threshold": threshold.precision,
                "calibration_error": expected_calibration_error(cv_probs.max(axis=1), cv_pred == y),
            },
        }

    def predict(self, examples: Sequence[Example]) -> list[Suggestion]:
        return [self._suggestion(row) for row in self.predict_proba(examples)]

    def predict_proba(self, examples: Sequence[Example]) -> NDArray[np.float64]:
        """Calibrated probabilities, one row per example, columns in `labels` order."""
        return softmax(self._scores(examples), self.temperature)

    def explain(self, example: Example, top_k: int = 8) -> list[tuple[str, float]]:
        """The features that added most to the top team's score: (name, tf-idf value x weight)."""
        space = self._fitted()
        ids, values = space.vector(example)
        top = int(np.argmax(values @ self._coef_t[ids] + self._intercept)) if ids.size else int(
            np.argmax(self._intercept)
        )
        contributions = values * self._coef_t[ids, top]
        order = np.argsort(-contributions, kind="stable")[:top_k]
        return [(space.name(int(ids[i])), float(contributions[i])) for i in order if contributions[i] > 0]

    # -- persistence ----------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        space = self._fitted()
        meta = {
            "kind": KIND,
            **self.card,
            "labels": self._labels,
            "threshold": self.threshold.to_json(),
            "temperature": self.temperature,
            "params": {
                "c": self.c, "class_weight": self.class_weight, "folds": self.folds,
                "target_precision": self.target_precision, "random_state": self.random_state,
            },
            "blocks": [{**b.spec.to_json(), "terms": b.terms} for b in space.blocks],
        }
        arrays = {"coef_t": self._coef_t, "intercept": self._intercept}
        arrays.update({f"idf_{i}": b.idf for i, b in enumerate(space.blocks)})
        write_artefact(path, meta, arrays)

    @classmethod
    def load(cls, path: str | Path) -> LinearRouter:
        artefact = read_artefact(path)
        meta, arrays = artefact.meta, artefact.arrays
        if meta.get("kind") != KIND:
            raise ModelFileError(f"{path} holds a {meta.get('kind')!r} model, not a {KIND}")
        try:
            specs = [BlockSpec.from_json(b) for b in meta["blocks"]]
            params = meta["params"]
            router = cls(
                specs, c=float(params["c"]), class_weight=params["class_weight"], folds=int(params["folds"]),
                target_precision=float(params["target_precision"]), random_state=int(params["random_state"]),
            )
            blocks = [
                Block(spec, [str(t) for t in b["terms"]], arrays[f"idf_{i}"].astype(np.float64))
                for i, (spec, b) in enumerate(zip(specs, meta["blocks"], strict=True))
            ]
            router._space = FeatureSpace(blocks)
            router._labels = [str(label) for label in meta["labels"]]
            router._coef_t = arrays["coef_t"].astype(np.float64)
            router._intercept = arrays["intercept"].astype(np.float64)
            router.temperature = float(meta["temperature"])
            router.threshold = Threshold.from_json(meta["threshold"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"{path} is damaged or incomplete: {exc!r}; retrain it") from exc
        shape = (router._space.n_features, len(router._labels))
        if router._coef_t.shape != shape or router._intercept.shape != (len(router._labels),):
            raise ModelFileError(f"{path} is inconsistent: weights {router._coef_t.shape}, expected {shape}")
        keys = ("version", "created", "training_set_sha256", "n_examples", "label_counts", "metrics", "selection")
        router.card = {k: meta[k] for k in keys if k in meta}
        return router

    # -- internals ------------------------------------------------------------------------------

    def _fitted(self) -> FeatureSpace:
        if self._space is None:
            raise NotFittedError("the router has not been trained; call fit() or LinearRouter.load()")
        return self._space

    def _bar(self, items: Iterable[Example], what: str) -> Iterator[Example]:
        return iter(tqdm(items, desc=f"features: {what}", unit="mail", disable=not self.progress, leave=False))

    def _scores(self, examples: Sequence[Example]) -> NDArray[np.float64]:
        space = self._fitted()
        if len(examples) == 1:
            ids, values = space.vector(examples[0])
            row: NDArray[np.float64] = values @ self._coef_t[ids] + self._intercept
            return row[np.newaxis, :]
        x = space.transform(examples)
        return np.asarray(x @ self._coef_t) + self._intercept

    def _suggestion(self, probs: NDArray[np.float64]) -> Suggestion:
        order = np.argsort(-probs, kind="stable")
        ranked = tuple((self._labels[i], float(probs[i])) for i in order)
        confidence = ranked[0][1]
        team = ranked[0][0] if confidence >= self.threshold.value else None
        return Suggestion(team, confidence, ranked, self.threshold.value, self.version)

    def _n_folds(self, n: int) -> int:
        return max(2, min(self.folds, n))

    def _fit_svm(
        self, x: sp.csr_matrix, y: NDArray[np.int64], n_labels: int
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Weights for every label (rows), including labels absent from `y` (never predicted)."""
        present = np.unique(y)
        coef = np.zeros((n_labels, x.shape[1]))
        intercept = np.full(n_labels, -1e3)
        if present.size == 1:
            intercept[present[0]] = 0.0
            return coef, intercept
        svm = LinearSVC(C=self.c, class_weight=self.class_weight, dual=True, max_iter=10_000,
                        random_state=self.random_state)
        svm.fit(x, y)
        if present.size == 2:
            w, b = svm.coef_[0], svm.intercept_[0]
            coef[present[0]], coef[present[1]] = -w, w
            intercept[present[0]], intercept[present[1]] = -b, b
        else:
            coef[present], intercept[present] = svm.coef_, svm.intercept_
        return coef, intercept

    def _cross_val_scores(
        self, x: sp.csr_matrix, y: NDArray[np.int64], n_labels: int, threads: list[str]
    ) -> NDArray[np.float64]:
        """Out-of-fold SVM scores for every training example.

        Mails of one thread stay in one fold: a reply scored by a model trained on its thread
        would make the threshold look safer than it is on new tickets. The vocabulary and idf
        are unsupervised and fitted once on all the examples.
        """
        n_folds = self._n_folds(len(y))
        if len(set(threads)) >= n_folds:
            splitter: GroupKFold | KFold = GroupKFold(n_folds, shuffle=True, random_state=self.random_state)
            folds = splitter.split(x, groups=threads)
        else:
            folds = KFold(n_folds, shuffle=True, random_state=self.random_state).split(x)
        scores = np.zeros((len(y), n_labels))

        def run(split: tuple[NDArray[np.int64], NDArray[np.int64]]) -> None:
            train, test = split
            coef, intercept = self._fit_svm(x[train], y[train], n_labels)
            fold = np.asarray(x[test] @ coef.T) + intercept
            present = np.unique(y[train])
            absent = np.setdiff1d(np.arange(n_labels), present)
            if absent.size:  # a team unseen in this fold ranks last, but not absurdly far (calibration)
                fold[:, absent] = fold[:, present].min(axis=1, keepdims=True) - 1.0
            scores[test] = fold

        for split in tqdm(list(folds), desc="cross-validation", unit="fold", disable=not self.progress, leave=False):
            run(split)
        return scores
