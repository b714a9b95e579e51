"""What triage ships inside its package, and how a configured path finds it.

The mail templates, the teams file, the seed data for the first routing model and the example
configuration are package data (in a checkout, `triage/templates` and `triage/data` are links to
the top-level `templates/` and `data/` folders, which stay the ones to edit). A relative path in
the configuration is looked up in the working directory first, so an operator's own file wins,
then among these files, so the defaults (`templates`, `data/teams.toml`, `data/seed/seed.csv`)
work from any directory once triage is installed. An absolute path is used as given.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path, PurePosixPath


def bundled(relative: str) -> Path | None:
    """The shipped file or folder at `relative` (e.g. "data/teams.toml"), or None."""
    parts = PurePosixPath(relative).parts
    if not parts or ".." in parts or PurePosixPath(relative).is_absolute():
        return None
    found = Path(str(files("triage").joinpath(*parts)))
    return found if found.exists() else None


def resolve(configured: str | Path) -> Path:
    """`configured` if it exists (or is absolute), else the shipped file of that name, else
    `configured` unchanged, so that the caller's error names what the operator wrote."""
    path = Path(configured).expanduser()
    if path.is_absolute() or path.exists():
        return path
    return bundled(path.as_posix()) or path


__all__ = ["bundled", "resolve"]
