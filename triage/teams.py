"""The staff teams are configuration: `[teams.<key>]` tables with name, address, description, an
optional signature and the members' own addresses (`members`: they may answer the desk's mail),
and the weekly digest's opt-in (`digest = true`, optionally `digest_weekday` and `digest_hour`).
One reader for routing (which needs the file) and the outbox (which can do without it)."""

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
    digest: bool = False  # the weekly digest mail (triage.digest), opt-in
    digest_weekday: int = 1  # ISO weekday it is sent on (1 = Monday), in the team's reminder time zone
    digest_hour: int = 8  # local hour it is sent from

    @property
    def addresses(self) -> frozenset[str]:
        """Every address that speaks for the team (lower-case): its own and its members'."""
        return frozenset(a.lower() for a in (self.address, *self.members))


_DIGEST_RANGES = {"digest_weekday": (1, 7, 1), "digest_hour": (0, 23, 8)}  # (lowest, highest, default)


def _digest_keys(path: Path, key: str, table: dict[str, object]) -> tuple[bool, int, int]:
    """(digest, digest_weekday, digest_hour) of one team's table; a wrong value is an error in
    either mode, since a team that asked for the digest would silently not get it."""
    digest = table.get("digest", False)
    if not isinstance(digest, bool):
        raise TeamsFileError(f"teams file {str(path)!r}: [teams.{key}] digest must be true or false")
    values = []
    for name, (low, high, default) in _DIGEST_RANGES.items():
        value = table.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise TeamsFileError(f"teams file {str(path)!r}: [teams.{key}] {name} must be a whole number "
                                 f"from {low} to {high}")
        values.append(value)
    return digest, values[0], values[1]


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
            *_digest_keys(path, key, table),
        )
    if required and not teams:
        raise TeamsFileError(f"teams file {str(path)!r} defines no [teams.<key>] table")
    return teams
