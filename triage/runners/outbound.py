"""Deliver the outbox: each step is one pass of `OutboxSender.send_due` (what is due, then wait)."""

from __future__ import annotations

from triage.bootstrap import App
from triage.outbox.sender import OutboxSender
from triage.outbox.setup import make_sender
from triage.runners.base import Runner


class OutboundRunner(Runner):
    name = "outbound"

    def __init__(self, sender: OutboxSender, interval: float, batch: int = 100) -> None:
        super().__init__(interval, backoff_base=5.0, backoff_max=sender.settings.smtp.backoff_max_seconds)
        self.sender = sender
        self._batch = batch

    def step(self) -> int:
        return self.sender.send_due(limit=self._batch, stop=self.stop_event).touched


def outbound_runners(app: App) -> list[Runner]:
    """The outbound runner when smtp.host is set (and the outbox wired to this app's settings either way)."""
    sender = make_sender(app)
    if not app.settings.smtp.host:
        return []
    return [OutboundRunner(sender, app.settings.smtp.poll_seconds)]


__all__ = ["OutboundRunner", "outbound_runners"]
