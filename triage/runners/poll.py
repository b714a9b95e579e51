"""The IMAP runner: one account, reconnecting with backoff, waiting in IDLE when it can.

IDLE is re-issued before `idle_renew_seconds` (at most 29 minutes, RFC 2177). Without IDLE,
or with several folders (IDLE watches one), it polls every `poll_seconds`. A rejected login
is reported once per attempt and retried only after `login_retry_seconds`.

With leases (several workers on PostgreSQL), the runner polls only the folders whose lease it
holds, connects to the server only while it holds one, renews them while it waits in IDLE, and
tries the others a few times per lease period, so it takes over a folder soon after its holder
dies or freezes. A lease lost mid-pass is not a failure: the pass stops, the connection is
dropped, and the runner goes back to trying.
"""

from __future__ import annotations

import socket
import time

import structlog
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from triage.config import ImapSettings
from triage.coordination.leases import Claim, LeaseLost, Leases
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
    def __init__(self, settings: ImapSettings, ingestor: Ingestor, poller: FolderPoller | None = None, *,
                 leases: Leases | None = None) -> None:
        """`leases`: poll only the folders whose lease this worker holds (`use_leases` sets them later)."""
        super().__init__(settings.poll_seconds, backoff_max=settings.backoff_max_seconds)
        self.name = f"imap:{settings.name}"
        self.settings = settings
        self.claims: dict[str, Claim] = {}
        workers = settings.parse_worker_count()
        self.parse_pool = ParsePool(workers, settings.name) if workers else None  # started for a pass of several batches
        self.poller = poller or FolderPoller(
            settings, ingestor, ingestor.sessions, stop=self.stop_event, parse_pool=self.parse_pool,
            claims=self.claims,
        )
        self._client: IMAPClient | None = None
        self.last_pass: list[FolderPass] = []
        if leases is not None:
            self.use_leases(leases)

    def use_leases(self, leases: Leases) -> None:
        """One lease per folder, `imap:<account>/<folder>`; the poller fences its commits on them."""
        self.claims.clear()
        self.claims.update({folder: Claim(leases, mailbox_lease(self.settings.name, folder))
                            for folder in self.settings.folders})

    def held_folders(self) -> list[str]:
        """The folders this runner may poll now: all of them without leases, else those it holds."""
        if not self.claims:
            return list(self.settings.folders)
        return [folder for folder, claim in self.claims.items() if claim.hold()]

    def step(self) -> int:
        folders = self.held_folders()
        if not folders:
            self._drop()  # another worker reads this account: hold no connection meanwhile
            self.last_pass = []
            return 0
        try:
            if self._client is None:
                self._client = connect(self.settings)
                log.info("imap.connected", account=self.settings.name, host=self.settings.host,
                         security=self.settings.security)
            self.last_pass = self.poller.poll(self._client, folders)
        except LeaseLost as exc:
            self._drop()
            log.warning("imap.lease_lost", account=self.settings.name, lease=exc.name, generation=exc.generation)
            return 0
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
        waiting_for_leases = any(claim.lease is None for claim in self.claims.values())
        retry = self.claims and self._take_over_seconds()
        if client is None:
            if retry:
                self.stop_event.wait(min(self.settings.poll_seconds, retry))
            return
        if not (self.settings.idle and b"IDLE" in client.capabilities()):
            self.stop_event.wait(min(self.settings.poll_seconds, retry) if waiting_for_leases and retry
                                 else self.settings.poll_seconds)
            return
        held = [folder for folder in self.settings.folders if not self.claims or self.claims[folder].lease]
        window = float(self.settings.idle_renew_seconds)
        if len(self.settings.folders) > 1:
            window = min(window, int(self.settings.poll_seconds) or 1)
        if waiting_for_leases and retry:
            window = min(window, retry)
        seen_below = next((p.seen_below for p in self.last_pass if p.folder == held[0]), 0)
        try:
            self._idle(client, held[0], window, seen_below)
        except LeaseLost:
            self._drop()
        except BaseException:
            self._drop()
            raise

    def _take_over_seconds(self) -> float:
        """How often a runner without a folder's lease tries to take it: a few times per lease."""
        return next(iter(self.claims.values())).retry

    def _idle(self, client: IMAPClient, folder: str, window: float, seen_below: int = 0) -> None:
        uidnext = int(client.select_folder(folder).get(b"UIDNEXT", 0))
        if seen_below and uidnext > seen_below:
            return  # mail came in between the pass's SEARCH and now: IDLE would not report it
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
                if any(claim.lease is not None and not claim.hold() for claim in self.claims.values()):
                    break  # a lease lapsed while we waited (renewal is due every third of a lease)
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
        for claim in self.claims.values():
            claim.release()


def mailbox_lease(account: str, folder: str) -> str:
    """The lease name of one (account, folder): `imap:<account>/<folder>`."""
    return f"imap:{account}/{folder}"

