"""A small desk with hand-computable figures for the report tests (inserted with Core, each time
chosen so the expected numbers can be worked out on paper; see tests/test_reports.py)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from itertools import count

from sqlalchemy import insert

from triage.bootstrap import App
from triage.store.models import Blob, Contact, ContactAddress, Decision, Message, Suggestion, Ticket
from triage.store.outbox_models import Outbox

NOW = datetime(2026, 12, 10, 12, 0, tzinfo=UTC)  # a Thursday; every November ticket is long due
_ids = count(1)


def at(day: int, hour: int = 9, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, 0, tzinfo=UTC)


def add_contact(app: App, address: str, language: str | None) -> int:
    with app.sessions() as s, s.begin():
        contact = Contact(language=language, first_seen=at(1), last_seen=at(1))
        contact.addresses.append(ContactAddress(address=address, is_primary=True))
        s.add(contact)
        s.flush()
        return contact.id


def add_ticket(app: App, *, team: str | None, created: datetime, contact: int | None, status: str = "open",
               kinds: tuple[str, ...] = ("normal",)) -> int:
    """A ticket with one inbound mail per kind, all arriving when it was created."""
    n = next(_ids)
    with app.sessions() as s, s.begin():
        ticket = s.execute(insert(Ticket).values(
            reference=f"T-2026-{n:05d}-{id(app) % 1000}", subject=f"Question {n}", status=status, team=team,
            contact_id=contact, created_at=created, updated_at=created).returning(Ticket.id)).scalar_one()
        for kind in kinds:
            m = next(_ids)
            sha = hashlib.sha256(f"{id(app)}-{m}".encode()).hexdigest()
            s.execute(insert(Blob).values(sha256=sha, size=1, codec="raw", data=b"x", created_at=created))
            s.execute(insert(Message).values(
                ticket_id=ticket, direction="inbound", message_id=f"<{m}.{id(app)}@v.example>", references=[],
                to_addrs=[], cc_addrs=[], received_at=created, kind=kind, defects=[], size=1, raw_sha256=sha,
                thread_reason="new thread", extra={}))
    return int(ticket)


def add_mail_out(app: App, ticket: int, queued: datetime, *, auto: str | None = None, status: str = "sent") -> None:
    """An outbox row on `ticket` queued at `queued`: a person's (auto None) or automatic mail."""
    m = next(_ids)
    with app.sessions() as s, s.begin():
        s.execute(insert(Outbox).values(
            message_id=f"<out{m}.{id(app)}@desk.example>", ticket_id=ticket, template="reply", auto_submitted=auto,
            envelope_from="liaison@example.org", recipients=["v@v.example"], to_addr="v@v.example", subject="Re",
            status=status, attempts=0, next_attempt_at=queued, refused=[], actor="liaison:test",
            created_at=queued, updated_at=queued))


def add_routing(app: App, ticket: int, created: datetime, suggested: str | None, chosen: str | None) -> None:
    """A suggestion made when the ticket arrived, and (if `chosen`) the liaison's decision an hour later."""
    with app.sessions() as s, s.begin():
        suggestion = s.execute(insert(Suggestion).values(
            ticket_id=ticket, team=suggested, confidence=0.5, model_version="test", ranked=[], evidence=[],
            created_at=created).returning(Suggestion.id)).scalar_one()
        if chosen:
            s.execute(insert(Decision).values(ticket_id=ticket, suggestion_id=suggestion, suggested_team=suggested,
                                              team=chosen, agreed=suggested == chosen, actor="liaison:test",
                                              decided_at=created + timedelta(hours=1)))


def seed(app: App) -> dict[str, int]:
    """Six tickets:

    | ticket | team          | arrived (2026)   | week | first response           | routing (suggested -> chosen) |
    | t1     | fundraising   | Mon 2 Nov 09:00  | W45  | 1 h                      | fundraising -> fundraising    |
    | t2     | fundraising   | Tue 3 Nov 09:00  | W45  | 2 h (an ack at +1 min)   | legal -> fundraising          |
    | t3     | fundraising   | Wed 4 Nov 09:00  | W45  | 10 h (a failed at +30 m) | (none) -> fundraising         |
    | t6     | legal, open   | Thu 5 Nov 09:00  | W45  | none: overdue             |                               |
    | t4     | legal, waiting| Tue 10 Nov 09:00 | W46  | none                     | fundraising -> legal          |
    | t5     | unrouted      | Tue 1 Dec 09:00  | W49  | 4 h                      | (none), undecided             |

    t1 and t2 are from a German-speaking contact; t3 also brought an autoreply, t4 is a bounce.
    """
    de = add_contact(app, f"de{id(app)}@v.example", "de")
    other = add_contact(app, f"x{id(app)}@v.example", None)
    t1 = add_ticket(app, team="fundraising", created=at(2), contact=de, status="resolved")
    t2 = add_ticket(app, team="fundraising", created=at(3), contact=de, status="resolved")
    t3 = add_ticket(app, team="fundraising", created=at(4), contact=other, status="resolved",
                    kinds=("normal", "autoreply"))
    t6 = add_ticket(app, team="legal", created=at(5), contact=other)
    t4 = add_ticket(app, team="legal", created=at(10), contact=other, status="waiting", kinds=("bounce",))
    t5 = add_ticket(app, team=None, created=at(1, month=12), contact=other)
    add_mail_out(app, t1, at(2, 10))
    add_mail_out(app, t2, at(3) + timedelta(minutes=1), auto="auto-replied")
    add_mail_out(app, t2, at(3, 11))
    add_mail_out(app, t3, at(4) + timedelta(minutes=30), status="failed")
    add_mail_out(app, t3, at(4, 19))
    add_mail_out(app, t5, at(1, 13, month=12))
    add_routing(app, t1, at(2), "fundraising", "fundraising")
    add_routing(app, t2, at(3), "legal", "fundraising")
    add_routing(app, t3, at(4), None, "fundraising")
    add_routing(app, t4, at(10), "fundraising", "legal")
    add_routing(app, t5, at(1, month=12), None, None)
    return {"t1": t1, "t2": t2, "t3": t3, "t4": t4, "t5": t5, "t6": t6}
