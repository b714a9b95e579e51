"""How well does `parse_mail` tell normal mail, automatic replies and bounces apart?

Reads folders of real mail sorted by what they are (`normal/`, `malformed/`, `bounce/`,
`autoreply/`, as in ../shared/mail-samples and tests/corpus) and, optionally, mbox files of
mail that people wrote (e.g. the Enron folders under ../shared/datasets). Prints, per folder,
how many messages got each kind, the recall of the folder's own kind, and the false-positive
rates that matter most: person-written mail read as an automatic reply (it gets no
acknowledgment and may be hidden) or as a bounce. Deterministic, so no baseline run is needed;
to compare with another checkout, run this file with that checkout first on PYTHONPATH.

    python bench/bench_kinds.py [--samples DIR ...] [--mbox FILE_OR_DIR ...] [--show]
"""

from __future__ import annotations

import argparse
import mailbox
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from triage.ingest.parse import parse_mail
from triage.ingest.parsed import NotAMailError

REPO = Path(__file__).resolve().parent.parent
SHARED_SAMPLES = REPO.parent / "shared" / "mail-samples"
KINDS = ("normal", "autoreply", "bounce")
EXPECTED = {"normal": "normal", "malformed": "normal", "bounce": "bounce", "autoreply": "autoreply"}


def sorted_mail(root: Path) -> Iterator[tuple[str, str, bytes]]:
    """(folder, file name, raw bytes) of every mail in the kind folders under `root`."""
    for folder in EXPECTED:
        for path in sorted((root / folder).glob("*")):
            if path.is_file() and path.suffix != ".md":
                yield folder, path.name, path.read_bytes()


def person_mail(source: Path) -> Iterator[tuple[str, str, bytes]]:
    """('person', label, raw bytes) of every message in an mbox file, or in the mbox files under a folder."""
    files = sorted(source.rglob("*.mbox")) if source.is_dir() else [source]
    for file in files:
        box = mailbox.mbox(file, create=False)
        for key in box.iterkeys():
            yield "person", f"{file.name}#{key}", box.get_bytes(key)


def kind_of(raw: bytes) -> tuple[str, str | None]:
    try:
        mail = parse_mail(raw)
    except NotAMailError:
        return "not-a-mail", None
    return mail.kind, mail.kind_reason


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--samples", type=Path, nargs="*", help="folders with normal/ malformed/ bounce/ autoreply/"
    )
    parser.add_argument(
        "--mbox", type=Path, nargs="*", default=[], help="mbox files (or folders of them) of person mail"
    )
    parser.add_argument("--show", action="store_true", help="list every message read as another kind")
    args = parser.parse_args()
    roots = args.samples or [SHARED_SAMPLES if SHARED_SAMPLES.is_dir() else REPO / "tests" / "corpus"]
    for root in roots:
        if not root.is_dir():
            print(f"bench_kinds: no folder {root}", file=sys.stderr)
            return 2
    counts: dict[str, Counter[str]] = {}
    misses: list[str] = []
    sources = [m for root in roots for m in sorted_mail(root)] + [
        m for s in args.mbox for m in person_mail(s)
    ]
    for folder, name, raw in sources:
        kind, reason = kind_of(raw)
        counts.setdefault(folder, Counter())[kind] += 1
        if kind != EXPECTED.get(folder, "normal"):
            misses.append(f"  {folder}/{name}: {kind} ({reason})")
    print(
        f"corpus     {', '.join(str(r) for r in roots)}"
        + (f" + mbox {', '.join(map(str, args.mbox))}" if args.mbox else "")
    )
    print(f"{'folder':10} {'mails':>6} " + " ".join(f"{k:>9}" for k in KINDS) + "   recall")
    for folder, tally in counts.items():
        total = sum(tally.values())
        expected = EXPECTED.get(folder, "normal")
        print(
            f"{folder:10} {total:6d} "
            + " ".join(f"{tally[k]:9d}" for k in KINDS)
            + f"   {tally[expected] / total:6.1%} {expected}"
        )
    person = [counts[f] for f in ("normal", "malformed", "person") if f in counts]
    total = sum(sum(t.values()) for t in person)
    if total:
        auto = sum(t["autoreply"] for t in person)
        bounce = sum(t["bounce"] for t in person)
        print(
            f"person mail read as autoreply: {auto}/{total} ({auto / total:.2%}); as bounce: {bounce}/{total} ({bounce / total:.2%})"
        )
    if args.show and misses:
        print("read as another kind:")
        print("\n".join(misses))
    return 0


if __name__ == "__main__":
    sys.exit(main())
