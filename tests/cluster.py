"""A throwaway deployment for fault-injection tests: PostgreSQL, Dovecot, an SMTP peer and N workers.

Every part is real and every part can be broken on purpose:

- `PgCluster`: a PostgreSQL cluster of our own (initdb + pg_ctl, a free loopback port, a data dir
  under /tmp), so `restart()` never touches the machine's shared server on 5432. initdb refuses
  root, so as root the cluster runs as the `postgres` (else `nobody`) user.
- `FleetDovecot`: one Dovecot with several accounts; each account is reachable under one login
  per worker slot (`alpha.w1`, `alpha.w2`, ...) sharing the account's maildir, so Dovecot's
  mail_log lines say which worker set a flag.
- `SmtpSink.refuse()` / `accept()` (tests/servers/smtp_sink.py): the SMTP peer's outage.
- `WorkerFleet`: `python run_worker.py` processes, one config and one log file per slot; each
  worker connects to PostgreSQL with `application_name = w<slot>`, and the audit triggers
  (`install_audit`) record which worker committed each ledger row, so a fenced worker's commit
  shows even when it changed nothing visible.
- `MailTraffic` appends new mails and follow-ups and remembers what it delivered;
  `wait_settled` / `assert_invariants` check what must hold after any fault.
"""

from __future__ import annotations

import os
import pwd
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, create_engine, text

from tests.conftest import make_mail
from tests.servers import LOOPBACK, free_port, json_log_events, world_traversable_tempdir
from tests.servers.dovecot import Dovecot
from tests.servers.smtp_sink import SmtpSink

