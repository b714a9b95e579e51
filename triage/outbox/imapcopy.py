"""Copies of sent mail in the liaison's IMAP mailbox ([imap] account): append one, or look one up.

`outbox.sent_folder`: after a mail is sent, a copy is appended there (flagged \\Seen), so the
liaison's own mail client shows what triage sent. `outbox.confirm_folder`: where the server
files its own copy of submitted mail; after a crash in the final-dot window the sender looks
the Message-ID up there (see `triage.outbox.sender`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from triage.config import ImapSettings
from triage.ingest.imap_connect import connect


def append_copies(settings: ImapSettings, folder: str, raws: Sequence[bytes]) -> list[str]:
    """Append each raw mail to `folder`; one result line per mail."""
    client = connect(settings)
    results = []
    try:
        for raw in raws:
            try:
                client.append(folder, raw, flags=[b"\\Seen"], msg_time=datetime.now(UTC))
                results.append(f"appended to {folder}")
            except Exception as exc:  # noqa: BLE001 - reported per mail; the mail itself is sent
                results.append(f"not appended to {folder}: {type(exc).__name__}: {exc}")
    finally:
        client.logout()
    return results


def find_copy(settings: ImapSettings, folder: str, message_id: str) -> bool:
    """Does `folder` hold a mail with this Message-ID?"""
    client = connect(settings)
    try:
        client.select_folder(folder, readonly=True)
        return bool(client.search(["HEADER", "Message-ID", message_id]))
    finally:
        client.logout()


__all__ = ["append_copies", "find_copy"]
