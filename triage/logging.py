"""Structured logs on stderr. Events carry ids, hashes and counts; never passwords or mail bodies.

A worker's lines say who wrote them: `bind_worker` puts the `worker` field in the process's context,
the supervisor gives each runner thread a copy with its `runner`, and a runner that works on one
mailbox under a lease adds `mailbox` and `lease_generation` with `bind_mailbox` for that work.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import structlog

from triage.config import LogSettings
from triage.secrets import redact_text

_REDACT = ("password", "secret", "token", "body", "text", "html")


def _redact(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A last line of defence: any field whose name suggests a secret or content is blanked, and a
    password or token inside any text (a URL's userinfo, `password=...`) is masked."""
    for key, value in list(event.items()):
        if key != "event" and any(word in key.lower() for word in _REDACT):
            event[key] = "[redacted]"
        elif isinstance(value, str):
            event[key] = redact_text(value)
    return event


def configure_logging(settings: LogSettings) -> None:
    level = getattr(logging, settings.level.upper())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if settings.format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def worker_name(configured: str = "") -> str:
    """The worker's name in logs and metrics: `worker.id` when set, else host:pid."""
    return configured or f"{socket.gethostname()}:{os.getpid()}"


def bind_worker(name: str) -> None:
    """Every later line of this thread, and of the threads started from a copy of its context (the
    supervisor's runners), carries `worker=name`."""
    structlog.contextvars.bind_contextvars(worker=name)


def bind_runner(name: str) -> None:
    """Every later line of this thread carries `runner=name` (called first thing in a runner's thread)."""
    structlog.contextvars.bind_contextvars(runner=name)


@contextmanager
def bind_mailbox(mailbox: str, lease_generation: int | None = None) -> Iterator[None]:
    """The lines logged inside the block carry `mailbox` ("account/folder") and the generation of
    the lease under which the work is done, so two workers' lines about one mailbox can be told
    apart after a takeover. The poller wraps a folder pass in it."""
    fields: dict[str, Any] = {"mailbox": mailbox}
    if lease_generation is not None:
        fields["lease_generation"] = lease_generation
    with structlog.contextvars.bound_contextvars(**fields):
        yield
