"""bench/bench_workers.py at its smallest, so the benchmark does not rot: its IMAP part runs end to
end on the real Dovecot and PostgreSQL with one and two workers, and its own checks hold (every mail
stored once, no mailbox fetched by two workers). The outbox part is left out to keep this test short
(each worker process costs ~2.5 s of CPU to start); `bench_workers.py --quick` runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import pg_skip_reason
from tests.servers.dovecot import dovecot_missing_reason

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def test_bench_workers_smoke() -> None:
    reason = pg_skip_reason() or dovecot_missing_reason()
    if reason:
        pytest.skip(reason)
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_workers.py"), "--mails-per-box", "30", "--workers", "1,2",
         "--no-static", "--skip", "send", "--json"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "IMAP drain" in done.stdout
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    polls = [r for r in figures["runs"] if r["role"] == "poll"]
    assert [r["workers"] for r in polls] == [1, 2]
    for run in polls:
        assert run["mails"] == 120
        fetched = [box for worker in run["per_worker"] for box in worker]
        assert sorted(fetched) == ["box1", "box2", "box3", "box4"]  # each mailbox read by one worker only
        assert sum(n for worker in run["per_worker"] for n in worker.values()) == 120
    assert figures["raw_fetch"][0] == 120
