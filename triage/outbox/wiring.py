"""The outbox's settings, templates and teams for code that is called without them.

The ingest pipeline calls `acknowledge_new_tickets` and the routing desk calls
`enqueue_handoff` with a session and little else. They find the configuration here:
whatever the process installed (`install(settings)`: the worker, the outbox commands and
tests do), else the configuration read the standard way (`$TRIAGE_CONFIG` or ./triage.toml,
then `TRIAGE_*` variables), read once. Nothing connects or reads at import time.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import structlog

from triage.bundled import resolve
from triage.config import ConfigError, MailSettings, Settings, load_settings
from triage.outbox.render import Renderer, resolve_templates_dir
from triage.teams import Team, load_teams

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Wiring:
    settings: Settings
    renderer: Renderer
    teams: dict[str, Team]


_lock = threading.Lock()
_installed: Settings | None = None
_renderers: dict[Path, Renderer] = {}
_teams: dict[tuple[Path, int], dict[str, Team]] = {}
_fallback: Settings | None = None


def install(settings: Settings) -> None:
    """Use these settings for the outbox in this process."""
    global _installed
    with _lock:
        _installed = settings


def uninstall() -> None:
    global _installed, _fallback
    with _lock:
        _installed = None
        _fallback = None
        _renderers.clear()
        _teams.clear()


def settings_for(mail: MailSettings | None = None) -> Settings:
    """The outbox's settings; `mail` (the caller's own mail settings) wins over the loaded ones."""
    global _fallback
    with _lock:
        settings = _installed
        if settings is None:
            if _fallback is None:
                try:
                    _fallback = load_settings()
                except ConfigError as exc:
                    log.warning("outbox.config_unreadable", error=str(exc))
                    _fallback = Settings()
            settings = _fallback
    if mail is not None and settings.mail != mail:
        settings = settings.model_copy(update={"mail": mail})
    return settings


def current(mail: MailSettings | None = None) -> Wiring:
    """The outbox's wiring; `mail` (the caller's own mail settings) wins over the loaded ones."""
    return wiring_for(settings_for(mail))


def wiring_for(settings: Settings) -> Wiring:
    """Settings with their renderer (one per templates folder, so templates compile once) and teams."""
    folder = resolve_templates_dir(settings.outbox.templates_dir)
    routing = getattr(settings, "routing", None)  # the routing section names the teams file
    teams_file = resolve(getattr(routing, "teams_file", None) or "data/teams.toml")
    try:
        stamp = teams_file.stat().st_mtime_ns
    except OSError:
        stamp = -1
    with _lock:
        renderer = _renderers.get(folder)
        if renderer is None:
            renderer = _renderers[folder] = Renderer(folder)
            renderer.warm()
        teams = _teams.get((teams_file, stamp))
    if teams is None:
        teams = load_teams(teams_file, required=False)
        with _lock:
            _teams[(teams_file, stamp)] = teams
    return Wiring(settings, renderer, teams)


__all__ = ["Wiring", "current", "install", "settings_for", "uninstall", "wiring_for"]
