#!/usr/bin/env python3
"""Many workers on one PostgreSQL database: IMAP drain and outbox delivery by 1, 2, 4 processes.

Poll: four IMAP accounts on one throwaway Dovecot (the test suite's fixture), `--mails-per-box`
varied mails each (bench_ingest's synthetic mix: plain, multipart/alternative, attachments,
ISO-8859-1, replies; with `--samples DIR` every tenth mail is a real sample from DIR), drained
into a fresh PostgreSQL schema by K `python -m triage.worker` processes, each configured with all
four accounts, started together: the leases (`imap:<account>/INBOX`) decide who reads what.
Poll role only: routing (no teams file), reminders and digests off, acknowledgments off (the
default, `outbox.auto_acknowledge = false`), no SMTP; parse inline (`--parse-workers 0`) so
that K is the number of processes doing the work.

Send: `--outbox-mails` mails queued (pending) in a fresh schema, delivered through one aiosmtpd
sink (tests/servers/smtp_sink.py, in its own process) by K worker processes with only
`smtp.host` set.

Timed from the launch of the workers (start-up included) to the last ledger row (poll) or the
last `sent` row (send), read every 0.2 s; "steady" excludes the start-up, from the first row.
CPU seconds per group come from /proc/<pid>/stat (utime+stime, children reaped included):
the worker processes, Dovecot (master and all its children), the PostgreSQL backends of the
workers' connections (found by application_name; the server's shared WAL writer and
checkpointer are not counted), and the sink process. The same-run baselines: the single
worker (every ratio is against it) and, for context, one imapclient connection fetching the
four mailboxes whole (BODY.PEEK[], same batch size) without parsing or storing.

Each worker's log says which mailboxes it leased and fetched (`lease.acquired`, `imap.pass`);
a mailbox may change hands while the shares even out (`triage.coordination.share`), but the run
fails if a mail was fetched twice, or if the sink got a Message-ID twice. Senders: 400 per
mailbox, or with `--shared-senders` one pool for all four (contention on the contacts' rows).

    python bench/bench_workers.py [--mails-per-box 5000] [--workers 1,2,4] [--pg URL] [--quick]

Needs the dovecot binary (`.ci/install-system-packages`, as root) and PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import psycopg
from bench_ingest import WORDS, synthetic_mail
from sqlalchemy.engine import make_url

from tests.servers import json_log_events
from tests.servers.dovecot import Dovecot

DEFAULT_PG = os.environ.get("TRIAGE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BOXES = ("box1", "box2", "box3", "box4")
BATCH = 200
CLOCK_TICK = os.sysconf("SC_CLK_TCK")

SINK = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from tests.servers.smtp_sink import SmtpSink
sink = SmtpSink()
sink.start()
print(sink.port, flush=True)
sys.stdin.readline()  # the bench closes stdin when it is done
ids = sink.message_ids()
print(json.dumps({"received": len(ids), "distinct": len(set(ids))}), flush=True)
sink.stop()
"""


# -- CPU accounting ---------------------------------------------------------------------------


