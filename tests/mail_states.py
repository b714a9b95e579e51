"""Outbox rows and quarantined mail in the states the liaison acts on (uncertain, failed, quarantined),
made the way tests/test_outbox.py and tests/test_failures.py make them: real ingests, then the
outbox row moved to the state a delivery would have left it in; a parser that fails on purpose."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import make_mail
from triage.bootstrap import App
from triage.config import Settings, load_settings
from triage.ingest.parsed import ParsedMail
from triage.ingest.pipeline import IncomingMail
from triage.store.db import utcnow
from triage.store.models import Quarantine
from triage.store.outbox_models import Outbox, OutboxStatus

FAILED_WHY = "permanent failure at RCPT: 550 5.1.1 <{to}>: Recipient address rejected"
UNCERTAIN_WHY = "may have been sent: connection lost after the final dot. Not resent automatically"


@pytest.fixture(name="settings")
def fixture_acknowledging_settings(db_url: str) -> Settings:
    """The `app` fixture's settings with acknowledgments on, so that each new ticket queues a mail."""
    return load_settings(environ={"TRIAGE_DATABASE_URL": db_url, "TRIAGE_OUTBOX_AUTO_ACKNOWLEDGE": "true"})


def acknowledged_tickets(app: App, count: int, *, subject: str = "Question about the logo") -> list[int]:
    """`count` new tickets, each with its acknowledgment queued (mail dated now: older mail gets
    none); the outbox ids, in order."""
    app.ingestor().ingest_many([
        IncomingMail(make_mail(sender=f"Volunteer {n} <v{n}@volunteers.example>", subject=f"{subject} {n}",
                               message_id=f"<state{n}@volunteers.example>", date=utcnow()), source="test")
        for n in range(count)
    ])
    with app.reads() as session:
        return list(session.scalars(select(Outbox.id).order_by(Outbox.id)))


def set_outbox_states(app: App, states: dict[int, OutboxStatus], *, unbuilt: tuple[int, ...] = ()) -> None:
    """Leave each row as a delivery would have: failed with the server's refusal, uncertain with the
    lost connection, sent with the server's reply; `unbuilt` rows lose their bytes (never built)."""
    with app.sessions.begin() as session:
        for row in session.scalars(select(Outbox).where(Outbox.id.in_(states))):
            row.status = states[row.id]
            if row.status is OutboxStatus.failed:
                row.attempts, row.last_error = 1, FAILED_WHY.format(to=row.to_addr)
                row.smtp_reply = "550 5.1.1 Recipient address rejected"
            elif row.status is OutboxStatus.uncertain:
                row.attempts, row.last_error = 1, UNCERTAIN_WHY
            elif row.status is OutboxStatus.sent:
                row.attempts, row.smtp_reply, row.sent_at = 1, "250 2.0.0 Ok: queued as 4XyZ", row.created_at
            if row.id in unbuilt:
                row.raw, row.last_error = None, "not built: an address the desk cannot write"


def quarantine_mail(app: App, raw: bytes, reason: str) -> int:
    """Quarantine `raw` at the parse stage with `reason` (a stand-in parser that fails on purpose);
    its id. The real parser reads it again on retry."""

    def failing_parser(raw: bytes, *, max_size: int) -> ParsedMail:
        raise ValueError(reason)

    outcome = app.ingestor(parser=failing_parser).ingest(raw, source="test")
    assert outcome.status == "quarantined", outcome
    with app.reads() as session:
        return session.scalars(select(Quarantine.id).where(Quarantine.raw_sha256 == outcome.raw_sha256)).one()


def rows_by_id(rows: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {row["id"]: row for row in rows}
