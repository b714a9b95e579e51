"""The worker loop: runners own the loop, the waiting, the retries and the shutdown; subclasses
own one step.

SIGTERM or SIGINT sets `stop_event`: the step in progress finishes (its batch is committed),
then the runner closes its connections and returns. A step (or the wait after it) that fails is
retried after a capped exponential backoff with jitter, so a server that is down is not hammered.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable

import structlog

from triage.failures import describe

log = structlog.get_logger(__name__)


class Runner:
    """Call `step()` until stopped; `wait()` between steps; `close()` at the end."""

    name = "runner"

    def __init__(
        self,
        interval: float,
        *,
        stop: threading.Event | None = None,
        backoff_base: float = 1.0,
        backoff_max: float = 300.0,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.interval = interval
        self.stop_event = stop or threading.Event()
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._jitter = jitter

    def step(self) -> int:
        """Do one unit of work and return how much was done (0: nothing to do)."""
        raise NotImplementedError

    def wait(self, done: int) -> None:
        if done == 0:
            self.stop_event.wait(self.interval)

    def retry_delay(self, exc: BaseException, failures: int) -> float:
        """Seconds to wait after the `failures`-th failure in a row: capped exponential, jittered."""
        ceiling = min(self.backoff_max, self.backoff_base * 2.0 ** (failures - 1))
        return float(ceiling * (0.5 + self._jitter() / 2))

    def close(self) -> None:
        """Release connections; called once when the loop ends."""

    def run(self, *, once: bool = False) -> None:
        log.info("runner.start", runner=self.name, once=once)
        failures = 0
        try:
            while not self.stop_event.is_set():
                try:
                    done = self.step()
                    if once:
                        break
                    failures = 0
                    # Waiting can fail too (a server that restarts under an IMAP IDLE): retried like a step,
                    # not the end of the runner.
                    self.wait(done)
                except Exception as exc:
                    if once:
                        raise
                    failures += 1
                    delay = self.retry_delay(exc, failures)
                    log.error("runner.step_failed", runner=self.name, error=describe(exc),
                              failures=failures, retry_in=round(delay, 1))
                    self.stop_event.wait(delay)
        finally:
            self.close()
            log.info("runner.stop", runner=self.name)
