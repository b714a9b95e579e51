"""Ingest a maildir that the MTA delivers into (for example Postfix or Dovecot LDA).

A mail is stored first and moved from new/ to cur/ only after the commit: a crash in
between leaves it in new/, and the next pass finds it already stored (a duplicate),
so nothing is lost and nothing is stored twice.

The configured path may be a symlink (the operator's choice); below it nothing is followed.
new/ and cur/ are opened with O_NOFOLLOW and every file is opened and renamed relative to
those descriptors, so swapping a folder or a file for a link mid-pass cannot make the spool
read, or move mail into, another place. A symlink or other non-file in new/ is not read: it is
logged and moved (the link itself, never its target) to cur/ so it is reported once; a file
it may not read stays in new/ and is reported on each pass until the operator fixes it. A mail
over `mail.max_size_bytes` is not read whole: its header is quarantined with the reason (a
crash before the move only counts a second attempt on the same entry) and the file is moved
to cur/, kept as it was.
"""

from __future__ import annotations

import os
from pathlib import Path

import structlog

from triage.ingest.pipeline import Ingestor
from triage.ingest.sources import NOT_A_FILE, SYMLINK, Skipped, open_beneath, read_mail_at
from triage.runners.base import Runner

log = structlog.get_logger(__name__)

SEEN_INFO = ":2,S"  # maildir info suffix of a mail moved to cur/


class SpoolRunner(Runner):
    name = "spool"

    def __init__(self, ingestor: Ingestor, maildir: Path, interval: float, batch: int = 500) -> None:
        super().__init__(interval)
        self.name = f"spool:{maildir}"
        self.lease_name = f"spool:{Path(maildir).resolve()}"  # two workers on one host would race for each file
        self._ingestor = ingestor
        self._maildir = Path(maildir)
        self._batch = batch
        self.skipped: list[Skipped] = []  # entries of new/ not read in the last pass, and why

    def step(self) -> int:
        root = os.open(self._maildir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            new = open_beneath(root, ["new"])
            try:
                cur = open_beneath(root, ["cur"])
            except BaseException:
                os.close(new)
                raise
        finally:
            os.close(root)
        try:
            return self._pass(new, cur)
        finally:
            os.close(new)
            os.close(cur)

    def _pass(self, new: int, cur: int) -> int:
        done = 0
        self.skipped = []
        with os.scandir(new) as entries:
            names = sorted(e.name for e in entries if not e.name.startswith("."))
        for name in names:  # the batch counts mail moved, so files left unreadable in new/ never stall it
            if self.stop_event.is_set() or done >= self._batch:
                break
            path = self._maildir / "new" / name
            mail = read_mail_at(new, name, label=f"spool:{path}", max_size=self._ingestor.max_size)
            if isinstance(mail, Skipped):
                self.skipped.append(mail)
                if mail.reason not in (SYMLINK, NOT_A_FILE):
                    continue  # gone, or unreadable until the operator fixes it: left in new/
                status = "skipped"
            elif mail.oversize:
                kept = self._maildir / "cur" / f"{name}{SEEN_INFO}"
                status = self._ingestor.refuse(mail.raw, size=mail.size, source=f"spool:{kept}").status
            else:
                status = self._ingestor.ingest(mail.raw, source=mail.label).status
            os.rename(name, f"{name}{SEEN_INFO}", src_dir_fd=new, dst_dir_fd=cur)
            log.debug("spool.moved", file=name, status=status)
            done += 1
        return done
