"""The IMAP runner: one account, reconnecting with backoff, waiting in IDLE when it can.

IDLE is re-issued before `idle_renew_seconds` (at most 29 minutes, RFC 2177). Without IDLE,
or with several folders (IDLE watches one), it polls every `poll_seconds`. A rejected login
is reported once per attempt and retried only after `login_retry_seconds`.
"""

from __future__ import annotations

import socket
import time

import structlog
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from triage.config import ImapSettings
from triage.ingest.imap_connect import connect
from triage.ingest.imap_poll import FolderPass, FolderPoller, ParsePool
from triage.ingest.pipeline import Ingestor
from triage.runners.base import Runner

log = structlog.get_logger(__name__)

IDLE_CHECK_SECONDS = 1.0  # how often IDLE wakes to notice a stop request


def _hung_up(client: IMAPClient) -> bool:
    """Did the server close the connection? imapclient's idle_check swallows the EOF and answers [] at
    once (mjs/imapclient#565), so IDLE would spin until its renewal; the socket itself tells: readable
    with nothing to read. Peeked on a duplicate of the descriptor, since a TLS socket refuses recv flags."""
    sock = client.socket()
    with socket.fromfd(sock.fileno(), sock.family, sock.type) as raw:
        try:
            return raw.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except (BlockingIOError, InterruptedError):
            return False  # nothing to read: still open
        except OSError:
            return True


class PollRunner(Runner):
    def __init__(self, settings: ImapSettings, ingestor: Ingestor, poller: FolderPoller | None = None) -> None:
        super().__init__(settings.poll_seconds, backoff_max=settings.backoff_max_seconds)
        self.name = f"imap:{settings.name}"
        self.settings = settings
        workers = settings.parse_worker_count()
        self.parse_pool = ParsePool(workers, settings.name) if workers else None  # started for a pass of several batches
        self.poller = poller or FolderPoller(
            settings, ingestor, ingestor.sessions, stop=self.stop_event, parse_pool=self.parse_pool
        )
        self._client: IMAPClient | None = None
        self.last_pass: list[FolderPass] = []

    def step(self) -> int:
        try:
            if self._client is None:
                self._client = connect(self.settings)
                log.info("imap.connected", account=self.settings.name, host=self.settings.host,
                         security=self.settings.security)
            self.last_pass = self.poller.poll(self._client)
        except BaseException:
            self._drop()
            raise
        return sum(p.fetched + p.vanished for p in self.last_pass)

    def retry_delay(self, exc: BaseException, failures: int) -> float:
        if isinstance(exc, LoginError):
            log.error("imap.login_rejected", account=self.settings.name, host=self.settings.host,
                      user=self.settings.user, hint="check imap.user and the password or token")
            return self.settings.login_retry_seconds * (0.9 + self._jitter() / 5)
        return super().retry_delay(exc, failures)

    def wait(self, done: int) -> None:
        if done:
            return  # more may have arrived while we worked: look again at once
        client = self._client
        if client is None:
            return
        if not (self.settings.idle and b"IDLE" in client.capabilities()):
            self.stop_event.wait(self.settings.poll_seconds)
            return
        window = self.settings.idle_renew_seconds
        if len(self.settings.folders) > 1:
            window = min(window, int(self.settings.poll_seconds) or 1)
        try:
            self._idle(client, window)
        except BaseException:
            self._drop()
            raise

    def _idle(self, client: IMAPClient, window: float) -> None:
        client.select_folder(self.settings.folders[0])
        client.idle()
        deadline = time.monotonic() + window
        hung_up = False
        try:
            while not self.stop_event.is_set() and time.monotonic() < deadline:
                responses = client.idle_check(timeout=IDLE_CHECK_SECONDS)
                if any(len(r) > 1 and r[1] in (b"EXISTS", b"RECENT") for r in responses):
                    break
                if not responses and _hung_up(client):
                    hung_up = True
                    raise ConnectionError("the IMAP server closed the connection during IDLE")
        finally:
            if not hung_up:
                client.idle_done()

    def _drop(self) -> None:
        if self._client is not None:
            try:
                self._client.shutdown()
            except OSError:
                pass
            self._client = None

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.logout()
            except Exception:  # noqa: BLE001 - the server may already be gone; we are leaving anyway
                self._drop()
            self._client = None
        if self.parse_pool is not None:
            self.parse_pool.shutdown()
