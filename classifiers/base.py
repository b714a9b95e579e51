"""The routing classifier's contract: what goes in (`Example`), what comes out (`Suggestion`).

Anything that learns to route mail implements `Classifier`; the desk only ever talks to
that interface, so a model can be swapped by measurement without touching the pipeline.
A classifier decides and explains; it never routes: `Suggestion.team` is None whenever
the classifier is not confident enough, and the liaison decides.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable


class ClassifierError(Exception):
    """Root of the errors a caller of `classifiers` can act on."""


class NotFittedError(ClassifierError):
    """`predict` or `explain` was called before `fit` (or `load_model`)."""


class TrainingDataError(ClassifierError):
    """The examples cannot train a model (for instance fewer than two teams)."""


class ModelFileError(ClassifierError):
    """A model artefact is missing, damaged or of an unknown format version."""


class UnsafeModelError(ModelFileError):
    """A model file would run code when loaded (a pickle, or arrays of Python objects); it is never loaded."""


@dataclass(frozen=True, slots=True)
class Example:
    """One mail as the classifier sees it.

    `sender` is the bare address; `headers` holds a few header fields by lower-case name
    (`to`, `cc`, `organization`, `keywords`, `list-id`), all optional. `label` is the team
    for training and evaluation, None when asking for a suggestion. `date` orders examples
    for the timeline evaluation. `language` is the mail's ISO 639-1 code when known (the
    optional `language` feature block reads it).
    """

    subject: str
    body: str
    sender: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    label: str | None = None
    date: datetime | None = None
    language: str | None = None


@dataclass(frozen=True, slots=True)
class Suggestion:
    """A proposed team for one mail.

    `ranked` lists every team with its calibrated probability, best first. `team` is the top
    team when its probability reaches the model's threshold, else None (abstention: the
    liaison routes by hand, but the ranking is still there to help).
    """

    team: str | None
    confidence: float
    ranked: tuple[tuple[str, float], ...]
    threshold: float
    model_version: str

    @property
    def abstained(self) -> bool:
        return self.team is None


@runtime_checkable
class Classifier(Protocol):
    """What the desk needs from a routing model."""

    @property
    def labels(self) -> Sequence[str]:
        """The teams the model can suggest, in a fixed order."""
        ...

    def fit(self, examples: Sequence[Example]) -> None:
        """Learn from labelled examples; replaces whatever was learnt before."""
        ...

    def predict(self, examples: Sequence[Example]) -> list[Suggestion]:
        """One suggestion per example, in order."""
        ...

    def explain(self, example: Example, top_k: int = 8) -> list[tuple[str, float]]:
        """The features that pushed the top-ranked team, strongest first, as (feature, contribution)."""
        ...
