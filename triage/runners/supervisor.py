"""Run several runners at once, each in its own thread, until SIGTERM or SIGINT.

Each thread starts from a copy of the starting thread's logging context (the worker's id), with
its runner's name bound, so every line a runner logs says which worker and which runner wrote it.
"""

from __future__ import annotations

import contextvars
import signal
import threading
from collections.abc import Callable, Sequence

import structlog

from triage.failures import describe
from triage.logging import bind_runner
from triage.runners.base import Runner

log = structlog.get_logger(__name__)


class Supervisor:
    """The runners' threads: started together, stopped together, and asked which have died.

    A runner retries its own failures, so a thread that ends before the stop was asked for is a
    runner that crashed; `dead()` names them for the worker's liveness check."""

    def __init__(self, runners: Sequence[Runner]) -> None:
        self.runners = list(runners)
        self.crashed: list[str] = []
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    def start(self) -> None:
        for runner in self.runners:
            context = contextvars.copy_context()  # one copy per thread: a context runs in one thread at a time
            thread = threading.Thread(target=context.run, args=(self._run, runner), name=runner.name, daemon=True)
            self._threads.append(thread)
            thread.start()

    def _run(self, runner: Runner) -> None:
        bind_runner(runner.name)
        try:
            runner.run()
        except BaseException as exc:  # noqa: BLE001 - one line in the log, not a thread's traceback
            self.crashed.append(runner.name)
            log.error("runner.crashed", runner=runner.name, error=describe(exc))

    def alive(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def dead(self) -> list[str]:
        """The runners whose thread has ended although no stop was asked for."""
        if self._stopping.is_set():
            return []
        return [thread.name for thread in self._threads if not thread.is_alive()]

    def stop(self) -> None:
        """Ask every runner to stop, then wait for each to finish its step and close."""
        self._stopping.set()
        for runner in self.runners:
            runner.stop_event.set()
        for thread in self._threads:
            thread.join()


def run_until_signalled(runners: Sequence[Runner], *,
                        started: Callable[[Supervisor], None] | None = None) -> bool:
    """Start every runner; on SIGTERM/SIGINT ask each to stop, then wait for them to finish.

    A runner retries its own failures; one that still ends by an exception (its `close()` failed,
    say) is logged in one line and the others go on. `started` is called once the threads run
    (the worker starts its health endpoint there). Returns whether every runner ended cleanly.
    """
    stop = threading.Event()
    supervisor = Supervisor(runners)

    def request_stop(signum: int, _frame: object) -> None:
        log.info("worker.stopping", signal=signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        supervisor.start()
        if started is not None:
            started(supervisor)
        while not stop.is_set() and supervisor.alive():
            stop.wait(0.5)
    finally:
        supervisor.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return not supervisor.crashed
