"""Property tests: whatever bytes arrive, parse_mail returns a ParsedMail or raises NotAMailError.

Random bytes and real corpus mails damaged on purpose (truncated, bytes flipped, boundaries
dropped, garbage headers inserted) must never raise anything else, and the result must keep
the raw size, leave the input untouched and serialise as UTF-8 JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from triage.ingest.parse import parse_mail
from triage.ingest.parsed import NotAMailError, ParsedMail

CORPUS = Path(__file__).parent / "corpus"
# Small and mid-sized mails keep each example fast; the big ones are covered by the corpus tests.
SEEDS = sorted(p for p in CORPUS.glob("*/*") if p.stat().st_size < 20_000)
SEED_BYTES = [p.read_bytes() for p in SEEDS]
PROFILE = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check(raw: bytes) -> ParsedMail | None:
    """Parse a copy of raw; assert the invariants that hold for every mail."""
    original = bytes(raw)
    try:
        mail = parse_mail(raw)
    except NotAMailError as error:
        assert str(error)
        return None
    assert raw == original
    assert mail.size == len(raw)
    json.dumps(mail.contract(), ensure_ascii=False).encode("utf-8")
    for text in (mail.body_text, mail.new_text, mail.quoted_text, mail.signature, mail.subject or ""):
        text.encode("utf-8")
        assert "\x00" not in text
    assert all(a.size == len(a.content) for a in mail.attachments)
    return mail


@PROFILE
@given(st.binary(max_size=4096))
def test_random_bytes_never_raise_anything_but_not_a_mail(raw: bytes) -> None:
    """Arbitrary bytes: a ParsedMail or NotAMailError, nothing else."""
    check(raw)


@PROFILE
@given(
    st.lists(
        st.sampled_from(
            [
                b"From: a@b.c",
                b"Subject: =?utf-8?b?w6k=?=",
                b"Content-Type: multipart/mixed; boundary=x",
                b"--x",
                b"--x--",
                b"",
                b"Content-Transfer-Encoding: base64",
                b"=?",
                b"\xff\xfe",
                b"Content-Type: message/rfc822",
                b"Date: Mon, 99 Foo 2024 99:99:99 +9999",
                b"Content-Disposition: attachment; filename*0*=utf-8''%E2%82; filename*1*=%AC",
                b"Content-Type: text/plain; charset=x-\xff",
                b" folded",
                b'To: <@>, a@, "@" <>',
            ]
        ),
        max_size=40,
    ).map(b"\r\n".join)
)
def test_header_and_mime_line_soup(raw: bytes) -> None:
    """Mail-like lines in any order and number (the shapes that break parsers) never crash it."""
    check(raw)


@PROFILE
@given(st.sampled_from(SEED_BYTES), st.data())
def test_truncated_real_mail(seed: bytes, data: st.DataObject) -> None:
    """A real mail cut anywhere still parses or is refused as not a mail."""
    cut = data.draw(st.integers(min_value=0, max_value=len(seed)))
    check(seed[:cut])


@PROFILE
@given(
    st.sampled_from(SEED_BYTES),
    st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=20),
)
def test_flipped_bytes_in_real_mail(seed: bytes, flips: list[tuple[float, int]]) -> None:
    """A real mail with random bytes overwritten anywhere, headers included."""
    raw = bytearray(seed)
    for where, value in flips:
        raw[int(where * len(raw))] = value
    check(bytes(raw))


@PROFILE
@given(st.sampled_from(SEED_BYTES), st.data())
def test_dropped_boundaries_and_inserted_garbage_headers(seed: bytes, data: st.DataObject) -> None:
    """Boundary lines removed and junk header lines inserted into a real mail."""
    lines = seed.split(b"\n")
    boundary_lines = [i for i, line in enumerate(lines) if line.startswith(b"--")]
    drop = set(data.draw(st.lists(st.sampled_from(boundary_lines), max_size=4))) if boundary_lines else set()
    lines = [line for i, line in enumerate(lines) if i not in drop]
    junk = data.draw(
        st.lists(st.binary(min_size=1, max_size=60).map(lambda b: b.replace(b"\n", b"")), max_size=5)
    )
    for line in junk:
        lines.insert(data.draw(st.integers(0, min(len(lines), 15))), line)
    check(b"\n".join(lines))


def test_every_seed_parses() -> None:
    """The seeds themselves are mails (a guard that the properties above test something)."""
    assert len(SEED_BYTES) > 50
    assert all(check(raw) is not None for raw in SEED_BYTES)
