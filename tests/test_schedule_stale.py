"""Reminder clocks go stale on the App's own ORM writes, and on nobody else's: the listener is
registered on the App's sessionmaker by bootstrap(), not on SQLAlchemy's global Session class."""

from __future__ import annotations

import gc

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Clock, make_mail
from triage.bootstrap import App
from triage.schedule.run import run_reminders
from triage.schedule.stale import stale_clocks_on_change
from triage.store.models import Ticket, TicketStatus


def ticket_with_fresh_clock(app: App, clock: Clock) -> int:
    app.ingestor(clock=clock).ingest(make_mail())
    run_reminders(app.sessions, app.settings, now=clock.now, wiring=app.wiring)  # computes the clock
    with app.sessions() as session:
        ticket = session.scalars(select(Ticket)).one()
        assert ticket.clock_stale_at is None
        return ticket.id


def stale_at(app: App, ticket_id: int) -> object:
    with app.sessions() as session:
        return session.get_one(Ticket, ticket_id).clock_stale_at


def test_a_status_change_through_the_apps_sessions_makes_the_clock_stale(app: App, clock: Clock) -> None:
    """Changing a ticket's status through `app.sessions` marks its clock for recomputation; the
    next run recomputes it and clears the mark."""
    ticket_id = ticket_with_fresh_clock(app, clock)
    with app.sessions.begin() as session:
        session.get_one(Ticket, ticket_id).status = TicketStatus.waiting
    assert stale_at(app, ticket_id) is not None
    report = run_reminders(app.sessions, app.settings, now=clock.advance(minutes=1), wiring=app.wiring)
    assert report.refreshed == 1 and stale_at(app, ticket_id) is None


def test_the_listener_is_not_global(app: App, clock: Clock) -> None:
    """A Session the App did not make is not touched: no process-wide hook rewrites other code's flushes."""
    ticket_id = ticket_with_fresh_clock(app, clock)
    with Session(app.engine) as session, session.begin():
        session.get_one(Ticket, ticket_id).status = TicketStatus.waiting
    assert stale_at(app, ticket_id) is None
    with app.sessions.begin() as session:  # a Core write sets the mark itself, as the ingest batch does
        session.execute(update(Ticket).where(Ticket.id == ticket_id).values(clock_stale_at=clock.now))
    assert stale_at(app, ticket_id) is not None


def test_every_new_sessionmaker_gets_the_listener(app: App, clock: Clock) -> None:
    """Sessionmakers made and dropped one after another (each App makes one; the test suite and a
    worker restarting its App make many) each keep their clocks honest. SQLAlchemy keys its event
    registry by the target's id(): a guard that asked `event.contains` first skipped the listener
    whenever a new sessionmaker took the address of one just freed, which, between two runs of the
    cyclic collector, is nearly always."""
    ticket_id = ticket_with_fresh_clock(app, clock)
    gc.disable()
    try:
        for attempt in range(20):
            sessions = sessionmaker(app.engine, expire_on_commit=False)
            stale_clocks_on_change(sessions)
            with sessions.begin() as session:
                session.execute(update(Ticket).values(clock_stale_at=None))
            with sessions.begin() as session:
                session.get_one(Ticket, ticket_id).status = TicketStatus.waiting if attempt % 2 else TicketStatus.open
            assert stale_at(app, ticket_id) is not None, attempt
            del sessions, session
    finally:
        gc.enable()
