#!/usr/bin/env python3
"""The routing classifier on real labelled mail, next to a plain baseline, in one run.

For each data set it runs triage's default classifier (`classifiers.LinearRouter`, fed the
parsed mail) and the baseline the issue names: `TfidfVectorizer(sublinear_tf=True, min_df=2,
max_df=0.5)` + `LinearSVC()` on the raw posts (headers and body as one latin-1 string). For
both it reports macro-F1 and accuracy (20 Newsgroups: its by-date train/test split; Enron: the
timeline protocol of Bekkerman et al. 2004, step 100), the training time on the full training
set, suggestions per second one message per call and in one batch, and peak memory (the rise
of the process's resident set while training and predicting). Each (data set, model) runs in
a forked child so that memory and timing are measured alike and apart.

    .venv/bin/python bench/bench_routing.py --datasets ../shared/datasets [--only 20news] [--json out.json]

The data is read where it lies; nothing is copied.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.svm import LinearSVC

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from classifiers import Example, LinearRouter, Suggestion
from classifiers.evaluation import evaluate, timeline
from classifiers.selection import SelectingRouter
from triage.routing.training_data import example_from_mail, iter_labelled_mail

SINGLE_CALLS = 2000


class Baseline:
    """TF-IDF + LinearSVC on the raw post (held in `Example.body`), as a `Classifier`."""

    def __init__(self) -> None:
        self.vectorizer = TfidfVectorizer(sublinear_tf=True, min_df=2, max_df=0.5)
        self.svm = LinearSVC(random_state=0)

    @property
    def labels(self) -> list[str]:
        return [str(c) for c in self.svm.classes_]

    def fit(self, examples: Sequence[Example]) -> None:
        self.svm.fit(self.vectorizer.fit_transform([e.body for e in examples]), [e.label for e in examples])

    def predict(self, examples: Sequence[Example]) -> list[Suggestion]:
        scores = self.svm.decision_function(self.vectorizer.transform([e.body for e in examples]))
        if scores.ndim == 1:
            scores = np.stack([-scores, scores], axis=1)
        labels = self.labels
        out = []
        for row in scores:
            order = np.argsort(-row)
            ranked = tuple((labels[i], float(row[i])) for i in order)
            out.append(Suggestion(ranked[0][0], 1.0, ranked, 0.0, "baseline"))
        return out

    def explain(self, example: Example, top_k: int = 8) -> list[tuple[str, float]]:
        return []


@dataclass
class DataSet:
    name: str
    protocol: str
    train: dict[str, list[Example]]
    test: dict[str, list[Example]] | None


def _read(path: Path) -> dict[str, list[Example]]:
    """Both views of every mail: parsed for triage's model, raw for the baseline."""
    parsed, raw = [], []
    for team, _where, data in iter_labelled_mail(path, progress=sys.stderr.isatty()):
        example = example_from_mail(data, team)
        parsed.append(example)
        raw.append(Example(subject="", body=data.decode("latin-1"), label=team, date=example.date))
    return {"default": parsed, "baseline": raw}


def _rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _throughput(model: Any, examples: Sequence[Example]) -> tuple[float, float]:
    sample = list(examples[:SINGLE_CALLS])
    start = time.perf_counter()
    for e in sample:
        model.predict([e])
    single = len(sample) / (time.perf_counter() - start)
    start = time.perf_counter()
    model.predict(list(examples))
    batch = len(examples) / (time.perf_counter() - start)
    return single, batch


