"""`triage train / evaluate / suggest` and the training-data loaders they read."""

from __future__ import annotations

import csv
import json
import mailbox
import pickle
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from classifiers import TrainingDataError
from tests.conftest import make_mail
from tests.routing_topics import FILLER, TOPICS
from triage.routing.commands import evaluate, suggest, train
from triage.routing.training_data import load_examples


def rows(per_team: int, seed: int = 0) -> list[dict[str, str]]:
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    out = []
    for i in range(per_team):
        for team, topic in TOPICS.items():
            words = rng.sample(topic.split(), 3) + rng.sample(FILLER, 4)
            out.append({"subject": f"{words[0]} {words[4]}", "body": " ".join(words), "team": team,
                        "date": (start + timedelta(hours=len(out))).isoformat()})
    return out


def write_csv(path: Path, data: list[dict[str, str]], columns: tuple[str, ...] = ("subject", "body", "team", "date")) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(data)
    return path


@pytest.fixture
def invoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def run(command, *args: str) -> Result:  # type: ignore[no-untyped-def]
        return runner.invoke(command, list(args))

    return run


@pytest.fixture
def model(tmp_path: Path, invoke) -> Path:  # type: ignore[no-untyped-def]
    data = write_csv(tmp_path / "train.csv", rows(30))
    result = invoke(train, "--data", str(data), "--out", str(tmp_path / "model"))
    assert result.exit_code == 0, result.output
    return tmp_path / "model"


def test_train_writes_a_model_and_reports_coverage(model: Path, tmp_path: Path, invoke) -> None:  # type: ignore[no-untyped-def]
    """`train` saves model.json + arrays.npz and prints teams, held-out scores and the threshold."""
    assert (model / "model.json").is_file() and (model / "arrays.npz").is_file()
    result = invoke(train, "--data", str(tmp_path / "train.csv"), "--out", str(tmp_path / "m2"),
                    "--target-precision", "0.8")
    assert "3 teams: legal, press, tech" in result.stdout
    assert "selected " in result.stdout and "baseline" in result.stdout  # the candidates and the winner
    assert "target 0.80" in result.stdout or "none reaches" in result.stdout


def test_train_refuses_to_write_through_the_link_to_a_promoted_model(model: Path, tmp_path: Path, invoke) -> None:  # type: ignore[no-untyped-def]
    """`model_path` links to a promoted version, never changed in place: `train --out` there is
    refused (exit 2, the reason on stderr) and the version's files are untouched."""
    link = tmp_path / "linked"
    link.symlink_to(model, target_is_directory=True)
    before = (model / "model.json").read_bytes()
    result = invoke(train, "--data", str(tmp_path / "train.csv"), "--out", str(link))
    assert result.exit_code == 2 and "never changed in place" in result.stderr
    assert (model / "model.json").read_bytes() == before


def test_evaluate_json_has_the_report_keys(model: Path, tmp_path: Path, invoke) -> None:  # type: ignore[no-untyped-def]
    """`evaluate --json` prints accuracy, macro-F1, per-team figures, coverage, confusion and the model card."""
    held_out = write_csv(tmp_path / "test.csv", rows(4, seed=5))
    result = invoke(evaluate, "--model", str(model), "--data", str(held_out), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) >= {"accuracy", "macro_f1", "per_team", "coverage", "confusion", "labels", "model"}
    assert report["model"]["training_set_sha256"]


