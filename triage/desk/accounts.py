"""Workbench accounts and their login sessions.

Passwords are hashed with Argon2 (argon2-cffi's defaults, rehashed when those change). Logins
are throttled per account and per client address, counting failures in the database so that
every web process sees the same count. A login always opens a new session (a token from
`secrets`, only its sha256 stored), so a token planted before login is worth nothing after it.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from triage.desk.actors import Actor
from triage.desk.errors import Conflict, Invalid, NotFound, Throttled
from triage.store.db import utcnow
from triage.store.web_models import LoginFailure, Role, User, WebSession

if TYPE_CHECKING:
    from triage.bootstrap import App

_hasher = PasswordHasher()
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
MIN_PASSWORD = 10
# Verifying against this keeps an unknown name as slow as a wrong password (no user enumeration).
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class Login:
    """An open session: the token goes into the cookie, the CSRF token into every form."""

    token: str
    csrf_token: str
    actor: Actor
    expires_at: datetime


def generate_password() -> str:
    return secrets.token_urlsafe(15)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _actor(user: User) -> Actor:
    return Actor(user.name, user.role, user.team, user.id)


def add_user(app: App, name: str, role: str, password: str, *, team: str | None = None) -> Actor:
    """A new account. Staff need a team; a password must be at least MIN_PASSWORD characters."""
    if not _NAME.fullmatch(name):
        raise Invalid(f"bad user name {name!r}", "use lower-case letters, digits, '.', '_' or '-', at most 64")
    try:
        user_role = Role(role)
    except ValueError:
        raise Invalid(f"unknown role {role!r}", "use liaison, staff or viewer") from None
    if user_role is Role.staff and not team:
        raise Invalid("a staff account needs a team", "add --team KEY (a key of the teams file)")
    if len(password) < MIN_PASSWORD:
        raise Invalid(f"the password is shorter than {MIN_PASSWORD} characters", "choose a longer one")
    with app.sessions.begin() as session:
        if session.scalar(select(User.id).where(User.name == name)) is not None:
            raise Conflict(f"user {name} exists", "choose another name, or disable the old account")
        user = User(name=name, role=user_role, team=team or None, password_hash=_hasher.hash(password))
        session.add(user)
        session.flush()
        return _actor(user)


def list_users(app: App) -> list[dict[str, object]]:
    with app.reads() as session:
        return [
            {"name": u.name, "role": u.role.value, "team": u.team, "disabled": u.disabled,
             "created_at": u.created_at.isoformat()}
            for u in session.scalars(select(User).order_by(User.name))
        ]


def disable_user(app: App, name: str) -> None:
    """The account can no longer log in, and its open sessions end now."""
    with app.sessions.begin() as session:
        user = session.scalar(select(User).where(User.name == name))
        if user is None:
            raise NotFound(f"no user {name}", "`triage user list` shows the accounts")
        user.disabled = True
        session.execute(delete(WebSession).where(WebSession.user_id == user.id))


def set_password(app: App, name: str, password: str) -> None:
    """A new password for account NAME; its open sessions end, so whoever held the old one is out."""
    if len(password) < MIN_PASSWORD:
        raise Invalid(f"the password is shorter than {MIN_PASSWORD} characters", "choose a longer one")
    with app.sessions.begin() as session:
        user = session.scalar(select(User).where(User.name == name))
        if user is None:
            raise NotFound(f"no user {name}", "`triage user list` shows the accounts")
        user.password_hash = _hasher.hash(password)
        session.execute(delete(WebSession).where(WebSession.user_id == user.id))


def log_in(app: App, name: str, password: str, *, client: str, now: datetime | None = None) -> Login:
    """Check the password and open a new session; too many recent failures are refused first."""
    now = now or utcnow()
    web = app.settings.web
    since = now - timedelta(minutes=web.login_window_minutes)
    with app.sessions.begin() as session:
        by_account = session.scalar(select(func.count()).where(LoginFailure.username == name[:64],
                                                                LoginFailure.at >= since)) or 0
        by_client = session.scalar(select(func.count()).where(LoginFailure.client == client[:64],
                                                               LoginFailure.at >= since)) or 0
        if by_account >= web.login_failures_per_account or by_client >= web.login_failures_per_client:
            raise Throttled("too many failed logins", f"wait {web.login_window_minutes:g} minutes and try again")
        user = session.scalar(select(User).where(User.name == name[:64]))
        if not _password_matches(user, password) or user is None or user.disabled:
            session.add(LoginFailure(username=name[:64], client=client[:64], at=now))
            user = None  # the failure commits with the transaction; the error is raised after it
        if user is None:
            login = None
        else:
            login = _open_session(session, user, password, now, web.session_hours)
    if login is None:
        raise Invalid("wrong user name or password", "check both; the account may also be disabled")
    return login


def _open_session(session: Session, user: User, password: str, now: datetime, hours: float) -> Login:
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    expires = now + timedelta(hours=hours)
    session.add(WebSession(token_hash=_digest(token), user_id=user.id, csrf_token=csrf, created_at=now,
                           expires_at=expires, last_seen_at=now))
    session.execute(delete(WebSession).where(WebSession.expires_at < now))
    return Login(token, csrf, _actor(user), expires)


def _password_matches(user: User | None, password: str) -> bool:
    try:
        return _hasher.verify(user.password_hash if user else _DUMMY_HASH, password) and user is not None
    except (VerificationError, InvalidHashError):
        return False


def session_for(app: App, token: str, *, now: datetime | None = None) -> Login | None:
    """The open session for a cookie's token, sliding its expiry; None if unknown, expired or disabled.

    Most requests only read: the expiry slides (a write) at most once a minute, and an expired or
    disabled session is deleted, each in a transaction of its own."""
    if not token:
        return None
    now = now or utcnow()
    digest = _digest(token)
    with app.reads() as session:
        row = session.execute(
            select(WebSession.id, WebSession.csrf_token, WebSession.expires_at, WebSession.last_seen_at, User)
            .join(User, User.id == WebSession.user_id).where(WebSession.token_hash == digest)
        ).one_or_none()
        if row is None:
            return None
        session_id, csrf_token, expires_at, last_seen_at, user = row
        actor, disabled = _actor(user), user.disabled
    if expires_at <= now or disabled:
        with app.sessions.begin() as session:
            session.execute(delete(WebSession).where(WebSession.id == session_id))
        return None
    if (now - last_seen_at).total_seconds() > 60:  # one write a minute, not one per request
        with app.sessions.begin() as session:
            session.execute(update(WebSession).where(WebSession.id == session_id)
                            .values(last_seen_at=now, expires_at=now + timedelta(hours=app.settings.web.session_hours)))
    return Login(token, csrf_token, actor, expires_at)


def log_out(app: App, token: str) -> None:
    with app.sessions.begin() as session:
        session.execute(delete(WebSession).where(WebSession.token_hash == _digest(token)))


__all__ = ["MIN_PASSWORD", "Login", "add_user", "disable_user", "generate_password", "list_users", "log_in",
           "log_out", "session_for", "set_password"]
