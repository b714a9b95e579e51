"""The ticket actions of the service layer (triage.desk.actions), on SQLite and PostgreSQL: replies
queued once and warned about collisions, internal notes that never leave the desk, logged status
changes, merge and its exact undo, and who may do what."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from tests.conftest import make_mail
from triage.bootstrap import App
from triage.cli import cli
from triage.desk.actions import (
    add_note,
    hand_off,
    merge,
    preview_reply,
    send_reply,
    set_status,
    templates_for,
    ticket_actions,
    unmerge,
)
from triage.desk.actors import Actor
from triage.desk.errors import Conflict, Forbidden, Invalid, NotFound
from triage.ingest.pipeline import IncomingMail
from triage.store.models import Event, Ticket, TicketStatus
from triage.store.outbox_models import Outbox
from triage.store.web_models import Role

LIAISON = Actor("ada", Role.liaison)
STAFF = Actor("sam", Role.staff, "legal")
OTHER_STAFF = Actor("tom", Role.staff, "technology")
VIEWER = Actor("vic", Role.viewer)


def ticket(app: App, message_id: str, *, subject: str = "Logo on a banner", team: str | None = None,
           in_reply_to: str | None = None) -> str:
    """A stored mail's ticket reference (optionally routed to `team`)."""
    [outcome] = app.ingestor().ingest_many([IncomingMail(make_mail(
        message_id=message_id, subject=subject, in_reply_to=in_reply_to), source="test")])
    assert outcome.ticket_reference
    if team:
        with app.sessions.begin() as session:
            session.scalars(select(Ticket).where(Ticket.reference == outcome.ticket_reference)).one().team = team
    return outcome.ticket_reference


def outbox(app: App) -> list[Outbox]:
    with app.reads() as session:
        return list(session.scalars(select(Outbox).order_by(Outbox.id)))


def events(app: App, reference: str, action: str | None = None) -> list[Event]:
    with app.reads() as session:
        query = select(Event).join(Ticket, Ticket.id == Event.ticket_id).where(Ticket.reference == reference)
        return list(session.scalars(query.where(Event.action == action) if action else query).all())


def state(app: App, reference: str) -> tuple[TicketStatus, int | None]:
    with app.reads() as session:
        row = session.execute(select(Ticket.status, Ticket.merged_into_id).where(Ticket.reference == reference)).one()
        return row[0], row[1]


def test_reply_is_queued_once_and_a_second_send_from_the_same_page_is_refused(app: App) -> None:
    """Send queues one person's mail (logged with the user); the same form sent again meets the first reply."""
    ref = ticket(app, message_id="<r1@v.example>")
    page = ticket_actions(app, LIAISON, ref)
    sent = send_reply(app, LIAISON, ref, "reply", "Yes, you may.", seen_message_id=page.last_message_id,
                      seen_event_id=page.last_event_id)
    [row] = outbox(app)
    assert (row.id, row.template, row.actor, row.auto_submitted) == (sent.outbox_id, "reply", "liaison:ada", None)
    assert sent.to == ("ada@volunteers.example",) and sent.status == "waiting"
    assert b"Yes, you may." in row.raw and b"In-Reply-To: <r1@v.example>" in row.raw
    with pytest.raises(Conflict, match=r"another reply was queued \(by liaison:ada\)") as refused:
        send_reply(app, LIAISON, ref, "reply", "Yes, you may.", seen_message_id=page.last_message_id,
                   seen_event_id=page.last_event_id)
    assert "send again" in refused.value.hint
    assert len(outbox(app)) == 1
    assert [e.actor for e in events(app, ref, "mail-queued")] == ["liaison:ada"]
    assert [(e.detail["new"], e.actor) for e in events(app, ref, "status")] == [("waiting", "liaison:ada")]


def test_new_mail_since_the_page_opened_is_a_conflict_unless_confirmed(app: App) -> None:
    """Mail that arrived after the page read the ticket stops the send with a hint; confirming sends it."""
    ref = ticket(app, message_id="<c1@v.example>")
    page = ticket_actions(app, LIAISON, ref)
    follow_up = ticket(app, message_id="<c2@v.example>", subject=f"Re: [{ref}] Logo", in_reply_to="<c1@v.example>")
    assert follow_up == ref
    seen = {"seen_message_id": page.last_message_id, "seen_event_id": page.last_event_id}
    with pytest.raises(Conflict, match="new mail arrived since you opened the ticket") as refused:
        send_reply(app, LIAISON, ref, "reply", "Yes.", **seen)
    assert refused.value.hint.startswith("read it and send again")
    assert outbox(app) == []
    send_reply(app, LIAISON, ref, "reply", "Yes.", confirm=True, **seen)
    assert len(outbox(app)) == 1
    fresh = ticket_actions(app, LIAISON, ref)  # a reloaded page has seen both: no warning
    send_reply(app, LIAISON, ref, "reply", "And one more thing.", seen_message_id=fresh.last_message_id,
               seen_event_id=fresh.last_event_id)
    assert len(outbox(app)) == 2


