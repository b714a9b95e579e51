#!/usr/bin/env python3
"""`triage ingest` of a 10,000-message mbox into SQLite: messages/s and peak memory.

In the same run it measures a baseline: the same mbox read with the standard library,
each mail parsed with `email.message_from_bytes` (compat32) and its raw bytes inserted
into an SQLite table (WAL, one transaction per mail, as triage does). The ratio is
triage's throughput over the baseline's; both run as child processes so their peak RSS
is measured the same way.

    python bench/bench_ingest.py [--messages 10000] [--samples DIR]
"""

from __future__ import annotations

import argparse
import json
import mailbox
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BASELINE = r"""
import email, mailbox, sqlite3, sys
from email import policy
db = sqlite3.connect(sys.argv[2], isolation_level=None)
db.execute("PRAGMA journal_mode=WAL"); db.execute("PRAGMA synchronous=NORMAL")
db.execute("CREATE TABLE raw (id INTEGER PRIMARY KEY, subject TEXT, data BLOB)")
box = mailbox.mbox(sys.argv[1], factory=None, create=False)
for key in box.keys():
    raw = box.get_bytes(key)
    msg = email.message_from_bytes(raw, policy=policy.compat32)
    for part in msg.walk():
        if part.get_content_maintype() == "text":
            payload = part.get_payload(decode=True) or b""
            try:
                payload.decode(part.get_content_charset() or "utf-8", "replace")
            except LookupError:
                payload.decode("latin-1")
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO raw (subject, data) VALUES (?, ?)", (str(msg["subject"]), raw))
    db.execute("COMMIT")
"""

WORDS = ["volunteer", "chapter", "logo", "banner", "grant", "report", "venue", "travel", "scholarship", "trademark", "press", "interview", "donation", "receipt", "board", "election", "bylaws", "account", "password", "outage", "privacy", "request", "deletion", "meetup", "conference", "budget", "translation", "community", "resources", "harassment", "policy", "license", "copyright"]


def synthetic_mail(rng: random.Random, i: int, start: datetime, senders: list[str]) -> bytes:
    """A realistic mix: plain text, multipart/alternative, attachments, non-UTF-8 charsets, replies."""
    msg = EmailMessage()
    sender = rng.choice(senders)
    msg["From"] = f"Volunteer {sender.split('@')[0].title()} <{sender}>"
    msg["To"] = "liaison@example.org"
    msg["Subject"] = " ".join(rng.choices(WORDS, k=rng.randint(3, 8))).capitalize()
    msg["Date"] = format_datetime(start + timedelta(minutes=i))
    msg["Message-ID"] = make_msgid(idstring=str(i), domain="bench.example")
    body = "\n\n".join(
        " ".join(rng.choices(WORDS, k=rng.randint(20, 60))).capitalize() + "."
        for _ in range(rng.randint(1, 5))
    )
    kind = i % 10
    if kind in (0, 1):
        msg.set_content(body + "\nMerci beaucoup, à bientôt - Zoë", charset="iso-8859-1")
    elif kind in (2, 3, 4):
        msg.set_content(body)
        msg.add_alternative(f"<html><body><p>{body}</p></body></html>", subtype="html")
    elif kind == 5:
        msg.set_content(body)
        msg.add_attachment(os.urandom(rng.randint(2_000, 40_000)), maintype="application", subtype="pdf",
                           filename=f"report-{i}.pdf")
    else:
        msg.set_content(body + "\n\n> earlier question quoted here\n> second line\n\n-- \nA volunteer\n")
    return msg.as_bytes()


def build_mbox(path: Path, count: int, samples: Path | None) -> None:
    rng = random.Random(42)
    senders = [f"v{n}@volunteers{n % 7}.example" for n in range(400)]
    real = sorted(p for p in samples.rglob("*") if p.is_file()) if samples else []
    start = datetime(2026, 1, 1, tzinfo=UTC)
    box = mailbox.mbox(path, create=True)
    box.lock()
    try:
        for i in range(count):
            if real and i % 20 == 0:  # one in twenty is a real-world sample (bounces, odd charsets)
                box.add(real[(i // 20) % len(real)].read_bytes())
            else:
                box.add(synthetic_mail(rng, i, start, senders))
    finally:
        box.flush()
        box.unlock()
        box.close()


def run_child(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, int]:
    """Wall time and peak RSS (KiB) of one child process."""
    started = time.perf_counter()
    child = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)
    _pid, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{argv[:4]} failed with status {child.returncode}")
    return elapsed, usage.ru_maxrss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--samples", type=Path, default=None,
                        help="a folder of real mails to mix in (e.g. ../shared/mail-samples)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        mbox = work / "bench.mbox"
        build_mbox(mbox, args.messages, args.samples)
        size_mb = mbox.stat().st_size / 1e6
        base_time, base_rss = run_child([sys.executable, "-c", BASELINE, str(mbox), str(work / "base.db")])
        env = {**os.environ, "TRIAGE_DATABASE_URL": f"sqlite:///{work / 'triage.db'}", "TRIAGE_CONFIG": "",
               "TRIAGE_LOG_LEVEL": "warning"}
        triage_time, triage_rss = run_child([sys.executable, "-m", "triage", "ingest", str(mbox)], env=env)
    figures = {
        "messages": args.messages,
        "mbox_mb": round(size_mb, 1),
        "triage_msgs_per_s": round(args.messages / triage_time, 1),
        "triage_peak_rss_mb": round(triage_rss / 1024, 1),
        "baseline_msgs_per_s": round(args.messages / base_time, 1),
        "baseline_peak_rss_mb": round(base_rss / 1024, 1),
        "ratio": round(base_time / triage_time, 3),
    }
    if args.json:
        print(json.dumps(figures))
        return
    print(f"mbox: {args.messages} messages, {size_mb:.1f} MB")
    print(f"baseline (stdlib parse + raw insert): {figures['baseline_msgs_per_s']:8.1f} msg/s")
    print(f"triage ingest:                        {figures['triage_msgs_per_s']:8.1f} msg/s, "
          f"peak RSS {figures['triage_peak_rss_mb']} MB")
    print(f"ratio triage/baseline: {figures['ratio']:.3f}")


if __name__ == "__main__":
    main()
