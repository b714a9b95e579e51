"""Composition: threading headers, our Message-ID, the ticket reference, Auto-Submitted, no header injection."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime

import pytest

from triage.outbox.compose import (
    ComposeError,
    HeaderInjectionError,
    Party,
    ThreadInfo,
    compose,
    to_bytes,
)
from triage.outbox.render import Rendered

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
LIAISON = Party("liaison@example.org", "Community Liaison")
ADA = Party("ada@volunteers.example", "Ada Lovelace")


def rendered(subject: str = "Re: Logo", text: str = "Thank you.\n", html: str | None = None) -> Rendered:
    return Rendered(name="acknowledgment", language="en", subject=subject, text=text, html=html)


def build(**kwargs: object) -> email.message.EmailMessage:
    args: dict[str, object] = {
        "sender": LIAISON, "to": [ADA], "thread": ThreadInfo("T-2026-00001", "<a2@v.example>", ("<a1@v.example>",)),
        "own_domain": "example.org", "date": NOW,
    }
    args.update(kwargs)
    return compose(args.pop("rendered", rendered()), **args)  # type: ignore[arg-type]


def test_reply_threads_to_the_volunteers_mail() -> None:
    """In-Reply-To names their mail, References chains theirs then it; our Message-ID is on our domain."""
    message = build()
    assert message["In-Reply-To"] == "<a2@v.example>"
    assert str(message["References"]).split() == ["<a1@v.example>", "<a2@v.example>"]
    assert str(message["Message-ID"]).endswith("@example.org>")
    assert message["From"].addresses[0].addr_spec == "liaison@example.org"
    assert message["From"].addresses[0].display_name == "Community Liaison"
    assert message["Reply-To"].addresses[0].addr_spec == "liaison@example.org"
    assert message["Subject"] == "[T-2026-00001] Re: Logo"
    assert "Auto-Submitted" not in message


def test_reference_is_not_repeated_when_the_subject_has_it() -> None:
    """A subject that already names the ticket is left alone."""
    assert build(rendered=rendered("Re: [T-2026-00001] Logo"))["Subject"] == "Re: [T-2026-00001] Logo"


@pytest.mark.parametrize("value", ["auto-replied", "auto-generated"])
def test_automatic_mail_says_so(value: str) -> None:
    """RFC 3834: automatic answers and notifications carry Auto-Submitted, and Exchange is told not to answer."""
    message = build(auto_submitted=value)
    assert message["Auto-Submitted"] == value and message["X-Auto-Response-Suppress"] == "All"


def test_wire_form_is_seven_bit_with_crlf_and_round_trips() -> None:
    """Non-ASCII names, subjects and bodies are encoded; the bytes parse back to the same values."""
    message = build(to=[Party("jose@ejemplo.es", "José Ñúñez")], rendered=rendered("Re: Pancarta ¿sí?", "¡Hola!\n",
                                                                                    "<p>¡Hola!</p>"))
    raw = to_bytes(message)
    assert raw.isascii() and b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    back = email.message_from_bytes(raw, policy=email.policy.default)
    assert back["To"].addresses[0].display_name == "José Ñúñez"
    assert back["Subject"] == "[T-2026-00001] Re: Pancarta ¿sí?"
    assert back.get_body(("plain",)).get_content().replace("\r\n", "\n") == "¡Hola!\n"  # type: ignore[union-attr]
    assert back.get_body(("html",)) is not None


@pytest.mark.parametrize("field", ["subject", "to name", "to address", "from name", "reference", "in-reply-to"])
@pytest.mark.parametrize("breaker", ["\r\n", "\n", "\r"])
def test_line_breaks_in_any_value_are_refused(field: str, breaker: str) -> None:
    """CR or LF inside a subject, a name, an address or an id would forge headers: refused, never cleaned."""
    evil = f"x{breaker}Bcc: victim@example.net"
    kwargs: dict[str, object] = {
        "subject": {"rendered": rendered(f"Re: {evil}")},
        "to name": {"to": [Party("ada@volunteers.example", evil)]},
        "to address": {"to": [Party(f"ada@volunteers.example{breaker}Bcc: victim@example.net")]},
        "from name": {"sender": Party("liaison@example.org", evil)},
        "reference": {"thread": ThreadInfo(f"T-1{breaker}X: y")},
        "in-reply-to": {"thread": ThreadInfo("T-1", f"<a@b>{breaker}Bcc: v@e")},
    }[field]
    with pytest.raises(HeaderInjectionError, match="line break"):
        build(**kwargs)


@pytest.mark.parametrize("address", ["not-an-address", "a@b@c", "Ada <ada@v.example>", "a,b@v.example"])
def test_malformed_addresses_are_refused(address: str) -> None:
    """An address must be a bare addr-spec; display names travel separately."""
    with pytest.raises(ComposeError):
        build(to=[Party(address)])


def test_long_reference_chains_keep_the_first_and_the_newest() -> None:
    """References is trimmed to 20 ids: the thread's root and the 19 newest, ending with the mail we answer."""
    chain = tuple(f"<m{i}@v.example>" for i in range(40))
    message = build(thread=ThreadInfo("T-1", "<last@v.example>", chain))
    ids = str(message["References"]).split()
    assert len(ids) == 20 and ids[0] == "<m0@v.example>" and ids[-1] == "<last@v.example>"