ROOT = Path(__file__).resolve().parents[1]
PG_BIN = Path(os.environ.get("TRIAGE_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
PASSWORD = "secret"


def wait_until(describe_missing: Callable[[], str | None], timeout: float, *, every: float = 0.1) -> str | None:
    """Poll until `describe_missing()` returns None (done) or `timeout` passes; return the last gap."""
    deadline = time.monotonic() + timeout
    while True:
        missing = describe_missing()
        if missing is None or time.monotonic() >= deadline:
            return missing
        time.sleep(every)


# -- PostgreSQL ----------------------------------------------------------------------------------


def pg_missing_reason() -> str | None:
    """Why no throwaway PostgreSQL cluster can run here, or None."""
    for tool in ("initdb", "pg_ctl"):
        if not os.access(PG_BIN / tool, os.X_OK):
            return f"{PG_BIN / tool} not found (Debian package postgresql-15; or set TRIAGE_TEST_PG_BIN)"
    return None


class PgCluster:
    """A PostgreSQL cluster in a temp dir on a free loopback port; `restart()` is a crash and a start."""

    def __init__(self) -> None:
        self.root = world_traversable_tempdir("triage-pg-")
        self.data = self.root / "data"
        self.log_path = self.root / "postgres.log"
        self.port = free_port()
        self._run_as: list[str] = []
        if os.geteuid() == 0:  # initdb refuses root
            owner = _first_user("postgres", "nobody")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self._run_as = ["runuser", "-u", owner.pw_name, "--"]
        self.restarts = 0

    def _pg(self, tool: str, *args: str, timeout: float = 60) -> None:
        done = subprocess.run([*self._run_as, str(PG_BIN / tool), *args], capture_output=True, text=True,
                              timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)} failed: {done.stdout}{done.stderr}\n{self.log_tail()}")

    def init(self) -> None:
        self._pg("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                 "--locale=C", "--no-sync")

    def start(self) -> None:
        # fsync off: a crash of the server process (not of the machine) loses nothing the OS got.
        # synchronous_commit stays on: a commit the worker saw must survive the restart.
        options = (f"-c listen_addresses={LOOPBACK} -c port={self.port} -c unix_socket_directories={self.root} "
                   "-c fsync=off -c full_page_writes=off -c max_connections=100")
        self._pg("pg_ctl", "-D", str(self.data), "-l", str(self.log_path), "-o", options, "-w", "-t", "30", "start")

    def stop(self, mode: str = "fast") -> None:
        self._pg("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    def restart(self, mode: str = "immediate") -> None:
        """Stop (`immediate`: like a crash, every connection cut, recovery on start) and start again."""
        self.stop(mode)
        self.start()
        self.restarts += 1

    def url(self, database: str = "triage", application_name: str | None = None) -> str:
        url = f"postgresql+psycopg://postgres@{LOOPBACK}:{self.port}/{database}"
        return f"{url}?application_name={application_name}" if application_name else url

    def create_database(self, name: str) -> None:
        engine = create_engine(self.url("postgres"), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            engine.dispose()

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def close(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def _first_user(*names: str) -> pwd.struct_passwd:
    for name in names:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError(f"none of the users {names} exists to run PostgreSQL as")


AUDIT_SQL = """
CREATE TABLE fault_audit (
    id bigserial PRIMARY KEY,
    app text NOT NULL,
    tbl text NOT NULL,
    op text NOT NULL,
    account text,
    uid bigint,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE FUNCTION fault_audit_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO fault_audit (app, tbl, op, account, uid)
    VALUES (current_setting('application_name'), TG_TABLE_NAME, TG_OP,
            to_jsonb(NEW) ->> 'account', (to_jsonb(NEW) ->> 'uid')::bigint);
    RETURN NULL;
END $$;
CREATE TRIGGER fault_audit AFTER INSERT OR UPDATE ON imap_ledger
    FOR EACH ROW EXECUTE FUNCTION fault_audit_row();
CREATE TRIGGER fault_audit AFTER INSERT OR UPDATE ON imap_folders
    FOR EACH ROW EXECUTE FUNCTION fault_audit_row();
"""


def install_audit(engine: Engine) -> None:
    """Record, in the committing transaction itself, which worker wrote each ledger or folder row:
    a transaction that rolls back (a fenced commit) leaves no audit row, one that commits does."""
    with engine.begin() as conn:
        conn.exec_driver_sql(AUDIT_SQL)


# -- Dovecot -------------------------------------------------------------------------------------


class FleetDovecot(Dovecot):
    """Accounts (one maildir each) with one login per worker slot; flag changes logged per login."""

    def __init__(self, accounts: Sequence[str], slots: int) -> None:
        self.accounts = list(accounts)
        self.slots = slots
        super().__init__(accounts[0], PASSWORD, extra_users={name: PASSWORD for name in accounts[1:]})
        self.users.update({self.login(a, s): PASSWORD for a in self.accounts for s in range(1, slots + 1)})

    @staticmethod
    def login(account: str, slot: int) -> str:
        return f"{account}.w{slot}"

    def _write_files(self) -> None:
        super()._write_files()
        passwd = self.root / "passwd"
        aliases = []
        for line in passwd.read_text().splitlines():
            name, rest = line.split(":", 1)
            aliases += [f"{self.login(name, slot)}:{rest}\n" for slot in range(1, self.slots + 1)]
        with passwd.open("a") as out:
            out.writelines(aliases)

    def _config(self) -> str:
        return super()._config() + (
            "mail_plugins = $mail_plugins notify mail_log\n"
            "plugin {\n  mail_log_events = flag_change\n  mail_log_fields = uid box flags\n}\n"
        )

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def flag_changes(self, since: int = 0) -> list[tuple[str, str]]:
        """(login, the rest of the line) of each flag change logged after byte `since` of the log."""
        if not self.log_path.exists():
            return []
        with self.log_path.open("rb") as log:
            log.seek(since)
            lines = log.read().decode(errors="replace").splitlines()
        found = []
        for line in lines:
            match = re.search(r"imap\(([^)]+)\)[^:]*: Info: flag_change: (.*)", line)
            if match:
                found.append((match.group(1), match.group(2)))
        return found


# -- workers -------------------------------------------------------------------------------------


def worker_config(*, slot: int, pg: PgCluster, dovecot: FleetDovecot, sink: SmtpSink, root: Path,
                  lease_seconds: float) -> str:
    """The triage.toml of one worker: every account, short intervals, acknowledgments on."""
    accounts = "".join(f"""
[imap_accounts.{account}]
host = "{dovecot.host}"
port = {dovecot.port}
security = "none"
user = "{dovecot.login(account, slot)}"
password = "{PASSWORD}"
start = "all"
batch_size = 5
idle = true
idle_renew_seconds = 5
poll_seconds = 1.0
timeout_seconds = 5.0
backoff_max_seconds = 1.0
parse_workers = 0
""" for account in dovecot.accounts)
    return f"""# One worker of the fault-injection fleet (tests/cluster.py).
[database]
url = "{pg.url(application_name=f"w{slot}")}"

[mail]
liaison_address = "liaison@example.org"
own_domain = "example.org"
{accounts}
[routing]
teams_file = "{root / "no-teams.toml"}"

[log]
level = "info"
format = "json"

[smtp]
host = "{sink.host}"
port = {sink.port}
security = "none"
timeout_seconds = 5.0
max_attempts = 100
backoff_base_seconds = 0.5
backoff_max_seconds = 1.0
poll_seconds = 0.5

[outbox]
auto_acknowledge = true
rate_limit_per_hour = 100
rate_limit_per_domain_per_hour = 100000

[reminders]
interval_seconds = 2.0

[worker]
lease_seconds = {lease_seconds}
listen = "127.0.0.1:0"
"""


@dataclass
class WorkerSlot:
    index: int
    config: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    kills: int = 0
    log_offset: int = 0  # where the log of the latest start begins


class WorkerFleet:
    """N `run_worker.py` processes, each with its own config and log file; kill, freeze, thaw, restart."""

    def __init__(self, root: Path, configs: Sequence[str]) -> None:
        self.slots: list[WorkerSlot] = []
        for index, config in enumerate(configs, start=1):
            path = root / f"worker{index}.toml"
            path.write_text(config)
            self.slots.append(WorkerSlot(index, path, root / f"worker{index}.log"))
        self._env = {k: v for k, v in os.environ.items() if not k.startswith("TRIAGE_")}
        self._env.update({"PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"})

    def slot(self, index: int) -> WorkerSlot:
        return self.slots[index - 1]

    def start(self, index: int) -> None:
        slot = self.slot(index)
        assert slot.process is None or slot.process.poll() is not None, f"worker {index} is running"
        with slot.log_path.open("ab") as log:
            log.write(f"--- fleet: start {slot.starts + 1} of worker {index} ---\n".encode())
            log.flush()
            slot.log_offset = log.tell()
            slot.process = subprocess.Popen(
                [sys.executable, str(ROOT / "run_worker.py"), "--config", str(slot.config)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=self._env, cwd=slot.config.parent,
            )
        slot.starts += 1

    def start_all(self) -> None:
        for slot in self.slots:
            self.start(slot.index)

    def up(self, index: int) -> bool:
        """Has the latest start of this worker got as far as running its runners?"""
        slot = self.slot(index)
        return self.alive(index) and any(
            e.get("event") == "runner.start" for e in self.log_events(index, slot.log_offset))

    def alive(self, index: int) -> bool:
        process = self.slot(index).process
        return process is not None and process.poll() is None

    def pid(self, index: int) -> int:
        process = self.slot(index).process
        assert process is not None
        return process.pid

    def live_pids(self) -> dict[int, int]:
        """pid -> slot of every worker process still running (frozen ones included)."""
        return {self.pid(s.index): s.index for s in self.slots if self.alive(s.index)}

    def kill(self, index: int) -> None:
        """SIGKILL, as the OOM killer or a pulled plug would; reaped at once."""
        slot = self.slot(index)
        assert slot.process is not None
        slot.process.send_signal(signal.SIGKILL)
        slot.process.wait(timeout=10)
        slot.kills += 1

    def freeze(self, index: int) -> None:
        self._signal(index, signal.SIGSTOP)

    def thaw(self, index: int) -> None:
        self._signal(index, signal.SIGCONT)

    def _signal(self, index: int, sig: signal.Signals) -> None:
        process = self.slot(index).process
        assert process is not None and process.poll() is None, f"worker {index} is not running"
        process.send_signal(sig)

    def deaths(self) -> list[str]:
        """The workers that exited without being killed by the fleet, with their exit status."""
        return [f"worker {s.index} exited with {s.process.returncode}" for s in self.slots
                if s.process is not None and s.process.poll() is not None]

    def restart_dead(self) -> None:
        for slot in self.slots:
            if not self.alive(slot.index):
                self.start(slot.index)

    def stop_all(self, timeout: float = 30) -> dict[int, int]:
        """SIGTERM every worker (a clean stop) and wait; the exit status of each."""
        for slot in self.slots:
            if self.alive(slot.index):
                assert slot.process is not None
                slot.process.send_signal(signal.SIGCONT)
                slot.process.send_signal(signal.SIGTERM)
        codes = {}
        for slot in self.slots:
            if slot.process is not None:
                codes[slot.index] = slot.process.wait(timeout=timeout)
        return codes

    def close(self) -> None:
        for slot in self.slots:
            if slot.process is not None and slot.process.poll() is None:
                slot.process.send_signal(signal.SIGCONT)
                slot.process.kill()
                slot.process.wait(timeout=10)

    def log_size(self, index: int) -> int:
        path = self.slot(index).log_path
        return path.stat().st_size if path.exists() else 0

    def log_events(self, index: int, since: int = 0) -> list[dict[str, object]]:
        """The JSON log lines of one worker written after byte `since`."""
        with self.slot(index).log_path.open("rb") as log:
            log.seek(since)
            return json_log_events(log.read().decode(errors="replace"))

    def log_tails(self, lines: int = 15) -> str:
        parts = []
        for slot in self.slots:
            text_ = slot.log_path.read_text(errors="replace") if slot.log_path.exists() else ""
            parts.append(f"== worker {slot.index} ({slot.log_path}) ==\n" + "\n".join(text_.splitlines()[-lines:]))
        return "\n".join(parts)


# -- mail ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivered:
    """One mail appended to a mailbox; `parent` is the Message-ID it answers (a follow-up)."""

    account: str
    message_id: str
    parent: str | None = None


@dataclass
class MailTraffic:
    """Seeded mail into the accounts' INBOXes: new mails from distinct senders, and follow-ups."""

    dovecot: FleetDovecot
    rng: random.Random
    delivered: list[Delivered] = field(default_factory=list)
    senders: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def deliver(self, count: int, tag: str, *, follow_ups: float = 0.2, account: str | None = None) -> None:
        """Append `count` mails; a share of them answer a new mail delivered by an earlier call."""
        with self._lock:
            earlier = [d for d in self.delivered if d.parent is None]
        for i in range(count):
            where = account or self.rng.choice(self.dovecot.accounts)
            parents = [d for d in earlier if d.account == where]
            parent = self.rng.choice(parents) if parents and self.rng.random() < follow_ups else None
            self.append(where, tag, i, parent)

    def deliver_steadily(self, count: int, tag: str, interval: float) -> threading.Thread:
        """Deliver `count` new mails in the background, one every `interval` seconds, while the test
        breaks things; join the thread before checking."""
        accounts = [self.rng.choice(self.dovecot.accounts) for _ in range(count)]

        def run() -> None:
            for i, where in enumerate(accounts):
                self.append(where, tag, i, None)
                time.sleep(interval)

        thread = threading.Thread(target=run, name=f"traffic-{tag}", daemon=True)
        thread.start()
        return thread

    def append(self, account: str, tag: str, i: int, parent: Delivered | None) -> None:
        message_id = f"<{tag}.{i}.{os.getpid()}.{time.monotonic_ns()}@volunteers.example>"
        if parent is None:
            sender = f"Volunteer {i} <v.{tag}.{i}@{tag}.volunteers.example>"
            raw = make_mail(sender=sender, subject=f"Question {i} of {tag}", message_id=message_id,
                            date=datetime.now(UTC), body=f"Hello,\n\nquestion {i} of {tag}.\n")
        else:
            sender = self.senders[parent.message_id]
            raw = make_mail(sender=sender, subject="Re: my question", message_id=message_id,
                            in_reply_to=parent.message_id, references=[parent.message_id],
                            date=datetime.now(UTC), body="Hello again,\n\nsome more detail.\n")
        for attempt in range(100):  # the server may be restarting under us: the mail is still delivered
            try:
                self.dovecot.append(raw, user=account)
                break
            except Exception:
                if attempt == 99:
                    raise
                time.sleep(0.1)
        with self._lock:
            self.delivered.append(Delivered(account, message_id, parent.message_id if parent else None))
            self.senders[message_id] = sender

    def snapshot(self) -> list[Delivered]:
        with self._lock:
            return list(self.delivered)
