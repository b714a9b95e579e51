#!/usr/bin/env python3
"""End-to-end IMAP ingestion: Dovecot on loopback -> `triage poll --once` -> SQLite.

It appends N realistic mails (plain text, multipart/alternative, attachments, non-UTF-8
charsets) to a throwaway Dovecot (the test suite's fixture), then measures, each in a
child process so peak RSS is measured alike:

Throughput is timed inside each child, from the first SELECT to the last commit, so
interpreter start-up and imports are not counted; the `triage poll --once` command is also
timed whole, as cron runs it.

* the raw limit: fetch the same mails with imapclient (BODY.PEEK[], same batch size) and
  parse each with the bare standard library (compat32, walk, decode text parts), storing
  nothing;
* `triage poll --once` into a fresh SQLite file, parsing inline (parse_workers = 0) and in
  a pool of two processes (parse_workers = 2);
* each kind best of --rounds interleaved rounds, after one untimed raw pass that lets
  Dovecot build its caches (else whichever kind runs first pays for them);
* peak memory of triage at N/5 and at N mails, to show it stays flat in the mail count.

    python bench/bench_imap.py [--messages 5000] [--batch-size 200]

Needs the dovecot binary (run `.ci/install-system-packages` as root).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from datetime import UTC

from bench_ingest import synthetic_mail

from tests.servers.dovecot import Dovecot

RAW_LIMIT = r"""
import email, sys, time
from email import policy
from imapclient import IMAPClient
host, port, user, password, folder, batch = sys.argv[1:7]
client = IMAPClient(host, port=int(port), ssl=False)
client.login(user, password)
started = time.perf_counter()
client.select_folder(folder, readonly=True)
uids = sorted(client.search(["ALL"]))
n = 0
for start in range(0, len(uids), int(batch)):
    chunk = uids[start:start + int(batch)]
    for uid, data in client.fetch(chunk, ["BODY.PEEK[]"]).items():
        msg = email.message_from_bytes(data[b"BODY[]"], policy=policy.compat32)
        for part in msg.walk():
            if part.get_content_maintype() == "text":
                payload = part.get_payload(decode=True) or b""
                try:
                    payload.decode(part.get_content_charset() or "utf-8", "replace")
                except LookupError:
                    payload.decode("latin-1")
        n += 1
