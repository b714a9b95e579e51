"""The linear models a routing candidate can use, each reduced to weights and intercepts.

Every estimator here scores a mail as `x @ coef.T + intercept`, so whichever one wins a
selection is saved, loaded, calibrated and explained by `LinearRouter` unchanged: the saved
model holds numbers only, never the scikit-learn object.

- `linear-svc`: one-vs-rest linear SVM (the default router's and the plain baseline's model);
- `logistic-regression`: one-vs-rest logistic regression (smooth, probabilistic scores);
- `complement-nb`: complement naive Bayes (Rennie et al. 2003), strong on short, skewed text
  and on small training sets; its scores are log-likelihoods, temperature scaling rescales them.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.naive_bayes import ComplementNB
from sklearn.svm import LinearSVC

Estimator = Literal["linear-svc", "logistic-regression", "complement-nb"]

ABSENT_INTERCEPT = -1e3
"""The intercept of a team the training part never saw: it is never the top team."""


def fit_linear(
    estimator: Estimator, x: sp.csr_matrix, y: NDArray[np.int64], n_labels: int, *,
    c: float = 1.0, class_weight: str | None = None, alpha: float = 0.1, random_state: int = 0,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Weights (one row per label) and intercepts; labels absent from `y` are never predicted."""
    present = np.unique(y)
    coef = np.zeros((n_labels, x.shape[1]))
    intercept = np.full(n_labels, ABSENT_INTERCEPT)
    if present.size == 1:
        intercept[present[0]] = 0.0
        return coef, intercept
    if estimator == "complement-nb":
        nb = ComplementNB(alpha=alpha).fit(x, y)
        # ComplementNB's decision is x @ feature_log_prob_.T (no prior for more than one class)
        coef[present], intercept[present] = nb.feature_log_prob_, 0.0
        return coef, intercept
    if estimator == "logistic-regression":
        # one-vs-rest liblinear, dual (text has more features than mails): seconds where the multinomial
        # lbfgs fit takes minutes on large desks
        ovr = OneVsRestClassifier(LogisticRegression(
            C=c, class_weight=class_weight, solver="liblinear", dual=True, max_iter=1000, random_state=random_state))
        ovr.fit(x, y)
        w = np.vstack([e.coef_ for e in ovr.estimators_])
        b = np.concatenate([e.intercept_ for e in ovr.estimators_])
    else:
        svm = LinearSVC(C=c, class_weight=class_weight, dual=True, max_iter=10_000, random_state=random_state)
        svm.fit(x, y)
        w, b = svm.coef_, svm.intercept_
    if present.size == 2:
        coef[present[0]], coef[present[1]] = -w[0], w[0]
        intercept[present[0]], intercept[present[1]] = -b[0], b[0]
    else:
        coef[present], intercept[present] = w, b
    return coef, intercept
