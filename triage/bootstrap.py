"""The one place that builds the engine and session factory from Settings and hands them out."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from triage.config import Settings
from triage.ingest.pipeline import Ingestor
from triage.store.db import make_engine, make_session_factory
from triage.store.schema import ensure_schema


@dataclass(frozen=True)
class App:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]

    def ingestor(self) -> Ingestor:
        return Ingestor(self.sessions, self.settings.mail)

    def close(self) -> None:
        self.engine.dispose()


def bootstrap(settings: Settings, *, migrate: bool | None = None) -> App:
    """Connect, check the schema (upgrading it if configured) and return the wired application."""
    engine = make_engine(settings.database.url)
    ensure_schema(engine, auto_migrate=settings.database.auto_migrate if migrate is None else migrate)
    return App(settings, engine, make_session_factory(engine))
