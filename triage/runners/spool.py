"""Ingest a maildir that the MTA delivers into (for example Postfix or Dovecot LDA).

A mail is stored first and moved from new/ to cur/ only after the commit: a crash in
between leaves it in new/, and the next pass finds it already stored (a duplicate),
so nothing is lost and nothing is stored twice.
"""

from __future__ import annotations

import mailbox
from pathlib import Path

import structlog

from triage.ingest.pipeline import Ingestor
from triage.runners.base import Runner

log = structlog.get_logger(__name__)


class SpoolRunner(Runner):
    name = "spool"

    def __init__(self, ingestor: Ingestor, maildir: Path, interval: float, batch: int = 500) -> None:
        super().__init__(interval)
        self.name = f"spool:{maildir}"
        self._ingestor = ingestor
        self._maildir = Path(maildir)
        self._batch = batch

    def step(self) -> int:
        box = mailbox.Maildir(self._maildir, factory=None, create=False)
        done = 0
        try:
            for name in sorted(p.name for p in (self._maildir / "new").iterdir() if not p.name.startswith("."))[
                : self._batch
            ]:
                if self.stop_event.is_set():
                    break
                path = self._maildir / "new" / name
                outcome = self._ingestor.ingest(path.read_bytes(), source=f"spool:{path}")
                path.rename(self._maildir / "cur" / f"{name}{box.colon}2,S")
                log.debug("spool.moved", file=name, status=outcome.status)
                done += 1
        finally:
            box.close()
        return done
