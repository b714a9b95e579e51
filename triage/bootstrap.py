"""The one place that builds the engine, session factory and routing model and hands them out."""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from triage.bundled import resolve
from triage.config import Settings
from triage.ingest.pipeline import Ingestor
from triage.store.db import make_engine, make_read_session_factory, make_session_factory
from triage.store.schema import ensure_schema

if TYPE_CHECKING:
    from triage.routing.desk import Router

log = structlog.get_logger(__name__)


@dataclass
class App:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    reads: sessionmaker[Session]
    _router: object | None = field(default=None, repr=False)

    def ingestor(self) -> Ingestor:
        return Ingestor(self.sessions, self.settings.mail)

    def router(self) -> Router:
        """The routing use cases with the model in use, loaded once (trained from seed data if allowed).

        Imported here, not at the top: the classifier pulls in scikit-learn, which commands that
        do not route should not pay for.
        """
        from triage.routing.desk import Router, load_teams

        if self._router is None:
            from triage.routing.model_store import current_model

            teams = load_teams(resolve(self.settings.routing.teams_file))
            model = current_model(self.settings.routing)
            self._router = Router(self.sessions, model, teams, on_routed=_handoff_hook())
        assert isinstance(self._router, Router)
        return self._router

    def close(self) -> None:
        self.engine.dispose()


def _handoff_hook() -> Callable[..., object] | None:
    """The outbox's hand-off on approval, where the outbox is installed."""
    try:
        from triage.outbox.queue import enqueue_handoff
    except ImportError:
        return None
    hook: Callable[..., object] = enqueue_handoff
    return hook


OWNER_ONLY_UMASK = 0o077


def owner_only_files() -> None:
    """Make every file and folder this process creates private to its user (0600 / 0700): the
    database, its -wal and -shm, models, plots. They hold mail, which is nobody else's to read.
    Called by the entry points (`triage`, the worker), not on import."""
    os.umask(OWNER_ONLY_UMASK)


def bootstrap(settings: Settings, *, migrate: bool | None = None) -> App:
    """Connect, check the schema (upgrading it if configured) and return the wired application."""
    from triage.outbox import wiring

    wiring.install(settings)  # the acknowledgment and hand-off hooks read the outbox settings from here
    engine = make_engine(settings.database.url)
    ensure_schema(engine, auto_migrate=settings.database.auto_migrate if migrate is None else migrate)
    app = App(settings, engine, make_session_factory(engine), make_read_session_factory(engine))
    _freeze_startup_objects()
    return app


_frozen = False


def _freeze_startup_objects() -> None:
    """What start-up allocated (modules, mappers, compiled SQL, templates) lives as long as the
    process: frozen, it is no longer walked by every full collection, which otherwise costs a
    reminder run or an ingest batch tens of milliseconds at random. Once per process, after a
    collection, so that no garbage is frozen with it."""
    global _frozen
    if not _frozen:
        gc.collect()
        gc.freeze()
        _frozen = True


__all__ = ["App", "bootstrap", "owner_only_files"]
