"""Serving the workbench with uvicorn, on a socket the caller may have bound already (tests and
`triage demo` bind port 0 and read back the port)."""

from __future__ import annotations

import ipaddress
import socket
import threading

import uvicorn

from triage.bootstrap import App
from triage.web.app import create_app


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def exposure_warning(host: str) -> str | None:
    """What to say when the workbench listens beyond this machine (plain HTTP, a password's worth
    of cookie): None on a loopback address."""
    if is_loopback(host):
        return None
    return f"serving on {host}: put a TLS proxy in front of it, and set web.secure_cookies = true"


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def make_server(app: App, sock: socket.socket) -> uvicorn.Server:
    """uvicorn over the workbench; X-Forwarded-Proto and -For are believed only from web.forwarded_allow_ips."""
    config = uvicorn.Config(create_app(app), log_level="warning", access_log=False, lifespan="off",
                            proxy_headers=True, forwarded_allow_ips=app.settings.web.forwarded_allow_ips,
                            server_header=False)
    server = uvicorn.Server(config)
    server._triage_socket = sock  # type: ignore[attr-defined]
    return server


def run(server: uvicorn.Server) -> None:
    """Serve until `server.should_exit` is set (by a signal, or by another thread)."""
    server.run(sockets=[server._triage_socket])  # type: ignore[attr-defined]


def start_in_thread(server: uvicorn.Server) -> threading.Thread:
    """Serve from a daemon thread; signals stay with the main thread (uvicorn only installs its
    handlers in the main thread)."""
    thread = threading.Thread(target=run, args=(server,), name="web", daemon=True)
    thread.start()
    return thread


def address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


__all__ = ["address", "bind", "exposure_warning", "is_loopback", "make_server", "run", "start_in_thread"]
