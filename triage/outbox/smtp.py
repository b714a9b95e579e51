"""One SMTP session, the safe way, and one mail transaction on it with its outcome classified.

Security follows the configuration and never degrades: `tls` (implicit TLS), `starttls`
(refused if the server does not offer it; no plain-text fallback) or `none` (plain text,
which the configuration allows only to a loopback address). Certificates are verified
(`smtp.ca_file` for a private CA). Secrets are read here and never logged.

`transact` drives MAIL, RCPT and DATA itself rather than calling `smtplib.sendmail`, because
the outbox must record one fact between "the server has the whole message but not its
terminating dot" and "the dot is on the wire": the `before_final_dot` callback (see
`triage.outbox.sender` for why).
"""

from __future__ import annotations

import re
import smtplib
import socket
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from triage.config import SmtpSettings
from triage.secrets import SecretFileError, read_password

Kind = Literal["accepted", "temporary", "permanent", "in-doubt"]

_QUEUE_ID = re.compile(r"(?:queued as|queue id|id=|ok:?)\s*<?([A-Za-z0-9._@-]{4,})>?", re.IGNORECASE)
_LINE_END = re.compile(rb"\r\n|\r|\n")
_LEADING_DOT = re.compile(rb"(?m)^\.")


class SmtpError(Exception):
    """Root of the sender's errors."""


class SmtpUnavailable(SmtpError):
    """No usable SMTP session (connect, TLS or login failed). Nothing was claimed: try again later."""


class SmtpSecurityError(SmtpUnavailable):
    """The server cannot give the security the configuration asks for; fix the server or the config."""


