"""/login and /logout. The login form is protected by a double-submit token (there is no
session yet); a successful login sets a new session cookie (HttpOnly, SameSite=Lax, Secure
over https) and goes back to the page asked for, only ever a path on this site."""

from __future__ import annotations

import secrets

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from triage.desk.accounts import log_in, log_out
from triage.desk.errors import DeskError
from triage.web.app import SESSION_COOKIE, desk, login_of, page, render
from triage.web.security import LOGIN_CSRF_COOKIE, tokens_match


def _local(target: str | None) -> str:
    """Only a path on this site: never //host or a scheme, so /login cannot redirect elsewhere."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/queue"


def _secure(request: Request) -> bool:
    configured = desk(request).settings.web.secure_cookies
    return configured if configured is not None else request.url.scheme == "https"


def _form(request: Request, *, error: str = "", status: int = 200) -> Response:
    token = secrets.token_urlsafe(32)
    response = render(request, "login.html", {"login_csrf": token, "error": error,
                                              "next": _local(request.query_params.get("next"))}, status=status)
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=_secure(request),
                        path="/login")
    return response


async def login_page(request: Request) -> Response:
    if request.method == "GET":
        return _form(request)
    data = await request.form()
    if not tokens_match(request.cookies.get(LOGIN_CSRF_COOKIE), str(data.get("csrf_token", ""))):
        return PlainTextResponse("missing or wrong CSRF token: reload the login page", status_code=403)
    client = request.client.host if request.client else "unknown"
    try:
        login = await run_in_threadpool(log_in, desk(request), str(data.get("username", "")),
                                        str(data.get("password", "")), client=client)
    except DeskError as exc:
        return _form(request, error=str(exc), status=exc.status)
    response = RedirectResponse(_local(str(data.get("next", ""))), status_code=303)
    response.set_cookie(SESSION_COOKIE, login.token, httponly=True, samesite="lax", secure=_secure(request),
                        max_age=int(desk(request).settings.web.session_hours * 3600), path="/")
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@page
def logout(request: Request) -> Response:
    log_out(desk(request), login_of(request).token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


routes = [
    Route("/login", login_page, methods=["GET", "POST"]),
    Route("/logout", logout, methods=["POST"]),
]
