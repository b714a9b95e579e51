"""The worker loop: runners own the loop, the sleep and the shutdown; subclasses own one step.

SIGTERM or SIGINT asks every runner to stop after the step in progress, so a batch that
has begun is finished and committed before the process exits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import structlog

log = structlog.get_logger(__name__)


class Runner:
    """Call `step()` every `interval` seconds until stopped. `step` returns how much it did."""

    name = "runner"

    def __init__(self, interval: float, *, stop: threading.Event | None = None,
                 sleep: Callable[[float], bool] | None = None) -> None:
        self.interval = interval
        self.stop_event = stop or threading.Event()
        self._sleep = sleep or self.stop_event.wait

    def step(self) -> int:
        raise NotImplementedError

    def run(self, *, once: bool = False) -> None:
        log.info("runner.start", runner=self.name, interval=self.interval, once=once)
        while not self.stop_event.is_set():
            started = time.monotonic()
            try:
                done = self.step()
            except Exception:  # noqa: BLE001 - a failing step is logged and retried next round
                log.exception("runner.step_failed", runner=self.name)
                done = 0
            if once:
                break
            if done == 0:
                self._sleep(max(0.0, self.interval - (time.monotonic() - started)))
        log.info("runner.stop", runner=self.name)
