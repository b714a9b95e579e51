"""Data at rest: the database (with its -wal and -shm) and the routing model hold mail, so they are
created readable by their owner only (files 0600, folders 0700), whatever the umask of the shell."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import make_mail
from triage.bootstrap import bootstrap
from triage.config import load_settings

ROOT = Path(__file__).resolve().parents[1]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The usual shell umask (022), under which a plain open() makes world-readable files."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_database_wal_and_shm_are_private_while_in_use(tmp_path: Path, open_umask: None) -> None:
    """A new SQLite database is 0600 and SQLite gives its -wal and -shm files the same mode, even
    when triage is used as a library under umask 022."""
    db = tmp_path / "triage.db"
    app = bootstrap(load_settings(environ={"TRIAGE_DATABASE_URL": f"sqlite:///{db}"}))
    try:
        app.ingestor().ingest(make_mail())
        with app.sessions() as session, session.connection():
            files = [db, db.with_name("triage.db-wal"), db.with_name("triage.db-shm")]
            assert {f.name: oct(mode(f)) for f in files} == {f.name: "0o600" for f in files}
    finally:
        app.close()


def test_a_real_run_leaves_nothing_readable_by_others(tmp_path: Path, open_umask: None) -> None:
    """`triage ingest` from a shell with umask 022 creates the database 0600 and the first routing
    model (trained from the seed data) as a 0700 folder of 0600 files, its new parent folders too (the
    versions' folder, which `data/model` links into)."""
    env = {**os.environ, "TRIAGE_CONFIG": "", "TRIAGE_DATABASE_URL": "sqlite:///triage.db",
           "TRIAGE_ROUTING_TEAMS_FILE": str(ROOT / "data" / "teams.toml"),
           "TRIAGE_ROUTING_SEED_DATA": str(ROOT / "data" / "seed" / "seed.csv")}
    done = subprocess.run([sys.executable, "-m", "triage", "ingest", str(ROOT / "data" / "sample-mailbox")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    model = tmp_path / "data" / "model"
    assert (model / "model.json").is_file(), done.stderr
    created = [tmp_path / "triage.db", tmp_path / "data", model.with_name("model.versions"), model, *model.iterdir()]
    assert {str(p.relative_to(tmp_path)): oct(mode(p)) for p in created} == {
        str(p.relative_to(tmp_path)): "0o700" if p.is_dir() else "0o600" for p in created}


def test_model_files_are_private_without_the_umask(tmp_path: Path, open_umask: None) -> None:
    """Saving a model from library code (no entry point set the umask) still makes its folder 0700
    and its files 0600, also over a leftover temporary file of a crashed save."""
    import numpy as np

    from classifiers.artefact import write_artefact

    folder = tmp_path / "model"
    folder.mkdir(mode=0o700)
    (folder / "arrays.npz.tmp").write_bytes(b"left over, 0644")
    write_artefact(folder / "v2", {"version": "v2"}, {"weights": np.zeros(3)})
    write_artefact(folder, {"version": "v1"}, {"weights": np.zeros(3)})
    files = [folder / "v2", *(folder / "v2").iterdir(), folder / "model.json", folder / "arrays.npz"]
    assert {p.name: oct(mode(p)) for p in files} == {p.name: "0o700" if p.is_dir() else "0o600" for p in files}
