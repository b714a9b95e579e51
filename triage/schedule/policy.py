"""Per-team reminder policies, read from the [reminders] settings with [reminders.teams.<key>] overrides.

The ladder: level 1 reminds the owning team `first_response_hours` business hours after the
ticket arrived without an answer; level 2 goes to the team lead and level 3 to the escalation
address (the liaison, or the head of reader relations), each `reminder_hours` later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time
from typing import Any

from triage.config import ReminderSettings
from triage.schedule.calendar import BusinessCalendar

LEVELS = (1, 2, 3)
LEVEL_NAMES = {1: "team", 2: "team-lead", 3: "liaison"}


@dataclass(frozen=True)
class Policy:
    calendar: BusinessCalendar
    first_response_hours: float
    reminder_hours: float
    lead_address: str
    escalation_address: str

    def level_hours(self, level: int) -> float:
        """Business hours from the ticket's arrival until `level` is due."""
        return self.first_response_hours + (level - 1) * self.reminder_hours


def _hours(value: str) -> tuple[time, time]:
    start, end = value.split("-")
    return time.fromisoformat(start.strip()), time.fromisoformat(end.strip())


class Policies:
    """The policy of each team (`for_team`), built once from the settings."""

    def __init__(self, settings: ReminderSettings) -> None:
        self.default = self._build(settings, None)
        self._teams = {key: self._build(settings, key) for key in (settings.teams or {})}

    @staticmethod
    def _build(settings: ReminderSettings, team: str | None) -> Policy:
        override = (settings.teams or {}).get(team) if team is not None else None

        def pick(name: str) -> Any:
            value = getattr(override, name) if override is not None else None
            return getattr(settings, name) if value is None else value

        start, end = _hours(str(pick("business_hours")))
        calendar = BusinessCalendar(
            tz=str(pick("timezone")), days=frozenset(pick("business_days")),
            start=start, end=end, holidays=frozenset(pick("holidays")),
            quiet=tuple(_hours(q) for q in pick("quiet_hours")),
        )
        return Policy(calendar, float(pick("first_response_hours")),
                      float(pick("reminder_hours")), str(pick("lead_address") or ""),
                      str(pick("escalation_address") or ""))

    def for_team(self, team: str | None) -> Policy:
        return self._teams.get(team, self.default) if team is not None else self.default


__all__ = ["LEVELS", "LEVEL_NAMES", "Policies", "Policy"]