SPLITLINES_BREAKS = ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


@pytest.mark.parametrize("breaker", SPLITLINES_BREAKS)
@pytest.mark.parametrize("field", ["in-reply-to", "references", "message-id", "to name", "subject"])
def test_every_line_break_the_standard_library_knows_is_refused(field: str, breaker: str) -> None:
    """VT, FF, FS/GS/RS, NEL, U+2028 and U+2029 break a header for `email.policy` as CR and LF do:
    a HeaderInjectionError naming the character, never the standard library's ValueError."""
    evil = f"<a{breaker}b@v.example>"
    kwargs: dict[str, object] = {
        "in-reply-to": {"thread": ThreadInfo("T-1", evil)},
        "references": {"thread": ThreadInfo("T-1", None, ("<ok@v.example>", evil))},
        "message-id": {"message_id": evil},
        "to name": {"to": [Party("ada@volunteers.example", f"Ada{breaker}Lovelace")]},
        "subject": {"rendered": rendered(f"Re: a{breaker}b")},
    }[field]
    with pytest.raises(HeaderInjectionError, match=f"U\\+{ord(breaker):04X}"):
        build(**kwargs)


@pytest.mark.parametrize(("kwargs", "named"), [
    ({"to": [Party("x@[192.0.2.7")]}, "x@[192.0.2.7"),  # an unclosed domain literal: AttributeError inside email
    ({"to": [Party("x@[192.0.2.7]x")]}, "x@[192.0.2.7]x"),
    ({"to": [Party("ada.@volunteers.example")]}, "ada.@volunteers.example"),
    ({"to": [Party("jdöe@mächine.example")]}, "jdöe@mächine.example"),
    ({"thread": ThreadInfo("T-1", "<a b@v.example>")}, "<a b@v.example>"),  # a space inside a msg-id
    ({"thread": ThreadInfo("T-1", "<a@v.example x>")}, "<a@v.example x>"),
    ({"thread": ThreadInfo("T-1", "<<a@v.example>>")}, "<<a@v.example>>"),  # IndexError inside email
    ({"thread": ThreadInfo("T-1", "<a@[192.0.2.7>")}, "<a@[192.0.2.7>"),
    ({"thread": ThreadInfo("T-1", None, ("<é@v.example>",))}, "<é@v.example>"),
    ({"message_id": "<a@v.example.>"}, "<a@v.example.>"),
])
def test_poison_values_are_a_compose_error_that_names_them(kwargs: dict[str, object], named: str) -> None:
    """Values on which the standard library raises (or which it writes as something else) are a
    ComposeError naming the value: callers that catch ComposeError see every such failure."""
    with pytest.raises(ComposeError) as caught:
        to_bytes(build(**kwargs))
    assert repr(named) in str(caught.value)


def test_long_message_ids_are_folded_but_never_encoded() -> None:
    """A long id in In-Reply-To or References goes out as written: the standard library would
    RFC 2047-encode it as free text, and no client would thread on the encoded word."""
    long_id = f"<{'a' * 300}@v.example>"
    raw = to_bytes(build(thread=ThreadInfo("T-1", long_id, tuple(f"<{i}{'b' * 70}@v.example>" for i in range(5)))))
    wire = email.message_from_bytes(raw, policy=email.policy.compat32)
    assert str(wire["In-Reply-To"]).split() == [long_id]
    assert str(wire["References"]).split()[-1] == long_id and b"=?" not in raw.split(b"\r\n\r\n")[0]
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998


def test_long_names_and_subjects_the_library_folds_oddly_still_compose() -> None:
    """The standard library folds a long dotted name into an unquoted obs-phrase or split encoded
    words, and a long non-ASCII subject loses a space between encoded words: the text is the same
    up to whitespace, so the mail is built (the check compares characters, not spacing)."""
    name = "Visit spam.example now " * 4 + "…"
    message = build(to=[Party("ada@volunteers.example", name)],
                    rendered=rendered("Re: Ваше сообщение не доставлено. Mail failure."))
    back = email.message_from_bytes(to_bytes(message), policy=email.policy.default)
    assert back["To"].addresses[0].addr_spec == "ada@volunteers.example"
    assert "".join(back["To"].addresses[0].display_name.split()) == "".join(name.split())


@pytest.mark.parametrize("name", ["Community  Liaison", "Ana\tLovelace", " Ada "])
def test_whitespace_in_a_name_is_no_reason_to_refuse_a_mail(name: str) -> None:
    """A reader collapses the whitespace of a display name; a desk name with two spaces must not
    make every mail a ComposeError."""
    back = email.message_from_bytes(to_bytes(build(sender=Party("liaison@example.org", name))),
                                    policy=email.policy.default)
    assert back["From"].addresses[0].display_name == " ".join(name.split())
