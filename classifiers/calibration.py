"""From raw scores to probabilities a liaison can trust, and from probabilities to a threshold.

Both are fitted on held-out scores (cross-validated on the training set), never on the
scores of the data the model was fitted on, which are over-confident.

- Calibration is temperature scaling (Guo et al. 2017): `p = softmax(scores / T)` with the one
  parameter `T` chosen to minimise the log-loss. It keeps the ranking and costs nothing at
  prediction time.
- The threshold is the lowest confidence at which the suggestions above it still reach the
  target precision; the share of mail above it is the coverage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize_scalar
from scipy.stats import beta

NEVER = 1.01
"""The threshold when no confidence level reaches the target precision: above any probability."""


def softmax(scores: NDArray[np.float64], temperature: float) -> NDArray[np.float64]:
    z = scores / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    out: NDArray[np.float64] = e / e.sum(axis=-1, keepdims=True)
    return out


def fit_temperature(scores: NDArray[np.float64], y: NDArray[np.int64]) -> float:
    """The temperature minimising the mean negative log-likelihood of the true labels."""
    rows = np.arange(len(y))

    def nll(log_t: float) -> float:
        z = scores / np.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        log_p = z[rows, y] - np.log(np.exp(z).sum(axis=1))
        return float(-log_p.mean())

    result = minimize_scalar(nll, bounds=(-6.0, 4.0), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(result.x))


@dataclass(frozen=True, slots=True)
class Threshold:
    """A confidence threshold with what it buys on the held-out data it was chosen on."""

    value: float
    target_precision: float
    precision: float
    coverage: float

    def to_json(self) -> dict[str, Any]:
        return {
            "value": self.value, "target_precision": self.target_precision,
            "precision": self.precision, "coverage": self.coverage,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Threshold:
        return cls(
            float(data["value"]), float(data["target_precision"]), float(data["precision"]),
            float(data["coverage"]),
        )


def choose_threshold(
    confidence: NDArray[np.float64], correct: NDArray[np.bool_], target_precision: float
) -> Threshold:
    """The threshold with the largest coverage whose suggestions are at least `target_precision` right.

    Ties in confidence are kept together: a threshold takes all mail at or above it.
    """
    n = len(confidence)
    if n == 0:
        return Threshold(NEVER, target_precision, 0.0, 0.0)
    order = np.argsort(-confidence, kind="stable")
    conf, hits = confidence[order], correct[order].astype(np.float64)
    precision = np.cumsum(hits) / np.arange(1, n + 1)
    group_end = np.append(conf[1:] < conf[:-1], True)
    ok = np.flatnonzero(group_end & (precision >= target_precision))
    if ok.size == 0:
        return Threshold(NEVER, target_precision, 0.0, 0.0)
    i = int(ok[-1])
    return Threshold(float(conf[i]), target_precision, float(precision[i]), (i + 1) / n)


def expected_calibration_error(
    confidence: NDArray[np.float64], correct: NDArray[np.bool_], bins: int = 10
) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by the bins' sizes.

    0 means "80% confident" is right 80% of the time; it is how calibration is checked.
    """
    if len(confidence) == 0:
        return 0.0
    which = np.minimum((confidence * bins).astype(np.int64), bins - 1)
    total = 0.0
    for b in np.unique(which):
        members = which == b
        total += members.sum() * abs(float(correct[members].mean()) - float(confidence[members].mean()))
    return total / len(confidence)


def precision_lower_bound(hits: NDArray[np.float64], n: NDArray[np.float64], level: float) -> NDArray[np.float64]:
    """One-sided Clopper-Pearson lower bound of a precision: with probability `level` the true
    precision is at least this, given `hits` right out of `n` (exact, so honest on small counts)."""
    bound = beta.ppf(1.0 - level, hits, n - hits + 1.0)
    out: NDArray[np.float64] = np.where(hits > 0, np.nan_to_num(bound), 0.0)
    return out


def choose_threshold_bound(
    confidence: NDArray[np.float64], correct: NDArray[np.bool_], target_precision: float, level: float = 0.95
) -> Threshold:
    """Like `choose_threshold`, but the precision that must reach the target is its lower bound at `level`.

    Chosen on held-out later mail, the observed precision at a threshold is itself a sample: on the
    next mail it lands above or below. Asking the bound to reach the target leaves the margin the
    sample size calls for (small on a large desk, large on a small one). `Threshold.precision` is
    the observed precision at the chosen value.
    """
    n = len(confidence)
    if n == 0:
        return Threshold(NEVER, target_precision, 0.0, 0.0)
    order = np.argsort(-confidence, kind="stable")
    conf, hits = confidence[order], np.cumsum(correct[order].astype(np.float64))
    counts = np.arange(1, n + 1, dtype=np.float64)
    group_end = np.append(conf[1:] < conf[:-1], True)
    ok = np.flatnonzero(group_end & (precision_lower_bound(hits, counts, level) >= target_precision))
    if ok.size == 0:
        return Threshold(NEVER, target_precision, 0.0, 0.0)
    i = int(ok[-1])
    return Threshold(float(conf[i]), target_precision, float(hits[i] / counts[i]), (i + 1) / n)


def reliability(
    confidence: NDArray[np.float64], correct: NDArray[np.bool_], bins: int = 10
) -> list[dict[str, float]]:
    """The reliability diagram's points: for each non-empty equal-width confidence bin, its range,
    the number of mails, their mean confidence and how often the top team was right."""
    which = np.minimum((confidence * bins).astype(np.int64), bins - 1)
    return [
        {"low": b / bins, "high": (b + 1) / bins, "n": int((which == b).sum()),
         "confidence": float(confidence[which == b].mean()), "accuracy": float(correct[which == b].mean())}
        for b in np.unique(which)
    ]
