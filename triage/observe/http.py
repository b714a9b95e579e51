"""The worker's health endpoint: /healthz (alive), /readyz (ready to work) and /metrics (Prometheus).

/healthz answers 200 while every runner's thread runs and 503 naming the dead ones: an
orchestrator restarts such a worker. /readyz answers 200 when the database answers and its schema
is at this triage's head, 503 with the reason otherwise: the worker is alive but cannot work now,
so it is not restarted for it. /metrics is prometheus_client's own WSGI app over the worker's
registry. A small threaded wsgiref server, in a daemon thread beside the runners, serves them;
its requests are logged at debug level.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import structlog
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

log = structlog.get_logger(__name__)

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class HealthChecks:
    """What /healthz and /readyz ask; `dead` is set once the runners' threads are started."""

    def __init__(self, not_ready: Callable[[], str | None]) -> None:
        self.not_ready = not_ready
        self.dead: Callable[[], list[str]] | None = None

    def liveness(self) -> str | None:
        """Why the worker is not alive, or None."""
        if self.dead is None:
            return "starting: the runners are not running yet"
        dead = self.dead()
        return f"runner thread died: {', '.join(dead)}" if dead else None


def health_app(checks: HealthChecks, registry: CollectorRegistry) -> WsgiApp:
    """The three endpoints as one WSGI app; anything else is 404."""
    metrics = make_wsgi_app(registry)
    context = structlog.contextvars.get_contextvars()  # the worker's id: each request runs in a new thread

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        with structlog.contextvars.bound_contextvars(**context):
            return respond(environ, start_response)

    def respond(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return metrics(environ, start_response)  # type: ignore[no-any-return]
        if path in ("/healthz", "/readyz"):
            problem = checks.liveness() if path == "/healthz" else checks.not_ready()
            status, body = ("503 Service Unavailable", problem) if problem else ("200 OK", "ok")
            if problem:
                log.warning("health.failing", check=path.strip("/"), reason=problem)
            return _text(start_response, status, body)
        return _text(start_response, "404 Not Found", "not found: try /healthz, /readyz or /metrics")

    return app


def _text(start_response: StartResponse, status: str, body: str) -> list[bytes]:
    data = (body + "\n").encode("utf-8")
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(data))),
                            ("Cache-Control", "no-store")])
    return [data]


class _LoggedHandler(WSGIRequestHandler):
    """Requests in the structured log at debug level, not as wsgiref's lines on stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("health.request", request=format % args)


class _Server(ThreadingWSGIServer):
    address_family = socket.AF_INET


class _Server6(ThreadingWSGIServer):
    address_family = socket.AF_INET6


class HealthServer:
    """The endpoint, bound at construction (a port in use fails the start, before any work) and
    served from `start()` on, in a daemon thread, until `stop()`."""

    def __init__(self, host: str, port: int, app: WsgiApp) -> None:
        server_class = _Server6 if ":" in host else _Server
        self._server = make_server(host, port, app, server_class=server_class, handler_class=_LoggedHandler)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = str(self._server.server_address[0]), int(self._server.server_address[1])
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="health", daemon=True)
        self._thread.start()
        log.info("health.listening", url=self.url, paths=["/healthz", "/readyz", "/metrics"])

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()


__all__ = ["HealthChecks", "HealthServer", "health_app"]
