"""The ticket's read side (triage.desk.tickets and triage.desk.presence) on SQLite and PostgreSQL,
the HTML sanitiser against each class of payload, and the reminder clock in words."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from tests.conftest import Clock, make_mail
from tests.ticket_mail import HOSTILE_HTML, workbench_mail
from triage.bootstrap import App
from triage.desk.accounts import add_user
from triage.desk.actors import Actor
from triage.desk.errors import NotFound
from triage.desk.mail_html import sanitise
from triage.desk.presence import present, touch_presence
from triage.desk.tickets import attachment, message_html, ticket_view
from triage.routing.desk import Router
from triage.schedule.calendar import BusinessCalendar
from triage.schedule.due import Clock as ReminderClock
from triage.schedule.words import clock_in_words
from triage.store.models import Event, Ticket
from triage.store.outbox_models import Outbox
from triage.store.web_models import Role

LIAISON = Actor("lia", Role.liaison)


def _ingest(app: App, clock: Clock, *mails: bytes) -> list[str]:
    ingestor = app.ingestor(clock=clock)
    return [ingestor.ingest(raw, source="test").ticket_reference or "" for raw in mails]


def _set_team(app: App, reference: str, team: str) -> None:
    with app.sessions.begin() as session:
        session.execute(update(Ticket).where(Ticket.reference == reference).values(team=team))


def test_the_view_shows_the_thread_flags_log_clock_and_previous_tickets(app: App, clock: Clock) -> None:
    """New text and folded quote per message with why it was threaded, a stranger's flag with its
    linked ticket, notes in the log, the clock in business hours, the contact's other tickets."""
    first, reply, stranger, later = _ingest(
        app, clock,
        workbench_mail(attachments=[("plan.pdf", "application/pdf", b"%PDF-1.4 plan")], html="<p>Hi</p>"),
        workbench_mail(message_id="<m2@volunteers.example>", in_reply_to="<m1@volunteers.example>",
                       subject="Re: Question about the logo", text="Thanks!\n"),
        workbench_mail(name="Mallory", address="mallory@elsewhere.example", message_id="<m3@elsewhere.example>",
                       in_reply_to="<m1@volunteers.example>", subject="Re: Question about the logo"),
        workbench_mail(message_id="<m4@volunteers.example>", subject="Another question"),
    )
    assert first == reply != stranger and later not in (first, stranger)
    _set_team(app, first, "comms")
    with app.sessions.begin() as session:
        ticket_id = session.query(Ticket.id).filter(Ticket.reference == first).scalar()
        session.add(Event(ticket_id=ticket_id, at=clock.now + timedelta(minutes=5), actor="staff:sam",
                          action="note", detail={"text": "Called her <b>back</b>"}))
    view = ticket_view(app, LIAISON, first.lower(), now=clock.now + timedelta(hours=1))
    assert [m.new_text.strip() for m in view.messages] == ["May our chapter use the logo?", "Thanks!"]
    assert "> how can we help?" in view.messages[0].quoted_text and view.messages[0].has_html
    assert "participant" in view.messages[1].thread_reason and not view.messages[1].has_html
    [att] = view.messages[0].attachments
    assert (att.filename, att.content_type) == ("plan.pdf", "application/pdf")
    notes = [e for e in view.events if e.is_note]
    assert [(n.actor, n.note_text) for n in notes] == [("staff:sam", "Called her <b>back</b>")]
    # created Monday 09:00; 8 business hours end at closing, so it is due Tuesday 09:00: 7 hours from 10:00
    assert view.clock.words == "team reminded in 7 business hours"
    assert [p.reference for p in view.previous] == [later]
    assert view.latest_message_id == view.messages[-1].id
    assert [(f.kind, f.reference) for f in view.flags] == [("linked", stranger)]

    flagged = ticket_view(app, LIAISON, stranger)
    assert flagged.linked_ticket == first
    assert [(f.kind, f.reference) for f in flagged.flags] == [("stranger", first)]
    assert flagged.clock.words.startswith("stopped: no team")
    assert attachment(app, LIAISON, att.id) == ("plan.pdf", b"%PDF-1.4 plan")


