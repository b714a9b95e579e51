"""Errors of the routing use cases (kept apart so the CLI can name them without loading a model).

They belong to the service layer's `DeskError` family, so the web and the CLI turn them into a
status and a hint like any other refusal."""

from triage.desk.errors import Conflict, Invalid, NotFound


class RoutingError(Invalid):
    """A routing request the desk cannot carry out; the message says why and what to do."""


class UnknownTicket(RoutingError, NotFound):
    """No ticket with that reference."""


class AlreadyRouted(RoutingError, Conflict):
    """Someone decided first: the ticket is routed already, and the decision is not applied twice."""

    def __init__(self, reference: str, team: str, actor: str | None) -> None:
        by = f" by {actor}" if actor else ""
        super().__init__(f"{reference} was already routed to {team}{by}",
                         "reload the queue: the ticket has left it; its page shows the decision")
        self.reference, self.team, self.actor = reference, team, actor
