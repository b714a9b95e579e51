"""The workbench as one more runner, so that `triage demo` serves it beside the worker's runners
and one Ctrl-C (the supervisor's stop) ends them all."""

from __future__ import annotations

import threading

import structlog
import uvicorn

from triage.runners.base import Runner
from triage.web.server import start_in_thread

log = structlog.get_logger(__name__)


class WebRunner(Runner):
    """Each step makes sure the server's thread is serving (starting it again if it died);
    `close()` asks uvicorn to finish the requests in flight and waits for it."""

    name = "web"

    def __init__(self, server: uvicorn.Server, interval: float = 0.5) -> None:
        super().__init__(interval, backoff_base=1.0, backoff_max=30.0)
        self.server = server
        self._thread: threading.Thread | None = None

    def step(self) -> int:
        if self._thread is not None and self._thread.is_alive():
            return 0
        if self._thread is not None:
            log.error("web.server_stopped", hint="restarting it on the same socket")
        self._thread = start_in_thread(self.server)
        return 0

    def close(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(30)


__all__ = ["WebRunner"]