def test_staff_see_only_their_teams_tickets_and_the_rest_is_not_found(app: App, clock: Clock) -> None:
    """Another team's ticket, message, attachment and presence answer NotFound (a 404), the
    contact's tickets of other teams are left out of the list; a viewer reads everything."""
    mine, theirs = _ingest(
        app, clock,
        workbench_mail(html="<p>x</p>", attachments=[("a.txt", "text/plain", b"a")]),
        workbench_mail(message_id="<m9@volunteers.example>", subject="Other", html="<p>y</p>",
                       attachments=[("b.txt", "text/plain", b"b")]),
    )
    _set_team(app, mine, "comms")
    _set_team(app, theirs, "grants")
    staff = add_user(app, "sam", "staff", "long enough password", team="comms")
    view = ticket_view(app, staff, mine)
    assert view.previous == []  # the grants ticket of the same volunteer is not shown
    other = ticket_view(app, LIAISON, theirs)
    message, file = other.messages[0].id, other.messages[0].attachments[0].id
    for attempt in (lambda: ticket_view(app, staff, theirs), lambda: message_html(app, staff, message),
                    lambda: attachment(app, staff, file), lambda: touch_presence(app, staff, other.id),
                    lambda: present(app, staff, other.id), lambda: ticket_view(app, staff, "T-2026-99999")):
        with pytest.raises(NotFound):
            attempt()
    viewer = Actor("vic", Role.viewer)
    assert ticket_view(app, viewer, theirs).previous[0].reference == mine
    assert attachment(app, viewer, file) == ("b.txt", b"b")


def test_message_html_is_sanitised_and_remote_images_load_only_on_request(app: App, clock: Clock) -> None:
    """The stored hostile HTML comes back inert; with remote_images the tracker's src stays."""
    (ref,) = _ingest(app, clock, workbench_mail(html=HOSTILE_HTML))
    message = ticket_view(app, LIAISON, ref).messages[0].id
    document = message_html(app, LIAISON, message)
    assert document.startswith("<!doctype html>")
    plain = document.split("<body>", 1)[1]  # the mail's part, after our own head
    for bad in ("<script", "onerror", "javascript:", "expression", "url(", "<svg", "<meta", "<base", "<form",
                "<iframe", "tracker.example", "evil.example"):
        assert bad not in plain.lower(), bad
    assert "Dear desk," in plain
    remote = message_html(app, LIAISON, message, remote_images=True)
    assert 'src="https://tracker.example/p.gif"' in remote and "evil.example" not in remote
    assert "style.gif" not in remote and "css.gif" not in remote


def test_presence_lists_others_seen_in_the_last_minute(app: App, clock: Clock) -> None:
    """Each user's latest touch counts, drafting ones first; a minute of silence and they are gone;
    the CLI's actor (no account) leaves no trace."""
    (ref,) = _ingest(app, clock, workbench_mail())
    ticket = ticket_view(app, LIAISON, ref).id
    ada = add_user(app, "ada", "liaison", "long enough password")
    sam = add_user(app, "sam", "staff", "long enough password", team="comms")
    _set_team(app, ref, "comms")
    now = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
    touch_presence(app, ada, ticket, now=now)
    touch_presence(app, sam, ticket, drafting=True, now=now + timedelta(seconds=5))
    touch_presence(app, LIAISON, ticket, now=now)
    seen = present(app, ada, ticket, now=now + timedelta(seconds=10))
    assert [(p.name, p.doing) for p in seen] == [("sam", "is drafting a reply")]
    assert [(p.name, p.doing) for p in present(app, LIAISON, ticket, now=now + timedelta(seconds=10))] == [
        ("sam", "is drafting a reply"), ("ada", "is viewing")]
    touch_presence(app, sam, ticket, now=now + timedelta(seconds=20))  # the draft was sent or dropped
    assert [p.doing for p in present(app, ada, ticket, now=now + timedelta(seconds=30))] == ["is viewing"]
    assert present(app, ada, ticket, now=now + timedelta(seconds=81)) == []


