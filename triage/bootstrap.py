"""The one place that builds the engine, session factory and routing model and hands them out."""

from __future__ import annotations

import gc
import os
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from triage.bundled import resolve
from triage.config import Settings
from triage.ingest.pipeline import Ingestor
from triage.outbox.wiring import Wiring, build_wiring, teams_path, teams_stamp
from triage.schedule.stale import stale_clocks_on_change
from triage.store.db import make_engine, make_read_session_factory, make_session_factory
from triage.store.models import Ticket
from triage.store.schema import ensure_schema
from triage.teams import TeamsFileError, load_teams

if TYPE_CHECKING:
    from triage.routing.desk import Router

log = structlog.get_logger(__name__)

TEAMS_RECHECK_SECONDS = 3.0  # how stale the teams may be after the file is edited; a stat() per period


@dataclass
class App:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    reads: sessionmaker[Session]
    _wiring: Wiring = field(repr=False)
    _router: Router | None = field(default=None, repr=False)
    _teams_stamp: tuple[int, int] | None = field(default=None, repr=False)  # the teams file's, when read
    _teams_checked: float = field(default_factory=time.monotonic, repr=False)
    _teams_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    teams_recheck_seconds: float = TEAMS_RECHECK_SECONDS
    # False in `triage web`: the workbench shows and approves the suggestions the worker's model
    # stored. A model loaded (or trained from seed) by each web process would be that process's
    # own, never replaced when the worker retrains, and approve-confident would store its stale
    # suggestions over the worker's; on another machine it would also need a writable model_path.
    suggests: bool = True

    @property
    def wiring(self) -> Wiring:
        """The outbox's settings, renderer and teams, for everything that queues mail. The teams are
        read again when the teams file has changed (looked at once every `teams_recheck_seconds`),
        so a long-running worker or web server follows an edited file without a restart."""
        self._follow_teams_file()
        return self._wiring

    def _follow_teams_file(self) -> None:
        if time.monotonic() - self._teams_checked >= self.teams_recheck_seconds:
            self._reload_teams_if_changed()

    def _reload_teams_if_changed(self) -> None:
        """New teams for the outbox and the router when the file changed. A file broken mid-edit
        is reported and the teams in use are kept, until the file changes again."""
        with self._teams_lock:  # the web server's threads
            if time.monotonic() - self._teams_checked < self.teams_recheck_seconds:
                return
            self._teams_checked = time.monotonic()
            path = teams_path(self.settings)
            stamp = teams_stamp(path)
            if stamp == self._teams_stamp:
                return
            self._teams_stamp = stamp
            try:
                teams = load_teams(path, required=False)
                routable = load_teams(path) if self._router is not None else None
            except TeamsFileError as exc:
                log.warning("teams.reload_failed", error=str(exc), kept=sorted(self._wiring.teams))
                return
            self._wiring = replace(self._wiring, teams=teams)
            if self._router is not None and routable is not None:
                self._router.teams = routable
            log.info("teams.reloaded", teams=sorted(teams))

    def ingestor(self, **options: Any) -> Ingestor:
        """The ingest use case on this app's database, acknowledging through its outbox wiring
        (the current one at each batch); `options` (clock, parser, set_based) as `Ingestor` takes them."""
        return Ingestor(self.sessions, self.settings.mail, outbox=lambda: self.wiring, **options)

    def router(self) -> Router:
        """The routing use cases with the model in use, loaded once (trained from seed data if allowed),
        then followed: a model another process promoted is loaded within a few seconds (`Router.refresh_model`).
        Without a model where this process does not suggest (`suggests`: the web processes).

        Imported here, not at the top: the classifier pulls in scikit-learn, which commands that
        do not route should not pay for.
        """
        from triage.routing.desk import Router, load_teams

        self._follow_teams_file()  # an edited teams file: its teams before this request is checked against them
        if self._router is None:
            from triage.routing.model_store import ModelStore

            teams = load_teams(resolve(self.settings.routing.teams_file))
            if self.suggests:
                models = ModelStore(self.settings.routing, self.sessions)
                model, record = models.current()
                self._router = Router(self.sessions, model, teams, on_routed=self.handoff, models=models,
                                      record=record, **self._evidence_options())
            else:
                self._router = Router(self.sessions, None, teams, on_routed=self.handoff, **self._evidence_options())
        assert isinstance(self._router, Router)
        self._router.refresh_model()
        return self._router

    def _evidence_options(self) -> dict[str, Any]:
        """What the evidence leaves out: stop words of the desk's languages, the desk's own addresses."""
        from triage.digest.topics import stop_words

        mail = self.settings.mail
        return {"stop_words": stop_words(tuple(self.settings.digest.languages)),
                "own_addresses": (mail.liaison_address, mail.staff_comment_address)}

    def handoff(self, session: Session, ticket: Ticket, team: str, actor: str, now: datetime) -> object:
        """The routing desk's `on_routed` hook: the outbox's hand-off mails, with this app's wiring."""
        from triage.outbox.queue import enqueue_handoff

        return enqueue_handoff(session, ticket, team, actor, now, wiring=self.wiring)

    def close(self) -> None:
        self.engine.dispose()


OWNER_ONLY_UMASK = 0o077


def owner_only_files() -> None:
    """Make every file and folder this process creates private to its user (0600 / 0700): the
    database, its -wal and -shm, models, plots. They hold mail, which is nobody else's to read.
    Called by the entry points (`triage`, the worker), not on import."""
    os.umask(OWNER_ONLY_UMASK)


def bootstrap(settings: Settings, *, migrate: bool | None = None) -> App:
    """Connect, check the schema (upgrading it if configured) and return the wired application.

    Everything built here is handed out through the App, never kept in a module: two Apps in one
    process (tests, a demo beside a worker) never see each other's settings."""
    stamp = teams_stamp(teams_path(settings))  # before the read: an edit made meanwhile is seen later
    wiring = build_wiring(settings)
    engine = make_engine(settings.database.url)
    ensure_schema(engine, auto_migrate=settings.database.auto_migrate if migrate is None else migrate)
    sessions = make_session_factory(engine)
    stale_clocks_on_change(sessions)  # ORM writes through this app's sessions keep reminder clocks honest
    app = App(settings, engine, sessions, make_read_session_factory(engine), wiring, _teams_stamp=stamp)
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
