"""Local mail sources: maildir, mbox, a folder of .eml files; streamed, never loaded whole."""

from __future__ import annotations

import mailbox
import tracemalloc
from pathlib import Path

import pytest

from tests.conftest import make_mail
from triage.ingest.sources import SourceError, open_source


def _mails(n: int, size: int = 200) -> list[bytes]:
    return [make_mail(message_id=f"<s{i}@v.example>", body="x" * size + f"\n{i}\n") for i in range(n)]


def test_maildir_mbox_and_eml_folder_yield_the_same_mails(tmp_path: Path) -> None:
    """Each kind of source yields every mail's bytes, in a stable order, with a label naming its place."""
    mails = _mails(5)
    md = mailbox.Maildir(tmp_path / "md", create=True)
    mb = mailbox.mbox(tmp_path / "box.mbox", create=True)
    (tmp_path / "eml").mkdir()
    for i, raw in enumerate(mails):
        md.add(raw)
        mb.add(raw)
        (tmp_path / "eml" / f"{i:03d}.eml").write_bytes(raw)
    md.close()
    mb.close()
    for path, kind in [(tmp_path / "md", "maildir"), (tmp_path / "box.mbox", "mbox"), (tmp_path / "eml", "eml")]:
        source = open_source(path)
        assert source.kind == kind and source.count == 5
        got = list(source)
        assert sorted(raw.replace(b"\r\n", b"\n") for _, raw in got) == sorted(mails)
        assert all(label.startswith(f"{kind}:") for label, _ in got)
    single = open_source(tmp_path / "eml" / "002.eml")
    assert [raw for _, raw in single] == [mails[2]]


def test_unknown_paths_are_clear_errors(tmp_path: Path) -> None:
    """A missing path or a folder with no mail names what was expected."""
    with pytest.raises(SourceError, match="does not exist"):
        open_source(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="maildir"):
        open_source(tmp_path / "empty")


def test_mbox_memory_stays_flat(tmp_path: Path) -> None:
    """Reading an mbox holds one mail at a time: peak memory is a small fraction of the file."""
    def peak(n: int) -> tuple[int, int]:
        path = tmp_path / f"{n}.mbox"
        box = mailbox.mbox(path, create=True)
        for raw in _mails(n, size=20_000):
            box.add(raw)
        box.close()
        tracemalloc.start()
        total = sum(len(raw) for _, raw in open_source(path))
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert total > n * 20_000
        return top, total

    for n in (200, 800):
        top, total = peak(n)
        assert top < total / 10, (n, top, total)


def test_batches_bound_count_and_weight() -> None:
    """A batch closes at `size` items or before its weight would pass `max_bytes`; a heavy item goes alone."""
    from triage.ingest.sources import batches

    weights = [3, 3, 3, 10, 1, 1, 1, 1, 1]
    got = list(batches(weights, 4, max_bytes=6, weight=lambda w: w))
    assert got == [[3, 3], [3], [10], [1, 1, 1, 1], [1]]
    assert list(batches(weights, 4)) == [[3, 3, 3, 10], [1, 1, 1, 1], [1]]
