"""Worker runners for routing: suggest teams for new tickets, and retrain on a schedule."""

from __future__ import annotations

from typing import Any

from triage.config import RoutingSettings
from triage.runners.base import Runner


class SuggestRunner(Runner):
    """Propose a team for each ticket that has none from the current model."""

    name = "routing:suggest"

    def __init__(self, router: Any, interval: float = 5.0) -> None:
        super().__init__(interval)
        self._router = router

    def step(self) -> int:
        return int(self._router.suggest_pending())


class RetrainRunner(Runner):
    """Retrain from decisions every `retrain_hours`; promotion only when at least as good."""

    name = "routing:retrain"
    lease_name = "job:retrain"  # one retraining at a time, whatever the number of workers

    def __init__(self, router: Any, settings: RoutingSettings) -> None:
        super().__init__(settings.retrain_hours * 3600)
        self._router = router
        self._settings = settings

    def step(self) -> int:
        from triage.routing.retrain import retrain

        retrain(self._router, self._settings)
        return 0  # always wait the full interval