def test_evaluate_text_and_plot(model: Path, tmp_path: Path, invoke) -> None:  # type: ignore[no-untyped-def]
    """Plain `evaluate` prints the table and the confusion matrix; --plot writes a PNG."""
    held_out = write_csv(tmp_path / "test.csv", rows(4, seed=5))
    result = invoke(evaluate, "--model", str(model), "--data", str(held_out), "--plot", str(tmp_path / "cm.png"))
    assert result.exit_code == 0, result.output
    assert "macro-F1" in result.stdout and "confusion matrix" in result.stdout
    assert (tmp_path / "cm.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "calibration error" in result.stdout  # the reliability diagram is drawn beside the confusion


def test_evaluate_timeline_json(tmp_path: Path, invoke) -> None:  # type: ignore[no-untyped-def]
    """`evaluate --timeline` trains along the dates and averages the splits."""
    data = write_csv(tmp_path / "dated.csv", rows(10))
    result = invoke(evaluate, "--data", str(data), "--timeline", "--step", "10", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [s["train"] for s in report["splits"]] == [10, 20]
    assert set(report) >= {"accuracy", "macro_f1", "coverage", "protocol", "calibration_error", "chosen"}
    assert all(s["chosen"] for s in report["splits"])  # the selection ran at every step


def test_suggest_json_ranks_teams_with_evidence(model: Path, tmp_path: Path, invoke) -> None:  # type: ignore[no-untyped-def]
    """`suggest FILE --json` gives the team or null, every team ranked with a probability, and evidence."""
    mail = tmp_path / "mail.eml"
    mail.write_bytes(make_mail(subject="Interview request", body="A journalist from a newspaper asks for an interview."))
    result = invoke(suggest, str(mail), "--model", str(model), "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["ranked"][0]["team"] == "press"
    assert len(out["ranked"]) == 3 and out["model_version"]
    assert out["evidence"] and all(e["weight"] > 0 for e in out["evidence"])
    plain = invoke(suggest, str(mail), "--model", str(model))
    assert "evidence for press" in plain.stdout


def test_suggest_without_a_model_says_how_to_train(tmp_path: Path, invoke) -> None:  # type: ignore[no-untyped-def]
    """With no --model and no data/model/, the error names the train command; exit status 2."""
    mail = tmp_path / "mail.eml"
    mail.write_bytes(make_mail())
    result = invoke(suggest, str(mail))
    assert result.exit_code == 2
    assert "triage train --data data/seed/seed.csv --out data/model" in result.stderr


def test_suggest_refuses_a_pickled_model(tmp_path: Path, invoke) -> None:  # type: ignore[no-untyped-def]
    """A pickle given as the model is refused on stderr, exit status 2."""
    (tmp_path / "model.pkl").write_bytes(pickle.dumps({"coef": [1.0]}))
    mail = tmp_path / "mail.eml"
    mail.write_bytes(make_mail())
    result = invoke(suggest, str(mail), "--model", str(tmp_path / "model.pkl"))
    assert result.exit_code == 2 and "never loads pickles" in result.stderr


def test_csv_without_team_column_is_refused(tmp_path: Path, invoke) -> None:  # type: ignore[no-untyped-def]
    """A CSV lacking a required column fails with the expected columns named."""
    data = write_csv(tmp_path / "bad.csv", rows(2), columns=("subject", "body"))
    result = invoke(train, "--data", str(data), "--out", str(tmp_path / "m"))
    assert result.exit_code == 2 and "team" in result.stderr


def _mail(team: str, i: int) -> bytes:
    return make_mail(subject=f"{team} question {i}", body=f"{TOPICS[team]}\n",
                     date=datetime(2026, 3, 1, tzinfo=UTC) + timedelta(days=i))


def test_loads_one_mbox_per_team(tmp_path: Path) -> None:
    """A folder of mbox files gives examples labelled by file stem, parsed with their dates and headers."""
    for team in ("legal", "tech"):
        box = mailbox.mbox(tmp_path / f"{team}.mbox")
        for i in range(3):
            box.add(_mail(team, i))
        box.close()
    data = load_examples(tmp_path)
    assert data.teams == ["legal", "tech"] and len(data.examples) == 6
    first = data.examples[0]
    assert first.label == "legal" and first.subject == "legal question 0"
    assert first.sender == "ada@volunteers.example" and first.headers["to"] == "liaison@example.org"
    assert first.date == datetime(2026, 3, 1, tzinfo=UTC)


def test_loads_subfolders_of_eml_and_maildir(tmp_path: Path) -> None:
    """One subfolder per team, holding .eml files or a maildir, labels by folder name."""
    (tmp_path / "legal").mkdir()
    for i in range(2):
        (tmp_path / "legal" / f"{i}.eml").write_bytes(_mail("legal", i))
    box = mailbox.Maildir(tmp_path / "press", create=True)
    for i in range(3):
        box.add(_mail("press", i))
    data = load_examples(tmp_path)
    assert sorted(e.label or "" for e in data.examples) == ["legal"] * 2 + ["press"] * 3


def test_folder_without_team_mail_is_refused(tmp_path: Path) -> None:
    """A folder with no mbox files or team subfolders says what layout was expected."""
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(TrainingDataError, match="one mbox file per team"):
        load_examples(tmp_path)