def _stat(pid: int) -> tuple[int, float] | None:
    """(ppid, CPU seconds of the process and of its reaped children), or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    ticks = sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return int(fields[1]), ticks / CLOCK_TICK


def tree_cpu(root: int) -> float:
    """CPU seconds of `root` and every live descendant (each includes the children it reaped)."""
    stats = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None:
                stats[int(entry.name)] = stat
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            total += stats[pid][1]
            todo += children.get(pid, [])
    return total


class CpuSampler:
    """Samples the groups' CPU every `every` seconds in a thread; `snapshot()` reads them now.

    Process trees (workers, Dovecot, the sink) are cumulative, so the last sample is what they
    used; PostgreSQL backends die with their connection, so each backend's highest reading counts.
    """

    def __init__(self, pg_dsn: str, app_name: str, trees: dict[str, list[int]], every: float = 0.5) -> None:
        self.pg_dsn, self.app_name, self.trees, self.every = pg_dsn, app_name, trees, every
        self.start = {group: sum(tree_cpu(p) for p in pids) for group, pids in trees.items()}
        self.backends: dict[int, float] = {}
        self.latest = dict(self.start)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _backend_pids(self, conn: psycopg.Connection) -> list[int]:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s", (self.app_name,))
        return [int(r[0]) for r in rows]

    def sample(self, conn: psycopg.Connection) -> None:
        trees = {group: sum(tree_cpu(p) for p in pids) for group, pids in self.trees.items()}
        backends = {pid: cpu for pid in self._backend_pids(conn) if (stat := _stat(pid)) and (cpu := stat[1])}
        with self._lock:
            for group, cpu in trees.items():
                self.latest[group] = max(self.latest[group], cpu)
            for pid, cpu in backends.items():
                self.backends[pid] = max(self.backends.get(pid, 0.0), cpu)

    def _run(self) -> None:
        with psycopg.connect(self.pg_dsn, autocommit=True, application_name="benchw-sampler") as conn:
            while not self._stop.wait(self.every):
                self.sample(conn)

    def snapshot(self) -> dict[str, float]:
        """CPU seconds per group since the sampler started; call `sample` first for a fresh reading."""
        with self._lock:
            used = {group: self.latest[group] - self.start[group] for group in self.trees}
            used["postgres"] = sum(self.backends.values())
        return used

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


# -- PostgreSQL -------------------------------------------------------------------------------


def libpq_dsn(url: str) -> str:
    """The SQLAlchemy URL as a libpq URI for psycopg."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def fresh_schema(pg_url: str, tag: str) -> Iterator[tuple[str, str]]:
    """A new schema, dropped afterwards: (URL whose connections use it and carry application_name
    `tag`, schema name)."""
    schema = f"benchw_{uuid.uuid4().hex[:10]}"
    admin = libpq_dsn(pg_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = make_url(pg_url).update_query_dict({"options": f"-csearch_path={schema}", "application_name": tag})
    try:
        yield url.render_as_string(hide_password=False), schema
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def count_rows(conn: psycopg.Connection, sql: str) -> int:
    row = conn.execute(sql).fetchone()
    return int(row[0]) if row else 0


# -- mail ----------------------------------------------------------------------------------------


def sample_mails(folder: str | None) -> list[bytes]:
    if not folder:
        return []
    paths = sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix != ".md")
    return [p.read_bytes() for p in paths if p.stat().st_size < 2_000_000]


def box_mails(box: int, count: int, samples: list[bytes], *, shared_senders: bool = False) -> Iterator[bytes]:
    """`count` varied mails for mailbox number `box` (its own seed), from 400 senders of its own
    (info@ and press@ hear from different people), or with `shared_senders` from one pool of 400 for
    every box: the worst case, where batches of different mailboxes update the same contacts' rows."""
    rng = random.Random(1000 + box)
    pool = "" if shared_senders else f"b{box}-"
    senders = [f"{pool}v{n}@volunteers{n % 7}.example" for n in range(400)]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(count):
        if samples and i % 10 == 9:
            yield samples[(box * count + i) % len(samples)]
        else:
            yield synthetic_mail(rng, box * 1_000_000 + i, start, senders)


def fill_boxes(server: Dovecot, per_box: int, samples: list[bytes], *, shared_senders: bool = False) -> None:
    for number, user in enumerate(BOXES):
        with server.client(user, timeout=120) as imap:
            chunk: list[bytes] = []
            for raw in box_mails(number, per_box, samples, shared_senders=shared_senders):
                chunk.append(raw)
                if len(chunk) == 250:
                    imap.multiappend("INBOX", chunk)
                    chunk = []
            if chunk:
                imap.multiappend("INBOX", chunk)


def outbox_mail(rng: random.Random, i: int) -> EmailMessage:
    """A reply as the desk sends it: plain text, some with an HTML part or a small attachment."""
    to = f"v{rng.randrange(400)}@volunteers{rng.randrange(7)}.example"
    msg = EmailMessage()
    msg["From"] = "Community Liaison <liaison@example.org>"
    msg["To"] = to
    msg["Subject"] = f"Re: [T-2026-{i:05d}] " + " ".join(rng.choices(WORDS, k=rng.randint(2, 6)))
    msg["Message-ID"] = make_msgid(idstring=f"bench{i}", domain="example.org")
    msg["In-Reply-To"] = f"<q{i}@volunteers.example>"
    text = "\n\n".join(" ".join(rng.choices(WORDS, k=rng.randint(8, 60))).capitalize() + "."
                       for _ in range(rng.randint(1, 5)))
    msg.set_content(f"Hello,\n\n{text}\n\n-- \nThe Community Liaison desk\n")
    kind = rng.random()
    if kind < 0.3:
        msg.add_alternative(f"<html><body><p>Hello,</p><p>{text}</p></body></html>", subtype="html")
    elif kind < 0.4:
        msg.add_attachment(rng.randbytes(rng.randint(2_000, 40_000)), maintype="application",
                           subtype="pdf", filename=f"receipt-{i}.pdf")
    return msg


