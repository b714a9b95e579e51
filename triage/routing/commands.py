"""`triage train`, `triage evaluate` and `triage suggest`: the routing model, offline.

Registered on the main command by `triage/cli.py` (`cli.add_command(train)` and so on); each
also works on its own. Errors a user can fix go to stderr as one line, exit status 2.
"""

from __future__ import annotations

import functools
import sys
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import click

from classifiers import ClassifierError, TrainingDataError, default_classifier, load_model
from classifiers.evaluation import evaluate as evaluate_model
from classifiers.evaluation import timeline as timeline_protocol
from triage.bundled import resolve
from triage.ingest.parsed import NotAMailError
from triage.routing.training_data import TrainingSet, example_from_mail, load_examples
from triage.terminal import echo, echo_json

DEFAULT_MODEL = Path("data/model")
SEED_DATA = Path("data/seed/seed.csv")
TEAMS_FILE = Path("data/teams.toml")

F = TypeVar("F", bound=Callable[..., Any])


def _user_errors(func: F) -> F:
    """Print the errors a user can act on as one line on stderr and exit with status 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ClassifierError as exc:
            echo(f"triage: {exc}", err=True)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


def _progress() -> bool:
    return sys.stderr.isatty()


def _model_path(model: str | None) -> Path:
    if model is not None:
        return Path(model)
    if DEFAULT_MODEL.is_dir():
        return DEFAULT_MODEL
    raise ClassifierError(
        f"no model given and none at {DEFAULT_MODEL}/; train one with "
        f"`triage train --data {SEED_DATA} --out {DEFAULT_MODEL}` (or pass --model PATH)"
    )


def _read_data(path: str) -> TrainingSet:
    """Labelled examples from `path`; a relative path missing here names the shipped file of that name
    (so `--data data/seed/seed.csv` works from any folder)."""
    data = load_examples(resolve(path), progress=_progress())
    if data.skipped:
        echo(f"triage: skipped {len(data.skipped)} unreadable item(s), first: {data.skipped[0]}", err=True)
    if not data.examples:
        raise TrainingDataError(f"{path} holds no labelled examples")
    return data


@click.command()
@click.option("--data", "data_path", required=True, type=click.Path(),
              help="A CSV (subject, body, team) or a folder of sorted mail (one mbox or subfolder per team).")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="The model folder to write (model.json + arrays.npz).")
@click.option("--target-precision", default=0.90, show_default=True, type=click.FloatRange(0.0, 1.0, min_open=True),
              help="Suggest a team only where held-out precision reaches this; below it, abstain.")
@_user_errors
def train(data_path: str, out: str, target_precision: float) -> None:
    """Train a routing model on labelled mail and save it to OUT.

    Several candidate models (the plain TF-IDF + LinearSVC baseline always among them) are judged
    on the later part of DATA, trained on the part before it; the best (the simplest within noise)
    is refitted on all of DATA. Its threshold is chosen on that later mail.
    """
    if Path(out).is_symlink():
        raise ClassifierError(
            f"{out} links to a promoted model version, which is never changed in place (workers hold it "
            "by its version); write to another folder (`triage retrain` promotes from the liaison's decisions)")
    data = _read_data(data_path)
    router = default_classifier(target_precision=target_precision, progress=_progress())
    router.fit(data.examples)
    router.save(out)
    metrics = router.card["metrics"]
    echo(f"model {router.version} saved to {out}")
    echo(f"trained on {len(data.examples)} mails, {len(router.labels)} teams: {', '.join(router.labels)}")
    _print_selection(router.card.get("selection", {}))
    echo(f"held-out ({metrics['protocol']}): accuracy {metrics['accuracy']:.3f}, "
         f"macro-F1 {metrics['macro_f1']:.3f}, calibration error {metrics['calibration_error']:.3f}")
    echo(_threshold_line(router.threshold.value, metrics["coverage_at_threshold"],
                         metrics["precision_at_threshold"], target_precision))


def _print_selection(selection: dict[str, Any]) -> None:
    if not selection:
        return
    echo(f"selected {selection['reason']} ({selection['seconds']:.1f} s)")
    for name, c in selection.get("candidates", {}).items():
        echo(f"  {name:<20} accuracy {c['accuracy']:.3f}  macro-F1 {c['macro_f1']:.3f}  {c['seconds']:6.2f} s")


def _threshold_line(value: float, coverage: float, precision: float | None, target: float | None = None) -> str:
    if value > 1.0:
        return f"threshold: none reaches precision {target}; every mail goes to the liaison without a team"
    aim = f" (target {target:.2f})" if target is not None else ""
    right = f"{precision:.1%} of those right" if precision is not None else "none suggested"
    return f"threshold {value:.3f}{aim}: suggests a team for {coverage:.1%} of mail, {right}"


@click.command()
@click.option("--model", "model", type=click.Path(), help=f"Model folder (default: {DEFAULT_MODEL}/).")
@click.option("--data", "data_path", required=True, type=click.Path(),
              help="Labelled held-out mail: a CSV or a folder of sorted mail.")
@click.option("--timeline", is_flag=True,
              help="Train and test along the dates of DATA (train on the first k*STEP, test on the next STEP); "
                   "each step runs the model selection on its training part only.")
@click.option("--step", default=100, show_default=True, type=click.IntRange(1), help="Timeline step.")
@click.option("--json", "as_json", is_flag=True, help="Print the full result as JSON.")
@click.option("--plot", type=click.Path(dir_okay=False),
              help="Draw the confusion matrix and the reliability diagram to this PNG file.")
@_user_errors
def evaluate(model: str | None, data_path: str, timeline: bool, step: int, as_json: bool, plot: str | None) -> None:
    """Measure a model on held-out labelled mail, or run the timeline protocol on DATA."""
    if timeline and model is not None:
        raise click.UsageError("--timeline trains its own models along the dates; drop --model")
    if timeline and plot is not None:
        raise click.UsageError("--plot draws the figures of one model; it does not apply to --timeline")
    data = _read_data(data_path)
    if timeline:
        result = timeline_protocol(data.examples, default_classifier, step=step, progress=_progress())
        echo_json(result) if as_json else _print_timeline(result)
        return
    router = load_model(str(_model_path(model)))
    result = {"model": router.card, **evaluate_model(router, data.examples)}
    if plot:
        _plot(result, Path(plot), router.version)
    echo_json(result) if as_json else _print_report(result)


def _print_report(result: dict[str, Any]) -> None:
    echo(f"model {result['model'].get('version')} on {result['n']} mails")
    echo(f"accuracy {result['accuracy']:.3f}   macro-F1 {result['macro_f1']:.3f}   "
         f"calibration error {result['calibration_error']:.3f}")
    echo(_threshold_line(result["threshold"], result["coverage"], result["precision_at_threshold"]))
    labels: Sequence[str] = result["labels"]
    width = max(len("team"), *(len(label) for label in labels))
    echo()
    echo(f"{'team':<{width}}  precision  recall     f1  support")
    for label in labels:
        t = result["per_team"][label]
        echo(f"{label:<{width}}  {t['precision']:9.3f}  {t['recall']:6.3f}  {t['f1']:5.3f}  {t['support']:7d}")
    echo()
    echo("confusion matrix (rows: true team, columns: top suggestion, numbered as the rows)")
    cell = max(3, *(len(str(v)) for row in result["confusion"] for v in row))
    echo(" " * (width + 5) + " ".join(f"{i + 1:>{cell}}" for i in range(len(labels))))
    for i, (label, row) in enumerate(zip(labels, result["confusion"], strict=True)):
        echo(f"{i + 1:>3} {label:<{width}} " + " ".join(f"{v:>{cell}}" for v in row))


def _print_timeline(result: dict[str, Any]) -> None:
    echo(f"{result['protocol']}: {result['n']} dated mails ({result['undated']} undated left out), "
         f"{len(result['splits'])} splits")
    echo(f"{'train':>6} {'test':>5} {'accuracy':>9} {'macro-F1':>9} {'coverage':>9}  selected")
    for s in result["splits"]:
        echo(f"{s['train']:>6} {s['test']:>5} {s['accuracy']:>9.3f} {s['macro_f1']:>9.3f} {s['coverage']:>9.3f}"
             f"  {s.get('chosen') or '-'}")
    precision = result["precision_at_threshold_pooled"]
    echo(f"mean: accuracy {result['accuracy']:.3f}, macro-F1 {result['macro_f1']:.3f}, "
         f"coverage {result['coverage']:.3f}, calibration error {result['calibration_error']:.3f}, "
         "precision at threshold (all splits' suggestions) " + (f"{precision:.3f}" if precision is not None else "n/a"))
    if result["chosen"]:
        echo("selected: " + ", ".join(f"{name} {n}x" for name, n in result["chosen"].items()))


def _plot(result: dict[str, Any], path: Path, title: str) -> None:
    """The confusion matrix (left) and the reliability diagram (right) side by side in one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels: Sequence[str] = result["labels"]
    counts = np.asarray(result["confusion"], dtype=float)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    size = max(5.0, 0.45 * len(labels) + 2.0)
    fig, (ax, rel) = plt.subplots(1, 2, figsize=(2 * size + 1.5, size))
    image = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("suggested team (top-ranked)")
    ax.set_ylabel("true team")
    ax.set_title(f"confusion, row-normalised: {title}", fontsize=9)
    if len(labels) <= 25:
        for (i, j), n in np.ndenumerate(counts):
            if n:
                ax.text(j, i, str(int(n)), ha="center", va="center", fontsize=6,
                        color="white" if rates[i, j] > 0.5 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    _draw_reliability(rel, result)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=120)
    except OSError as exc:
        raise ClassifierError(f"cannot write the plot to {path}: {exc.strerror or exc}") from exc
    finally:
        plt.close(fig)


