"""The one-way fingerprint an erased mail keeps in place of its Message-ID.

Pure, and free of the database, so that ingest can recognise an erased mail without importing
the erasure code. The fingerprint tells whether a mail read again (a mailbox re-scanned after its
UIDVALIDITY changed, the same mail in a second folder or account, `triage ingest` of an old
maildir) is one that was erased, so it is refused instead of storing the person anew; it does
not give the Message-ID back, which may hold a name or an address.
"""

from __future__ import annotations

import hashlib

PREFIX = "erased:"
# The reason ingest gives for a mail it recognised as erased (no ticket, no message, no event).
ERASED_REASON = "erased earlier: not stored again"


def erased_message_id(message_id: str) -> str:
    """What the messages row (and the IMAP ledger) keeps of an erased mail's Message-ID."""
    if is_erased(message_id):
        return message_id
    return PREFIX + hashlib.sha256(message_id.encode("utf-8", "surrogateescape")).hexdigest()


def is_erased(message_id: str | None) -> bool:
    return bool(message_id) and str(message_id).startswith(PREFIX)


__all__ = ["ERASED_REASON", "PREFIX", "erased_message_id", "is_erased"]