def queue_outbox(config: Path, count: int) -> None:
    """Queue `count` pending mails through the outbox's own `enqueue`, in a child (the bench
    process stays free of triage's imports and engine)."""
    code = r"""
import random, sys
sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[1] + "/bench")
from bench_workers import outbox_mail
from triage.bootstrap import bootstrap
from triage.config import load_settings
from triage.outbox.queue import enqueue
from triage.store.db import utcnow
app = bootstrap(load_settings(sys.argv[2]))
rng, count = random.Random(5), int(sys.argv[3])
for start in range(0, count, 500):
    with app.sessions.begin() as session:
        for i in range(start, min(count, start + 500)):
            enqueue(session, outbox_mail(rng, i), template="reply", actor="bench", now=utcnow(), ticket_id=None)
app.close()
"""
    subprocess.run([sys.executable, "-c", code, str(ROOT), str(config), str(count)], check=True,
                   env=worker_env(), stdout=subprocess.DEVNULL)


# -- workers -------------------------------------------------------------------------------------


def worker_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIAGE_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def write_config(path: Path, db_url: str, *, imap: Dovecot | None = None, boxes: tuple[str, ...] = BOXES,
                 smtp_port: int | None = None, parse_workers: int = 0) -> Path:
    lines = [
        "[database]", f"url = {json.dumps(db_url)}",
        "[log]", 'level = "info"', 'format = "json"',
        "[routing]", 'teams_file = "/nonexistent/benchw-teams.toml"', "auto_train = false",
        "[reminders]", "enabled = false",
        "[digest]", "enabled = false",
        "[outbox]", "auto_acknowledge = false",
        "[worker]", 'listen = ""',  # several workers on one host: no health endpoint each
    ]
    if smtp_port is not None:
        lines += ["[smtp]", 'host = "127.0.0.1"', f"port = {smtp_port}", 'security = "none"']
    if imap is not None:
        for user in boxes:
            lines += [
                f"[imap_accounts.{user}]", f'name = "{user}"', f'host = "{imap.host}"', f"port = {imap.port}",
                'security = "none"', f'user = "{user}"', f'password = "{imap.users[user]}"', 'start = "all"',
                'mark = "seen"', f"batch_size = {BATCH}", f"parse_workers = {parse_workers}",
            ]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Run:
    role: str
    workers: int
    mails: int
    seconds: float  # launch of the workers -> last row
    startup: float  # launch -> first row
    cpu: dict[str, float]  # CPU seconds per group, first row -> last row (start-up left out)
    startup_cpu: float  # CPU seconds of the worker processes before the first row
    per_worker: list[dict[str, int]] = field(default_factory=list)  # fetched per mailbox (poll)
    leases: list[list[str]] = field(default_factory=list)
    sent_per_worker: list[int] = field(default_factory=list)
    load: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def rate(self) -> float:
        return self.mails / self.seconds

    @property
    def steady_rate(self) -> float:
        return self.mails / max(1e-9, self.seconds - self.startup)


def read_log(path: Path) -> list[dict[str, object]]:
    return json_log_events(path.read_text(errors="replace"))


