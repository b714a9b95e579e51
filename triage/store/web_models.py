"""The workbench's tables: user accounts, their login sessions, failed logins (for throttling)
and presence (who is viewing or drafting a ticket).

Sessions live in the database, not in a signed cookie, so that any number of web processes share
them, a login rotates them, and disabling a user ends every session at once. The cookie carries a
random token; the table keeps only its sha256, so a copy of the database opens no session.
"""

from __future__ import annotations

import enum

from sqlalchemy import Enum, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from triage.store.db import Base, intpk, utc, utcnow


class Role(str, enum.Enum):
    liaison = "liaison"  # sees and does everything
    staff = "staff"  # sees only their team's tickets; replies, notes, resolves
    viewer = "viewer"  # reads


class User(Base):
    __tablename__ = "users"

    id: Mapped[intpk]
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[Role] = mapped_column(Enum(Role, name="user_role", native_enum=False, length=16,
                                            validate_strings=True))
    team: Mapped[str | None] = mapped_column(String(64))
    password_hash: Mapped[str] = mapped_column(String(255))
    disabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[utc] = mapped_column(default=utcnow)


class WebSession(Base):
    __tablename__ = "web_sessions"

    id: Mapped[intpk]
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[utc] = mapped_column(default=utcnow)
    expires_at: Mapped[utc]
    last_seen_at: Mapped[utc] = mapped_column(default=utcnow)


class LoginFailure(Base):
    """One failed login; counted per account and per client address over a window."""

    __tablename__ = "login_failures"

    id: Mapped[intpk]
    username: Mapped[str] = mapped_column(String(64))
    client: Mapped[str] = mapped_column(String(64))
    at: Mapped[utc] = mapped_column(default=utcnow)


class Presence(Base):
    """Who has a ticket open, and whether they are drafting a reply; a row older than a minute
    or so is stale (the page refreshes it while it is open)."""

    __tablename__ = "presence"

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    drafting: Mapped[bool] = mapped_column(default=False)
    seen_at: Mapped[utc] = mapped_column(default=utcnow)


Index("ix_login_failures_username_at", LoginFailure.username, LoginFailure.at)
Index("ix_login_failures_client_at", LoginFailure.client, LoginFailure.at)

__all__ = ["LoginFailure", "Presence", "Role", "User", "WebSession"]
