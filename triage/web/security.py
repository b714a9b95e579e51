"""What every response carries and every state-changing request must show.

The pages send a strict Content-Security-Policy (scripts only from our own origin, no inline
script, no framing by anyone), and a request that changes state (any method but GET and HEAD)
must carry the session's CSRF token, as a form field `csrf_token` or the `X-CSRF-Token` header
that htmx sends. Before login, the login form's token is a double-submit cookie.
"""

from __future__ import annotations

import hmac

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; frame-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; "
    "object-src 'none'"
)
# A mail's own HTML, shown in a sandboxed iframe of our page: no script, no remote anything.
MAIL_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src 'none'; "
    "frame-ancestors 'self'; form-action 'none'; base-uri 'none'; sandbox"
)
MAIL_CSP_REMOTE_IMAGES = MAIL_CSP.replace("img-src data:", "img-src data: https: http:")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
LOGIN_CSRF_COOKIE = "triage_login_csrf"


def tokens_match(expected: str | None, given: str | None) -> bool:
    return bool(expected) and bool(given) and hmac.compare_digest(str(expected), str(given))


class SecurityHeaders:
    """Adds the security headers to every response; a route may set its own CSP first (the mail frame)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", PAGE_CSP)
                headers.setdefault("X-Frame-Options", "DENY" if "frame-ancestors 'none'"
                                   in headers["Content-Security-Policy"] else "SAMEORIGIN")
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "no-referrer"
                headers["Cross-Origin-Opener-Policy"] = "same-origin"
                headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)


__all__ = ["CSRF_FIELD", "CSRF_HEADER", "LOGIN_CSRF_COOKIE", "MAIL_CSP", "MAIL_CSP_REMOTE_IMAGES", "PAGE_CSP",
           "SAFE_METHODS", "SecurityHeaders", "tokens_match"]
