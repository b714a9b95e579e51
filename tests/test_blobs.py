"""Blob encoding: compressed when it pays, stored as is when it does not, always read back whole."""

from __future__ import annotations

import os
import random
import zlib

import pytest
from sqlalchemy import select

from triage.bootstrap import App
from triage.store.blobs import get_blob, put_blob
from triage.store.codec import encode
from triage.store.models import Blob


@pytest.mark.parametrize("size", [0, 1, 300, 2_000, 5_000, 40_000, 300_000])
def test_text_is_compressed_and_decompresses_with_the_default_window(size: int) -> None:
    rng = random.Random(size)
    data = " ".join(rng.choice(["volunteer", "grant", "report", "chapter"]) for _ in range(size)).encode()[:size]
    codec, stored = encode(data)
    if size >= 300:
        assert codec == "zlib" and len(stored) < len(data)
    assert (zlib.decompress(stored) if codec == "zlib" else stored) == data


def test_incompressible_bytes_are_stored_raw() -> None:
    data = os.urandom(50_000)  # a JPEG or a PDF's streams look like this to zlib
    assert encode(data) == ("raw", data)
    small = os.urandom(3_000)  # below the sampling size: compressed whole, then found not to pay
    assert encode(small) == ("raw", small)


def test_put_blob_round_trips_both_codecs(app: App) -> None:
    text, noise = b"Dear liaison,\n" * 500, os.urandom(20_000)
    with app.sessions.begin() as session:
        text_sha, noise_sha = put_blob(session, text), put_blob(session, noise)
    with app.sessions() as session:
        codecs = dict(session.execute(select(Blob.sha256, Blob.codec)).all())
        assert codecs == {text_sha: "zlib", noise_sha: "raw"}
        assert get_blob(session, text_sha) == text and get_blob(session, noise_sha) == noise
