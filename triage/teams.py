"""The staff teams are configuration: `[teams.<key>]` tables with name, address, description, an
optional signature and the members' own addresses (`members`: they may answer the desk's mail). One reader for routing (which needs the file) and the outbox (which can do
without it)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from triage.config import ConfigError


class TeamsFileError(ConfigError):
    """The teams file is missing or malformed; the message names the file and the table (a
    configuration error: the CLI and the worker report it as one)."""


@dataclass(frozen=True, slots=True)
class Team:
    key: str
    name: str
    address: str
    description: str = ""
    signature: str | None = None
    members: tuple[str, ...] = ()  # the staff's own addresses, beside the team's

    @property
    def addresses(self) -> frozenset[str]:
        """Every address that speaks for the team (lower-case): its own and its members'."""
        return frozenset(a.lower() for a in (self.address, *self.members))


def load_teams(path: str | Path, *, required: bool = True) -> dict[str, Team]:
    """Read the teams file. With `required=False` a missing file means no teams, and a table
    without an address is left out instead of being an error."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if not required:
            return {}
        raise TeamsFileError(f"teams file {str(path)!r} does not exist; set routing.teams_file") from None
    except tomllib.TOMLDecodeError as exc:
        raise TeamsFileError(f"teams file {str(path)!r} is not valid TOML: {exc}") from None
    teams = {}
    for key, table in data.get("teams", {}).items():
        if not isinstance(table, dict) or not table.get("address"):
            if required:
                raise TeamsFileError(f"teams file {str(path)!r}: [teams.{key}] needs an address")
            continue
        members = table.get("members", [])
        if not isinstance(members, list) or not all(isinstance(m, str) and "@" in m for m in members):
            if required:
                raise TeamsFileError(f"teams file {str(path)!r}: [teams.{key}] members must be a list of addresses")
            members = []
        teams[key] = Team(
            key, str(table.get("name") or key), str(table["address"]), str(table.get("description", "")),
            str(table["signature"]) if table.get("signature") else None, tuple(members),
        )
    if required and not teams:
        raise TeamsFileError(f"teams file {str(path)!r} defines no [teams.<key>] table")
    return teams
