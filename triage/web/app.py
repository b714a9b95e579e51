"""The workbench: a Starlette application over the service layer.

Page handlers are plain functions, run in Starlette's thread pool (the service layer is
synchronous SQLAlchemy), wrapped by `page`: it finds the logged-in user, checks the CSRF token
of every state-changing request, reads the form before the handler runs, and turns a
`DeskError` into a page with the error's message and hint and its status. Handlers never see
an anonymous request or a request without a valid token.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
import structlog
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from triage.bootstrap import App
from triage.desk.accounts import Login, session_for
from triage.desk.errors import DeskError, Invalid
from triage.failures import describe
from triage.outbox.render import default_templates_dir
from triage.web.security import CSRF_FIELD, CSRF_HEADER, SAFE_METHODS, SecurityHeaders, tokens_match

log = structlog.get_logger(__name__)

SESSION_COOKIE = "triage_session"
STATIC = Path(__file__).parent / "static"
Handler = Callable[[Request], Response]


# A row id or page number from a request: ASCII digits only ('²' is a digit to str.isdigit, not to
# int) and at most 12 of them, so no value overflows a database integer.
_NUMBER = re.compile(r"[0-9]{1,12}")


def number(value: str, what: str, hint: str) -> int:
    """`value` as a non-negative number, or Invalid (400) naming `what`."""
    if not _NUMBER.fullmatch(value):
        raise Invalid(f"{what} is not a number: {value[:20]!r}", hint)
    return int(value)


class RowId(Convertor[int]):
    """`{name:id}` in a route: a row id as `number` reads it; anything else matches no route (404)."""

    regex = _NUMBER.pattern

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        return str(value)


register_url_convertor("id", RowId())


def page_templates() -> jinja2.Environment:
    """The page templates (shipped with the package): autoescaped everywhere, undefined is an error."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(default_templates_dir() / "pages"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def desk(request: Request) -> App:
    app: App = request.app.state.desk
    return app


def login_of(request: Request) -> Login:
    login: Login = request.state.login
    return login


def form(request: Request) -> FormData:
    data: FormData = request.state.form
    return data


def render(request: Request, template: str, context: dict[str, Any] | None = None, *, status: int = 200,
           headers: dict[str, str] | None = None) -> HTMLResponse:
    """A page (or, for htmx, a fragment) with the user, the CSRF token and the request in its context."""
    env: jinja2.Environment = request.app.state.templates
    login: Login | None = getattr(request.state, "login", None)
    html = env.get_template(template).render(
        request=request, login=login, actor=login.actor if login else None,
        csrf_token=login.csrf_token if login else "", **(context or {}),
    )
    return HTMLResponse(html, status_code=status, headers=headers)


def error_page(request: Request, error: DeskError) -> HTMLResponse:
    return render(request, "error.html", {"error": error}, status=error.status)


def page(handler: Handler) -> Callable[[Request], Any]:
    """Require a login (pages redirect to /login, htmx and other requests get 401), check CSRF on
    state-changing requests, and run the handler in the thread pool."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        app = desk(request)
        token = request.cookies.get(SESSION_COOKIE, "")
        login = await run_in_threadpool(session_for, app, token) if token else None
        if login is None:
            if request.method == "GET" and "hx-request" not in request.headers:
                return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
            return PlainTextResponse("log in first", status_code=401)
        request.state.login = login
        request.state.form = FormData()
        if request.method not in SAFE_METHODS:
            request.state.form = await request.form()
            given = request.headers.get(CSRF_HEADER) or request.state.form.get(CSRF_FIELD)
            if not tokens_match(login.csrf_token, given if isinstance(given, str) else None):
                log.warning("web.csrf_refused", path=request.url.path, user=login.actor.name)
                return PlainTextResponse("missing or wrong CSRF token: reload the page and try again",
                                         status_code=403)
        try:
            return await run_in_threadpool(handler, request)
        except DeskError as exc:
            return error_page(request, exc)

    return endpoint


RETRY_SECONDS = 5


async def database_unavailable(request: Request, exc: Exception) -> Response:
    """The database is down, restarting or locked: 503 and a line in the log, not a traceback. The
    process stays up; the engine's pre-ping replaces dead connections on the next request."""
    log.warning("web.database_unavailable", path=request.url.path, error=describe(exc))
    return PlainTextResponse("the database is unreachable or busy: try again in a moment", status_code=503,
                             headers={"Retry-After": str(RETRY_SECONDS)})


def _ready(app: App) -> bool:
    with app.engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    return True


async def readyz(request: Request) -> Response:
    """Ready when the database answers (for a proxy's or orchestrator's health check); /healthz
    only says the process serves."""
    await run_in_threadpool(_ready, desk(request))
    return PlainTextResponse("ready")


def create_app(app: App, *, extra_routes: list[BaseRoute] | None = None) -> Starlette:
    """The workbench over an App built by `bootstrap()`; the caller closes the App."""
    from triage.web import actions as action_pages
    from triage.web import contacts as contact_pages
    from triage.web import digests as digest_pages
    from triage.web import login as login_pages
    from triage.web import outbox as outbox_pages
    from triage.web import privacy as privacy_pages
    from triage.web import quarantine as quarantine_pages
    from triage.web import queue as queue_pages
    from triage.web import reports as report_pages
    from triage.web import search as search_pages
    from triage.web import ticket as ticket_pages
    from triage.web import tickets_list

    routes: list[BaseRoute] = [
        Route("/", lambda request: RedirectResponse("/queue", status_code=303)),
        Route("/healthz", lambda request: PlainTextResponse("ok")),
        Route("/readyz", readyz),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
        *login_pages.routes,
        *queue_pages.routes,
        *tickets_list.routes,
        *report_pages.routes,
        *search_pages.routes,
        *outbox_pages.routes, *quarantine_pages.routes,
        *digest_pages.routes,
        *privacy_pages.routes,
        *action_pages.routes,
        *ticket_pages.routes,
        *contact_pages.routes,
        *(extra_routes or []),
    ]
    web = Starlette(routes=routes, exception_handlers={OperationalError: database_unavailable})
    web.state.desk = app
    web.state.templates = page_templates()
    web.add_middleware(SecurityHeaders)
    return web


__all__ = ["SESSION_COOKIE", "create_app", "desk", "error_page", "form", "login_of", "number", "page", "render"]