def drain(configs: list[Path], db_url: str, target: int, count_sql: str, trees: dict[str, list[int]],
          workdir: Path, role: str, timeout: float) -> tuple[float, float, dict[str, float], float, list[Path]]:
    """Launch one worker process per config, wait until `count_sql` reaches `target`, stop them.
    Returns (seconds, seconds to the first row, CPU per group from the first row on, the workers'
    CPU before it, the workers' log files)."""
    dsn = libpq_dsn(db_url)
    app_name = make_url(db_url).query["application_name"]
    assert isinstance(app_name, str)
    workers = len(configs)
    logs = [workdir / f"{role}-{workers}-{n}-{uuid.uuid4().hex[:6]}.log" for n in range(workers)]
    procs: list[subprocess.Popen[bytes]] = []
    sampler = CpuSampler(dsn, app_name, {**trees, "workers": []})
    with psycopg.connect(dsn, autocommit=True, application_name="benchw-monitor") as conn:
        started = time.perf_counter()
        try:
            for config, log_path in zip(configs, logs, strict=True):
                with open(log_path, "wb") as log_file:
                    procs.append(subprocess.Popen([sys.executable, "-m", "triage.worker", "--config", str(config)],
                                                  env=worker_env(), stdout=subprocess.DEVNULL, stderr=log_file))
            sampler.trees["workers"] = [p.pid for p in procs]
            first, at_first = None, {}
            while True:
                done = count_rows(conn, count_sql)
                now = time.perf_counter()
                if done and first is None:
                    first = now - started
                    sampler.sample(conn)
                    at_first = sampler.snapshot()
                if done >= target:
                    break
                if now - started > timeout:
                    raise SystemExit(f"{role} x{workers}: {done}/{target} after {timeout:.0f} s\n" + tails(logs))
                if any(p.poll() is not None for p in procs):
                    raise SystemExit(f"{role} x{workers}: a worker exited early\n" + tails(logs))
                time.sleep(0.2)
            seconds = time.perf_counter() - started
            sampler.sample(conn)
            at_end = sampler.snapshot()
            cpu = {group: used - at_first.get(group, 0.0) for group, used in at_end.items()}
            startup_cpu = at_first.get("workers", 0.0)
        finally:
            sampler.stop()
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    return seconds, first or seconds, cpu, startup_cpu, logs


def tails(logs: list[Path]) -> str:
    return "\n".join(f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-15:])
                     for p in logs if p.exists())


def poll_run(server: Dovecot, pg_url: str, workers: int, per_box: int, parse_workers: int, workdir: Path,
             *, static: bool = False) -> Run:
    """K workers drain the four mailboxes: each configured with all four (the leases decide), or
    with `static`, worker k with every K-th mailbox (the split leases would ideally reach)."""
    tag = f"benchw-poll-{uuid.uuid4().hex[:8]}"
    with fresh_schema(pg_url, tag) as (url, _schema):
        shares = [BOXES[k::workers] for k in range(workers)] if static else [BOXES] * workers
        configs = [write_config(workdir / f"poll{workers}-{k}.toml", url, imap=server, boxes=share,
                                parse_workers=parse_workers) for k, share in enumerate(shares)]
        subprocess.run([sys.executable, "-m", "triage", "db", "upgrade"], check=True,
                       env={**worker_env(), "TRIAGE_CONFIG": str(configs[0])}, stdout=subprocess.DEVNULL)  # the schema exists before timing
        target = per_box * len(BOXES)
        seconds, startup, cpu, startup_cpu, logs = drain(
            configs, url, target, "SELECT count(*) FROM imap_ledger", {"dovecot": [server_pid(server)]},
            workdir, "poll", timeout=60 + target / 20)
        with psycopg.connect(libpq_dsn(url)) as conn:
            ledger = conn.execute("SELECT count(*), count(DISTINCT (account, uid)) FROM imap_ledger").fetchone()
            messages = count_rows(conn, "SELECT count(*) FROM messages")
    assert ledger is not None
    if ledger[0] != target or ledger[1] != target or messages != target:
        raise SystemExit(f"poll x{workers}: ledger {ledger}, messages {messages}, expected {target}")
    run = Run("poll-static" if static else "poll", workers, target, seconds, startup, cpu, startup_cpu,
              load=os.getloadavg())
    for log_path in logs:
        fetched: dict[str, int] = {}
        leased: list[str] = []
        for event in read_log(log_path):
            if event.get("event") == "imap.pass" and int(str(event.get("fetched", 0))):
                box = str(event.get("account"))
                fetched[box] = fetched.get(box, 0) + int(str(event["fetched"]))
            if event.get("event") == "lease.acquired":
                leased.append(str(event.get("lease")))
        run.per_worker.append(fetched)
        run.leases.append(leased)
    fetches: dict[str, int] = {}  # a mailbox may change hands (shares even out), but no mail is fetched twice
    for fetched in run.per_worker:
        for box, count in fetched.items():
            fetches[box] = fetches.get(box, 0) + count
    if any(count > per_box for count in fetches.values()):
        raise SystemExit(f"poll x{workers}: mail fetched twice: {fetches} for {per_box} per mailbox; "
                         f"per worker {run.per_worker}")
    return run


