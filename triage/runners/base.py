"""The worker loop: runners own the loop, the waiting, the retries and the shutdown; subclasses
own one step.

SIGTERM or SIGINT sets `stop_event`: the step in progress finishes (its batch is committed),
then the runner closes its connections and returns. A step (or the wait after it) that fails is
retried after a capped exponential backoff with jitter, so a server that is down is not hammered.

A runner whose work must run on one worker at a time (reminders, digests, retention,
retraining, a maildir spool) names a lease (`lease_name`); the worker gives it a `Claim`
(`triage.coordination`). It steps only while it holds the lease, keeps it renewed while it
waits between steps, and gives it back when it stops, so another worker takes the job over at
once on a clean stop, and within a lease period when this one dies.

Each runner keeps when its last step succeeded and how many have failed in a row since: the
worker's /metrics reports both, so a runner that retries forever is seen, not only one that died.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

import structlog

from triage.coordination.leases import Claim, Leases
from triage.failures import describe

log = structlog.get_logger(__name__)


class Runner:
    """Call `step()` until stopped; `wait()` between steps; `close()` at the end."""

    name = "runner"
    lease_name: str | None = None  # one worker at a time runs this: the lease it needs
    claim: Claim | None = None  # given by the worker when lease_name is set and leases are in use

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
        self.last_success_at: float | None = None  # Unix time at the end of the last step that succeeded
        self.consecutive_failures = 0

    def use_leases(self, leases: Leases) -> None:
        """Run under `leases` (several workers on one database): claim this runner's lease, if it names one."""
        if self.lease_name:
            self.claim = Claim(leases, self.lease_name)

    def step(self) -> int:
        """Do one unit of work and return how much was done (0: nothing to do)."""
        raise NotImplementedError

    def wait(self, done: int) -> None:
        if done == 0:
            self.pause(self.interval)

    def pause(self, seconds: float) -> None:
        """Wait `seconds` (or until stopped), renewing this runner's lease as it goes."""
        claim = self.claim
        if claim is None:
            self.stop_event.wait(seconds)
            return
        deadline = time.monotonic() + seconds
        while not self.stop_event.is_set() and (left := deadline - time.monotonic()) > 0:
            self.stop_event.wait(min(left, claim.every))
            try:
                if not claim.hold():
                    return  # lost: the loop tries to take it again
            except Exception as exc:  # noqa: BLE001 - the database is away: the next step says so
                log.warning("runner.lease_renewal_failed", runner=self.name, lease=claim.name, error=describe(exc))
                return

    def _holds_lease(self) -> bool:
        return self.claim is None or self.claim.hold()

    def retry_delay(self, exc: BaseException, failures: int) -> float:
        """Seconds to wait after the `failures`-th failure in a row: capped exponential, jittered."""
        ceiling = min(self.backoff_max, self.backoff_base * 2.0 ** (failures - 1))
        return float(ceiling * (0.5 + self._jitter() / 2))

    def close(self) -> None:
        """Release connections; called once when the loop ends."""

    def run(self, *, once: bool = False) -> None:
        log.info("runner.start", runner=self.name, once=once)
        try:
            while not self.stop_event.is_set():
                try:
                    if not self._holds_lease():  # another worker runs this job now
                        if once:
                            log.info("runner.skipped", runner=self.name, reason="another worker holds the lease")
                            break
                        assert self.claim is not None
                        self.consecutive_failures, self.last_success_at = 0, time.time()  # standing by is healthy
                        self.stop_event.wait(self.claim.retry)
                        continue
                    done = self.step()
                    self.consecutive_failures = 0
                    self.last_success_at = time.time()
                    if once:
                        break
                    # Waiting can fail too (a server that restarts under an IMAP IDLE): retried like a step,
                    # not the end of the runner.
                    self.wait(done)
                except Exception as exc:
                    self.consecutive_failures += 1
                    if once:
                        raise
                    failures = self.consecutive_failures
                    delay = self.retry_delay(exc, failures)
                    log.error("runner.step_failed", runner=self.name, error=describe(exc),
                              failures=failures, retry_in=round(delay, 1))
                    self.stop_event.wait(delay)
        finally:
            try:
                self.close()
            finally:
                if self.claim is not None:
                    self.claim.release()
            log.info("runner.stop", runner=self.name)