def _draw_reliability(ax: Any, result: dict[str, Any]) -> None:
    """Accuracy against confidence per bin (the diagonal is perfect calibration); bar labels are counts."""
    points = result["reliability"]
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
    ax.bar([p["low"] for p in points], [p["accuracy"] for p in points], width=[p["high"] - p["low"] for p in points],
           align="edge", edgecolor="black", alpha=0.6, label="accuracy of the top team")
    ax.plot([p["confidence"] for p in points], [p["accuracy"] for p in points], "o-", color="C3",
            label="at the bin's mean confidence")
    for p in points:
        ax.text((p["low"] + p["high"]) / 2, min(p["accuracy"] + 0.02, 0.98), str(p["n"]), ha="center", fontsize=6)
    if result["threshold"] is not None and result["threshold"] <= 1.0:
        ax.axvline(result["threshold"], color="C2", linewidth=1, label=f"threshold {result['threshold']:.2f}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence of the top team")
    ax.set_ylabel("share right")
    ax.set_title(f"reliability: expected calibration error {result['calibration_error']:.3f}", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")


def _team_names() -> dict[str, str]:
    """Display names from the teams file (./data/teams.toml, else the shipped one); the model's keys otherwise."""
    try:
        teams = tomllib.loads(resolve(TEAMS_FILE).read_text(encoding="utf-8")).get("teams", {})
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    return {key: str(t.get("name", key)) for key, t in teams.items() if isinstance(t, dict)}


@click.command()
@click.argument("mail_file", metavar="FILE", type=click.File("rb"))
@click.option("--model", "model", type=click.Path(), help=f"Model folder (default: {DEFAULT_MODEL}/).")
@click.option("--top", default=3, show_default=True, type=click.IntRange(1), help="How many teams to list.")
@click.option("--json", "as_json", is_flag=True, help="Print the suggestion as JSON.")
@_user_errors
def suggest(mail_file: BinaryIO, model: str | None, top: int, as_json: bool) -> None:
    """Suggest the team for the mail in FILE (an .eml or raw message; - reads stdin)."""
    router = load_model(str(_model_path(model)))
    try:
        example = example_from_mail(mail_file.read())
    except NotAMailError as exc:
        raise TrainingDataError(f"{mail_file.name} is not a mail: {exc}") from exc
    suggestion = router.predict([example])[0]
    evidence = router.explain(example)
    names = _team_names()
    if as_json:
        echo_json({
            "team": suggestion.team, "confidence": suggestion.confidence, "threshold": suggestion.threshold,
            "model_version": suggestion.model_version,
            "ranked": [{"team": t, "name": names.get(t, t), "probability": p} for t, p in suggestion.ranked],
            "evidence": [{"feature": f, "weight": w} for f, w in evidence],
        })
        return
    if suggestion.team is None:
        echo(f"no suggestion: best confidence {suggestion.confidence:.1%} is below the threshold "
             f"{suggestion.threshold:.1%}; the liaison decides")
    else:
        echo(f"suggested team: {names.get(suggestion.team, suggestion.team)} "
             f"({suggestion.confidence:.1%} confident)")
    for team, probability in suggestion.ranked[:top]:
        echo(f"  {probability:6.1%}  {names.get(team, team)}")
    if evidence:
        echo(f"evidence for {names.get(suggestion.ranked[0][0], suggestion.ranked[0][0])}: "
             + ", ".join(f"{feature} ({weight:+.3f})" for feature, weight in evidence))
    echo(f"model {suggestion.model_version}")
