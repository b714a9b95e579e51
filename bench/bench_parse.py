"""How fast is `parse_mail` next to a bare stdlib parse of the same mail?

The baseline is the least any parser must do: `email.message_from_bytes` (compat32), a walk over
the parts and a decode of each text part with its charset (errors='replace', UTF-8 when the
charset is unknown). Both run in the same process over the same corpus, interleaved, and the
best of N rounds counts, so machine noise hits both alike. Target: parse_mail >= 0.6x baseline.

`--adversarial` parses each family of hostile mail in `tests/hostile_mail.py` (long address
headers, unclosed brackets, deep MIME nesting, HTML bombs, quote-splitting worst cases, ...) at
doubling sizes and prints the time per size and its ratio to the previous size: about 2.0 is
linear, 4.0 quadratic; past a cap (a header field at 100 kB, HTML laid out up to 256 kB) the
time stops growing. The baseline is measured on the same bytes in the same run ("error" where
the stdlib itself raises, as on deep nesting).

    python bench/bench_parse.py [--samples DIR] [--repeat N]
    python bench/bench_parse.py --adversarial [--sizes 25,50,...] [--family TEXT] [--repeat N]
"""

from __future__ import annotations

import argparse
import email
import gc
import math
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
ADVERSARIAL_SIZES_KB = (25, 50, 100, 200, 400, 800)
SUPERLINEAR = 3.0  # a doubling ratio above this is flagged (linear is 2.0, quadratic 4.0)
ROUND_SECONDS = 0.05
RAISED = (RecursionError, ValueError, LookupError)  # what the stdlib (or an older parse_mail) may raise
SLOW_SECONDS = 2.0  # once a call takes this long, larger sizes of that family are not timed


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


def best_of(fn: Callable[[bytes], int], raw: bytes, repeat: int) -> float | None:
    """Seconds per call, best of `repeat` rounds, each round calling `fn` for at least
    ROUND_SECONDS without the garbage collector (as timeit does); None when `fn` raises (the
    stdlib on deep nesting)."""
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        gc.disable()
        calls, start = 0, time.perf_counter()
        try:
            while (elapsed := time.perf_counter() - start) < ROUND_SECONDS or not calls:
                fn(raw)
                calls += 1
        except RAISED:
            return None
        finally:
            gc.enable()
        best = min(best, elapsed / calls)
    return best


def _cell(seconds: float | None, previous: float | None) -> str:
    if seconds is None:
        return f"{'error':>10} {'':>6}"
    if math.isinf(seconds):
        return f"{'skipped':>10} {'':>6}"
    ratio = f"{seconds / previous:6.2f}" if previous else f"{'':>6}"
    return f"{seconds * 1000:8.1f}ms {ratio}"


def adversarial(sizes_kb: list[int], family_filter: str, repeat: int) -> int:
    """Parse each hostile family at doubling sizes; print times and ratios to the previous size."""
    sys.path.insert(0, str(REPO))
    from tests.hostile_mail import FAMILIES

    families = {name: make for name, make in FAMILIES.items() if family_filter.lower() in name.lower()}
    if not families:
        print(f"no family matches {family_filter!r}", file=sys.stderr)
        return 2
    print(f"hostile mail, best of {repeat}; ratio = time / time at the previous size (linear 2.0, quadratic 4.0)")
    print(f"{'family':38} {'size':>6} {'parse_mail':>10} {'ratio':>6} {'baseline':>10} {'ratio':>6}")
    worst: list[tuple[float, str]] = []
    for name, make in families.items():
        best_of(ours, make(sizes_kb[0] * 1000), 1)  # warm imports and caches outside the timing
        previous_ours = previous_base = None
        for index, kb in enumerate(sizes_kb):
            raw = make(kb * 1000)
            took = _timed_unless_slow(ours, raw, repeat, previous_ours)
            base = _timed_unless_slow(baseline, raw, repeat, previous_base)
            label = name if index == 0 else ""
            print(f"{label:38} {kb:>5}k {_cell(took, previous_ours)} {_cell(base, previous_base)}", flush=True)
            if took and previous_ours and not math.isinf(took) and kb == 2 * sizes_kb[index - 1]:
                worst.append((took / previous_ours, f"{name} at {kb}k"))
            previous_ours, previous_base = took, base
    flagged = sorted((where for ratio, where in worst if ratio > SUPERLINEAR), key=str)
    if worst:
        ratio, where = max(worst)
        print(f"largest doubling ratio of parse_mail: {ratio:.2f} ({where})")
    print(f"doublings above {SUPERLINEAR}: {', '.join(flagged) if flagged else 'none'}")
    if flagged:
        print("(re-run those with --family NAME to tell noise from growth)")
    return 0


def _timed_unless_slow(
    fn: Callable[[bytes], int], raw: bytes, repeat: int, previous: float | None
) -> float | None:
    """`best_of`, or math.inf (not timed) once the previous size took SLOW_SECONDS or more."""
    if previous is not None and previous >= SLOW_SECONDS:
        return math.inf
    return best_of(fn, raw, repeat)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    default = SHARED_SAMPLES if SHARED_SAMPLES.is_dir() else REPO / "tests" / "corpus"
    parser.add_argument("--samples", type=Path, default=default, help=f"mail folder (default {default})")
    parser.add_argument("--repeat", type=int, default=None, help="rounds; the best one counts (default 7, 3 adversarial)")
    parser.add_argument("--adversarial", action="store_true", help="hostile mail at doubling sizes instead")
    parser.add_argument(
        "--sizes", default=",".join(map(str, ADVERSARIAL_SIZES_KB)), help="adversarial sizes in kB, comma-separated"
    )
    parser.add_argument("--family", default="", help="only the adversarial families whose name holds this")
    args = parser.parse_args(argv)
    if args.adversarial:
        sizes = [int(size) for size in args.sizes.split(",")]
        return adversarial(sizes, args.family, args.repeat or 3)
    args.repeat = args.repeat or 7
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
