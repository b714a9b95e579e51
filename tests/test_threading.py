"""The threading decision, as a pure function over facts (no database)."""

from __future__ import annotations

from dataclasses import replace

from triage.ingest.parsed import ParsedMail
from triage.ingest.threading import Placement, TicketFacts, decide, header_candidates, subject_reference


def mail(**changes: object) -> ParsedMail:
    base = ParsedMail(
        message_id="<m2@volunteers.example>", from_addr="ada@volunteers.example", from_name="Ada",
        to=["liaison@example.org"], cc=[], reply_to=[], subject="Re: logo", date=None,
        in_reply_to=None, references=[], body_text="hi", new_text="hi", quoted_text="", signature="",
        body_html=None, attachments=[], kind="normal", kind_reason=None, list_id=None, defects=[],
        size=100, oversize=False,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


ADA_TICKET = TicketFacts(7, "T-2026-00007", frozenset({"ada@volunteers.example", "legal@example.org"}), False)


def test_subject_reference_found_in_brackets_and_bare() -> None:
    """A reference is recognised with or without brackets, and only in its exact shape."""
    assert subject_reference("Re: [T-2026-00042] Venue") == "T-2026-00042"
    assert subject_reference("AW: T-2026-00042 Venue") == "T-2026-00042"
    assert subject_reference("Re: T-26-42 Venue") is None
    assert subject_reference("XT-2026-00042") is None
    assert subject_reference(None) is None
    assert subject_reference("Re: [REQ-2026-00001]", prefix="REQ") == "REQ-2026-00001"


def test_participant_with_reference_appends() -> None:
    """The volunteer citing their own ticket joins it."""
    decision = decide(mail(), reference="T-2026-00007", by_reference=ADA_TICKET, by_header=None)
    assert decision.placement is Placement.append and decision.ticket == ADA_TICKET
    assert "subject reference T-2026-00007" in decision.reason


def test_stranger_with_reference_gets_new_linked_flagged_ticket() -> None:
    """A stranger citing someone else's ticket never joins it, even with matching headers."""
    stranger = mail(from_addr="eve@elsewhere.example", in_reply_to="<ack@example.org>")
    decision = decide(
        stranger, reference="T-2026-00007", by_reference=ADA_TICKET, by_header=("<ack@example.org>", ADA_TICKET)
    )
    assert decision.placement is Placement.new_linked
    assert decision.ticket == ADA_TICKET and decision.flag and "T-2026-00007" in decision.flag


def test_headers_thread_when_no_reference() -> None:
    """In-Reply-To against a known Message-ID appends and says which header matched."""
    m = mail(in_reply_to="<ack@example.org>", subject="Re: logo")
    decision = decide(m, reference=None, by_reference=None, by_header=("<ack@example.org>", ADA_TICKET))
    assert decision.placement is Placement.append
    assert decision.reason.startswith("In-Reply-To <ack@example.org>")


def test_reply_to_resolved_ticket_reopens_but_autoreply_does_not() -> None:
    """A person's follow-up reopens a resolved ticket; a robot's reply is filed without reopening."""
    resolved = replace(ADA_TICKET, resolved=True)
    person = decide(mail(), reference="T-2026-00007", by_reference=resolved, by_header=None)
    robot = decide(mail(kind="autoreply"), reference="T-2026-00007", by_reference=resolved, by_header=None)
    assert person.reopen and not robot.reopen
    assert robot.placement is Placement.append


def test_unmatched_automatic_mail_opens_no_ticket() -> None:
    """An out-of-office or bounce matching nothing is stored but opens no ticket."""
    for kind in ("autoreply", "bounce"):
        decision = decide(mail(kind=kind), reference=None, by_reference=None, by_header=None)
        assert decision.placement is Placement.none


def test_unknown_reference_opens_new_ticket_and_says_so() -> None:
    """A reference to a ticket that does not exist is reported in the reason."""
    decision = decide(mail(), reference="T-2026-09999", by_reference=None, by_header=None)
    assert decision.placement is Placement.new and "T-2026-09999" in decision.reason


def test_header_candidates_order() -> None:
    """In-Reply-To first, then References newest first, without repeats."""
    m = mail(in_reply_to="<c@x>", references=["<a@x>", "<b@x>", "<c@x>"])
    assert header_candidates(m) == ["<c@x>", "<b@x>", "<a@x>"]


RESOLVED = replace(ADA_TICKET, resolved=True)


def test_stranger_with_a_known_message_id_gets_a_new_linked_flagged_ticket() -> None:
    """In-Reply-To or References naming a ticket's mail does not let a non-participant join it or reopen it."""
    for headers in ({"in_reply_to": "<ack@example.org>"}, {"references": ["<x@y>", "<ack@example.org>"]}):
        stranger = mail(from_addr="eve@elsewhere.example", **headers)
        decision = decide(stranger, reference=None, by_reference=None, by_header=("<ack@example.org>", RESOLVED))
        assert decision.placement is Placement.new_linked and decision.ticket == RESOLVED
        assert not decision.reopen and decision.flag == "unknown sender replied on T-2026-00007"
        assert "eve@elsewhere.example, who is not on that ticket's thread" in decision.reason


def test_participant_by_header_appends_and_reopens() -> None:
    """The contact or an address our mail went to (the team) answering by header joins, and reopens a resolved ticket."""
    for sender in ("ada@volunteers.example", "Legal@Example.org"):
        decision = decide(mail(from_addr=sender, in_reply_to="<ack@example.org>"), reference=None,
                          by_reference=None, by_header=("<ack@example.org>", RESOLVED))
        assert decision.placement is Placement.append and decision.reopen


def test_automatic_mail_from_a_non_participant_attaches_by_header_without_effect() -> None:
    """A bounce from a mail server matched by header is filed on its ticket, never reopening it."""
    bounce = mail(from_addr="mailer-daemon@mx.elsewhere.example", kind="bounce", in_reply_to="<ack@example.org>")
    decision = decide(bounce, reference=None, by_reference=None, by_header=("<ack@example.org>", RESOLVED))
    assert decision.placement is Placement.append and not decision.reopen and decision.flag is None
    assert "bounce from a non-participant, filed without effect" in decision.reason


def test_a_participant_whose_from_failed_dmarc_is_a_stranger() -> None:
    """Our server's DMARC fail for the From: the participant's address is forged, by subject or by header."""
    for ref, by_reference, by_header in (("T-2026-00007", ADA_TICKET, None),
                                         (None, None, ("<ack@example.org>", ADA_TICKET))):
        forged = decide(mail(in_reply_to="<ack@example.org>"), reference=ref, by_reference=by_reference,
                        by_header=by_header, authentication="fail")
        assert forged.placement is Placement.new_linked and forged.flag is not None
        assert forged.flag.startswith("forged participant") and "failed DMARC" in forged.reason
        for authentication in ("pass", "none"):
            kept = decide(mail(in_reply_to="<ack@example.org>"), reference=ref, by_reference=by_reference,
                          by_header=by_header, authentication=authentication)  # type: ignore[arg-type]
            assert kept.placement is Placement.append


def test_authentication_never_makes_a_stranger_a_participant() -> None:
    """A DMARC pass proves who wrote, not that they belong on the ticket."""
    stranger = mail(from_addr="eve@elsewhere.example", in_reply_to="<ack@example.org>")
    decision = decide(stranger, reference=None, by_reference=None, by_header=("<ack@example.org>", ADA_TICKET),
                      authentication="pass")
    assert decision.placement is Placement.new_linked


LEGAL_TICKET = replace(ADA_TICKET, staff=frozenset({"legal@example.org", "rosa@example.org"}))
COMMENT = "liaison+comment@example.org"


def test_staff_of_the_ticket_team_reply_or_note_by_the_address_they_write_to() -> None:
    """The team's member replying to the hand-off is a staff reply; to the comment address, a note."""
    rosa = mail(from_addr="rosa@example.org", in_reply_to="<handoff@example.org>")
    hit = ("<handoff@example.org>", LEGAL_TICKET)
    reply = decide(rosa, reference=None, by_reference=None, by_header=hit, comment_address=COMMENT)
    assert reply.placement is Placement.append and reply.staff == "reply" and not reply.reopen
    note = decide(replace(rosa, to=[COMMENT]), reference=None, by_reference=None, by_header=hit,
                  comment_address=COMMENT)
    assert note.placement is Placement.append and note.staff == "note" and "internal note" in note.reason


def test_no_one_else_is_staff() -> None:
    """Another address, a forged staff From, or an out-of-office is never the team's word; the comment
    address is the team's alone, even for the ticket's own volunteer."""
    hit = ("<handoff@example.org>", LEGAL_TICKET)
    tom = mail(from_addr="tom@example.org", in_reply_to="<handoff@example.org>", to=[COMMENT])
    assert decide(tom, reference=None, by_reference=None, by_header=hit,
                  comment_address=COMMENT).placement is Placement.new_linked
    forged = mail(from_addr="rosa@example.org", in_reply_to="<handoff@example.org>")
    assert decide(forged, reference=None, by_reference=None, by_header=hit, comment_address=COMMENT,
                  authentication="fail").staff is None
    away = mail(from_addr="rosa@example.org", in_reply_to="<handoff@example.org>", kind="autoreply")
    assert decide(away, reference=None, by_reference=None, by_header=hit, comment_address=COMMENT).staff is None
    ada = mail(to=[COMMENT], in_reply_to="<handoff@example.org>")
    decision = decide(ada, reference=None, by_reference=None, by_header=hit, comment_address=COMMENT)
    assert decision.placement is Placement.new_linked and decision.flag == "non-staff note on T-2026-00007"
