"""Header signals: robot, bulk and list mail by its headers, and which Authentication-Results are believed."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import make_mail
from triage.ingest.parse import parse_mail
from triage.ingest.signals import header_signals, sender_authentication

OURS = ["mx.example.org"]


def ar(value: str) -> tuple[str, str]:
    return ("Authentication-Results", value)


def test_each_do_not_answer_header_is_a_signal() -> None:
    """Null Return-Path, Precedence bulk/list/junk, List-* and suppressing X-Auto-Response-Suppress values."""
    signals = header_signals([
        ("Return-Path", "<>"), ("Precedence", "Bulk"), ("List-Unsubscribe", "<mailto:u@x>"),
        ("List-Post", "<mailto:p@x>"), ("X-Auto-Response-Suppress", "DR, OOF, AutoReply"),
    ])
    assert signals == ("null-return-path", "precedence:bulk", "list-headers:list-unsubscribe",
                       "list-headers:list-post", "auto-response-suppress:autoreply", "auto-response-suppress:oof")


def test_ordinary_values_are_no_signal() -> None:
    """A real Return-Path, Precedence: first-class, List-Id alone and receipt-only suppression say nothing."""
    assert header_signals([
        ("Return-Path", "<ada@volunteers.example>"), ("Precedence", "first-class"), ("List-Id", "<l.example>"),
        ("X-Auto-Response-Suppress", "DR, NDR, RN, NRN"), ("Subject", "Precedence: bulk"),
    ]) == ()


def test_the_parser_exposes_the_signals() -> None:
    """parse_mail fills ParsedMail.header_signals from the mail's own header section, top first."""
    raw = b"Authentication-Results: mx.example.org; dmarc=pass (p=none) header.from=volunteers.example\n" + make_mail(
        headers={"Precedence": "junk", "Return-Path": "<>"}
    )
    parsed = parse_mail(raw)
    assert parsed.header_signals == ("precedence:junk", "null-return-path", "auth:mx.example.org:pass:volunteers.example")
    assert parse_mail(make_mail()).header_signals == ()


def test_dmarc_pass_from_our_server_authenticates_the_from_domain_only() -> None:
    """Our server's pass counts for the From domain it names; another domain's pass is no evidence."""
    signals = header_signals([ar("mx.example.org; spf=pass smtp.mailfrom=v.example; dmarc=pass header.from=v.example")])
    assert sender_authentication(signals, "ada@v.example", OURS) == "pass"
    assert sender_authentication(signals, "ada@other.example", OURS) == "none"
    assert sender_authentication(signals, "ada@v.example", []) == "none"  # nothing trusted: nothing believed


def test_a_result_from_a_server_not_ours_is_ignored() -> None:
    """The sender can write any Authentication-Results field; one with an authserv-id not configured is not read."""
    signals = header_signals([ar("mx.elsewhere.example; dmarc=pass header.from=v.example"),
                              ar("mx.elsewhere.example; dmarc=fail header.from=v.example")])
    assert sender_authentication(signals, "ada@v.example", OURS) == "none"


def test_only_the_topmost_run_of_our_fields_is_read() -> None:
    """A forged field claiming our id below ours (another header between them) is not read; a fail in our run wins."""
    forged_below = header_signals([
        ar("mx.example.org; dmarc=fail header.from=v.example"), ("Received", "from evil"),
        ar("mx.example.org; dmarc=pass header.from=v.example"),
    ])
    assert "auth-gap" in forged_below
    assert sender_authentication(forged_below, "ada@v.example", OURS) == "fail"
    ours_then_forged = header_signals([
        ar("MX.example.org; dkim=pass header.d=v.example"), ar("mx.example.org; dmarc=none header.from=v.example"),
        ("Received", "from evil"), ar("mx.example.org; dmarc=pass header.from=v.example"),
    ])
    assert sender_authentication(ours_then_forged, "ada@v.example", OURS) == "none"
    split_run = header_signals([ar("mx.example.org; dmarc=pass header.from=v.example"),
                                ar("mx.example.org; dmarc = fail (p=reject) header . from = v.example")])
    assert sender_authentication(split_run, "ada@v.example", OURS) == "fail"


def test_comments_and_quoted_strings_do_not_hide_or_fake_a_result() -> None:
    """A 'dmarc=pass' inside a comment or a reason string is not a result."""
    signals = header_signals([ar('mx.example.org (dmarc=pass); spf=fail reason="dmarc=pass; x"; '
                                 "dmarc=fail (dmarc=pass) header.from=v.example")])
    assert signals == ("auth:mx.example.org:fail:v.example",)


def test_hostile_values_are_read_in_linear_time_and_kept_safe() -> None:
    """Deep comments, quotes and separators in a 400 kB field cost milliseconds; what is kept is a plain token."""
    for body in ("(" * 200_000 + ")" * 200_000, '"\\' * 200_000, "; dmarc=pass" * 40_000, " (x) " * 80_000):
        started = time.perf_counter()
        [signal] = header_signals([ar("mx.example.org " + body)])
        assert time.perf_counter() - started < 0.5
        assert signal.startswith("auth:") and signal.isascii() and "\n" not in signal
    assert header_signals([ar("mx\x1b]0;pwn\x07.example; dmarc=pass header.from=a\u2028b")]) == ("auth:-:pass:a",)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["Authentication-Results", "Precedence", "Return-Path", "List-Post",
                                           "X-Auto-Response-Suppress", "List-Id", "Subject"]),
                          st.text(max_size=200)), max_size=12))
def test_any_header_values_give_short_printable_signals(fields: list[tuple[str, str]]) -> None:
    """Whatever the values, the signals are few, short, printable ASCII, and the judgement never raises."""
    signals = header_signals(fields)
    assert len(signals) <= 30
    assert all(s.isascii() and s.isprintable() and len(s) < 600 for s in signals)
    assert sender_authentication(signals, "ada@v.example", OURS) in ("pass", "fail", "none")


@pytest.mark.parametrize("value", ["", ";", "mx.example.org", "mx.example.org; none", "mx.example.org; dmarc"])
def test_incomplete_fields_are_no_result(value: str) -> None:
    """A field without a DMARC method and result is read as no evidence, never as an error."""
    assert sender_authentication(header_signals([ar(value)]), "ada@v.example", OURS) == "none"
