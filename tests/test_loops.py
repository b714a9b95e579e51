"""Loop protection: which mails triage may answer automatically, and to whom, each refusal with its reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from triage.outbox.loops import (
    InboundFacts,
    RecipientFacts,
    may_auto_answer,
    may_send_automatic,
    rate_domain,
    rate_key,
)

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


@pytest.mark.parametrize(("signals", "code"), [
    (("null-return-path",), "null-return-path"),
    (("precedence:bulk",), "bulk"),
    (("precedence:junk",), "bulk"),
    (("list-headers:list-unsubscribe", "list-headers:list-post"), "list-headers"),
    (("auto-response-suppress:oof",), "suppress-auto-reply"),
])
def test_robot_bulk_and_list_headers_refuse_an_acknowledgment(signals: tuple[str, ...], code: str) -> None:
    """Each header signal that says 'do not answer automatically' refuses, once, with its own code."""
    mail = InboundFacts("normal", "ada@volunteers.example", "<a1@v.example>", None, NOW, signals)
    result = may_auto_answer(mail, RecipientFacts("ada@volunteers.example", False, 0), own_domain="example.org",
                             liaison_address="liaison@example.org", rate_limit_per_hour=3, now=NOW,
                             max_age=timedelta(hours=72))
    assert result.codes == [code]


def test_mail_without_a_date_is_not_answered() -> None:
    """No (valid) Date: a robot's mail, or a crafted one; no acknowledgment."""
    assert verdict(date=None) == ["no-date"]


def test_dmarc_fail_refuses_and_unauthenticated_refuses_when_required() -> None:
    """A From our server found forged is never answered; one not proven genuine only when so configured."""
    def codes(authentication: str, require: bool) -> list[str]:
        mail = InboundFacts("normal", "ada@volunteers.example", "<a1@v.example>", None, NOW, (), authentication)
        return may_auto_answer(mail, RecipientFacts("ada@volunteers.example", False, 0), own_domain="example.org",
                               liaison_address="liaison@example.org", rate_limit_per_hour=3, now=NOW,
                               max_age=timedelta(hours=72), require_authentication=require).codes
    assert codes("fail", False) == ["dmarc-fail"] and codes("none", False) == [] and codes("pass", False) == []
    assert codes("none", True) == ["unauthenticated"] and codes("pass", True) == []


def test_per_domain_limit_counts_acknowledgments_to_the_domain() -> None:
    """Below the domain's limit: yes; at it: no, whatever the address."""
    mail = InboundFacts("normal", "new@victim.example", "<a1@v.example>", None, NOW)
    for count, allowed in ((19, True), (20, False)):
        result = may_auto_answer(mail, RecipientFacts("new@victim.example", False, 0, count),
                                 own_domain="example.org", liaison_address="liaison@example.org",
                                 rate_limit_per_hour=3, now=NOW, max_age=timedelta(hours=72),
                                 domain_limit_per_hour=20)
        assert result.allowed is allowed and (allowed or result.codes == ["domain-rate-limit"])


def test_rate_key_folds_case_and_sub_addresses_but_not_dots() -> None:
    """victim+1@ and Victim+2@ are one mailbox; j.doe@ and jdoe@ are two, except at Gmail, which ignores dots."""
    assert {rate_key(a) for a in ("victim@x.example", "victim+1@x.example", "Victim+2@X.Example")} == {
        "victim@x.example"}
    assert rate_key("j.doe@x.example") != rate_key("jdoe@x.example")
    assert rate_key("J.Doe+promo@googlemail.com") == rate_key("jdoe@gmail.com") == "jdoe@gmail.com"
    assert rate_key("+tag@x.example") == "+tag@x.example" and rate_key("no-at-sign") == "no-at-sign"
    assert rate_domain("a+b@Sub.X.Example") == "sub.x.example"