class SmtpCredentialError(SmtpUnavailable):
    """The login was refused or the password could not be read; the message names the setting."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """What became of one transaction. `in-doubt`: the final dot was sent and no reply came back."""

    kind: Kind
    code: int | None
    reply: str
    stage: str
    queue_id: str | None = None
    refused: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        code = f"{self.code} " if self.code is not None else ""
        return f"{self.stage}: {code}{self.reply}".strip()


class Session(Protocol):
    """An open SMTP session (what the outbox sender needs of one)."""

    server: str

    def transact(
        self, envelope_from: str, recipients: Sequence[str], raw: bytes, before_final_dot: Callable[[], None]
    ) -> Delivery: ...

    def close(self) -> None: ...


class Transport(Protocol):
    """Opens sessions; the real one is `SmtpTransport`. Raises SmtpUnavailable when it cannot."""

    def open(self) -> Session: ...


def _password(settings: SmtpSettings) -> str:
    try:
        return read_password(settings.password, settings.password_file, key="smtp.password_file")
    except SecretFileError as exc:
        raise SmtpCredentialError(str(exc)) from None


def ssl_context(settings: SmtpSettings) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=settings.ca_file or None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _text(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return " ".join(text.split())[:500]


def _kind(code: int) -> Kind:
    return "temporary" if 400 <= code < 500 else "permanent"


def sendable(address: str) -> bool:
    """Does smtplib send `address` as written? It reads an address through `email.utils.parseaddr`
    and sends what that finds (`x@[192.0.2.7` goes out as `x@[192.0.2.7]`, `a@b, c@d` as `a@b`, a
    line break and what follows vanish) rather than refuse it: only one it keeps whole, free of
    control characters, is sent. The null sender is one."""
    return address == "" or (address.isprintable() and smtplib.quoteaddr(address) == f"<{address}>")


def wire_data(raw: bytes) -> bytes:
    """The DATA payload: CRLF line ends, leading dots doubled (RFC 5321 4.5.2), a final CRLF."""
    data = _LINE_END.sub(b"\r\n", raw)
    data = _LEADING_DOT.sub(b"..", data)
    return data if data.endswith(b"\r\n") else data + b"\r\n"


class SmtpSession:
    def __init__(self, client: smtplib.SMTP, server: str) -> None:
        self._client = client
        self.server = server
        self._dirty = False
        self._in_data = False  # the message is on the wire without its final dot
        if client.sock is not None:
            # The final dot goes out in a write of its own, after a commit: without NODELAY, Nagle holds
            # it back until the payload is acknowledged (a delayed ACK: ~40 ms of widened window per mail).
            client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def transact(
        self, envelope_from: str, recipients: Sequence[str], raw: bytes, before_final_dot: Callable[[], None]
    ) -> Delivery:
        """MAIL, RCPT, DATA for one mail. Connection errors before the final dot raise OSError/SMTPException."""
        client = self._client
        if self._dirty:
            client.rset()
            self._dirty = False
        if not recipients:
            return Delivery("permanent", None, "refused before sending: the mail has no recipient", "local")
        if bad := next((a for a in [envelope_from, *recipients] if not sendable(a)), None):
            return Delivery("permanent", None, f"refused before sending: {bad[:80]!r} is not an address SMTP "
                            "carries as written", "local")
        options: list[str] = []
        if not all(s.isascii() for s in [envelope_from, *recipients]):
            if not client.has_extn("smtputf8"):
                return Delivery("permanent", None, "an address is not ASCII and the server lacks SMTPUTF8", "MAIL")
            options.append("SMTPUTF8")
        if not raw.isascii() and client.has_extn("8bitmime"):
            options.append("BODY=8BITMIME")
        self._dirty = True
        code, reply = client.mail(envelope_from, options)
        if code != 250:
            return Delivery(_kind(code), code, _text(reply), "MAIL")
        refused: dict[str, str] = {}
        accepted = []
        for rcpt in recipients:
            code, reply = client.rcpt(rcpt)
            if code in (250, 251):
                accepted.append(rcpt)
            else:
                refused[rcpt] = f"{code} {_text(reply)}"
        if not accepted:
            temporary = any(r.startswith("4") for r in refused.values())
            codes = sorted({int(r[:3]) for r in refused.values()})
            return Delivery("temporary" if temporary else "permanent", codes[0], "; ".join(refused.values()),
                            "RCPT", refused=refused)
        code, reply = client.docmd("DATA")
        if code != 354:
            return Delivery(_kind(code), code, _text(reply), "DATA", refused=refused)
        payload = wire_data(raw)
        self._in_data = True
        client.send(payload)  # everything but the terminating dot: the server cannot accept it yet
        before_final_dot()
        self._in_data = False
        try:
            client.send(b".\r\n")
            code, reply = client.getreply()
        except (OSError, smtplib.SMTPException) as exc:
            return Delivery("in-doubt", None, f"{type(exc).__name__}: {exc}", "end of DATA", refused=refused)
        if code == -1:
            return Delivery("in-doubt", None, _text(reply), "end of DATA", refused=refused)
        self._dirty = False
        if code != 250:
            return Delivery(_kind(code), code, _text(reply), "end of DATA", refused=refused)
        text = _text(reply)
        match = _QUEUE_ID.search(text)
        return Delivery("accepted", code, text, "end of DATA", match.group(1) if match else None, refused)

    def close(self) -> None:
        """QUIT, or just drop the connection when a transaction stopped before its final dot: the
        server would read a QUIT as more of the message, and it discards a message never ended."""
        if self._in_data:
            self._client.close()
            return
        try:
            self._client.quit()
        except (OSError, smtplib.SMTPException):
            self._client.close()


class SmtpTransport:
    """Sessions to the configured server."""

    def __init__(self, settings: SmtpSettings) -> None:
        if not settings.host:
            raise SmtpUnavailable("no SMTP server configured: set smtp.host (TRIAGE_SMTP_HOST)")
        self.settings = settings

    def open(self) -> SmtpSession:
        s = self.settings
        server = f"{s.host}:{s.effective_port}"
        helo = s.helo_name or None
        client: smtplib.SMTP
        try:
            if s.security == "tls":
                client = smtplib.SMTP_SSL(s.host, s.effective_port, local_hostname=helo, timeout=s.timeout_seconds,
                                          context=ssl_context(s))
            else:
                client = smtplib.SMTP(s.host, s.effective_port, local_hostname=helo, timeout=s.timeout_seconds)
        except (OSError, smtplib.SMTPException) as exc:
            raise SmtpUnavailable(f"cannot connect to {server}: {type(exc).__name__}: {exc}") from None
        try:
            client.ehlo()
            if s.security == "starttls":
                if not client.has_extn("starttls"):
                    raise SmtpSecurityError(
                        f"{server} does not offer STARTTLS; refusing to send without TLS "
                        "(use smtp.security = tls if it serves implicit TLS)"
                    )
                client.starttls(context=ssl_context(s))
                client.ehlo()
            if s.user:
                if not client.has_extn("auth"):
                    raise SmtpSecurityError(f"{server} offers no AUTH, but smtp.user is set")
                try:
                    client.login(s.user, _password(s))
                except smtplib.SMTPAuthenticationError as exc:
                    raise SmtpCredentialError(
                        f"{server} refused the login of {s.user!r}: {exc.smtp_code} {_text(exc.smtp_error)}"
                    ) from None
        except SmtpUnavailable:
            client.close()
            raise
        except (OSError, smtplib.SMTPException) as exc:
            client.close()
            raise SmtpUnavailable(f"{server}: {type(exc).__name__}: {exc}") from None
        return SmtpSession(client, server)


__all__ = [
    "Delivery", "Session", "SmtpCredentialError", "SmtpError", "SmtpSecurityError", "SmtpSession", "SmtpTransport",
    "SmtpUnavailable", "Transport", "sendable", "ssl_context", "wire_data",
]
