"""Where the routing model lives on disk, which one is in use, and how a new one replaces it.

Several workers and web processes share one database, and one host or a shared volume, so:

- every model is a folder of its own, `<model_path>.versions/<version>-<token>/`: written
  completely under a dot-name, renamed into place, and never changed afterwards;
- the database says which one is in use: the latest `routing_models` row. Each process
  compares it with the model it holds (the Router, at most every few seconds) and loads the new
  one, so a model one worker promotes reaches them all;
- `<model_path>` itself is a symbolic link to that folder, replaced atomically (a new link
  renamed over it), for whatever reads the model by path (`triage suggest --model data/model`);
- a promotion is compare-and-set: the candidate names the model it was measured against and is
  recorded only if that one is still the latest (checked under a lock: PostgreSQL's advisory
  lock, SQLite's write lock; the unique `replaces` column as the backstop). The loser's
  folder is removed; it changed nothing;
- the folders of the last `KEEP_VERSIONS` promotions are kept, older ones removed.

A `model_path` that is a plain folder (written before versions) is moved into the versions and
recorded by the first promotion; until then it is loaded as it is. On a fresh install with no
model, a first one is trained from the seed data and promoted the same way (of workers starting
together, one promotes; the others load its model).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from classifiers import Classifier, LinearRouter, ModelFileError, default_classifier, load_model
from triage.bundled import resolve
from triage.config import RoutingSettings
from triage.routing.training_data import load_examples
from triage.store.db import utcnow
from triage.store.models import RoutingModel

log = structlog.get_logger(__name__)

KEEP_VERSIONS = 3  # the model in use and the two before it, to go back to by hand
PRUNE_GRACE_SECONDS = 60.0  # a replaced model's folder outlives its replacement by this much, at least
STALE_INCOMING_SECONDS = 3600.0  # a dot-folder this old is a crashed writer's; removed when pruning
PROMOTION_LOCK = 0x726F_7574_696E_67  # "routing": one number every triage process agrees on
PRIVATE_FOLDER = 0o700


@dataclass(frozen=True, slots=True)
class ModelRecord:
    """A promoted model as the database records it."""

    id: int
    version: str
    folder: str


def latest_record(session: Session) -> ModelRecord | None:
    """The model in use: the latest promotion, or None before the first."""
    row = session.execute(select(RoutingModel.id, RoutingModel.version, RoutingModel.folder)
                          .order_by(RoutingModel.id.desc()).limit(1)).first()
    return ModelRecord(row.id, row.version, row.folder) if row is not None else None


def _record_id(record: ModelRecord | None) -> int:
    return record.id if record is not None else 0


def _plain_folder(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


class ModelStore:
    """The routing model's artefacts under `routing.model_path` and its promotions in the database."""

    def __init__(self, settings: RoutingSettings, sessions: sessionmaker[Session], *,
                 promoted_by: str | None = None, clock: Callable[[], datetime] = utcnow) -> None:
        self.settings = settings
        self.path = Path(settings.model_path)
        self.versions = self.path.with_name(self.path.name + ".versions")
        self._sessions = sessions
        self.promoted_by = promoted_by or f"{socket.gethostname()}:{os.getpid()}"
        self._clock = clock

    def recorded(self) -> ModelRecord | None:
        """The latest promotion (one indexed row: cheap enough to ask every few seconds)."""
        with self._sessions() as session:
            return latest_record(session)

    def load(self, record: ModelRecord) -> LinearRouter:
        return load_model(str(self.versions / record.folder))

    def current(self) -> tuple[Classifier | None, ModelRecord | None]:
        """The model in use and its record: the latest promotion's; else the one at `model_path`
        (a plain folder from before versions: no record yet); else a first one trained from the
        seed data, if that is allowed; else none."""
        record = self.recorded()
        if record is not None:
            return self.load(record), record
        if self.path.exists():
            return load_model(str(self.path)), None
        seed = resolve(self.settings.seed_data)
        if not (self.settings.auto_train and seed.exists()):
            log.warning("routing.no_model", model_path=str(self.path),
                        hint="triage train --data ... --out " + str(self.path))
            return None, None
        log.info("routing.training_first_model", seed=str(seed))
        model = default_classifier(target_precision=self.settings.target_precision)
        model.fit(load_examples(seed).examples)
        record = self.promote(model, replaces=None, scores={"trained_on": "seed data"})
        if record is None:  # another process promoted a first model meanwhile: that one is in use
            return self.current()
        return model, record

    # -- promotion ---------------------------------------------------------------------------

    def promote(self, model: LinearRouter, *, replaces: ModelRecord | None,
                scores: Mapping[str, Any]) -> ModelRecord | None:
        """Make `model` the one in use if `replaces` (the model it was measured against; None: no
        recorded model) is still the latest; return its record, or None if another promotion came
        first (the candidate is then discarded)."""
        self.versions.mkdir(mode=PRIVATE_FOLDER, parents=True, exist_ok=True)
        token = secrets.token_hex(4)
        incoming: Path | None = self.versions / f".incoming-{token}"
        assert incoming is not None
        model.save(incoming)  # the slow part, before the lock: nobody points at a dot-folder
        folder = f"{model.version}-{token}"
        adopted: Path | None = None
        try:
            with self._sessions.begin() as session:
                head = self._lock(session)
                if _record_id(head) != _record_id(replaces):
                    log.info("routing.promotion_lost", candidate=model.version, measured_against=_version(replaces),
                             in_use=_version(head))
                    return None
                if _plain_folder(self.path):
                    version, moved = self._move_plain_folder()
                    adopted = self.versions / moved
                    if head is None:  # the model in use until now: recorded as the one this replaces
                        head = self._record_adopted(session, version, moved)
                row = RoutingModel(version=model.version, folder=folder, replaces=_record_id(head),
                                   promoted_at=self._clock(), promoted_by=self.promoted_by, scores=dict(scores))
                session.add(row)
                session.flush()  # the unique `replaces` refuses a second promotion here, before any rename
                os.rename(incoming, self.versions / folder)
                incoming = None
                self._point_at(folder)  # still under the lock: links change in the order of the records
                record = ModelRecord(row.id, row.version, row.folder)
        except IntegrityError:
            self._put_back(adopted)
            log.info("routing.promotion_lost", candidate=model.version, measured_against=_version(replaces))
            return None
        except BaseException:
            self._put_back(adopted)
            raise
        finally:
            if incoming is not None:
                shutil.rmtree(incoming, ignore_errors=True)
        log.info("routing.promoted", version=record.version, folder=record.folder, replaces=_version(replaces))
        self.prune()
        return record

    def _lock(self, session: Session) -> ModelRecord | None:
        """Serialise promotions (SQLite's BEGIN IMMEDIATE already holds the write lock) and read the latest."""
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PROMOTION_LOCK})
        return latest_record(session)

    def _move_plain_folder(self) -> tuple[str, str]:
        """Move a plain folder at `model_path` (written before versions, or put back by hand) into
        the versions, where the link can replace it: (its version, its folder). A folder no
        promotion names is never pruned."""
        try:
            version = load_model(str(self.path)).version
        except ModelFileError:
            version = "unreadable"
        folder = f"{version}-adopted-{secrets.token_hex(3)}"
        os.rename(self.path, self.versions / folder)
        log.info("routing.model_adopted", version=version, folder=folder)
        return version, folder

    def _record_adopted(self, session: Session, version: str, folder: str) -> ModelRecord:
        row = RoutingModel(version=version, folder=folder, replaces=0, promoted_at=self._clock(),
                           promoted_by=f"adopted from {self.path}", scores={})
        session.add(row)
        session.flush()
        return ModelRecord(row.id, version, folder)

    def _put_back(self, adopted: Path | None) -> None:
        """A promotion that failed after moving the plain folder away: the folder goes back, unrecorded."""
        if adopted is not None and not os.path.lexists(self.path):
            os.rename(adopted, self.path)

    def _point_at(self, folder: str) -> None:
        """Swap the link at `model_path` in one rename: a reader sees the old target or the new one."""
        link = self.path.with_name(f".{self.path.name}.link-{secrets.token_hex(4)}")
        os.symlink(Path(self.versions.name) / folder, link, target_is_directory=True)
        try:
            os.replace(link, self.path)
        except OSError:
            link.unlink(missing_ok=True)
            raise

    def prune(self) -> None:
        """Remove the folders of promotions older than the last KEEP_VERSIONS, once replaced for
        PRUNE_GRACE_SECONDS (a process that has just read a record may be loading its folder), never
        the one the link names; and dot-folders a crashed writer left. A folder no promotion names
        is left alone."""
        with self._sessions() as session:
            rows = session.execute(select(RoutingModel.folder, RoutingModel.promoted_at)
                                   .order_by(RoutingModel.id.desc())).all()
        settled = self._clock() - timedelta(seconds=PRUNE_GRACE_SECONDS)
        # rows[i] was replaced when rows[i - 1] was promoted
        old = {rows[i].folder for i in range(KEEP_VERSIONS, len(rows)) if rows[i - 1].promoted_at < settled}
        linked = Path(os.readlink(self.path)).name if self.path.is_symlink() else None
        cutoff = time.time() - STALE_INCOMING_SECONDS
        for entry in self.versions.iterdir() if self.versions.is_dir() else ():
            stale = entry.name.startswith(".") and entry.lstat().st_mtime < cutoff
            if (entry.name in old or stale) and entry.name != linked:
                shutil.rmtree(entry, ignore_errors=True)


def _version(record: ModelRecord | None) -> str | None:
    return record.version if record is not None else None


def current_model(settings: RoutingSettings, sessions: sessionmaker[Session]) -> Classifier | None:
    """The model in use (see `ModelStore.current`)."""
    return ModelStore(settings, sessions).current()[0]


__all__ = ["KEEP_VERSIONS", "ModelFileError", "ModelRecord", "ModelStore", "current_model", "latest_record"]