def _measure(data: DataSet, which: str, step: int) -> dict[str, Any]:
    make: Callable[[], Any] = {"baseline": Baseline, "default": LinearRouter, "selection": SelectingRouter}[which]
    train = data.train["baseline" if which == "baseline" else "default"]
    rss_start = _rss_kb("VmRSS")
    model = make()
    start = time.perf_counter()
    model.fit(train)
    train_seconds = time.perf_counter() - start
    if data.test is not None:
        test = data.test["baseline" if which == "baseline" else "default"]
        result = evaluate(model, test)
        timeline_seconds = None
    else:
        test = train
        start = time.perf_counter()
        result = timeline(train, make, step=step)
        timeline_seconds = time.perf_counter() - start
    single, batch = _throughput(model, test)
    calibrated = which != "baseline"
    return {
        "dataset": data.name, "model": which, "protocol": data.protocol,
        "macro_f1": result["macro_f1"], "accuracy": result["accuracy"],
        "coverage": result["coverage"] if calibrated else None,
        "precision_at_threshold": result["precision_at_threshold"] if calibrated else None,
        "precision_at_threshold_pooled": result.get("precision_at_threshold_pooled", result["precision_at_threshold"])
        if calibrated else None,
        "calibration_error": result["calibration_error"] if calibrated else None,
        "threshold": getattr(model, "threshold", None) and model.threshold.value,
        "chosen": result.get("chosen") or model.card.get("selection", {}).get("chosen") if which == "selection" else None,
        "selection": model.card.get("selection") if which == "selection" else None,
        "n_train": len(train), "train_seconds": train_seconds, "timeline_seconds": timeline_seconds,
        "suggestions_per_s_single": single, "suggestions_per_s_batch": batch,
        "peak_rss_mb": _rss_kb("VmHWM") / 1024, "peak_rise_mb": (_rss_kb("VmHWM") - rss_start) / 1024,
    }


def _child(data: DataSet, which: str, step: int, queue: Any) -> None:
    queue.put(_measure(data, which, step))


def run(data: DataSet, which: str, step: int) -> dict[str, Any]:
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(data, which, step, queue))
    proc.start()
    result: dict[str, Any] = queue.get()
    proc.join()
    return result


def datasets(root: Path, only: set[str] | None) -> list[DataSet]:
    found = []
    if (only is None or "20news" in only) and (root / "20news").is_dir():
        found.append(DataSet("20news", "by-date train/test", _read(root / "20news" / "train"),
                             _read(root / "20news" / "test")))
    for name in ("enron-farmer-d", "enron-lokay-m"):
        if (only is None or name in only) and (root / name).is_dir():
            found.append(DataSet(name, "timeline, step 100", _read(root / name), None))
    return found


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        (
            "| data set | model | protocol | macro-F1 | accuracy | coverage @0.9 (pooled precision, ECE) | train s (n) | sugg/s single | "
            "sugg/s batch | peak MB (rise) |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        coverage = "-"
        if r["coverage"] is not None:
            pooled = r["precision_at_threshold_pooled"]
            coverage = f"{r['coverage']:.3f} (prec {pooled:.3f}, ECE {r['calibration_error']:.3f})" if pooled else "0"
        lines.append(
            f"| {r['dataset']} | {r['model']} | {r['protocol']} | {r['macro_f1']:.4f} | {r['accuracy']:.4f} | "
            f"{coverage} | {r['train_seconds']:.1f} ({r['n_train']}) | {r['suggestions_per_s_single']:,.0f} | "
            f"{r['suggestions_per_s_batch']:,.0f} | {r['peak_rss_mb']:,.0f} ({r['peak_rise_mb']:,.0f}) |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", type=Path, required=True, help="the shared datasets folder")
    parser.add_argument("--only", help="comma-separated data set names (20news, enron-farmer-d, enron-lokay-m)")
    parser.add_argument("--step", type=int, default=100, help="timeline step (default 100)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args()
    only = set(args.only.split(",")) if args.only else None
    if not args.datasets.is_dir():
        print(f"bench_routing: {args.datasets} is not a folder", file=sys.stderr)
        return 2
    results = []
    for data in datasets(args.datasets, only):
        for which in ("baseline", "default", "selection"):
            result = run(data, which, args.step)
            print(json.dumps(result), file=sys.stderr, flush=True)
            results.append(result)
    print(table(results))
    for name in dict.fromkeys(r["dataset"] for r in results):
        pair = {r["model"]: r for r in results if r["dataset"] == name}
        for which in ("default", "selection"):
            f1 = pair[which]["macro_f1"] - pair["baseline"]["macro_f1"]
            acc = pair[which]["accuracy"] - pair["baseline"]["accuracy"]
            print(f"{name}: {which} - baseline: macro-F1 {f1:+.4f}, accuracy {acc:+.4f}")
        print(f"{name}: selection chose {pair['selection']['chosen']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
