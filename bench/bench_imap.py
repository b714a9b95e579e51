#!/usr/bin/env python3
"""End-to-end IMAP ingestion: Dovecot on loopback -> `triage poll --once` -> SQLite.

It appends N realistic mails (plain text, multipart/alternative, attachments, non-UTF-8
charsets) to a throwaway Dovecot (the test suite's fixture), then measures, each in a
child process so peak RSS is measured alike:

* the raw limit: fetch the same mails with imapclient (BODY.PEEK[], same batch size) and
  parse each with the bare standard library (compat32, walk, decode text parts), storing
  nothing;
* `triage poll --once` into a fresh SQLite file, parsing inline (parse_workers = 0) and in
  a pool of two processes (parse_workers = 2);
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

from bench_ingest import synthetic_mail  # noqa: E402

from tests.servers.dovecot import Dovecot  # noqa: E402

RAW_LIMIT = r"""
import email, sys
from email import policy
from imapclient import IMAPClient
host, port, user, password, folder, batch = sys.argv[1:7]
client = IMAPClient(host, port=int(port), ssl=False)
client.login(user, password)
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
client.logout()
assert n == len(uids), (n, len(uids))
"""


def child(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one child process."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv[:4]} failed:\n{stderr[-2000:]}")
    return elapsed, usage.ru_maxrss / 1024


def fill(server: Dovecot, folder: str, count: int) -> None:
    import random
    from datetime import datetime, timezone

    rng = random.Random(7)
    senders = [f"v{n}@volunteers{n % 7}.example" for n in range(400)]
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    if folder != "INBOX":
        server.create_folder(folder)
    with server.client() as imap:
        for i in range(count):
            imap.append(folder, synthetic_mail(rng, i, start, senders))


def poll(server: Dovecot, folder: str, workdir: Path, batch: int, workers: int, tag: str) -> tuple[float, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIAGE_")}
    env.update({
        "TRIAGE_CONFIG": "", "TRIAGE_LOG_LEVEL": "warning",
        "TRIAGE_DATABASE_URL": f"sqlite:///{workdir / f'{tag}.db'}",
        "TRIAGE_IMAP_HOST": server.host, "TRIAGE_IMAP_PORT": str(server.port), "TRIAGE_IMAP_SECURITY": "none",
        "TRIAGE_IMAP_USER": server.user, "TRIAGE_IMAP_PASSWORD": server.password, "TRIAGE_IMAP_FOLDER": folder,
        "TRIAGE_IMAP_START": "all", "TRIAGE_IMAP_MARK": "none", "TRIAGE_IMAP_BATCH_SIZE": str(batch),
        "TRIAGE_IMAP_PARSE_WORKERS": str(workers), "PYTHONPATH": str(ROOT),
    })
    # The schema is created before timing, as on a running desk.
    subprocess.run([sys.executable, "-m", "triage", "db", "upgrade"], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return child([sys.executable, "-m", "triage", "poll", "--once"], env=env)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    n, small = args.messages, max(1, args.messages // 5)
    with Dovecot() as server, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        fill(server, "INBOX", n)
        fill(server, "Small", small)
        raw_t, raw_rss = child([sys.executable, "-c", RAW_LIMIT, server.host, str(server.port), server.user,
                                server.password, "INBOX", str(args.batch_size)])
        inline_t, inline_rss = poll(server, "INBOX", work, args.batch_size, 0, "inline")
        pool_t, pool_rss = poll(server, "INBOX", work, args.batch_size, 2, "pool")
        _, small_rss = poll(server, "Small", work, args.batch_size, 0, "small")
    figures = {
        "messages": n,
        "raw_limit_msgs_per_s": round(n / raw_t, 1),
        "triage_inline_msgs_per_s": round(n / inline_t, 1),
        "triage_pool2_msgs_per_s": round(n / pool_t, 1),
        "ratio_inline": round(raw_t / inline_t, 3),
        "ratio_pool2": round(raw_t / pool_t, 3),
        "pool_speedup": round(inline_t / pool_t, 2),
        "peak_rss_mb": {"raw_limit": round(raw_rss, 1), f"triage_{small}": round(small_rss, 1),
                        f"triage_{n}": round(inline_rss, 1), f"triage_{n}_pool2_parent": round(pool_rss, 1)},
    }
    if args.json:
        print(json.dumps(figures))
        return
    print(f"{n} mails on Dovecot (loopback), batch {args.batch_size}")
    print(f"raw limit (imapclient fetch + stdlib parse): {figures['raw_limit_msgs_per_s']:8.1f} msg/s")
    print(f"triage poll --once, parse inline:            {figures['triage_inline_msgs_per_s']:8.1f} msg/s"
          f"  ratio {figures['ratio_inline']:.3f}")
    print(f"triage poll --once, parse pool of 2:         {figures['triage_pool2_msgs_per_s']:8.1f} msg/s"
          f"  ratio {figures['ratio_pool2']:.3f}  (x{figures['pool_speedup']} over inline)")
    print(f"peak RSS MB: {figures['peak_rss_mb']}")


if __name__ == "__main__":
    main()
