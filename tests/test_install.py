"""Installed, then run from another folder: the wheel carries the templates, the teams file, the seed
data, the sample mailbox and the example configuration, and `triage` and `triage-worker` work from any directory.

The wheel is built from a copy of the project (not editable) and installed without its
dependencies into a fresh virtualenv that borrows them from the one running the tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from triage.bundled import bundled, resolve

ROOT = Path(__file__).resolve().parents[1]
SKIP_TOP = {".git", ".venv", "build", "dist", "tests", "bench", ".hypothesis", ".pytest_cache"}


def _ignore(folder: str, names: list[str]) -> set[str]:
    skip = {n for n in names if n.endswith((".egg-info", ".db", ".db-wal", ".db-shm")) or n == "__pycache__"}
    if Path(folder) == ROOT:
        skip |= SKIP_TOP & set(names)
    if Path(folder) == ROOT / "data":
        skip |= {n for n in names if n.startswith("model")}
    return skip


def sh(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, (args, done.stdout[-2000:], done.stderr[-2000:])
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv holding the triage wheel (its dependencies come from this test's environment)."""
    tmp = tmp_path_factory.mktemp("install")
    source = tmp / "source"
    shutil.copytree(ROOT, source, symlinks=True, ignore=_ignore)
    sh(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
       "-w", tmp / "dist", source, cwd=tmp)
    venv = tmp / "venv"
    sh(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp)
    purelib = Path(sh(venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))",
                      cwd=tmp).stdout.strip())
    (purelib / "borrowed-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    wheel = next((tmp / "dist").glob("triage-*.whl"))
    sh(sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "-q", "--no-deps",
       "--no-index", wheel, cwd=tmp)
    return venv


def test_installed_triage_runs_from_an_unrelated_folder(installed: Path, tmp_path: Path) -> None:
    """From an empty folder: ingest a copy of the sample mailbox (routing suggestions from a model
    trained on the shipped seed data with the shipped teams), list the tickets, preview a reply
    (shipped templates), check the config, and ask the worker for its help."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    mailbox = shutil.copytree(ROOT / "data" / "sample-mailbox", tmp_path / "mailbox")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRIAGE_", "PYTHON"))}
    bin_ = installed / "bin"
    where = sh(bin_ / "python", "-c", "import triage; print(triage.__file__)", cwd=elsewhere, env=env).stdout
    assert where.startswith(str(installed)), where
    ingest = sh(bin_ / "triage", "ingest", mailbox, cwd=elsewhere, env=env)
    assert " stored" in ingest.stdout and "skipped" not in ingest.stderr, ingest.stderr
    assert (elsewhere / "triage.db").is_file() and (elsewhere / "data" / "model" / "model.json").is_file()
    tickets = sh(bin_ / "triage", "tickets", cwd=elsewhere, env=env)
    assert "T-2026-00001" in tickets.stdout
    (elsewhere / "reply.txt").write_text("Thanks!\n")
    preview = sh(bin_ / "triage", "reply", "T-2026-00001", "--preview", "--body-file", "reply.txt",
                 cwd=elsewhere, env=env)
    assert "Thanks!" in preview.stdout and "The Community Liaison desk" in preview.stdout
    check = sh(bin_ / "triage", "config", "check", cwd=elsewhere, env=env)
    assert "routing.teams_file = 'data/teams.toml'" in check.stdout
    worker = sh(bin_ / "triage-worker", "--help", cwd=elsewhere, env=env)
    assert "--once" in worker.stdout
    shipped = sh(bin_ / "python", "-c", "from triage.web.app import STATIC, page_templates; "
                 "print(page_templates().get_template('queue.html').filename); print(STATIC / 'htmx.min.js')",
                 cwd=elsewhere, env=env).stdout.split()
    assert all(line.startswith(str(installed)) and Path(line).is_file() for line in shipped), shipped

    # `triage demo` loads the shipped sample mailbox (tests/test_demo.py runs the demo itself)
    sample = sh(bin_ / "python", "-c", "from triage.bundled import bundled; from triage.ingest.sources import "
                "open_source; s = open_source(bundled('data/sample-mailbox')); print(s.kind, s.count, s.path)",
                cwd=elsewhere, env=env).stdout.split()
    assert sample[:2] == ["maildir", "30"] and sample[2].startswith(str(installed)), sample
    assert "--reset-password" in sh(bin_ / "triage", "demo", "--help", cwd=elsewhere, env=env).stdout


def test_an_operators_own_files_win_over_the_shipped_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A relative path names the operator's file where it exists, else the shipped one; an absolute
    path and a path that escapes the package are never replaced by a shipped file."""
    monkeypatch.chdir(tmp_path)
    shipped = bundled("data/teams.toml")
    assert shipped is not None and shipped.is_file() and resolve("data/teams.toml") == shipped
    assert bundled("templates") is not None and (bundled("templates") / "email" / "reply" / "body.txt").is_file()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "teams.toml").write_text("[teams.ops]\nname = 'Ops'\naddress = 'ops@example.org'\n")
    assert resolve("data/teams.toml") == Path("data/teams.toml")
    assert resolve("/nowhere/teams.toml") == Path("/nowhere/teams.toml")
    assert bundled("../pyproject.toml") is None and resolve("missing.toml") == Path("missing.toml")
