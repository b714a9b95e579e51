"""Who may look at and act on the desk's mail machinery (the outbox, the quarantine).

Both hold mail of every team, so staff do not see them at all; a viewer reads them; only the
liaison decides (retries, confirms) or downloads a raw mail.
"""

from __future__ import annotations

from triage.desk.actors import Actor
from triage.desk.errors import Forbidden
from triage.store.web_models import Role


def require_mail_reader(actor: Actor, what: str) -> None:
    if actor.role is Role.staff:
        raise Forbidden(f"{what} is the liaison's, not a team's", "ask the liaison about a mail of your team")


def require_mail_operator(actor: Actor, what: str) -> None:
    if actor.role is not Role.liaison:
        raise Forbidden(f"only the liaison acts on {what}", "ask the liaison to do it")


__all__ = ["require_mail_operator", "require_mail_reader"]
