"""The name a worker signs its leases, outbox claims and log lines with."""

from __future__ import annotations

import os
import secrets
import socket


def worker_identity() -> str:
    """host:pid:token, unique to this process incarnation (a restarted container's pid 1 gets a new token)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


__all__ = ["worker_identity"]
