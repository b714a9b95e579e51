"""Routing classifiers: learn which staff team should own a mail, say how sure, and why.

`Classifier` is the interface the desk uses; `LinearRouter` is the default model, and
`load_model` reads a saved one (never a pickle). See classifiers/README.md for how the
default was chosen.
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

__all__ = [
    "Classifier", "ClassifierError", "Example", "LinearRouter", "ModelFileError", "NotFittedError",
    "Suggestion", "TrainingDataError", "UnsafeModelError", "default_classifier", "load_model",
]


def default_classifier(**options: object) -> LinearRouter:
    """The default routing model, untrained; `options` are `LinearRouter` keyword arguments."""
    return LinearRouter(**options)  # type: ignore[arg-type]


def load_model(path: str) -> LinearRouter:
    """Load a model folder written by `LinearRouter.save`; refuses pickles and object arrays."""
    return LinearRouter.load(path)
