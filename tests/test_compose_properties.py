"""Property tests: whatever text reaches composition, the result is a mail that says what was meant,
or a ComposeError; the standard library's own errors never escape `compose` or `to_bytes`.

Every input is fuzzed: the addresses and names of From, To, Cc and Reply-To, the subject, the
ticket reference, the mail answered (In-Reply-To), its References, our own Message-ID, the
rendered text and HTML, and the language. Arbitrary text rarely gets past the first checks, so
the strategies also build near-valid values (an address, a msg-id) with hostile characters
inside: the line breaks `str.splitlines()` knows, unclosed domain literals, spaces, brackets.
"""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from email.errors import ObsoleteHeaderDefect
from email.message import EmailMessage
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from triage.outbox.compose import ComposeError, Party, ThreadInfo, compose, to_bytes
from triage.outbox.render import Rendered

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
PROFILE = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

HOSTILE = ["\r", "\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", " ", "\t", "<", ">",
           "[", "]", "(", ")", '"', "\\", ",", ";", ":", "@", "=?utf-8?q?x?=", "\x00", "\x1b", "é", "\udcff", ".."]
ANY_CHAR = st.characters(blacklist_categories=())  # surrogates included: a decoder's surrogateescape leaves them
ANY_TEXT = st.text(ANY_CHAR, max_size=40)
ATOM = st.text(st.sampled_from("abcxyz019.-_+"), min_size=1, max_size=12)
SPICED = st.lists(st.one_of(ATOM, st.sampled_from(HOSTILE), ANY_TEXT), min_size=1, max_size=4).map("".join)
PART = st.one_of(ATOM, SPICED)


def address() -> st.SearchStrategy[str]:
    literal = st.builds(lambda a, b: f"[{a}{b}", st.sampled_from(["192.0.2.7", "IPv6:::1", ""]),
                        st.sampled_from(["", "]", "]x"]))
    return st.one_of(st.builds(lambda l, d: f"{l}@{d}", PART, st.one_of(PART, literal)), ANY_TEXT)


def msg_id() -> st.SearchStrategy[str]:
    return st.one_of(st.builds(lambda l, r: f"<{l}@{r}>", PART, PART), ANY_TEXT,
                     st.builds(lambda n: f"<{'a' * n}@v.example>", st.integers(60, 1200)))


def party() -> st.SearchStrategy[Party]:
    return st.builds(Party, address(), st.one_of(st.none(), ANY_TEXT, SPICED))


def squeeze(text: str) -> str:
    """Text without its whitespace: what folding may move (see compose._same_text)."""
    return "".join(text.split())


def check(message: EmailMessage, meant: dict[str, Any]) -> None:
    """The wire form is 7-bit CRLF text within the line limit, and reads back to what was meant."""
    raw = to_bytes(message)
    assert raw.isascii() and b"\n" not in raw.replace(b"\r\n", b"") and b"\r" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    back = email.message_from_bytes(raw, policy=email.policy.default)
    wire = email.message_from_bytes(raw, policy=email.policy.compat32)  # ids as written, not decoded
    for name in ("From", "To", "Cc", "Reply-To"):
        if meant[name]:  # the address exactly, the name up to whitespace (folding moves spaces)
            assert [(squeeze(a.display_name), a.addr_spec) for a in back[name].addresses] == [
                (squeeze(p.name or ""), p.address) for p in meant[name]]
            assert not [d for d in back[name].defects if not isinstance(d, ObsoleteHeaderDefect)]
    assert squeeze(str(back["Subject"])) == squeeze(meant["Subject"])
    assert squeeze(str(back["X-Triage-Ticket"] or "")) == squeeze(meant["reference"])
    assert str(wire["In-Reply-To"] or "").split() == ([meant["in_reply_to"].strip()] if meant["in_reply_to"] else [])
    assert str(wire["References"] or "").split()[-1:] == ([meant["in_reply_to"].strip()] if meant["in_reply_to"]
                                                          else [r.strip() for r in meant["references"]][-1:])
    assert len(str(wire["Message-ID"]).split()) == 1
    assert squeeze(str(back["Content-Language"])) == squeeze(meant["language"])
    assert back.get_body(("plain",)) is not None


