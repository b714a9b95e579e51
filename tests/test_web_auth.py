"""Accounts, login, sessions, CSRF and the security headers of the workbench (no browser needed:
the real ASGI app through Starlette's test client, on SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from tests.workbench import PASSWORD, Account
from triage.bootstrap import App
from triage.desk.accounts import add_user, disable_user, log_in, session_for
from triage.desk.errors import Invalid, Throttled
from triage.store.web_models import User, WebSession
from triage.web.app import SESSION_COOKIE, create_app


@pytest.fixture
def client(app: App) -> Iterator[TestClient]:
    with TestClient(create_app(app), base_url="http://127.0.0.1") as test_client:
        yield test_client


def _login(client: TestClient, name: str, password: str = PASSWORD, next_path: str = "/queue"):  # type: ignore[no-untyped-def]
    form = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token, form.text
    return client.post("/login", data={"username": name, "password": password, "csrf_token": token[1],
                                       "next": next_path}, follow_redirects=False)


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found
    return found[1]


def test_a_page_needs_a_login(client: TestClient) -> None:
    response = client.get("/queue", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    assert client.get("/queue", headers={"HX-Request": "true"}).status_code == 401


def test_login_sets_a_hardened_cookie_and_rotates_the_session(client: TestClient,
                                                            make_account: Callable[..., Account], app: App) -> None:
    account = make_account()
    first = _login(client, account.name)
    assert first.status_code == 303 and first.headers["location"] == "/queue"
    cookie = first.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
    assert "Secure" not in cookie  # plain http on loopback; over https it is Secure (next test)
    token = client.cookies[SESSION_COOKIE]
    second = _login(client, account.name)
    assert second.status_code == 303 and client.cookies[SESSION_COOKIE] != token  # a new session per login
    with app.reads() as session:
        stored = [row.token_hash for row in session.query(WebSession)]
    assert token not in stored and all(len(h) == 64 for h in stored)  # only digests are kept


def test_cookie_is_secure_over_https(app: App, make_account: Callable[..., Account]) -> None:
    account = make_account()
    with TestClient(create_app(app), base_url="https://desk.example") as client:
        response = _login(client, account.name)
    assert "Secure" in response.headers["set-cookie"]


def test_wrong_password_and_throttling(app: App, make_account: Callable[..., Account]) -> None:
    account = make_account()
    for _ in range(app.settings.web.login_failures_per_account):
        with pytest.raises(Invalid):
            log_in(app, account.name, "wrong password!", client="10.0.0.1")
    with pytest.raises(Throttled):  # even the right password, until the window passes
        log_in(app, account.name, PASSWORD, client="10.0.0.2")
    with pytest.raises(Invalid):  # an unknown name fails the same way as a wrong password
        log_in(app, "nobody", PASSWORD, client="10.0.0.3")


def test_throttled_per_client_address(app: App, make_account: Callable[..., Account]) -> None:
    account = make_account()
    for i in range(app.settings.web.login_failures_per_client):
        with pytest.raises(Invalid):
            log_in(app, f"guess{i}", "wrong password!", client="10.9.9.9")
    with pytest.raises(Throttled):
        log_in(app, account.name, PASSWORD, client="10.9.9.9")
    assert log_in(app, account.name, PASSWORD, client="10.1.1.1").actor.name == account.name


def test_a_state_change_without_the_csrf_token_is_refused(client: TestClient,
                                                         make_account: Callable[..., Account]) -> None:
    account = make_account()
    _login(client, account.name)
    assert client.post("/logout", follow_redirects=False).status_code == 403
    assert client.post("/logout", data={"csrf_token": "forged"}, follow_redirects=False).status_code == 403
    token = _csrf(client.get("/queue").text)
    assert client.post("/logout", data={"csrf_token": token}, follow_redirects=False).status_code == 303
    assert client.get("/queue", follow_redirects=False).status_code == 303  # logged out for real


def test_login_form_has_its_own_csrf_token(client: TestClient, make_account: Callable[..., Account]) -> None:
    account = make_account()
    response = client.post("/login", data={"username": account.name, "password": PASSWORD, "csrf_token": "x"})
    assert response.status_code == 403 and SESSION_COOKIE not in client.cookies


def test_login_never_redirects_off_site(client: TestClient, make_account: Callable[..., Account]) -> None:
    account = make_account()
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        response = _login(client, account.name, next_path=target)
        assert response.headers["location"] == "/queue", target


def test_security_headers_on_every_page(client: TestClient, make_account: Callable[..., Account]) -> None:
    for response in (client.get("/login"), client.get("/static/workbench.js")):
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp and "frame-ancestors 'none'" in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"


def test_a_disabled_account_is_logged_out_everywhere(client: TestClient, app: App,
                                                    make_account: Callable[..., Account]) -> None:
    account = make_account()
    _login(client, account.name)
    assert client.get("/queue").status_code == 200
    disable_user(app, account.name)
    assert client.get("/queue", follow_redirects=False).status_code == 303
    assert _login(client, account.name).status_code == 400


def test_accounts_are_checked(app: App) -> None:
    with pytest.raises(Invalid, match="team"):
        add_user(app, "sam", "staff", PASSWORD)
    with pytest.raises(Invalid, match="shorter"):
        add_user(app, "sam", "liaison", "short")
    with pytest.raises(Invalid, match="user name"):
        add_user(app, "<script>", "liaison", PASSWORD)
    add_user(app, "sam", "staff", PASSWORD, team="events")
    with app.reads() as session:
        user = session.query(User).one()
    assert user.password_hash.startswith("$argon2") and PASSWORD not in user.password_hash


def test_a_session_slides_once_a_minute_and_ends_when_expired(app: App) -> None:
    """Within a minute of the last write a lookup changes nothing; after it the expiry slides; an
    expired session is deleted and a disabled user's session is refused."""
    add_user(app, "ada", "liaison", PASSWORD)
    opened = log_in(app, "ada", PASSWORD, client="test")
    start = opened.expires_at - timedelta(hours=app.settings.web.session_hours)

    def stored() -> tuple[object, object]:
        with app.reads() as session:
            row = session.execute(select(WebSession.last_seen_at, WebSession.expires_at)).one()
            return row[0], row[1]

    before = stored()
    login = session_for(app, opened.token, now=start + timedelta(seconds=30))
    assert login is not None and login.actor.name == "ada" and login.csrf_token == opened.csrf_token
    assert stored() == before
    later = start + timedelta(minutes=5)
    assert session_for(app, opened.token, now=later) is not None
    assert stored() == (later, later + timedelta(hours=app.settings.web.session_hours))
    assert session_for(app, "not-a-token", now=later) is None
    assert session_for(app, opened.token, now=later + timedelta(hours=app.settings.web.session_hours + 1)) is None
    with app.reads() as session:
        assert session.scalars(select(WebSession)).all() == []
    again = log_in(app, "ada", PASSWORD, client="test")
    with app.sessions.begin() as session:
        session.execute(User.__table__.update().values(disabled=True))
    assert session_for(app, again.token) is None


def test_numbers_in_urls_and_forms_are_checked_not_a_server_error(client: TestClient,
                                                                  make_account: Callable[..., Account]) -> None:
    """A row id too large for a database integer matches no route (404); a page number or form id
    that only looks like digits ('²') is a 400 naming it, never a 500."""
    _login(client, make_account().name)
    for path in ("/attachments/99999999999999999999", "/messages/99999999999999999999/html",
                 "/quarantine/99999999999999999999/raw"):
        assert client.get(path).status_code == 404, path
    assert client.get("/queue?page=%C2%B2").status_code == 400
    assert client.get("/queue?page=99999999999999999999").status_code == 400
    token = _csrf(client.get("/queue").text)
    assert client.post("/outbox", data={"csrf_token": token, "action": "retry", "id": "²"}).status_code == 400
