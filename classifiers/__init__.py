"""Routing classifiers: learn which staff team should own a mail, say how sure, and why.

`Classifier` is the interface the desk uses; `LinearRouter` is the linear model every saved
model is, `SelectingRouter` (the default) chooses its features and estimator among a few
candidates on the desk's own later mail, and `load_model` reads a saved one (never a pickle).
See classifiers/README.md for how the candidates were chosen.
"""

from classifiers.base import (
    Classifier,
    ClassifierError,
    Example,
    ModelFileError,
    NotFittedError,
    Suggestion,
    TrainingDataError,
    UnsafeModelError,
)
from classifiers.linear import LinearRouter
from classifiers.selection import SelectingRouter

__all__ = [
    "Classifier", "ClassifierError", "Example", "LinearRouter", "ModelFileError", "NotFittedError",
    "SelectingRouter", "Suggestion", "TrainingDataError", "UnsafeModelError", "default_classifier", "load_model",
]


def default_classifier(**options: object) -> SelectingRouter:
    """The default routing model, untrained: a selection on the desk's own later mail whose
    candidates always include the plain baseline; `options` are `SelectingRouter` keyword arguments."""
    return SelectingRouter(**options)  # type: ignore[arg-type]


def load_model(path: str) -> LinearRouter:
    """Load a model folder written by `LinearRouter.save`; refuses pickles and object arrays."""
    return LinearRouter.load(path)