VALID: dict[str, Any] = {
    "to": Party("ada@volunteers.example", "Ada"), "cc": [], "sender": Party("liaison@example.org", "Desk"),
    "reply_to": None, "subject": "Re: Logo", "reference": "T-2026-00001", "in_reply_to": "<a2@v.example>",
    "references": ["<a1@v.example>"], "message_id": None, "text": "Thank you.\n", "html": None, "language": "en",
}
FUZZ: dict[str, st.SearchStrategy[Any]] = {
    "to": party(), "cc": st.lists(party(), max_size=2), "sender": party(), "reply_to": party(),
    "subject": st.one_of(ANY_TEXT, SPICED), "reference": st.one_of(ANY_TEXT, SPICED),
    "in_reply_to": msg_id(), "references": st.lists(msg_id(), min_size=1, max_size=3), "message_id": msg_id(),
    "text": st.one_of(ANY_TEXT, SPICED), "html": ANY_TEXT, "language": st.one_of(ANY_TEXT, SPICED),
}


def compose_or_refuse(values: dict[str, Any]) -> None:
    """Compose from `values`: either ComposeError, or a mail that `check` finds says what was meant."""
    rendered = Rendered(name="acknowledgment", language=values["language"], subject=values["subject"],
                        text=values["text"], html=values["html"])
    thread = ThreadInfo(values["reference"], values["in_reply_to"], tuple(values["references"]))
    try:
        message = compose(rendered, sender=values["sender"], to=[values["to"]], cc=values["cc"],
                          reply_to=values["reply_to"], thread=thread, own_domain="example.org", date=NOW,
                          auto_submitted="auto-replied", message_id=values["message_id"])
    except ComposeError as exc:
        assert str(exc)
        return
    subject, reference = values["subject"], values["reference"]
    check(message, {
        "From": [values["sender"]], "To": [values["to"]], "Cc": values["cc"],
        "Reply-To": [values["reply_to"] or Party(values["sender"].address)],
        "Subject": subject if reference in subject else f"[{reference}] {subject}".rstrip(),
        "reference": reference, "in_reply_to": values["in_reply_to"], "references": values["references"],
        "language": values["language"],
    })


@pytest.mark.parametrize("name", sorted(FUZZ))
@PROFILE
@given(data=st.data())
def test_each_input_fuzzed_alone_composes_a_mail_that_reads_back_or_raises_compose_error(
    name: str, data: st.DataObject
) -> None:
    """One input fuzzed, the others valid: a mail whose headers read back unchanged, or ComposeError."""
    compose_or_refuse({**VALID, name: data.draw(FUZZ[name], label=name)})


@PROFILE
@example(values={**VALID, "to": Party("x@[192.0.2.7"), "in_reply_to": "<a\x0bb@v.example>",
                 "references": ["<a b@v.example>"]})
@given(st.fixed_dictionaries({name: st.one_of(st.just(VALID[name]), FUZZ[name]) for name in VALID}))
def test_all_inputs_fuzzed_together_compose_a_mail_that_reads_back_or_raise_compose_error(
    values: dict[str, Any]
) -> None:
    """Any mix of valid and hostile inputs: a mail whose headers read back unchanged, or ComposeError."""
    compose_or_refuse(values)


@PROFILE
@given(st.text(ANY_CHAR, max_size=60), st.text(ANY_CHAR, max_size=60))
def test_any_own_domain_or_name_gives_a_mail_or_compose_error(own_domain: str, name: str) -> None:
    """Our own configuration is text too: a bad own_domain or desk name is a ComposeError, not a crash."""
    rendered = Rendered(name="reminder", language="en", subject="Reminder", text="Due.\n")
    try:
        message = compose(rendered, sender=Party("liaison@example.org", name), to=[Party("team@example.org")],
                          thread=ThreadInfo(""), own_domain=own_domain, date=NOW)
    except ComposeError:
        return
    to_bytes(message)