# -- the sanitiser, one payload class at a time (pure: no database) --

@pytest.mark.parametrize(("payload", "forbidden"), [
    ("<script>alert(1)</script>", "alert"),
    ("<img src=x onerror=alert(1)>", "onerror"),
    ('<body onload="alert(1)"><p onclick="alert(1)">x</p>', "alert"),
    ('<a href="javascript:alert(1)">x</a>', "javascript"),
    ('<a href="  JaVaScRiPt:alert(1)">x</a>', "alert"),
    ('<a href="data:text/html,<script>alert(1)</script>">x</a>', "data:"),
    ('<a href="vbscript:msgbox(1)">x</a>', "vbscript"),
    ('<a href="//evil.example/x">x</a>', "evil"),
    ('<div style="width: expression(alert(1))">x</div>', "expression"),
    ('<div style="background: url(https://tracker.example/bg.gif)">x</div>', "tracker"),
    ('<div style="background: u\\72l(https://tracker.example/bg.gif)">x</div>', "tracker"),
    ('<div style="color: red; -moz-binding: url(x.xml#xss)">x</div>', "binding"),
    ("<style>@import 'https://tracker.example/a.css';</style>", "tracker"),
    ("<svg onload=alert(1)><script>alert(2)</script></svg>", "alert"),
    ('<svg><a xlink:href="javascript:alert(1)"><text>x</text></a></svg>', "javascript"),
    ('<math><mtext><img src=x onerror=alert(1)></mtext></math>', "onerror"),
    ('<img src="https://tracker.example/p.gif">', "tracker"),
    ('<img src="//tracker.example/p.gif">', "tracker"),
    ('<img srcset="https://tracker.example/p.gif 1x">', "tracker"),
    ('<table background="https://tracker.example/bg.gif"><tr><td>x</td></tr></table>', "tracker"),
    ('<img src="cid:part1@example">', "cid:"),
    ('<img src="data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+">', "data:"),
    ('<meta http-equiv="refresh" content="0;url=https://evil.example/">', "evil"),
    ('<base href="https://evil.example/">', "evil"),
    ('<form action="https://evil.example/"><input name=q><button formaction="https://evil.example/">go</button></form>',
     "evil"),
    ('<iframe src="https://evil.example/"></iframe><object data="https://evil.example/x"></object>', "evil"),
    ('<link rel="stylesheet" href="https://evil.example/a.css">', "evil"),
    ("<video poster=https://tracker.example/p.gif></video><audio src=https://tracker.example/a.mp3>", "tracker"),
    ("<!--<script>alert(1)</script>-->", "alert"),
    ("<noscript><p title=\"</noscript><img src=x onerror=alert(1)>\">", "onerror"),
])
def test_the_sanitiser_leaves_nothing_that_runs_or_loads(payload: str, forbidden: str) -> None:
    """Each payload class comes out without the dangerous part, with or without remote images
    (only an http(s) <img src> may survive, and only when asked)."""
    assert forbidden.lower() not in sanitise(payload).lower()
    if payload != '<img src="https://tracker.example/p.gif">':
        assert forbidden.lower() not in sanitise(payload, remote_images=True).lower()


def test_the_sanitiser_keeps_ordinary_formatting() -> None:
    """Links, tables, emphasis and plain inline styles survive; links gain rel=noopener."""
    html = ('<p style="color: red; position: fixed">Hi <b>there</b></p><a href="https://example.org/x">doc</a>'
            '<table><tr><td colspan="2">cell</td></tr></table>')
    clean = sanitise(html)
    assert '<p style="color:red">Hi <b>there</b></p>' in clean.replace("color: red", "color:red")
    assert 'href="https://example.org/x"' in clean and "noopener" in clean and 'colspan="2"' in clean


