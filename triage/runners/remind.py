"""The scheduler: each step is one reminder run as of the current time (`reminders.interval_seconds`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from triage.bootstrap import App
from triage.runners.base import Runner
from triage.schedule.run import run_reminders
from triage.store.db import utcnow


class RemindRunner(Runner):
    name = "remind"
    lease_name = "job:remind"

    def __init__(self, app: App, interval: float, clock: Callable[[], datetime] = utcnow) -> None:
        super().__init__(interval, backoff_base=5.0, backoff_max=max(interval, 60.0))
        self.app = app
        self.clock = clock

    def step(self) -> int:
        return len(run_reminders(self.app.sessions, self.app.settings, now=self.clock(), clock=self.clock,
                                 wiring=self.app.wiring).fired)


def remind_runners(app: App) -> list[Runner]:
    """The reminder runner, unless reminders.enabled is off."""
    if not app.settings.reminders.enabled:
        return []
    return [RemindRunner(app, app.settings.reminders.interval_seconds)]


__all__ = ["RemindRunner", "remind_runners"]
