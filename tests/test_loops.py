"""Loop protection: which mails triage may answer automatically, and to whom, each refusal with its reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from triage.outbox.loops import InboundFacts, RecipientFacts, may_auto_answer, may_send_automatic

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def verdict(*, kind: str = "normal", from_addr: str | None = "ada@volunteers.example",
            message_id: str | None = "<a1@volunteers.example>", list_id: str | None = None,
            date: datetime | None = NOW - timedelta(minutes=5), bouncing: bool = False, recent: int = 0,
            limit: int = 3) -> list[str]:
    mail = InboundFacts(kind, from_addr, message_id, list_id, date)
    recipient = RecipientFacts(from_addr, bouncing, recent) if from_addr else None
    return may_auto_answer(mail, recipient, own_domain="example.org", liaison_address="liaison@example.org",
                           rate_limit_per_hour=limit, now=NOW, max_age=timedelta(hours=72)).codes


def test_a_volunteers_fresh_mail_may_be_answered() -> None:
    """A normal, recent mail from a person, not bouncing and under the rate limit: yes."""
    assert verdict() == []


@pytest.mark.parametrize(("kwargs", "code"), [
    ({"kind": "autoreply"}, "autoreply"),
    ({"kind": "bounce"}, "bounce"),
    ({"list_id": "<volunteers.lists.example.org>"}, "mailing-list"),
    ({"message_id": "<179551118270.1.2@example.org>"}, "own-mail"),
    ({"from_addr": "liaison@example.org"}, "own-address"),
    ({"from_addr": "MAILER-DAEMON@mx.example.net"}, "robot-address"),
    ({"from_addr": "no-reply@service.example"}, "robot-address"),
    ({"from_addr": None}, "no-sender"),
    ({"bouncing": True}, "bouncing"),
    ({"recent": 3}, "rate-limit"),
    ({"recent": 1, "limit": 0}, "rate-limit"),
    ({"date": NOW - timedelta(days=30)}, "too-old"),
])
def test_each_loop_risk_refuses_with_its_reason(kwargs: dict[str, object], code: str) -> None:
    """Autoreplies, bounces, list mail, our own mail back, robots, bouncing or busy addresses, old mail: no."""
    assert code in verdict(**kwargs)  # type: ignore[arg-type]


def test_several_reasons_are_all_reported() -> None:
    """The liaison sees every reason, not just the first."""
    assert verdict(kind="autoreply", list_id="<l.example>", bouncing=True) == ["autoreply", "mailing-list", "bouncing"]


def test_rate_limit_counts_automatic_mail_per_address() -> None:
    """Two in the last hour is under a limit of three; three reaches it."""
    facts = RecipientFacts("ada@volunteers.example", False, 2)
    assert may_send_automatic(facts, rate_limit_per_hour=3, liaison_address="liaison@example.org").allowed
    busy = RecipientFacts("ada@volunteers.example", False, 3)
    refused = may_send_automatic(busy, rate_limit_per_hour=3, liaison_address="liaison@example.org")
    assert not refused.allowed and "limit 3" in refused.describe()
