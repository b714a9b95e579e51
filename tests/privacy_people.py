"""A person with distinctive data everywhere the desk keeps it, and a bystander who shares one
attachment with them: the fixture of the privacy tests (tests/test_privacy*.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime

from sqlalchemy import select

from triage.bootstrap import App
from triage.desk.actions import add_note, send_reply
from triage.desk.actors import Actor
from triage.desk.contact_merge import merge_contacts
from triage.desk.contacts import ContactEdit, edit_contact
from triage.ingest.pipeline import IncomingMail, IngestOutcome, quarantine
from triage.store.models import Contact, ContactAddress, Decision, ImapLedgerEntry, Suggestion, Ticket
from triage.store.web_models import Role

LIAISON = Actor("ada", Role.liaison)
ADDRESS = "quillon.vexmartha@zorblat.example"
SENDER = f"Quillon Vexmartha <{ADDRESS}>"
BYSTANDER = "Otto Bystander <otto@elsewhere.example>"
SHARED_BYTES = b"%PDF-1.4 the community banner guidelines, shared by everyone\n" * 20
PRIVATE_BYTES = b"Wumpelgrist private travel plan, passport KX4471\n" * 10

# Every string that names or quotes the person; none may remain anywhere after erasure.
NEEDLES = (
    "vexmartha", "quillon", "zorblat",  # name, address, domain (Message-IDs too)
    "brindlewick",  # a subject word
    "glorptastic",  # a plain-text body word
    "snarfquiddle",  # a word of the HTML part only
    "frobnitzer",  # the signature
    "wumpelgrist",  # a private attachment's content and filename
    "yarrowmuffin",  # the desk's reply to them
    "plinkerdoodle",  # a note on their ticket
    "kx4471",  # a passport number inside the attachment
    "quillmail",  # their second address, a contact merged into theirs
    "wibbleton",  # a tag the liaison gave them
    "quarklebeam",  # the liaison's notes on the contact
)
# The bystander's: all of it must still be there.
KEPT = ("otto bystander", "otto@elsewhere.example", "tolkienesque", "community banner guidelines")


def mail(sender: str, subject: str, text: str, *, message_id: str, html: str | None = None,
         attachments: tuple[tuple[str, bytes], ...] = (), in_reply_to: str | None = None,
         day: int = 2) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "liaison@example.org"
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime(2026, 11, day, 8, 30, tzinfo=UTC))
    msg["Message-ID"] = message_id
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    msg.set_content(text)
    if html:
        msg.add_alternative(html, subtype="html")
    for name, data in attachments:
        msg.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return msg.as_bytes()


FIRST = mail(SENDER, "Brindlewick banner for our meetup",
             "Hello,\n\nGlorptastic news: may we print the banner?\n\n-- \nQuillon Vexmartha\nFrobnitzer Society\n",
             message_id="<vexmid-1@zorblat.example>",
             html="<p>Glorptastic news, <b>Snarfquiddle</b> edition</p>",
             attachments=(("Wumpelgrist-plan.bin", PRIVATE_BYTES), ("guidelines.pdf", SHARED_BYTES)))
OTHER = mail(BYSTANDER, "Tolkienesque reading group", "Hi, a tolkienesque question about the banner.\n",
             message_id="<otto-1@elsewhere.example>", attachments=(("guidelines.pdf", SHARED_BYTES),), day=3)


@dataclass
class People:
    reference: str
    other_reference: str
    contact_id: int
    other_contact_id: int
    first: IngestOutcome
    follow_up_raw: bytes


def populate(app: App) -> People:
    """Mail from the person (two, HTML, attachments, a signature), the desk's reply and a note, a
    routing suggestion and decision, an IMAP ledger row, a quarantined mail; and the bystander."""
    ingest = app.ingestor()
    [first] = ingest.ingest_many([IncomingMail(FIRST, source="maildir:/srv/mail/vexmartha-1")])
    [other] = ingest.ingest_many([IncomingMail(OTHER, source="test")])
    assert first.ticket_reference and other.ticket_reference
    reference = first.ticket_reference
    send_reply(app, LIAISON, reference, "reply", "Dear Quillon, Yarrowmuffin: yes, print it.", confirm=True)
    follow_up = mail(SENDER, f"Re: Brindlewick banner [{reference}]", "Thanks! Glorptastic.\n\n-- \nFrobnitzer\n",
                     message_id="<vexmid-2@zorblat.example>", day=4)
    [second] = ingest.ingest_many([IncomingMail(follow_up, source="test")])
    assert second.ticket_reference == reference, second
    add_note(app, LIAISON, reference, "Plinkerdoodle: Quillon called about the banner")
    with app.sessions.begin() as session:
        ticket = session.scalars(select(Ticket).where(Ticket.reference == reference)).one()
        suggestion = Suggestion(ticket_id=ticket.id, team="events", confidence=0.8, model_version="m1",
                                ranked=[["events", 0.8]], evidence=["brindlewick", "glorptastic"],
                                created_at=ticket.created_at)
        session.add(suggestion)
        session.flush()
        session.add(Decision(ticket_id=ticket.id, suggestion_id=suggestion.id, suggested_team="events",
                             team="events", agreed=True, actor="liaison:ada", decided_at=ticket.created_at))
        session.add(ImapLedgerEntry(account="liaison", folder="INBOX", uidvalidity=7, uid=41,
                                    message_id="<vexmid-1@zorblat.example>", raw_sha256=first.raw_sha256,
                                    outcome="stored", message_pk=first.message_pk, seen_at=ticket.created_at))
        quarantine(session, mail(SENDER, "Brindlewick broken", "Glorptastic?", message_id="<vexmid-3@zorblat.example>"),
                   stage="parse", error="ValueError: broken", source="test", now=ticket.created_at)
        contact_id = session.scalar(select(Contact.id).where(Contact.address == ADDRESS))
        other_id = session.scalar(select(Contact.id).where(Contact.address == "otto@elsewhere.example"))
        assert contact_id and other_id
    # A second address, first seen as another contact and merged into theirs; an edit (name, notes,
    # a tag) that leaves old and new values in the contact's history.
    with app.sessions.begin() as session:
        seen = datetime(2026, 11, 5, tzinfo=UTC)
        alias = Contact(name="Q. Vexmartha", first_seen=seen, last_seen=seen)
        alias.addresses.append(ContactAddress(address="qvex@quillmail.example", is_primary=True, source="import"))
        session.add(alias)
    merge_contacts(app, LIAISON, "qvex@quillmail.example", ADDRESS)
    edit_contact(app, LIAISON, ADDRESS, ContactEdit(name="Quillon V. Vexmartha", notes="Quarklebeam: met at the meetup",
                                                    add_labels=(("tag", "wibbleton-organiser"),)))
    return People(reference, other.ticket_reference, contact_id, other_id, first, follow_up)


__all__ = ["ADDRESS", "KEPT", "LIAISON", "NEEDLES", "SHARED_BYTES", "People", "populate"]
