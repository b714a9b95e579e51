"""Which ticket does a new mail belong to? A pure decision over facts the store looked up.

Order: the ticket reference in the subject, then In-Reply-To and References against
Message-IDs we have seen or sent, else a new ticket. A subject reference from an address
never seen on that ticket's thread does not join it: that is how a peer leaked private
mail, so we open a new ticket linked to the referenced one and flag it.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from functools import lru_cache

from triage.ingest.parsed import ParsedMail


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
    participants: frozenset[str]
    resolved: bool


@dataclass(frozen=True, slots=True)
class ThreadDecision:
    placement: Placement
    ticket: TicketFacts | None
    reason: str
    flag: str | None = None
    reopen: bool = False


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


def decide(
    mail: ParsedMail,
    *,
    reference: str | None,
    by_reference: TicketFacts | None,
    by_header: tuple[str, TicketFacts] | None,
) -> ThreadDecision:
    """Place `mail` given the ticket its subject names (if any) and the first ticket its headers hit."""
    automatic = mail.kind != "normal"
    sender = mail.from_addr or ""
    if by_reference is not None:
        if sender and sender in by_reference.participants:
            return ThreadDecision(
                Placement.append,
                by_reference,
                f"subject reference {by_reference.reference} from a participant",
                reopen=by_reference.resolved and not automatic,
            )
        if not automatic:
            return ThreadDecision(
                Placement.new_linked,
                by_reference,
                f"subject reference {by_reference.reference} from {sender or 'an unknown sender'}, "
                "who is not on that ticket's thread",
                flag=f"unknown sender cited {by_reference.reference}",
            )
    if by_header is not None:
        header_id, ticket = by_header
        return ThreadDecision(
            Placement.append,
            ticket,
            f"{'In-Reply-To' if header_id == mail.in_reply_to else 'References'} {header_id} "
            f"is on {ticket.reference}",
            reopen=ticket.resolved and not automatic,
        )
    if automatic:
        return ThreadDecision(
            Placement.none, None, f"{mail.kind} that matches no ticket; stored without opening one"
        )
    if reference is not None:
        return ThreadDecision(Placement.new, None, f"subject cites unknown reference {reference}; new ticket")
    return ThreadDecision(Placement.new, None, "no reference and no known Message-ID; new ticket")