import resource
print(time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
client.logout()
assert n == len(uids), (n, len(uids))
"""

TRIAGE_PASS = r"""
import time
from triage.bootstrap import bootstrap
from triage.config import load_settings
from triage.logging import configure_logging
from triage.runners.poll import PollRunner
settings = load_settings()
configure_logging(settings.log)
app = bootstrap(settings)
runner = PollRunner(settings.imap, app.ingestor())
started = time.perf_counter()
runner.run(once=True)
import resource
print(time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
assert runner.last_pass[0].quarantined == 0, runner.last_pass
"""


def child(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float, float]:
    """Seconds of the measured pass (the child prints them), wall seconds with start-up, peak RSS (MB)."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate()
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{argv[:4]} failed:\n{err.decode()[-2000:]}")
    seconds, rss_kb = out.decode().split()[-2:]
    return float(seconds), elapsed, int(rss_kb) / 1024


def fill(server: Dovecot, folder: str, count: int) -> None:
    import random
    from datetime import datetime

    rng = random.Random(7)
    senders = [f"v{n}@volunteers{n % 7}.example" for n in range(400)]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    if folder != "INBOX":
        server.create_folder(folder)
    with server.client() as imap:
        for i in range(count):
            imap.append(folder, synthetic_mail(rng, i, start, senders))


def triage_env(server: Dovecot, folder: str, database: Path, batch: int, workers: int | str = "auto") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIAGE_")}
    env.update({
        "TRIAGE_CONFIG": "", "TRIAGE_LOG_LEVEL": "warning", "TRIAGE_DATABASE_URL": f"sqlite:///{database}",
        "TRIAGE_IMAP_HOST": server.host, "TRIAGE_IMAP_PORT": str(server.port), "TRIAGE_IMAP_SECURITY": "none",
        "TRIAGE_IMAP_USER": server.user, "TRIAGE_IMAP_PASSWORD": server.password, "TRIAGE_IMAP_FOLDER": folder,
        "TRIAGE_IMAP_START": "all", "TRIAGE_IMAP_MARK": "seen", "TRIAGE_IMAP_BATCH_SIZE": str(batch),
        "TRIAGE_IMAP_PARSE_WORKERS": str(workers), "PYTHONPATH": str(ROOT),
    })
    return env


def poll(server: Dovecot, folder: str, workdir: Path, batch: int, workers: int, tag: str) -> tuple[float, float, float]:
    env = triage_env(server, folder, workdir / f"{tag}.db", batch, workers)
    # The schema is created before timing, as on a running desk.
    subprocess.run([sys.executable, "-m", "triage", "db", "upgrade"], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return child([sys.executable, "-c", TRIAGE_PASS], env=env)


def command_seconds(server: Dovecot, folder: str, workdir: Path, batch: int) -> float:
    """`triage poll --once` as cron runs it, on the default settings (parse_workers = auto):
    interpreter start-up and imports included."""
    env = triage_env(server, folder, workdir / "cmd.db", batch)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "triage", "poll", "--once"], env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the best of each kind counts")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    n, small = args.messages, max(1, args.messages // 5)
    with Dovecot() as server, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        fill(server, "INBOX", n)
        fill(server, "Small", small)
        raw_argv = [sys.executable, "-c", RAW_LIMIT, server.host, str(server.port), server.user,
                    server.password, "INBOX", str(args.batch_size)]
        child(raw_argv)  # untimed: Dovecot's first read of fresh mail builds its caches
        runs: dict[str, list[tuple[float, float]]] = {"raw": [], "inline": [], "pool": []}
        for r in range(args.rounds):  # interleaved, so machine noise hits every kind alike
            seconds, _, rss = child(raw_argv)
            runs["raw"].append((seconds, rss))
            seconds, _, rss = poll(server, "INBOX", work, args.batch_size, 0, f"inline{r}")
            runs["inline"].append((seconds, rss))
            seconds, _, rss = poll(server, "INBOX", work, args.batch_size, 2, f"pool{r}")
            runs["pool"].append((seconds, rss))
        (raw_t, raw_rss), (inline_t, inline_rss), (pool_t, pool_rss) = (
            min(runs[kind]) for kind in ("raw", "inline", "pool"))
        _, _, small_rss = poll(server, "Small", work, args.batch_size, 0, "small")
        cmd_t = command_seconds(server, "INBOX", work, args.batch_size)
    figures = {
        "messages": n, "rounds": args.rounds,
        "raw_limit_msgs_per_s": round(n / raw_t, 1),
        "triage_inline_msgs_per_s": round(n / inline_t, 1),
        "triage_pool2_msgs_per_s": round(n / pool_t, 1),
        "ratio_inline": round(raw_t / inline_t, 3),
        "ratio_pool2": round(raw_t / pool_t, 3),
        "pool_speedup": round(inline_t / pool_t, 2),
        "poll_once_command_msgs_per_s": round(n / cmd_t, 1),
        "peak_rss_mb": {"raw_limit": round(raw_rss, 1), f"triage_{small}": round(small_rss, 1),
                        f"triage_{n}": round(inline_rss, 1), f"triage_{n}_pool2_parent": round(pool_rss, 1)},
    }
    if args.json:
        print(json.dumps(figures))
        return
    print(f"{n} mails on Dovecot (loopback), batch {args.batch_size}, best of {args.rounds} interleaved rounds")
    print(f"raw limit (imapclient fetch + stdlib parse): {figures['raw_limit_msgs_per_s']:8.1f} msg/s")
    print(f"triage poll --once, parse inline:            {figures['triage_inline_msgs_per_s']:8.1f} msg/s"
          f"  ratio {figures['ratio_inline']:.3f}")
    print(f"triage poll --once, parse pool of 2:         {figures['triage_pool2_msgs_per_s']:8.1f} msg/s"
          f"  ratio {figures['ratio_pool2']:.3f}  (x{figures['pool_speedup']} over inline)")
    print(f"`triage poll --once` command, start-up included: {figures['poll_once_command_msgs_per_s']:8.1f} msg/s")
    print(f"peak RSS MB: {figures['peak_rss_mb']}")


if __name__ == "__main__":
    main()
