"""A hand-made desk for the digest tests: a teams file where legal and events asked for the digest
and technology did not, and the tickets of week 2026-W48 and the eight weeks before it."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

from triage.bootstrap import App
from triage.store.models import Blob, Direction, Message, Ticket, TicketStatus

WEEK = "2026-W48"  # Monday 23 to Sunday 29 November 2026
WEEK_START = datetime(2026, 11, 23, tzinfo=UTC)
SEND = datetime(2026, 11, 30, 8, tzinfo=UTC)  # Monday of the week after, 08:00 UTC: the default send time

TEAMS = """
[teams.legal]
name = "Legal"
address = "legal@example.org"
description = "Trademarks and takedowns."
digest = true

[teams.events]
name = "Events"
address = "events@example.org"
description = "Meetups."
digest = true
digest_weekday = 3
digest_hour = 9

[teams.technology]
name = "Technology"
address = "technology@example.org"
description = "Logins."
"""


def teams_file(folder: Path) -> Path:
    path = folder / "teams.toml"
    path.write_text(TEAMS, encoding="utf-8")
    return path


def env(db_url: str, folder: Path, **extra: str) -> dict[str, str]:
    return {"TRIAGE_DATABASE_URL": db_url, "TRIAGE_ROUTING_TEAMS_FILE": str(teams_file(folder)), **extra}


def add_ticket(app: App, n: int, *, team: str | None, created: datetime, subject: str, text: str,
               status: TicketStatus = TicketStatus.open) -> int:
    """A ticket with its first (inbound) mail; no raw mail beyond a placeholder blob."""
    with app.sessions() as session, session.begin():
        ticket = Ticket(reference=f"T-2026-{n:05d}", subject=subject, status=status, team=team,
                        created_at=created, updated_at=created)
        session.add(ticket)
        session.flush()
        digest = hashlib.sha256(f"mail {n}".encode()).hexdigest()
        session.add(Blob(sha256=digest, size=0, codec="zlib", data=b"", created_at=created))
        session.add(Message(
            ticket_id=ticket.id, direction=Direction.inbound, message_id=f"<m{n}@volunteers.example>",
            references=[], from_addr="ada@volunteers.example", to_addrs=["liaison@example.org"], cc_addrs=[],
            subject=subject, date=created, received_at=created, body_text=text, new_text=text, kind="normal",
            defects=[], size=len(text), raw_sha256=digest, thread_reason="new", extra={}))
        return ticket.id


def hand_made_week(app: App) -> None:
    """Legal: 40 tickets in the eight weeks before (logo in half of them, trademark in one), then
    ten in 2026-W48: logo in half again, a takedown in four (all citing a law firm's address and
    site), and zebra once. Two of the week's tickets wait on the volunteer, one is resolved."""
    n = 0
    for week in range(8):
        for i in range(5):
            n += 1
            created = WEEK_START - timedelta(weeks=8 - week) + timedelta(days=i, hours=10)
            topic = "logo banner" if i % 2 else "copyright licence photos"
            extra = " trademark" if n == 7 else ""
            add_ticket(app, n, team="legal", created=created, subject=f"Question about our {topic}",
                       text=f"Hello, may we use the {topic} for the chapter?{extra} Thanks, Ada",
                       status=TicketStatus.resolved)
    week_texts = [
        ("Takedown notice for our wiki", "We got a takedown notice from counsel@lawfirm.example, see lawfirm.example."),
        ("Another takedown", "A takedown request came from lawfirm.example about photos; write to counsel@lawfirm.example."),
        ("Logo banner question", "May we print the logo on a banner?"),
        ("Takedown of a video", "A takedown for our video, says counsel@lawfirm.example."),
        ("Logo on mugs", "Can the logo go on mugs for the meetup?"),
        ("Takedown again", "One more takedown letter (https://lawfirm.example/notice)."),
        ("Logo colours", "Which logo colours may we use?"),
        ("Zebra photo licence", "Is the zebra photo free to use?"),
        ("Logo for a poster", "The logo on a poster, allowed?"),
        ("Question on a contract", "Could you review our venue contract?"),
    ]
    statuses = {3: TicketStatus.waiting, 5: TicketStatus.waiting, 9: TicketStatus.resolved}
    for i, (subject, text) in enumerate(week_texts):
        n += 1
        add_ticket(app, n, team="legal", created=WEEK_START + timedelta(days=i % 7, hours=9 + i),
                   subject=subject, text=text, status=statuses.get(i, TicketStatus.open))
    n += 1
    add_ticket(app, n, team="technology", created=WEEK_START + timedelta(days=1), subject="Login broken",
               text="I cannot log in.")
