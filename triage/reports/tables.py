"""Every report table as rows with a header, and as CSV.

The same tables feed the workbench's page, `triage stats --csv DIR` and the CSV downloads. A text
cell that a spreadsheet would read as a formula (it starts with =, +, -, @, a tab or a carriage
return; a contact's language or a team's key could) is written with a leading apostrophe.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

from triage.reports.queries import Report

TITLES = {
    "volume_by_week": "New tickets per week",
    "volume_by_team": "New tickets per week and team",
    "volume_by_language": "New tickets per week and language",
    "mail_by_kind": "Inbound mail per week and kind",
    "first_response": "First-response time per month and team (hours)",
    "overdue": "Overdue tickets per team (first response past due)",
    "waiting_on_volunteer": "Tickets waiting on the volunteer, per team",
    "routing": "Routing agreement and coverage per week",
    "corrections": "Suggestions the liaison corrected",
}


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    title: str
    header: list[str]
    rows: list[list[Any]]


def tables(report: Report) -> dict[str, Table]:
    """The report's tables by name, in the order the page shows them."""
    data: dict[str, tuple[list[str], list[list[Any]]]] = {
        "volume_by_week": (["week", "tickets"], [[w, n] for w, _, n in report.volume.get("total", [])]),
        "volume_by_team": (["week", "team", "tickets"], [list(r) for r in report.volume.get("team", [])]),
        "volume_by_language": (["week", "language", "tickets"],
                               [list(r) for r in report.volume.get("language", [])]),
        "mail_by_kind": (["week", "kind", "mails"], [list(r) for r in report.mail_by_kind]),
        "first_response": (["month", "team", "answered", "unanswered", "median_hours", "p90_hours"],
                           [[f.month, f.team, f.answered, f.unanswered, f.median_hours, f.p90_hours]
                            for f in report.first_response]),
        "overdue": (["team", "tickets"], [[team, n] for team, n in sorted(report.overdue.items())]),
        "waiting_on_volunteer": (["team", "tickets", "oldest_since"],
                                 [[w.team, w.tickets, w.oldest_since.isoformat() if w.oldest_since else None]
                                  for w in report.waiting]),
        "routing": (["week", "decisions", "agreed", "agreement", "suggestions", "named", "coverage"],
                    [[r.week, r.decisions, r.agreed, r.agreement, r.suggestions, r.named, r.coverage]
                     for r in report.routing]),
        "corrections": (["suggested", "chosen", "decisions"], [list(r) for r in report.corrections]),
    }
    return {name: Table(name, TITLES[name], header, rows) for name, (header, rows) in data.items()}


_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA):
        return "'" + value
    return value


def to_csv(table: Table) -> str:
    """The table as CSV (RFC 4180 quoting, CRLF line ends, a header row)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(table.header)
    writer.writerows([_cell(value) for value in row] for row in table.rows)
    return out.getvalue()


__all__ = ["TITLES", "Table", "tables", "to_csv"]