def test_a_note_never_leaves_the_desk(app: App) -> None:
    """A note is on the ticket's log with its author, and in no mail: not a reply, not a hand-off."""
    ref = ticket(app, message_id="<n1@v.example>", team="legal")
    note_id = add_note(app, STAFF, ref, "NOTE-7f3: the chapter owes us a contract")
    [note] = events(app, ref, "note")
    assert (note.id, note.actor, note.detail) == (note_id, "staff:sam", {"text": "NOTE-7f3: the chapter owes us a contract"})
    preview = preview_reply(app, LIAISON, ref, "reply", "Thanks, we will look into it.")
    assert "NOTE-7f3" not in preview.source and "NOTE-7f3" not in preview.text
    send_reply(app, LIAISON, ref, "reply", "Thanks, we will look into it.")
    mails = hand_off(app, LIAISON, ref)
    assert [m["template"] for m in mails if m["outcome"] == "queued"] == ["handoff-team", "handoff-volunteer"]
    rows = outbox(app)
    assert len(rows) == 3 and not any(b"NOTE-7f3" in row.raw for row in rows)
    with pytest.raises(Invalid, match="empty"):
        add_note(app, LIAISON, ref, "  \n")


def test_preview_is_the_mail_that_would_be_sent(app: App) -> None:
    """The preview carries the headers and text of the reply, escaped nowhere and queued nowhere."""
    ref = ticket(app, message_id="<p1@v.example>")
    preview = preview_reply(app, LIAISON, ref, "reply", "Yes.\n{{ 7*7 }} <b>bold</b>")
    assert preview.to == ("ada@volunteers.example",) and preview.subject.startswith(f"[{ref}] Re:")
    assert ("In-Reply-To", "<p1@v.example>") in preview.headers
    assert "{{ 7*7 }} <b>bold</b>" in preview.text and "In-Reply-To: <p1@v.example>" in preview.source
    assert outbox(app) == []
    with pytest.raises(Invalid, match="no 'de' translation"):
        preview_reply(app, LIAISON, ref, "reply", "Ja.", "de")
    with pytest.raises(Invalid, match="sent by the desk itself"):
        preview_reply(app, LIAISON, ref, "acknowledgment", "")
    with pytest.raises(Invalid, match="empty"):
        send_reply(app, LIAISON, ref, "reply", " ")


def test_templates_offered_are_a_persons_mails(app: App) -> None:
    """The picker offers mails a person sends (never the automatic ones); the hand-off notice once routed."""
    ref = ticket(app, message_id="<t1@v.example>")
    names = [t.name for t in templates_for(app, LIAISON, ref)]
    assert "reply" in names and "resolution" in names
    assert not {"acknowledgment", "reminder", "escalation", "handoff-team", "handoff-volunteer"} & set(names)
    routed = ticket(app, message_id="<t2@v.example>", subject="Another question", team="legal")
    assert "handoff-volunteer" in [t.name for t in templates_for(app, LIAISON, routed)]
    assert templates_for(app, LIAISON, ref, language="de") == []
    assert all("en" in t.languages for t in templates_for(app, LIAISON, ref, language="en"))


def test_status_changes_are_logged_and_never_applied_twice(app: App) -> None:
    """Each change is a status event with the user (the reminder clock reads those) and a stale clock."""
    ref = ticket(app, message_id="<s1@v.example>")
    with app.sessions.begin() as session:
        session.scalars(select(Ticket).where(Ticket.reference == ref)).one().clock_stale_at = None
    assert set_status(app, LIAISON, ref, "waiting") == {"reference": ref, "old": "new", "new": "waiting"}
    with app.reads() as session:
        assert session.scalars(select(Ticket.clock_stale_at).where(Ticket.reference == ref)).one() is not None
    with pytest.raises(Conflict, match="already waiting"):
        set_status(app, LIAISON, ref, "waiting-on-volunteer")
    with pytest.raises(Conflict, match="no longer new"):  # a page still showing "new"
        set_status(app, LIAISON, ref, "resolved", expected="new")
    set_status(app, LIAISON, ref, "resolved", expected="waiting")
    set_status(app, LIAISON, ref, "reopened")
    with pytest.raises(Invalid, match="unknown status"):
        set_status(app, LIAISON, ref, "new")
    assert [(e.detail["old"], e.detail["new"], e.actor) for e in events(app, ref, "status")] == [
        ("new", "waiting", "liaison:ada"), ("waiting", "resolved", "liaison:ada"), ("resolved", "open", "liaison:ada")]


