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
