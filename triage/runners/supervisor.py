"""Run several runners at once, each in its own thread, until SIGTERM or SIGINT."""

from __future__ import annotations

import signal
import threading
from collections.abc import Sequence

import structlog

from triage.failures import describe
from triage.runners.base import Runner

log = structlog.get_logger(__name__)


def run_until_signalled(runners: Sequence[Runner]) -> bool:
    """Start every runner; on SIGTERM/SIGINT ask each to stop, then wait for them to finish.

    A runner retries its own failures; one that still ends by an exception (its `close()` failed,
    say) is logged in one line and the others go on. Returns whether every runner ended cleanly.
    """
    stop = threading.Event()
    crashed: list[str] = []

    def request_stop(signum: int, _frame: object) -> None:
        log.info("worker.stopping", signal=signal.Signals(signum).name)
        stop.set()

    def run(runner: Runner) -> None:
        try:
            runner.run()
        except Exception as exc:  # noqa: BLE001 - one line in the log, not a thread's traceback
            crashed.append(runner.name)
            log.error("runner.crashed", runner=runner.name, error=describe(exc))

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    threads = [threading.Thread(target=run, args=(r,), name=r.name, daemon=True) for r in runners]
    try:
        for thread in threads:
            thread.start()
        while not stop.is_set() and any(t.is_alive() for t in threads):
            stop.wait(0.5)
    finally:
        for runner in runners:
            runner.stop_event.set()
        for thread in threads:
            thread.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return not crashed
