"""The reports (triage.reports, triage.desk.reports): hand-computed figures on SQLite and
PostgreSQL, the pure maths, the role rules, the charts and CSV, and `triage stats --plot/--csv/--json`."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.report_desk import NOW, add_contact, add_ticket, seed
from tests.test_routing_desk import fixture_model_dir
from triage.bootstrap import App
from triage.cli import cli
from triage.desk.actors import Actor, cli_actor
from triage.desk.errors import Forbidden, Invalid
from triage.desk.reports import filters_for, parse_day, report
from triage.reports import charts, maths
from triage.reports.maths import ResponseFigure, RoutingWeek
from triage.reports.tables import tables, to_csv
from triage.store.web_models import Role

__all__ = ["fixture_model_dir"]

DATA = Path(__file__).resolve().parents[1] / "data"
LIAISON = cli_actor("test")
VIEWER = Actor("vic", Role.viewer)
LEGAL = Actor("lee", Role.staff, "legal")


def test_percentiles_interpolate_between_ranks() -> None:
    """Three reply times of 1, 2 and 10 hours: median 2 h, 90th percentile 2 + 0.8 x 8 = 8.4 h."""
    assert maths.percentile([10, 1, 2], 50) == 2
    assert maths.percentile([1, 2, 10], 90) == pytest.approx(8.4)
    assert maths.percentile([5], 90) == 5
    assert maths.percentile([], 50) is None


def test_weeks_are_iso_weeks_across_new_year() -> None:
    """Days roll up into ISO weeks: 31 Dec 2024 is in 2025-W01, 1 Jan 2027 in 2026-W53."""
    assert maths.iso_week("2024-12-31") == "2025-W01"
    assert maths.iso_week("2027-01-01") == "2026-W53"
    assert maths.by_week([("2026-11-02", "normal", 2), ("2026-11-08", "normal", 1), ("2026-11-09", "bounce", 1)]) \
        == [("2026-W45", "normal", 3), ("2026-W46", "bounce", 1)]


def test_report_figures_on_a_hand_computed_desk(app: App) -> None:
    """Volume per week, team, language and kind; first response (automatic and failed mail do not
    count, unanswered tickets are counted apart); overdue and waiting now; agreement, coverage and
    the corrections, all as worked out in tests/report_desk.py."""
    seed(app)
    r = report(app, LIAISON, filters_for(LIAISON), now=NOW)
    assert r.volume["total"] == [("2026-W45", "*", 4), ("2026-W46", "*", 1), ("2026-W49", "*", 1)]
    assert r.volume["team"] == [("2026-W45", "fundraising", 3), ("2026-W45", "legal", 1),
                                ("2026-W46", "legal", 1), ("2026-W49", "(unrouted)", 1)]
    assert r.volume["language"] == [("2026-W45", "(unknown)", 2), ("2026-W45", "de", 2),
                                    ("2026-W46", "(unknown)", 1), ("2026-W49", "(unknown)", 1)]
    assert r.mail_by_kind == [("2026-W45", "autoreply", 1), ("2026-W45", "normal", 4),
                              ("2026-W46", "bounce", 1), ("2026-W49", "normal", 1)]
    assert r.first_response == [
        ResponseFigure("2026-11", "*", 3, 2, 2.0, 8.4),
        ResponseFigure("2026-11", "fundraising", 3, 0, 2.0, 8.4),
        ResponseFigure("2026-11", "legal", 0, 2, None, None),
        ResponseFigure("2026-12", "(unrouted)", 1, 0, 4.0, 4.0),
        ResponseFigure("2026-12", "*", 1, 0, 4.0, 4.0),
    ]
    assert r.overdue == {"legal": 1}  # t6: open, unanswered, past its first-response due time
    assert [(w.team, w.tickets) for w in r.waiting] == [("legal", 1)]
    assert r.routing == [RoutingWeek("2026-W45", 3, 1, 3, 2), RoutingWeek("2026-W46", 1, 0, 1, 1),
                         RoutingWeek("2026-W49", 0, 0, 1, 0)]
    assert (r.routing[0].agreement, r.routing[0].coverage) == (0.333, 0.667)
    assert r.corrections == [("(none)", "fundraising", 1), ("fundraising", "legal", 1), ("legal", "fundraising", 1)]


def test_period_and_team_filters_and_staff_see_only_their_team(app: App) -> None:
    """A period cuts history (not the present: overdue and waiting); staff get their own team's
    figures whatever they ask for, and asking for another team is refused; a viewer reads all."""
    seed(app)
    later = report(app, LIAISON, filters_for(LIAISON, since=date(2026, 11, 9), until=date(2026, 11, 30)), now=NOW)
    assert later.volume["total"] == [("2026-W46", "*", 1)]
    assert later.routing == [RoutingWeek("2026-W46", 1, 0, 1, 1)]
    assert later.overdue == {"legal": 1}
    staff = report(app, LEGAL, filters_for(LEGAL), now=NOW)
    assert staff.filters.team == "legal"
    assert staff.volume["team"] == [("2026-W45", "legal", 1), ("2026-W46", "legal", 1)]
    assert {f.team for f in staff.first_response} == {"legal", "*"}
    assert staff.overdue == {"legal": 1} and [w.team for w in staff.waiting] == ["legal"]
    assert staff.corrections == [("fundraising", "legal", 1), ("legal", "fundraising", 1)]  # into or out of legal
    with pytest.raises(Forbidden):
        filters_for(LEGAL, team="fundraising")
    with pytest.raises(Forbidden):
        report(app, LEGAL, filters_for(LIAISON, team="fundraising"), now=NOW)  # the use case checks again
    assert report(app, VIEWER, filters_for(VIEWER), now=NOW).volume == report(app, LIAISON, filters_for(LIAISON),
                                                                              now=NOW).volume
    with pytest.raises(Invalid, match="after it ends"):
        filters_for(LIAISON, since=date(2026, 12, 1), until=date(2026, 11, 1))
    with pytest.raises(Invalid, match="not a date"):
        parse_day("2026-13-01", "--since")


def test_csv_and_charts_take_hostile_labels(app: App) -> None:
    """A language that a spreadsheet would run as a formula is written quoted; a team name with
    mathtext and markup draws as text (no mathtext error), in a valid SVG and PNG."""
    contact = add_contact(app, "evil@v.example", "=1+2<b>")
    add_ticket(app, team="$\\frac{<i>}$", created=NOW, contact=contact)
    r = report(app, LIAISON, filters_for(LIAISON), now=NOW)
    languages = list(csv.reader(io.StringIO(to_csv(tables(r)["volume_by_language"]))))
    assert languages == [["week", "language", "tickets"], ["2026-W50", "'=1+2<b>", "1"]]
    for name in charts.CHARTS:
        svg = charts.chart(r, name, "svg")
        assert svg.startswith(b"<?xml") and b"<svg" in svg and b"<i>" not in svg and b"<script" not in svg
        assert charts.chart(r, name, "png").startswith(b"\x89PNG")
    assert charts.chart(r, "volume") == charts.chart(r, "volume")  # reproducible bytes


def test_charts_draw_alike_from_many_threads() -> None:
    """The web server draws in a thread pool: eight threads drawing every chart at once give the
    bytes one thread gives (each chart is its own Figure, no pyplot state shared)."""
    from concurrent.futures import ThreadPoolExecutor
    from datetime import UTC, datetime

    from triage.reports.queries import Report, ReportFilters

    rows = [(f"2026-W{w:02d}", team, w % 7 + len(team)) for w in range(40, 52) for team in ("legal", "events")]
    r = Report(ReportFilters(), datetime(2026, 12, 1, tzinfo=UTC), volume={"team": rows},
               routing=[RoutingWeek("2026-W45", 4, 3, 5, 4)], decisions_matrix=[("legal", "events", 2)])
    alone = {name: charts.chart(r, name) for name in charts.CHARTS}
    with ThreadPoolExecutor(8) as pool:
        drawn = list(pool.map(lambda name: (name, charts.chart(r, name)), list(charts.CHARTS) * 4))
    assert all(svg == alone[name] for name, svg in drawn)


def test_empty_desk_draws_every_chart(app: App) -> None:
    """No tickets at all: every table is empty and every chart still renders (saying so)."""
    r = report(app, LIAISON, filters_for(LIAISON), now=NOW)
    assert all(not t.rows for t in tables(r).values())
    assert all(charts.chart(r, name).startswith(b"<?xml") for name in charts.CHARTS)


def test_cli_stats_plot_csv_json(db_url: str, tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                 app: App) -> None:
    """`triage stats` keeps its text, `--plot DIR` writes every chart (SVG or PNG), `--csv DIR` every
    table, `--json` carries the tables; the files written are listed on stderr; a bad date exits 2."""
    seed(app)
    monkeypatch.chdir(tmp_path)
    env = {"TRIAGE_CONFIG": "", "TRIAGE_DATABASE_URL": db_url, "TRIAGE_ROUTING_MODEL_PATH": str(model_dir),
           "TRIAGE_ROUTING_TEAMS_FILE": str(DATA / "teams.toml")}
    runner = CliRunner()
    plain = runner.invoke(cli, ["stats"], env=env)
    assert plain.exit_code == 0 and plain.stdout.startswith("model ") and "4 decisions, agreement 0.25" in plain.stdout
    done = runner.invoke(cli, ["stats", "--plot", "charts", "--format", "png", "--csv", "tables"], env=env)
    assert done.exit_code == 0, done.output
    assert done.stdout == plain.stdout
    assert sorted(p.name for p in (tmp_path / "charts").iterdir()) == sorted(f"{n}.png" for n in charts.CHARTS)
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in (tmp_path / "charts").iterdir())
    assert "wrote charts/volume.png" in done.stderr and "wrote tables/routing.csv" in done.stderr
    rows = list(csv.reader((tmp_path / "tables" / "corrections.csv").open(newline="")))
    assert rows == [["suggested", "chosen", "decisions"], ["(none)", "fundraising", "1"],
                    ["fundraising", "legal", "1"], ["legal", "fundraising", "1"]]
    svg = runner.invoke(cli, ["stats", "--plot", "svg", "--team", "legal", "--since", "2026-11-01"], env=env)
    assert svg.exit_code == 0 and (tmp_path / "svg" / "confusion.svg").read_bytes().startswith(b"<?xml")
    figures = json.loads(runner.invoke(cli, ["stats", "--json", "--team", "legal"], env=env).stdout)
    assert figures["decisions"] == 4  # the routing figures as before
    assert figures["reports"]["overdue"]["rows"] == [["legal", 1]]  # t6 arrived in November 2026: long due
    assert figures["reports"]["waiting_on_volunteer"]["rows"][0][:2] == ["legal", 1]
    bad = runner.invoke(cli, ["stats", "--since", "yesterday"], env=env)
    assert bad.exit_code == 2 and "not a date" in bad.stderr


def test_first_response_percentiles_are_computed_alike_on_both_engines(app: App) -> None:
    """The first-response percentiles come from SQL (percentile_cont on PostgreSQL, a sorted
    reading on SQLite): four legal replies after 1, 2, 3 and 10 h give a median of 2.5 h and a 90th
    percentile of 3 + 0.7 x 7 = 7.9 h; with a fundraising reply after 4 h and an unanswered ticket,
    all teams together have 1, 2, 3, 4, 10 h: median 3 h, 90th 4 + 0.6 x 6 = 7.6 h. A ticket in
    December and the team filter make their own groups."""
    from tests.report_desk import add_mail_out, at

    for team, hours in (("legal", 1), ("legal", 10), ("legal", 3), ("legal", 2), ("fundraising", 4),
                        ("fundraising", None)):
        ticket = add_ticket(app, team=team, created=at(3), contact=None)
        if hours is not None:
            add_mail_out(app, ticket, at(3, 9 + hours))
    december = add_ticket(app, team="legal", created=at(1, month=12), contact=None)
    add_mail_out(app, december, at(1, 15, month=12))
    r = report(app, LIAISON, filters_for(LIAISON), now=NOW)
    assert r.first_response == [
        ResponseFigure("2026-11", "*", 5, 1, 3.0, 7.6),
        ResponseFigure("2026-11", "fundraising", 1, 1, 4.0, 4.0),
        ResponseFigure("2026-11", "legal", 4, 0, 2.5, 7.9),
        ResponseFigure("2026-12", "*", 1, 0, 6.0, 6.0),
        ResponseFigure("2026-12", "legal", 1, 0, 6.0, 6.0),
    ]
    legal = report(app, LIAISON, filters_for(LIAISON, until=date(2026, 11, 30), team="legal"), now=NOW)
    assert legal.first_response == [ResponseFigure("2026-11", "*", 4, 0, 2.5, 7.9),
                                    ResponseFigure("2026-11", "legal", 4, 0, 2.5, 7.9)]
