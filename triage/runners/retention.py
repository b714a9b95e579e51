"""The retention runner: each step is one retention run as of the worker's clock
(`privacy.interval_seconds`); off while `privacy.retention_months` is 0."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from triage.bootstrap import App
from triage.privacy.retention import run_retention
from triage.runners.base import Runner
from triage.store.db import utcnow


class RetentionRunner(Runner):
    name = "retention"
    lease_name = "job:retention"

    def __init__(self, app: App, interval: float, clock: Callable[[], datetime] = utcnow) -> None:
        super().__init__(interval, backoff_base=5.0, backoff_max=max(interval, 60.0))
        self.app = app
        self.clock = clock

    def step(self) -> int:
        return run_retention(self.app.sessions, self.app.settings.privacy, now=self.clock()).tickets


def retention_runners(app: App, clock: Callable[[], datetime] = utcnow) -> list[Runner]:
    """The retention runner, unless privacy.retention_months is 0 (the default)."""
    if not app.settings.privacy.retention_months:
        return []
    return [RetentionRunner(app, app.settings.privacy.interval_seconds, clock)]


__all__ = ["RetentionRunner", "retention_runners"]
