#!/usr/bin/env python3
"""Peak memory of `triage poll --once` and `triage ingest` on mailboxes holding 50 MB mails.

Each figure is the peak RSS (VmHWM) of one child process, read by the child itself as it exits
(the parent's own peak would leak into a child's rusage through fork and exec), all measured in
the same run against two baselines:

* trivial pass: the same command over a mailbox of small mail only (what triage costs at all:
  the interpreter, its imports, the database);
* raw fetch: imapclient logging in and fetching each big mail whole (BODY.PEEK[]), one at a
  time, doing nothing with it (the least any IMAP client holding the mail must pay).

Two mailboxes: `Small` (small mails) and `Big` (the same small mails plus N text mails of M MB).
`Big` is read with the default `mail.max_size_bytes` (25 MiB: the big mails are oversize and
refused unread) and with the limit raised above them (fetched, parsed and stored whole, one at a
time). The same mails are also written as a folder of .eml files for `triage ingest`.

    python bench/bench_memory.py [--mail-mb 50] [--big 2] [--code DIR] [--json]

`--code DIR` runs triage from another checkout (for example an older commit unpacked with
`git archive`) to compare before and after in one run. Needs the dovecot binary.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.servers.dovecot import Dovecot

SMALL = 20

HWM = r"""
import atexit
def _hwm():
    with open("/proc/self/status") as status:
        kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    with open(__import__("os").environ["BENCH_HWM_FILE"], "w") as out:
        out.write(str(kb))
atexit.register(_hwm)
"""

TRIAGE = HWM + r"""
import runpy, sys
sys.argv = ["triage", *sys.argv[1:]]
runpy.run_module("triage", run_name="__main__", alter_sys=True)
"""

RAW_FETCH = HWM + r"""
import sys
from imapclient import IMAPClient
host, port, user, password, folder = sys.argv[1:6]
client = IMAPClient(host, port=int(port), ssl=False)
client.login(user, password)
client.select_folder(folder, readonly=True)
sizes = client.fetch(client.search(["ALL"]), ["RFC822.SIZE"])
total = 0
for uid, data in sizes.items():
    if data[b"RFC822.SIZE"] > 1_000_000:
        total += len(client.fetch([uid], ["BODY.PEEK[]"])[uid][b"BODY[]"])
client.logout()
print(total)
"""


def text_mail(i: int, megabytes: int) -> bytes:
    """A plain-text mail of about `megabytes` MB, the worst kind for the parser (issue 11: 24 MB -> 678 MB)."""
    msg = EmailMessage()
    msg["From"] = f"Volunteer {i} <v{i}@volunteers.example>"
    msg["To"] = "liaison@example.org"
    msg["Subject"] = f"Minutes of the assembly, all of them ({i})"
    msg["Date"] = format_datetime(datetime(2026, 11, 2, 8, 30, tzinfo=UTC))
    msg["Message-ID"] = make_msgid(domain="volunteers.example")
    line = "The assembly agreed that the banner stays in the hall until spring. "
    msg.set_content((line + "\n") * (megabytes * 1_000_000 // (len(line) + 1)), cte="7bit")
    return msg.as_bytes()


def small_mail(i: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"v{i}@volunteers.example"
    msg["To"] = "liaison@example.org"
    msg["Subject"] = f"Question {i}"
    msg["Message-ID"] = make_msgid(domain="volunteers.example")
    msg.set_content(f"Hello,\n\nmay we use the logo? ({i})\n")
    return msg.as_bytes()


def measured(argv: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Peak RSS in MB of the child, wall seconds, its stdout."""
    with tempfile.NamedTemporaryFile(suffix=".hwm") as hwm:
        started = time.perf_counter()
        done = subprocess.run(argv, env={**env, "BENCH_HWM_FILE": hwm.name}, capture_output=True, check=False,
                              cwd=tempfile.gettempdir())  # not the checkout: `-c` puts the cwd first on sys.path
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"{argv[:5]} failed ({done.returncode}):\n{done.stderr.decode()[-3000:]}")
        return int(Path(hwm.name).read_text()) / 1024, elapsed, done.stdout.decode()


