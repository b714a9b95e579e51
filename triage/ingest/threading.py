"""Which ticket does a new mail belong to? A pure decision over facts the store looked up.

Order: the ticket reference in the subject, then In-Reply-To and References against
Message-IDs we have seen or sent, else a new ticket. Only a participant's person-written mail
joins a ticket, whichever of the two matched: a reference or a Message-ID is no secret (it
is quoted, forwarded, shown in archives), and a stranger who joined would be quoted to the
staff team as the volunteer and could reopen the ticket. A stranger's mail opens a new ticket
linked to the one it cites, flagged for the liaison. The participants are the ticket's
contact and the addresses our own mail on the ticket went to (the staff team we handed it to
among them); a From whose DMARC check failed at our own server is nobody's participant.
Bounces and auto-replies still join the ticket their headers name, since they carry no text
for anyone and a bounce comes from a server, not a participant; they never change its status.

Staff by mail (like Request Tracker's correspond and comment addresses): a person-written mail
from an address of the team the ticket was handed to (`TicketFacts.staff`) joins it as the
staff's: a reply, relayed to the volunteer from the desk, or, when it was written to the
comment address, an internal note that never leaves the desk. Anyone else who writes to the
comment address about a ticket is treated as a stranger.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from triage.ingest.parsed import ParsedMail
from triage.ingest.signals import SenderAuthentication


class Placement(str, enum.Enum):
    append = "append"
    new = "new"
    new_linked = "new-linked"
    none = "none"


@dataclass(frozen=True, slots=True)
class TicketFacts:
    """What threading needs to know of an existing ticket."""

    id: int
    reference: str
    participants: frozenset[str]  # lower-case addresses
    resolved: bool
    staff: frozenset[str] = frozenset()  # lower-case addresses of the team the ticket was handed to


StaffPath = Literal["reply", "note"]


@dataclass(frozen=True, slots=True)
class ThreadDecision:
    placement: Placement
    ticket: TicketFacts | None
    reason: str
    flag: str | None = None
    reopen: bool = False
    staff: StaffPath | None = None  # the team's mail: a reply to relay, or an internal note


@lru_cache(maxsize=16)
def reference_pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(rf"\b{re.escape(prefix)}-(\d{{4}})-(\d{{5,}})\b")


def subject_reference(subject: str | None, prefix: str = "T") -> str | None:
    """The first ticket reference in a subject, e.g. 'Re: [T-2026-00042] Venue' -> 'T-2026-00042'."""
    if not subject:
        return None
    match = reference_pattern(prefix).search(subject)
    return match.group(0) if match else None


def header_candidates(mail: ParsedMail) -> list[str]:
    """Message-IDs to look up, most specific first: In-Reply-To, then References newest first."""
    ids: list[str] = []
    for candidate in [mail.in_reply_to, *reversed(mail.references), mail.bounce_original_message_id]:
        if candidate and candidate not in ids:
            ids.append(candidate)
    return ids


def is_participant(mail: ParsedMail, ticket: TicketFacts, authentication: SenderAuthentication = "none") -> bool:
    """Is the sender one of the ticket's participants, and not shown to be forged?"""
    sender = (mail.from_addr or "").lower()
    return bool(sender) and sender in ticket.participants and authentication != "fail"


def is_staff(mail: ParsedMail, ticket: TicketFacts, authentication: SenderAuthentication = "none") -> bool:
    """Is the sender an address of the team the ticket was handed to, and not shown to be forged?"""
    sender = (mail.from_addr or "").lower()
    return bool(sender) and sender in ticket.staff and authentication != "fail"


def decide(
    mail: ParsedMail,
    *,
    reference: str | None,
    by_reference: TicketFacts | None,
    by_header: tuple[str, TicketFacts] | None,
    authentication: SenderAuthentication = "none",
    comment_address: str | None = None,
) -> ThreadDecision:
    """Place `mail` given the ticket its subject names (if any) and the first ticket its headers hit.

    `authentication` is what our own server found of the From domain's DMARC check
    (`signals.sender_authentication`); `comment_address` is where staff write internal notes.
    """
    automatic = mail.kind != "normal"
    matched = by_reference if by_reference is not None else (by_header[1] if by_header is not None else None)
    if matched is not None and not automatic:
        if by_reference is not None:
            via = f"subject reference {by_reference.reference}"
        else:
            assert by_header is not None
            header_id = by_header[0]
            header = "In-Reply-To" if header_id == mail.in_reply_to else "References"
            via = f"{header} {header_id} is on {matched.reference}"
        to_comment = bool(comment_address) and comment_address in {a.lower() for a in (*mail.to, *mail.cc)}
        if is_staff(mail, matched, authentication):
            if to_comment:
                return ThreadDecision(Placement.append, matched, f"{via}, from the team's {mail.from_addr} to the "
                                      "comment address: an internal note", staff="note")
            return ThreadDecision(Placement.append, matched, f"{via}, from the team's {mail.from_addr}: a staff "
                                  "reply, relayed to the volunteer", staff="reply")
        if to_comment:  # the note path is the team's alone: anyone else is a stranger there
            sender = mail.from_addr or "an unknown sender"
            return ThreadDecision(
                Placement.new_linked, matched,
                f"{via}; to the comment address from {sender}, who is not of the team the ticket was handed to",
                flag=f"non-staff note on {matched.reference}",
            )
    if by_reference is not None:
        if is_participant(mail, by_reference, authentication):
            return ThreadDecision(
                Placement.append,
                by_reference,
                f"subject reference {by_reference.reference} from a participant",
                reopen=by_reference.resolved and not automatic,
            )
        if not automatic:
            return _stranger(mail, by_reference, f"subject reference {by_reference.reference}", "cited",
                             authentication)
    if by_header is not None:
        header_id, ticket = by_header
        via = f"{'In-Reply-To' if header_id == mail.in_reply_to else 'References'} {header_id} is on {ticket.reference}"
        if automatic:
            known = is_participant(mail, ticket, authentication)
            return ThreadDecision(
                Placement.append,
                ticket,
                via if known else f"{via}; {mail.kind} from a non-participant, filed without effect",
            )
        if is_participant(mail, ticket, authentication):
            return ThreadDecision(Placement.append, ticket, f"{via}, from a participant", reopen=ticket.resolved)
        return _stranger(mail, ticket, via, "replied on", authentication)
    if automatic:
        return ThreadDecision(
            Placement.none, None, f"{mail.kind} that matches no ticket; stored without opening one"
        )
    if reference is not None:
        return ThreadDecision(Placement.new, None, f"subject cites unknown reference {reference}; new ticket")
    return ThreadDecision(Placement.new, None, "no reference and no known Message-ID; new ticket")


def _stranger(
    mail: ParsedMail, ticket: TicketFacts, matched: str, verb: str, authentication: SenderAuthentication
) -> ThreadDecision:
    """A new ticket linked to `ticket` and flagged: the sender matched it but is not on its thread."""
    sender = mail.from_addr or "an unknown sender"
    if authentication == "fail" and (mail.from_addr or "").lower() in ticket.participants:
        who, flag = f"{sender}, whose From failed DMARC at our server", f"forged participant {verb}"
    else:
        who, flag = f"{sender}, who is not on that ticket's thread", f"unknown sender {verb}"
    return ThreadDecision(
        Placement.new_linked, ticket, f"{matched}; from {who}", flag=f"{flag} {ticket.reference}"
    )
