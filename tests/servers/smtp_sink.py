"""An SMTP sink for tests: a real aiosmtpd server on loopback that keeps every mail and fails on demand.

Like Mailman's test layer, the sink can be told to misbehave for the next transactions (a 4xx or 5xx
at MAIL, RCPT or DATA, or a dropped connection after the data arrived) so the outbox's retry and
give-up paths are tested against real SMTP conversations rather than mocks.
"""

from __future__ import annotations

import email.policy
import shutil
import ssl
import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.servers import (
    LOOPBACK,
    TlsMaterial,
    free_port,
    make_tls_material,
    openssl_missing_reason,
    world_traversable_tempdir,
)

Stage = Literal["MAIL", "RCPT", "DATA"]


@dataclass(frozen=True)
class ReceivedMessage:
    """One accepted transaction, as the sink saw it."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    message_id: str | None
    authenticated_as: str | None
    over_tls: bool


@dataclass(frozen=True)
class _Plan:
    """How the sink answers one upcoming transaction."""

    code: int = 0
    stage: Stage = "DATA"
    disconnect: bool = False
    deliver: bool = False

    @property
    def reply(self) -> str:
        enhanced = f"{self.code // 100}.0.0"
        return f"{self.code} {enhanced} Failure requested by the test"


class SmtpSink:
    """An aiosmtpd server on a free loopback port. Use as a context manager.

    `starttls=True` offers STARTTLS with a certificate signed by the CA at `ca_cert_path`;
    `implicit_tls=True` speaks TLS from the first byte (SMTPS). With `auth=(user, password)` the sink
    offers AUTH PLAIN and LOGIN and refuses MAIL until the client authenticated; AUTH needs TLS first
    when TLS is offered, and is allowed in the clear on loopback otherwise.
    """

    def __init__(
        self,
        *,
        starttls: bool = False,
        implicit_tls: bool = False,
        require_starttls: bool = False,
        auth: tuple[str, str] | None = None,
    ) -> None:
        self.host = LOOPBACK
        self.port = free_port()
        self.auth = auth
        self.messages: list[ReceivedMessage] = []
        self.transactions = 0
        self._plans: list[_Plan] = []
        self._refusing: _Plan | None = None
        self._lock = threading.Lock()
        self._tls_dir: Path | None = None
        self._tls_material: TlsMaterial | None = None
        if starttls or implicit_tls:
            reason = openssl_missing_reason()
            if reason:
                raise RuntimeError(reason)
            self._tls_dir = world_traversable_tempdir("triage-smtp-")
            self._tls_material = make_tls_material(self._tls_dir)
        tls_context = self._tls_material.server_context() if self._tls_material else None
        self._controller = Controller(
            _Handler(self),
            hostname=self.host,
            port=self.port,
            server_hostname="localhost",
            ssl_context=tls_context if implicit_tls else None,
            tls_context=tls_context if starttls else None,
            require_starttls=require_starttls,
            authenticator=self._authenticate if auth else None,
            # The handler refuses MAIL without AUTH itself: aiosmtpd's auth_required without TLS warns.
            auth_required=False,
            auth_require_tls=bool(starttls or implicit_tls),
        )

    @property
    def ca_cert_path(self) -> Path | None:
        return self._tls_material.ca_cert_path if self._tls_material else None

    def client_ssl_context(self) -> ssl.SSLContext:
        """An SSL context that trusts this sink's CA (TLS modes only)."""
        if self._tls_material is None:
            raise RuntimeError("this sink runs without TLS; pass starttls=True or implicit_tls=True")
        return self._tls_material.client_context()

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def close(self) -> None:
        try:
            self.stop()
        finally:
            if self._tls_dir is not None:
                shutil.rmtree(self._tls_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def clear(self) -> None:
        """Forget received mail and any failures still planned."""
        with self._lock:
            self.messages.clear()
            self._plans.clear()
            self._refusing = None
            self.transactions = 0

    def fail_next(self, code: int = 451, times: int = 1, stage: Stage = "DATA") -> None:
        """Answer `code` at `stage` in each of the next `times` transactions (4xx temporary, 5xx not)."""
        if not 400 <= code < 600:
            raise ValueError(f"a failure needs a 4xx or 5xx code, not {code}")
        with self._lock:
            self._plans.extend([_Plan(code=code, stage=stage)] * times)

    def refuse(self, code: int = 451, stage: Stage = "MAIL") -> None:
        """Answer `code` at `stage` in every transaction from now on, until `accept()` (an outage of the peer)."""
        if not 400 <= code < 600:
            raise ValueError(f"a failure needs a 4xx or 5xx code, not {code}")
        with self._lock:
            self._refusing = _Plan(code=code, stage=stage)

    def accept(self) -> None:
        """Stop refusing: transactions without a planned failure are accepted again."""
        with self._lock:
            self._refusing = None

    def disconnect_next(self, times: int = 1, *, deliver: bool = False) -> None:
        """Close the connection after the next `times` DATA payloads arrive, before replying.

        With `deliver=True` the message is kept anyway: the client cannot tell whether it was sent,
        which is what a retrying outbox must cope with without duplicating mail.
        """
        with self._lock:
            self._plans.extend([_Plan(stage="DATA", disconnect=True, deliver=deliver)] * times)

    def message_ids(self) -> list[str | None]:
        with self._lock:
            return [message.message_id for message in self.messages]

    # -- called from the server thread ------------------------------------------------------------

    def _take_plan(self) -> _Plan | None:
        with self._lock:
            self.transactions += 1
            return self._plans.pop(0) if self._plans else self._refusing

    def _record(self, server: SMTP, session: Session, envelope: Envelope) -> None:
        # session.ssl is only set by STARTTLS; the transport also knows about implicit TLS.
        over_tls = server.transport is not None and server.transport.get_extra_info("ssl_object") is not None
        raw = bytes(envelope.original_content or b"")
        headers = BytesHeaderParser(policy=email.policy.default).parsebytes(raw)
        message_id = headers.get("Message-ID")
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        with self._lock:
            self.messages.append(
                ReceivedMessage(
                    mail_from=envelope.mail_from or "",
                    rcpt_tos=tuple(envelope.rcpt_tos),
                    raw=raw,
                    message_id=str(message_id).strip() if message_id else None,
                    authenticated_as=login,
                    over_tls=over_tls or session.ssl is not None,
                )
            )

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert self.auth is not None
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user, password = self.auth
        ok = auth_data.login == user.encode() and auth_data.password == password.encode()
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


class _Handler:
    """aiosmtpd hooks; the plan for a transaction is drawn at MAIL and kept per envelope."""

    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink
        self.plans: weakref.WeakKeyDictionary[Envelope, _Plan] = weakref.WeakKeyDictionary()

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        if self.sink.auth is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        plan = self.sink._take_plan()
        if plan is not None:
            if plan.stage == "MAIL" and not plan.disconnect:
                return plan.reply
            self.plans[envelope] = plan
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        plan = self.plans.get(envelope)
        if plan is not None and plan.stage == "RCPT" and not plan.disconnect:
            return plan.reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        plan = self.plans.pop(envelope, None)
        if plan is not None and plan.disconnect:
            if plan.deliver:
                self.sink._record(server, session, envelope)
            assert server.transport is not None
            # aiosmtpd still pushes the reply below; writes to a closed transport are dropped.
            server.transport.close()
            return "421 4.4.2 Connection dropped by the test"
        if plan is not None and plan.stage == "DATA":
            return plan.reply
        self.sink._record(server, session, envelope)
        return "250 2.0.0 Message accepted"


# -- pytest fixtures ------------------------------------------------------------------------------


@pytest.fixture(name="make_smtp_sink")
def fixture_make_smtp_sink() -> Iterator[Callable[..., SmtpSink]]:
    """A factory for started sinks (same arguments as `SmtpSink`); all stopped at teardown."""
    started: list[SmtpSink] = []

    def make(**kwargs: Any) -> SmtpSink:
        if (kwargs.get("starttls") or kwargs.get("implicit_tls")) and openssl_missing_reason():
            pytest.skip(openssl_missing_reason() or "")
        sink = SmtpSink(**kwargs)
        started.append(sink)
        sink.start()
        return sink

    try:
        yield make
    finally:
        for sink in started:
            sink.close()


@pytest.fixture(name="smtp_sink")
def fixture_smtp_sink(make_smtp_sink: Callable[..., SmtpSink]) -> SmtpSink:
    """A plain SMTP sink on loopback, no TLS, no AUTH."""
    return make_smtp_sink()