def triage_env(server: Dovecot, code: Path, database: Path, folder: str, limit: int | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIAGE_")}
    env.update({
        "TRIAGE_CONFIG": "", "TRIAGE_LOG_LEVEL": "error", "TRIAGE_DATABASE_URL": f"sqlite:///{database}",
        "TRIAGE_IMAP_HOST": server.host, "TRIAGE_IMAP_PORT": str(server.port), "TRIAGE_IMAP_SECURITY": "none",
        "TRIAGE_IMAP_USER": server.user, "TRIAGE_IMAP_PASSWORD": server.password, "TRIAGE_IMAP_FOLDER": folder,
        "TRIAGE_IMAP_START": "all", "TRIAGE_IMAP_MARK": "none", "PYTHONPATH": str(code),
    })
    if limit is not None:
        env["TRIAGE_MAIL_MAX_SIZE_BYTES"] = str(limit)
    return env


def triage(args: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    subprocess.run([sys.executable, "-m", "triage", "db", "upgrade"], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tempfile.gettempdir())
    return measured([sys.executable, "-c", TRIAGE, *args], env)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--mail-mb", type=int, default=50, help="size of each big mail in MB")
    parser.add_argument("--big", type=int, default=2, help="how many big mails")
    parser.add_argument("--code", type=Path, default=ROOT, help="checkout of triage to measure")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    raised = (args.mail_mb + 10) * 1024 * 1024
    bigs = [text_mail(i, args.mail_mb) for i in range(args.big)]
    smalls = [small_mail(i) for i in range(SMALL)]
    rss: dict[str, float] = {}
    seconds: dict[str, float] = {}
    with Dovecot() as server, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server.create_folder("Small")
        server.create_folder("Big")
        with server.client() as imap:
            for raw in smalls:
                imap.append("Small", raw)
                imap.append("Big", raw)
            for raw in bigs:
                imap.append("Big", raw)
        for name, mails in (("small", smalls), ("big", smalls + bigs)):
            (work / name).mkdir()
            for i, raw in enumerate(mails):
                (work / name / f"{i:03d}.eml").write_bytes(raw)

        def run(key: str, out: tuple[float, float, str]) -> str:
            rss[key], seconds[key] = round(out[0], 1), round(out[1], 2)
            return out[2]

        raw_argv = [sys.executable, "-c", RAW_FETCH, server.host, str(server.port), server.user, server.password]
        measured(raw_argv + ["Big"], dict(os.environ))  # untimed: Dovecot reads the fresh mail once
        fetched = int(run("raw_fetch_big", measured(raw_argv + ["Big"], dict(os.environ))))
        assert fetched >= args.big * args.mail_mb * 1_000_000, fetched
        code = args.code.resolve()
        run("poll_small", triage(["poll", "--once"], triage_env(server, code, work / "a.db", "Small", None)))
        run("poll_big_default_limit", triage(["poll", "--once"], triage_env(server, code, work / "b.db", "Big", None)))
        run("poll_big_raised_limit", triage(["poll", "--once"], triage_env(server, code, work / "c.db", "Big", raised)))
        run("ingest_small", triage(["ingest", str(work / "small")], triage_env(server, code, work / "d.db", "", None)))
        run("ingest_big_default_limit",
            triage(["ingest", str(work / "big")], triage_env(server, code, work / "e.db", "", None)))
        run("ingest_big_raised_limit",
            triage(["ingest", str(work / "big")], triage_env(server, code, work / "f.db", "", raised)))
    mail_mb = len(bigs[0]) / 1e6
    figures = {
        "code": str(args.code), "big_mails": args.big, "big_mail_mb": round(mail_mb, 1),
        "raised_limit_mib": raised // 1024 // 1024, "peak_rss_mb": rss, "seconds": seconds,
        "ratios": {
            "poll_default_over_trivial": round(rss["poll_big_default_limit"] / rss["poll_small"], 2),
            "ingest_default_over_trivial": round(rss["ingest_big_default_limit"] / rss["ingest_small"], 2),
            "poll_raised_over_raw_fetch": round(rss["poll_big_raised_limit"] / rss["raw_fetch_big"], 2),
            "poll_raised_extra_per_mail_mb":
                round((rss["poll_big_raised_limit"] - rss["poll_small"]) / mail_mb, 1),
            "ingest_raised_extra_per_mail_mb":
                round((rss["ingest_big_raised_limit"] - rss["ingest_small"]) / mail_mb, 1),
        },
    }
    if args.json:
        print(json.dumps(figures))
        return
    print(f"{args.big} text mails of {mail_mb:.1f} MB among {SMALL} small ones; code: {args.code}")
    print(f"{'pass':32} {'peak RSS MB':>12} {'seconds':>8}")
    for key, value in rss.items():
        print(f"{key:32} {value:12.1f} {seconds[key]:8.2f}")
    for key, value in figures["ratios"].items():  # type: ignore[attr-defined]
        print(f"{key:38} {value}")


if __name__ == "__main__":
    main()