def test_merge_and_unmerge_round_trip(app: App) -> None:
    """Merge points the ticket at the survivor, resolves it and logs both; unmerge restores it exactly."""
    source = ticket(app, message_id="<m1@v.example>", subject="Banner")
    into = ticket(app, message_id="<m2@v.example>", subject="Banner, again")
    set_status(app, LIAISON, source, "waiting")
    before = state(app, source), state(app, into)
    done = merge(app, LIAISON, source, into, now=datetime(2026, 11, 3, 9, 0, tzinfo=UTC))
    assert done == {"source": source, "into": into, "messages": 1}
    with app.reads() as session:
        into_id = session.scalars(select(Ticket.id).where(Ticket.reference == into)).one()
    assert state(app, source) == (TicketStatus.resolved, into_id)
    assert [e.detail for e in events(app, source, "merged")] == [
        {"into": into, "status_before": "waiting", "messages": 1}]
    assert [(e.detail, e.actor) for e in events(app, into, "merged-from")] == [
        ({"source": source, "messages": 1}, "liaison:ada")]
    assert ticket_actions(app, LIAISON, into).merged_from == (source,)
    assert ticket_actions(app, LIAISON, source).merged_into == into
    for refused in (lambda: add_note(app, LIAISON, source, "x"), lambda: merge(app, LIAISON, source, into),
                    lambda: send_reply(app, LIAISON, source, "reply", "x")):
        with pytest.raises(Conflict, match=f"merged into {into}"):
            refused()
    with pytest.raises(Invalid, match="itself merged"):
        merge(app, LIAISON, into, source)
    with pytest.raises(Conflict, match="not T-"):
        unmerge(app, LIAISON, source, source)
    assert unmerge(app, LIAISON, source, into)["status"] == "waiting"
    assert (state(app, source), state(app, into)) == before
    assert len(events(app, source, "unmerged")) == 1 and len(events(app, into, "unmerged-from")) == 1
    with pytest.raises(Conflict, match="is not merged"):
        unmerge(app, LIAISON, source)


def test_roles(app: App) -> None:
    """A viewer changes nothing; staff act on their team's tickets only (others are not found); merge and
    hand-off are the liaison's."""
    ref = ticket(app, message_id="<x1@v.example>", team="legal")
    other = ticket(app, message_id="<x2@v.example>", subject="Other", team="legal")
    for forbidden in (lambda: send_reply(app, VIEWER, ref, "reply", "x"), lambda: add_note(app, VIEWER, ref, "x"),
                      lambda: set_status(app, VIEWER, ref, "resolved"), lambda: merge(app, STAFF, ref, other),
                      lambda: unmerge(app, STAFF, ref), lambda: hand_off(app, STAFF, ref),
                      lambda: preview_reply(app, VIEWER, ref, "reply", "x")):
        with pytest.raises(Forbidden):
            forbidden()
    for hidden in (lambda: send_reply(app, OTHER_STAFF, ref, "reply", "x"),
                   lambda: add_note(app, OTHER_STAFF, ref, "x"), lambda: set_status(app, OTHER_STAFF, ref, "resolved"),
                   lambda: ticket_actions(app, OTHER_STAFF, ref), lambda: templates_for(app, OTHER_STAFF, ref),
                   lambda: send_reply(app, LIAISON, "T-1999-99999", "reply", "x")):
        with pytest.raises(NotFound):
            hidden()
    assert not ticket_actions(app, VIEWER, ref).may_write
    send_reply(app, STAFF, ref, "reply", "We have it.")
    add_note(app, STAFF, ref, "checked")
    set_status(app, STAFF, ref, "resolved")
    assert {e.actor for e in events(app, ref) if e.action in {"note", "status", "mail-queued"}} == {"staff:sam"}
    assert outbox(app)[0].actor == "staff:sam"


def test_cli_note_status_merge(app: App, db_url: str) -> None:
    """`triage note`, `triage status` and `triage merge [--undo]` call the same use cases as the web."""
    first = ticket(app, message_id="<k1@v.example>")
    second = ticket(app, message_id="<k2@v.example>", subject="Second")
    runner = CliRunner()
    env = {"TRIAGE_DATABASE_URL": db_url, "TRIAGE_CONFIG": ""}

    def run(*args: str, stdin: str | None = None) -> tuple[int, str]:
        result = runner.invoke(cli, list(args), env=env, input=stdin)
        return result.exit_code, result.output

    assert run("note", first, "call them on Monday") == (0, f"note #{events(app, first, 'note')[0].id} added to {first}\n")
    assert run("note", first, "-", stdin="from a pipe\n")[0] == 0
    assert [e.detail["text"] for e in events(app, first, "note")] == ["call them on Monday", "from a pipe"]
    assert run("status", first, "resolved") == (0, f"{first}: new -> resolved\n")
    code, output = run("status", first, "resolved")
    assert code == 2 and "already resolved" in output
    assert run("merge", second, first)[0] == 0 and state(app, second)[0] is TicketStatus.resolved
    assert run("merge", second, "--undo") == (0, f"{second} is no longer merged into {first} (status new)\n")
    assert state(app, second) == (TicketStatus.new, None)
    assert {e.actor for e in events(app, first)} >= {"liaison:liaison"}
    for command in ("note", "status", "merge"):
        assert "Usage:" in run(command, "--help")[1]
