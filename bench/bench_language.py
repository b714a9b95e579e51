"""What does naming a mail's language cost, and what does it name?

`triage.language.detect` (fastText's small model first, Lingua where fastText is unsure) against
Lingua alone, the detector it replaced (the baseline, measured in the same run on the same texts):
milliseconds per mail, the share fastText answered, and where the two disagree. The texts are what
a new ticket is detected on (subject and the writer's own words, `mail_language`): the seed mails
(bundled, 578, several languages) and, with `--mbox`, real mail (e.g. the Enron and 20 Newsgroups
folders under ../shared/datasets, read by path).

    python bench/bench_language.py [--mbox FILE_OR_DIR ...] [--per-file N] [--repeat R] [--show]
"""

from __future__ import annotations

import argparse
import csv
import mailbox
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

from triage import language
from triage.ingest.parse import parse_mail
from triage.ingest.parsed import NotAMailError

REPO = Path(__file__).resolve().parent.parent
SEED = REPO / "data" / "seed" / "seed.csv"


def seed_texts() -> list[str]:
    with SEED.open(newline="", encoding="utf-8") as handle:
        return [f"{row['subject']}\n{row['body']}" for row in csv.DictReader(handle)]


def mbox_texts(source: Path, per_file: int) -> Iterator[str]:
    """Subject and new text of up to `per_file` mails of each mbox file (under a folder: every one)."""
    files = sorted(p for p in source.rglob("*") if p.is_file()) if source.is_dir() else [source]
    for file in files:
        box = mailbox.mbox(file, create=False)
        for count, key in enumerate(box.iterkeys()):
            if count >= per_file:
                break
            try:
                mail = parse_mail(box.get_bytes(key))
            except NotAMailError:
                continue
            yield f"{mail.subject or ''}\n{mail.new_text or mail.body_text or ''}"


def lingua_alone(text: str) -> str | None:
    """The detector before: Lingua on the first 4,000 characters, the same letter and confidence floors."""
    sample = text[:4000]
    if sum(ch.isalpha() for ch in sample) < language.MIN_LETTERS:
        return None
    values = language._thorough_detector().compute_language_confidence_values(sample)
    if not values or values[0].value < language.MIN_CONFIDENCE:
        return None
    return str(values[0].language.iso_code_639_1.name.lower())


def timed(detect: Callable[[str], str | None], texts: list[str], repeat: int) -> tuple[list[str | None], float]:
    """The answers and the best of `repeat` runs' milliseconds per text."""
    best = float("inf")
    answers: list[str | None] = []
    for _ in range(repeat):
        start = time.perf_counter()
        answers = [detect(text) for text in texts]
        best = min(best, time.perf_counter() - start)
    return answers, best / len(texts) * 1000


def fast_share(texts: list[str]) -> float:
    """How many texts fastText answered without asking Lingua (the letter floor left out)."""
    asked = 0
    real = language._thorough_detector()

    class Counting:
        def compute_language_confidence_values(self, text: str) -> object:
            nonlocal asked
            asked += 1
            return real.compute_language_confidence_values(text)

    language._thorough = Counting()
    try:
        considered = [t for t in texts if sum(ch.isalpha() for ch in t[: language.MAX_CHARS]) >= language.MIN_LETTERS]
        for text in considered:
            language.detect(text)
    finally:
        language._thorough = real
    return 1 - asked / max(len(considered), 1)


def report(name: str, texts: list[str], repeat: int, show: bool) -> None:
    language.detect("warm up both detectors: " + "x" * 20)
    lingua_alone("warm up Lingua alone, as the baseline")
    before, before_ms = timed(lingua_alone, texts, repeat)
    after, after_ms = timed(language.detect, texts, repeat)
    differ = [(b, a, t) for b, a, t in zip(before, after, texts, strict=True) if a != b]
    counts = Counter(after)
    named = ", ".join(f"{code or '-'} {n}" for code, n in counts.most_common(8))
    print(f"{name}: {len(texts)} mails")
    print(f"  triage.language.detect {after_ms:.3f} ms/mail; Lingua alone {before_ms:.3f} ms/mail; "
          f"ratio {after_ms / before_ms:.2f}x ({before_ms / after_ms:.1f} times faster)")
    print(f"  answered by fastText alone: {fast_share(texts):.1%}; named: {named}")
    changed = Counter((b, a) for b, a, _ in differ)
    print(f"  differs from Lingua alone on {len(differ)}: "
          + ", ".join(f"{b or '-'} -> {a or '-'} {n}" for (b, a), n in changed.most_common(10)))
    if show:
        for b, a, text in differ:
            print(f"    {b or '-'} -> {a or '-'}: {' '.join(text.split())[:100]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mbox", type=Path, nargs="*", default=[], help="mbox files or folders of them")
    parser.add_argument("--per-file", type=int, default=60, help="mails read from each mbox file (60)")
    parser.add_argument("--repeat", type=int, default=3, help="runs timed; the best counts (3)")
    parser.add_argument("--show", action="store_true", help="print every text on which the two differ")
    args = parser.parse_args()
    report("seed mails", seed_texts(), args.repeat, args.show)
    for source in args.mbox:
        if not source.exists():
            print(f"bench_language: no such file or folder: {source}", file=sys.stderr)
            return 2
        report(str(source), list(mbox_texts(source, args.per_file)), args.repeat, args.show)
    return 0


if __name__ == "__main__":
    sys.exit(main())