def server_pid(server: Dovecot) -> int:
    process = server._process  # the master, run in the foreground (-F)
    assert process is not None
    return process.pid


def send_run(pg_url: str, workers: int, count: int, workdir: Path) -> Run:
    tag = f"benchw-send-{uuid.uuid4().hex[:8]}"
    sink = subprocess.Popen([sys.executable, "-c", SINK, str(ROOT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            env=worker_env())
    try:
        assert sink.stdout is not None and sink.stdin is not None
        port = int(sink.stdout.readline())
        with fresh_schema(pg_url, tag) as (url, _schema):
            config = write_config(workdir / f"send{workers}.toml", url, smtp_port=port)
            queue_outbox(config, count)
            seconds, startup, cpu, startup_cpu, logs = drain(
                [config] * workers, url, count, "SELECT count(*) FROM outbox WHERE status = 'sent'",
                {"sink": [sink.pid]}, workdir, "send", timeout=60 + count / 10)
            with psycopg.connect(libpq_dsn(url)) as conn:
                attempts = count_rows(conn, "SELECT sum(attempts) FROM outbox")
        sink.stdin.close()
        stats = json.loads(sink.stdout.readline())
    finally:
        if sink.poll() is None:
            sink.kill()
        sink.wait()
    sent_by = [{int(str(e["outbox"])) for e in read_log(p) if e.get("event") == "outbox.sent"} for p in logs]
    per_worker = sorted((len(ids) for ids in sent_by), reverse=True)
    if stats["received"] != count or stats["distinct"] != count or attempts != count or sum(per_worker) != count:
        raise SystemExit(f"send x{workers}: sink {stats}, attempts {attempts}, sent per worker {per_worker}, "
                         f"expected {count}")
    return Run("send", workers, count, seconds, startup, cpu, startup_cpu, sent_per_worker=per_worker,
               load=os.getloadavg())


def raw_fetch(server: Dovecot) -> tuple[int, float]:
    """One imapclient connection fetching every mail of the four mailboxes, nothing parsed or stored."""
    code = r"""
import sys, time
from imapclient import IMAPClient
host, port, password, batch = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
n, started = 0, time.perf_counter()
for user in sys.argv[5:]:
    client = IMAPClient(host, port=port, ssl=False)
    client.login(user, password)
    client.select_folder("INBOX", readonly=True)
    uids = sorted(client.search(["ALL"]))
    for start in range(0, len(uids), batch):
        n += len(client.fetch(uids[start:start + batch], ["BODY.PEEK[]"]))
    client.logout()
print(n, time.perf_counter() - started)
"""
    out = subprocess.run([sys.executable, "-c", code, server.host, str(server.port), server.password, str(BATCH),
                          *BOXES], check=True, capture_output=True, text=True).stdout.split()
    return int(out[0]), float(out[1])


# -- report -------------------------------------------------------------------------------------


def table(runs: list[Run], raw: tuple[int, float] | None) -> str:
    lines = []
    for role in ("poll", "poll-static", "send"):
        mine = [r for r in runs if r.role == role]
        if not mine:
            continue
        base = next((r for r in runs if r.role == role.partition("-")[0] and r.workers == 1), mine[0])
        groups = ["workers", "sink", "postgres"] if role == "send" else ["workers", "dovecot", "postgres"]
        what = {"poll": "IMAP drain (4 mailboxes), every worker configured with all four, leases decide",
                "poll-static": "IMAP drain, worker k configured with every K-th mailbox (the ideal split)",
                "send": "outbox delivery (1 SMTP sink)"}[role]
        lines.append(f"\n{what}: {mine[0].mails} mails")
        lines.append("  wall = launch of the workers -> last row; start = launch -> first row (start-up); steady = "
                     "first -> last row; ratios over the 1-worker run's mails/s; CPU from first to last row, in "
                     "seconds and ms per mail; cores = all groups' CPU / steady wall")
        head = (f"{'workers':>7} {'wall s':>6} {'start':>5} {'mails/s':>7} {'ratio':>5} {'steady/s':>8} {'ratio':>5} "
                f"{'start cpu':>9} " + " ".join(f"{g + ' cpu':>15}" for g in groups)
                + f" {'cores':>5} {'load1':>5}  per worker")
        lines.append(head)
        for r in mine:
            cpu = [r.cpu.get(g, 0.0) for g in groups]
            steady = max(1e-9, r.seconds - r.startup)
            split = (" ".join(",".join(f"{b}:{n}" for b, n in sorted(f.items())) or "-" for f in r.per_worker)
                     if role != "send" else " ".join(map(str, r.sent_per_worker)))
            lines.append(
                f"{r.workers:>7} {r.seconds:>6.1f} {r.startup:>5.1f} {r.rate:>7.0f} {r.rate / base.rate:>4.2f}x "
                f"{r.steady_rate:>8.0f} {r.steady_rate / base.steady_rate:>4.2f}x {r.startup_cpu:>8.1f}s "
                + " ".join(f"{c:>6.1f}s {1000 * c / r.mails:>4.2f}ms" for c in cpu)
                + f" {sum(cpu) / steady:>5.2f} {r.load[0]:>5.2f}  {split}")
        if role == "poll" and raw is not None:
            n, seconds = raw
            lines.append(f"raw IMAP fetch, one connection, nothing parsed or stored: {n} mails in {seconds:.1f} s = "
                         f"{n / seconds:.0f} mails/s ({n / seconds / base.steady_rate:.1f}x the 1-worker steady drain)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--mails-per-box", type=int, default=None, help="mails in each of the 4 mailboxes (5000)")
    parser.add_argument("--outbox-mails", type=int, default=None, help="mails queued for the send runs (5000)")
    parser.add_argument("--workers", default="1,2,4", help="worker counts, comma-separated (default 1,2,4)")
    parser.add_argument("--pg", default=DEFAULT_PG, help=f"PostgreSQL URL (default {DEFAULT_PG}); a schema is "
                        "created per run and dropped after")
    parser.add_argument("--samples", default=None, help="folder of real .eml mails; every tenth mail is one")
    parser.add_argument("--parse-workers", type=int, default=0, help="imap.parse_workers of each worker (0)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 500 mails per box, 500 to send")
    parser.add_argument("--skip", choices=["poll", "send"], action="append", default=[], help="leave a part out")
    parser.add_argument("--shared-senders", action="store_true",
                        help="one pool of senders for all four mailboxes (their contacts' rows contended)")
    parser.add_argument("--no-static", action="store_true", help="leave out the statically split poll runs")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON after the table")
    args = parser.parse_args()
    per_box = args.mails_per_box or (500 if args.quick else 5000)
    to_send = args.outbox_mails or (500 if args.quick else 5000)
    counts = [int(n) for n in args.workers.split(",") if n.strip()]
    if 1 not in counts:
        counts.insert(0, 1)  # the baseline every ratio is against
    began = time.perf_counter()
    runs: list[Run] = []
    raw = None
    with tempfile.TemporaryDirectory(prefix="benchw-") as tmp:
        work = Path(tmp)
        if "poll" not in args.skip:
            with Dovecot(extra_users={user: "secret" for user in BOXES}) as server:
                fill_boxes(server, per_box, sample_mails(args.samples), shared_senders=args.shared_senders)
                raw_fetch(server)  # untimed: Dovecot builds its indexes and caches on the first read
                raw = raw_fetch(server)
                for workers in counts:
                    runs.append(poll_run(server, args.pg, workers, per_box, args.parse_workers, work))
                if not args.no_static:
                    for workers in counts:
                        if workers > 1:
                            runs.append(poll_run(server, args.pg, workers, per_box, args.parse_workers, work,
                                                 static=True))
        if "send" not in args.skip:
            for workers in counts:
                runs.append(send_run(args.pg, workers, to_send, work))
    total = time.perf_counter() - began
    print(f"bench_workers: {os.cpu_count()} cores; parse_workers = {args.parse_workers}; acknowledgments off; "
          f"batch {BATCH}")
    print(table(runs, raw))
    print(f"\nwhole run (fill, baselines, schemas, all runs): {total:.0f} s; load average now "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    if args.json:
        print(json.dumps({"runs": [{**r.__dict__, "rate": r.rate} for r in runs],
                          "raw_fetch": raw, "seconds": total}))


if __name__ == "__main__":
    main()
