"""Where the routing model lives on disk, and how a new one replaces it.

The model in use is the folder `routing.model_path`. A retrained model is written beside it
and swapped in by two renames, so a reader sees the old model or the new one, never half
of either. On a fresh install with no model, a first one is trained from the seed data.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import structlog

from classifiers import Classifier, LinearRouter, ModelFileError, default_classifier, load_model
from triage.bundled import resolve
from triage.config import RoutingSettings
from triage.routing.training_data import load_examples

log = structlog.get_logger(__name__)


def current_model(settings: RoutingSettings) -> Classifier | None:
    """The model in use; trained from seed data first if there is none and that is allowed."""
    path = Path(settings.model_path)
    if path.is_dir():
        return load_model(str(path))
    seed = resolve(settings.seed_data)
    if not (settings.auto_train and seed.exists()):
        log.warning("routing.no_model", model_path=str(path), hint="triage train --data ... --out " + str(path))
        return None
    log.info("routing.training_first_model", seed=str(seed))
    data = load_examples(seed)
    model = default_classifier(target_precision=settings.target_precision)
    model.fit(data.examples)
    promote(model, path)
    return model


def promote(model: LinearRouter, path: Path) -> None:
    """Make `model` the one in use at `path`, keeping the previous one as `<path>.previous`."""
    path = Path(path)
    staging = path.with_name(path.name + ".incoming")
    previous = path.with_name(path.name + ".previous")
    shutil.rmtree(staging, ignore_errors=True)
    model.save(staging)
    if path.exists():
        shutil.rmtree(previous, ignore_errors=True)
        path.rename(previous)
    staging.rename(path)


__all__ = ["ModelFileError", "current_model", "promote"]
