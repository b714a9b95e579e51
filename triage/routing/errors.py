"""Errors of the routing use cases (kept apart so the CLI can name them without loading a model)."""


class RoutingError(Exception):
    """A routing request the desk cannot carry out; the message says why and what to do."""
