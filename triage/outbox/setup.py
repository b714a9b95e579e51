"""Build the outbox's sender from an App: the SMTP transport and the optional IMAP copies."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial

from triage.bootstrap import App
from triage.outbox.sender import CopyFinder, OutboxSender
from triage.store.db import utcnow


def make_sender(app: App, *, clock: Callable[[], datetime] = utcnow) -> OutboxSender:
    """The sender for this app's database and settings."""
    settings = app.settings
    confirm: CopyFinder | None = None
    append = None
    if settings.imap.host and settings.outbox.confirm_folder:
        from triage.outbox.imapcopy import find_copy

        confirm = partial(find_copy, settings.imap, settings.outbox.confirm_folder)
    if settings.imap.host and settings.outbox.sent_folder:
        from triage.outbox.imapcopy import append_copies

        def append(raws: Sequence[bytes]) -> list[str]:
            return append_copies(settings.imap, settings.outbox.sent_folder, raws)

    return OutboxSender(app.sessions, settings, clock=clock, confirm_copy=confirm, append_copies=append)


__all__ = ["make_sender"]
