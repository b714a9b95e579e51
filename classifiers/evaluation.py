"""How good is a router: held-out evaluation and the timeline protocol for mail foldering.

`evaluate` scores a trained classifier on labelled mail it has not seen. `timeline` follows
Bekkerman, McCallum & Huang (2004), "Automatic categorization of email into folders": sort
the mail by date, train on the first k*step messages, test on the next step, for every k,
and average. It is the honest protocol for mail, whose topics drift: a random split lets the
model peek at the future of every thread.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support
from tqdm import tqdm

from classifiers.base import Classifier, Example, Suggestion, TrainingDataError
from classifiers.calibration import expected_calibration_error, reliability


def report(truth: Sequence[str], suggestions: Sequence[Suggestion]) -> dict[str, Any]:
    """Metrics of suggestions against the true teams.

    Accuracy, macro-F1, per-team figures and the confusion matrix judge the top-ranked team
    (what the liaison sees first); calibration_error is the expected calibration error of the
    top team's probability (0 is perfect); coverage is the share of mail with a suggested team at the
    model's threshold, and precision_at_threshold how often those suggestions were right;
    reliability holds the reliability diagram's points (per confidence bin: mean confidence, accuracy).
    """
    top = [s.ranked[0][0] for s in suggestions]
    confidence = np.array([s.confidence for s in suggestions])
    hits = np.array([a == b for a, b in zip(top, truth, strict=True)], dtype=bool)
    labels = sorted(set(truth) | set(top))
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, top, labels=labels, zero_division=0
    )
    suggested = [(s.team, t) for s, t in zip(suggestions, truth, strict=True) if s.team is not None]
    n = len(truth)
    return {
        "n": n,
        "accuracy": float(accuracy_score(truth, top)) if n else 0.0,
        "macro_f1": float(f1_score(truth, top, labels=labels, average="macro", zero_division=0)) if n else 0.0,
        "coverage": len(suggested) / n if n else 0.0,
        "precision_at_threshold": (sum(a == b for a, b in suggested) / len(suggested)) if suggested else None,
        "threshold": suggestions[0].threshold if suggestions else None,
        "calibration_error": float(expected_calibration_error(confidence, hits)),
        "reliability": reliability(confidence, hits) if n else [],
        "per_team": {
            label: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for label, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
        },
        "labels": labels,
        "confusion": confusion_matrix(truth, top, labels=labels).tolist() if n else [],
    }


def evaluate(classifier: Classifier, examples: Sequence[Example]) -> dict[str, Any]:
    """Score a trained classifier on labelled examples."""
    truth = [e.label for e in examples]
    if any(t is None for t in truth):
        raise TrainingDataError("every evaluation example needs a label (its team)")
    return report([str(t) for t in truth], classifier.predict(examples))


def _when(example: Example) -> datetime:
    """The example's date, naive dates read as UTC so that all dates compare."""
    assert example.date is not None
    date = example.date
    return date if date.tzinfo else date.replace(tzinfo=UTC)


def timeline(
    examples: Sequence[Example],
    make_classifier: Callable[[], Classifier],
    *,
    step: int = 100,
    progress: bool = False,
) -> dict[str, Any]:
    """Train on the first k*step mails by date, test on the next `step`, for k = 1, 2, ...; average.

    Mail without a Date is left out (and counted): it has no place on the timeline. A model that
    selects among candidates (`SelectingRouter`) runs its selection at every step, on that step's
    training part only; which candidate each step chose is counted in `chosen`. Precision at the
    threshold is given per split averaged, and pooled (right suggestions / all suggestions).
    """
    dated = sorted((e for e in examples if e.date is not None), key=_when)
    undated = len(examples) - len(dated)
    if len(dated) < 2 * step:
        raise TrainingDataError(
            f"the timeline protocol needs at least {2 * step} dated mails, got {len(dated)} ({undated} undated)"
        )
    splits = []
    for k in tqdm(range(1, len(dated) // step), desc="timeline", unit="split", disable=not progress):
        train, test = dated[: k * step], dated[k * step : (k + 1) * step]
        if len({e.label for e in train}) < 2:
            continue
        model = make_classifier()
        model.fit(train)
        result = evaluate(model, test)
        suggested = round(result["coverage"] * len(test))
        precision = result["precision_at_threshold"]
        selection = getattr(model, "card", {}).get("selection", {})
        splits.append({"train": len(train), "test": len(test), **{
            key: result[key] for key in ("accuracy", "macro_f1", "coverage", "precision_at_threshold")
        }, "suggested": suggested, "right": round((precision or 0.0) * suggested),
            "calibration_error": result["calibration_error"], "chosen": selection.get("chosen")})
    precisions = [s["precision_at_threshold"] for s in splits if s["precision_at_threshold"] is not None]
    suggested = sum(s["suggested"] for s in splits)
    return {
        "protocol": f"timeline (Bekkerman et al. 2004), step {step}",
        "n": len(dated),
        "undated": undated,
        "splits": splits,
        "accuracy": float(np.mean([s["accuracy"] for s in splits])) if splits else 0.0,
        "macro_f1": float(np.mean([s["macro_f1"] for s in splits])) if splits else 0.0,
        "coverage": float(np.mean([s["coverage"] for s in splits])) if splits else 0.0,
        "precision_at_threshold": float(np.mean(precisions)) if precisions else None,
        "precision_at_threshold_pooled": (sum(s["right"] for s in splits) / suggested) if suggested else None,
        "calibration_error": float(np.mean([s["calibration_error"] for s in splits])) if splits else 0.0,
        "chosen": dict(Counter(s["chosen"] for s in splits if s["chosen"] is not None)),
    }
