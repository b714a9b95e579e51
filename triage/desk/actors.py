"""Who is acting, and what their role lets them see and do.

Every use case takes an `Actor`. The CLI acts as the liaison (the operator on the server is
trusted); the web acts as the logged-in user. The rules live here once, not per page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Select

from triage.desk.errors import Forbidden, NotFound
from triage.store.models import Ticket
from triage.store.web_models import Role


@dataclass(frozen=True)
class Actor:
    name: str
    role: Role
    team: str | None = None
    user_id: int | None = None

    @property
    def label(self) -> str:
        """How the ticket's event log names this actor."""
        return f"{self.role.value}:{self.name}"

    def may_see(self, ticket: Ticket) -> bool:
        return self.role is not Role.staff or (self.team is not None and ticket.team == self.team)

    def may_write(self) -> bool:
        return self.role is not Role.viewer

    def may_route(self) -> bool:
        return self.role is Role.liaison


def cli_actor(login: str) -> Actor:
    """The operator at the server's terminal acts as the liaison."""
    return Actor(login, Role.liaison)


Query = TypeVar("Query", bound=Select[Any])


def visible(query: Query, actor: Actor) -> Query:
    """`query` (which selects from tickets) narrowed to the tickets `actor` may see."""
    if actor.role is Role.staff:
        return query.where(Ticket.team == actor.team) if actor.team else query.where(Ticket.id.is_(None))
    return query


def require_visible(ticket: Ticket | None, actor: Actor, ident: str) -> Ticket:
    """The ticket, or NotFound: a ticket of another team is not told apart from a missing one."""
    if ticket is None or not actor.may_see(ticket):
        raise NotFound(f"no ticket {ident}", "check the reference, e.g. T-2026-00042")
    return ticket


def require_writer(actor: Actor) -> None:
    if not actor.may_write():
        raise Forbidden(f"{actor.name} is a viewer and cannot change tickets", "ask the liaison for a staff account")


def require_router(actor: Actor) -> None:
    if not actor.may_route():
        raise Forbidden(f"{actor.name} cannot route tickets", "only the liaison approves or corrects routing")


__all__ = ["Actor", "cli_actor", "require_router", "require_visible", "require_writer", "visible"]
