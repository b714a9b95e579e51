"""What the outbox needs besides a session: the settings, the template renderer and the teams.

Built once by `triage.bootstrap.bootstrap()` and handed to whatever queues mail (the ingest
pipeline's acknowledgments, the routing desk's hand-off, the liaison's reply, the reminder run).
There is no process-wide copy: code that queues mail is given a `Wiring`, it never looks one up.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from triage.bundled import resolve
from triage.config import MailSettings, Settings
from triage.outbox.render import Renderer, resolve_templates_dir
from triage.teams import Team, load_teams


@dataclass(frozen=True)
class Wiring:
    settings: Settings
    renderer: Renderer
    teams: dict[str, Team]

    def with_mail(self, mail: MailSettings) -> Wiring:
        """The same wiring with a caller's own mail settings (an Ingestor built with its own)."""
        if mail == self.settings.mail:
            return self
        return replace(self, settings=self.settings.model_copy(update={"mail": mail}))


def teams_path(settings: Settings) -> Path:
    """The teams file `routing.teams_file` names (resolved as the CLI resolves it)."""
    return resolve(settings.routing.teams_file or "data/teams.toml")


def teams_stamp(path: Path) -> tuple[int, int] | None:
    """What changes when the teams file is edited (mtime and size); None while it is missing."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def build_wiring(settings: Settings) -> Wiring:
    """The renderer over `outbox.templates_dir` and the teams of `routing.teams_file` (none if it
    is missing). Raises TemplateError (the shipped templates are gone) or TeamsFileError (the teams
    file is not valid TOML): both stop start-up with the reason."""
    renderer = Renderer(resolve_templates_dir(settings.outbox.templates_dir))
    teams = load_teams(teams_path(settings), required=False)
    return Wiring(settings, renderer, teams)


__all__ = ["Wiring", "build_wiring", "teams_path", "teams_stamp"]
