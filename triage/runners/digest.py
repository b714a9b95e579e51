"""The digest scheduler: each step sends the weekly digests that are due as of the clock
(`digest.interval_seconds`); a team's digest of a week goes out once whatever the number of steps
or workers (`triage.digest.run`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from triage.bootstrap import App
from triage.digest.run import run_digests
from triage.runners.base import Runner
from triage.store.db import utcnow


class DigestRunner(Runner):
    name = "digest"
    lease_name = "job:digest"

    def __init__(self, app: App, interval: float, clock: Callable[[], datetime] = utcnow) -> None:
        super().__init__(interval, backoff_base=5.0, backoff_max=max(interval, 60.0))
        self.app = app
        self.clock = clock

    def step(self) -> int:
        now = self.clock()
        outcomes = run_digests(self.app.sessions, self.app.wiring, now=now, clock=self.clock, reads=self.app.reads)
        return sum(o.status == "sent" for o in outcomes)


def digest_runners(app: App, clock: Callable[[], datetime] = utcnow) -> list[Runner]:
    """The digest runner, unless digest.enabled is off (it runs when no team has opted in yet: the
    teams file is read again when it changes)."""
    if not app.settings.digest.enabled:
        return []
    return [DigestRunner(app, app.settings.digest.interval_seconds, clock)]


__all__ = ["DigestRunner", "digest_runners"]
