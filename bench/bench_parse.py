"""How fast is `parse_mail` next to a bare stdlib parse of the same mail?

The baseline is the least any parser must do: `email.message_from_bytes` (compat32), a walk over
the parts and a decode of each text part with its charset (errors='replace', UTF-8 when the
charset is unknown). Both run in the same process over the same corpus, interleaved, and the
best of N rounds counts, so machine noise hits both alike. Target: parse_mail >= 0.6x baseline.

    python bench/bench_parse.py [--samples DIR] [--repeat N]
"""

from __future__ import annotations

import argparse
import email
import gc
import sys
import time
from collections.abc import Callable
from email.policy import compat32
from pathlib import Path

from triage.ingest.parse import parse_mail
from triage.ingest.parsed import NotAMailError

REPO = Path(__file__).resolve().parent.parent
SHARED_SAMPLES = REPO.parent / "shared" / "mail-samples"
TARGET_RATIO = 0.6


def baseline(raw: bytes) -> int:
    """Parse, walk, decode text parts: the stdlib floor that parse_mail is measured against."""
    msg = email.message_from_bytes(raw, policy=compat32)
    chars = 0
    for part in msg.walk():
        if part.get_content_maintype() != "text":
            continue
        data = part.get_payload(decode=True)
        if not isinstance(data, bytes):
            continue
        charset = part.get_content_charset() or "us-ascii"
        try:
            chars += len(data.decode(charset, "replace"))
        except LookupError:
            chars += len(data.decode("utf-8", "replace"))
    return chars


def ours(raw: bytes) -> int:
    try:
        return len(parse_mail(raw).body_text)
    except NotAMailError:
        return 0


def load(root: Path) -> list[bytes]:
    """Every file under `root` but the Markdown notes, in a stable order."""
    return [p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and p.suffix != ".md"]


def one_round(fn: Callable[[bytes], int], corpus: list[bytes]) -> float:
    gc.collect()
    start = time.perf_counter()
    for raw in corpus:
        fn(raw)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    default = SHARED_SAMPLES if SHARED_SAMPLES.is_dir() else REPO / "tests" / "corpus"
    parser.add_argument("--samples", type=Path, default=default, help=f"mail folder (default {default})")
    parser.add_argument("--repeat", type=int, default=7, help="rounds; the best one counts (default 7)")
    args = parser.parse_args(argv)
    corpus = load(args.samples)
    if not corpus:
        print(f"no mail under {args.samples}", file=sys.stderr)
        return 2
    for raw in corpus:  # warm imports and caches outside the timing
        baseline(raw)
        ours(raw)
    best_base = best_ours = float("inf")
    for _ in range(args.repeat):
        best_base = min(best_base, one_round(baseline, corpus))
        best_ours = min(best_ours, one_round(ours, corpus))
    n = len(corpus)
    size = sum(map(len, corpus)) / 1e6
    ratio = best_base / best_ours
    print(f"corpus     {args.samples} ({n} messages, {size:.1f} MB), best of {args.repeat}")
    print(f"baseline   {n / best_base:8.0f} msg/s  (stdlib compat32 parse + walk + text decode)")
    print(f"parse_mail {n / best_ours:8.0f} msg/s")
    print(
        f"ratio      {ratio:8.2f}x  (target >= {TARGET_RATIO}x: {'ok' if ratio >= TARGET_RATIO else 'BELOW'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