def test_the_clock_in_words() -> None:
    """Business time to the next level, who gets it, and why a stopped clock is stopped."""
    calendar = BusinessCalendar()
    monday_4pm = datetime(2026, 11, 2, 16, 0, tzinfo=UTC)
    due = datetime(2026, 11, 3, 11, 0, tzinfo=UTC)
    running = ReminderClock((due, None, None), 0, due, None)
    assert clock_in_words(running, calendar, monday_4pm) == "team reminded in 3 business hours"
    lead = ReminderClock((None, due, None), 1, due, None)
    assert clock_in_words(lead, calendar, due - timedelta(minutes=30)) == "team lead reminded in 30 business minutes"
    assert clock_in_words(running, calendar, due + timedelta(minutes=1)).startswith("team reminded at the next reminder run")
    assert clock_in_words(ReminderClock((None, None, None), 0, None, "answered"), calendar, due) == "stopped: answered"
    waiting = ReminderClock((None, None, None), 0, None, "waiting-on-volunteer")
    assert clock_in_words(waiting, calendar, due) == "stopped: waiting on the volunteer"


def handed_to_legal_with_staff_mail(app: App, clock: Clock) -> str:
    """Ada's ticket handed to Legal (data/teams.toml), then Rosa of Legal answers the hand-off
    (relayed to Ada) and writes to the comment address (an internal note); its reference."""
    (ref,) = _ingest(app, clock, workbench_mail())
    Router(app.sessions, None, app.wiring.teams, clock=clock, on_routed=app.handoff).approve(
        ref, actor="liaison:lia", team="legal")
    with app.reads() as session:
        handoff = session.scalars(select(Outbox.message_id).where(Outbox.template == "handoff-team")).one()
    rosa = "Rosa <rosa.counsel@example.org>"
    desk = app.settings.mail.liaison_address
    clock.advance(minutes=10)
    _ingest(app, clock,
            make_mail(sender=rosa, to=desk, subject="Re: hand-off", message_id="<r1@example.org>",
                      in_reply_to=handoff, references=[handoff], body="Yes, <b>the logo</b> is fine.\n"))
    clock.advance(minutes=10)
    _ingest(app, clock,
            make_mail(sender=rosa, to=app.settings.mail.staff_comment_address, subject="Re: hand-off",
                      message_id="<n1@example.org>", in_reply_to=handoff, references=[handoff],
                      body="Internal: <i>trademark</i> file checked.\n"))
    return ref


def test_staff_mail_is_marked_as_a_relayed_reply_or_an_internal_note(app: App, clock: Clock) -> None:
    """Rosa's reply carries her team and the desk's mail that relayed it (in the same thread, not yet
    sent); her comment is a staff note; the volunteer's own mail is nobody's staff mail."""
    view = ticket_view(app, LIAISON, handed_to_legal_with_staff_mail(app, clock))
    by_id = {m.id: m for m in view.messages}
    [reply] = [m for m in view.messages if m.message_id == "<r1@example.org>"]
    [note] = [m for m in view.messages if m.message_id == "<n1@example.org>"]
    assert view.messages[0].staff is None
    assert reply.staff is not None and note.staff is not None
    assert (reply.staff.path, reply.staff.team, reply.staff.team_name) == ("reply", "legal", "Legal")
    assert not reply.staff.is_note and reply.staff.relay_status == "pending"
    assert reply.staff.relayed_message_id is not None
    relayed = by_id[reply.staff.relayed_message_id]
    assert relayed.direction == "outbound" and relayed.to == ["ada@volunteers.example"]
    assert "the logo" in relayed.new_text
    assert note.staff.is_note and (note.staff.team, note.staff.relayed_message_id) == ("legal", None)
    assert [(e.actor, e.note_text.strip()) for e in view.events if e.is_note] == [
        ("staff:rosa.counsel@example.org", "Internal: <i>trademark</i> file checked.")]
