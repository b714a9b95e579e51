"""Due-time maths: business hours, holidays, quiet hours, pauses, DST, and the reminder ladder."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triage.config import ReminderSettings, TeamReminderSettings
from triage.schedule.calendar import BusinessCalendar, CalendarError
from triage.schedule.due import Clock, Due, Skip, TicketFacts, next_due, ticket_clock
from triage.schedule.policy import Policies, Policy

BERLIN = BusinessCalendar(tz="Europe/Berlin")


def policy(calendar: BusinessCalendar | None = None, first: float = 8, step: float = 8) -> Policy:
    return Policy(calendar or BusinessCalendar(), first, step, "", "")


def facts(created: datetime, **kw: object) -> TicketFacts:
    base: dict[str, object] = {"ticket_id": 1, "team": "legal", "created_at": created, "status": "open"}
    base.update(kw)
    return TicketFacts(**base)  # type: ignore[arg-type]


def test_adding_hours_skips_nights_and_weekends() -> None:
    """Eight business hours from Friday 15:00 UTC land on Monday 15:00 (2 h Friday, 6 h Monday)."""
    cal = BusinessCalendar()
    friday = datetime(2026, 11, 6, 15, tzinfo=UTC)
    assert cal.add(friday, 8) == datetime(2026, 11, 9, 15, tzinfo=UTC)


def test_time_running_out_at_closing_is_due_at_next_opening() -> None:
    """A due time is never the closing instant: exactly 8 h from 09:00 is due at 09:00 the next day."""
    cal = BusinessCalendar()
    assert cal.add(datetime(2026, 11, 2, 9, tzinfo=UTC), 8) == datetime(2026, 11, 3, 9, tzinfo=UTC)


def test_holidays_and_quiet_hours_do_not_count() -> None:
    """A holiday is skipped whole; quiet hours at lunch neither count nor receive a due time."""
    cal = BusinessCalendar(holidays=frozenset({date(2026, 11, 3)}), quiet=((time(12), time(13)),))
    start = datetime(2026, 11, 2, 11, tzinfo=UTC)  # Monday; Tuesday is a holiday
    # Monday: 11-12 (1 h) and 13-17 (4 h); Wednesday 09:00 + 1 h
    assert cal.add(start, 6) == datetime(2026, 11, 4, 10, tzinfo=UTC)
    assert not cal.is_open(datetime(2026, 11, 2, 12, 30, tzinfo=UTC))


def test_business_hours_follow_the_local_clock_across_dst() -> None:
    """Berlin opens at 09:00 local: 08:00 UTC in winter, 07:00 UTC in summer (the DST change on 29 March 2026)."""
    friday = datetime(2026, 3, 27, 15, tzinfo=UTC)  # 16:00 CET, one hour before closing
    assert BERLIN.add(friday, 2) == datetime(2026, 3, 30, 8, tzinfo=UTC)  # Monday 10:00 CEST


def test_a_pause_stops_the_clock() -> None:
    """Waiting on the volunteer for two business hours moves the due time two hours later."""
    cal = BusinessCalendar()
    start = datetime(2026, 11, 2, 9, tzinfo=UTC)
    paused = [(datetime(2026, 11, 2, 10, tzinfo=UTC), datetime(2026, 11, 2, 12, tzinfo=UTC))]
    assert cal.add(start, 4, paused) == datetime(2026, 11, 2, 15, tzinfo=UTC)


def test_a_calendar_that_never_opens_is_refused() -> None:
    """Empty business days or inverted hours are configuration errors, not endless loops."""
    with pytest.raises(CalendarError):
        BusinessCalendar(days=frozenset())
    with pytest.raises(CalendarError):
        BusinessCalendar(start=time(17), end=time(9))


def test_ladder_levels_follow_one_another() -> None:
    """Level 1 after 8 business hours, level 2 after 16, level 3 after 24; reached levels send the highest."""
    created = datetime(2026, 11, 2, 9, tzinfo=UTC)
    p = policy()
    assert next_due(facts(created), p, created + timedelta(hours=3)) == Skip(
        1, "not-due", datetime(2026, 11, 3, 9, tzinfo=UTC), 1)
    assert next_due(facts(created), p, datetime(2026, 11, 3, 10, tzinfo=UTC)) == Due(
        1, 1, datetime(2026, 11, 3, 9, tzinfo=UTC))
    assert next_due(facts(created, reminded=frozenset({1})), p, datetime(2026, 11, 4, 9, 30, tzinfo=UTC)) == Due(
        1, 2, datetime(2026, 11, 4, 9, tzinfo=UTC))
    assert next_due(facts(created), p, datetime(2026, 11, 5, 9, 30, tzinfo=UTC)).level == 3


def test_skip_reasons() -> None:
    """Each reason for not sending is named: answered, waiting, outside hours, already reminded, done."""
    created = datetime(2026, 11, 2, 9, tzinfo=UTC)
    late = datetime(2026, 11, 3, 10, tzinfo=UTC)
    p = policy()
    assert next_due(facts(created, answered_at=created), p, late).reason == "answered"  # type: ignore[union-attr]
    waiting = facts(created, status="waiting", status_changes=((created + timedelta(hours=1), "waiting"),))
    assert next_due(waiting, p, late).reason == "waiting-on-volunteer"  # type: ignore[union-attr]
    night = datetime(2026, 11, 3, 22, tzinfo=UTC)
    assert next_due(facts(created), p, night).reason == "outside-business-hours"  # type: ignore[union-attr]
    assert next_due(facts(created, reminded=frozenset({1})), p, late).reason == "already-reminded"  # type: ignore[union-attr]
    assert next_due(facts(created, reminded=frozenset({3})), p, late).reason == "ladder-complete"  # type: ignore[union-attr]
    assert next_due(facts(created, team=None), p, late).reason == "no-team"  # type: ignore[union-attr]


def test_team_overrides_come_from_config() -> None:
    """[reminders.teams.<key>] overrides the default policy for that team only."""
    settings = ReminderSettings(teams={"legal": TeamReminderSettings(timezone="America/New_York",
                                                                     first_response_hours=2)})
    policies = Policies(settings)
    assert policies.for_team("legal").calendar.tz == "America/New_York"
    assert policies.for_team("legal").first_response_hours == 2
    assert policies.for_team("press").calendar.tz == "UTC"
    assert policies.for_team("press").first_response_hours == 8  # the default


# -- properties ---------------------------------------------------------------------------------

ZONES = ["Europe/Berlin", "America/New_York", "UTC", "Australia/Sydney"]
instants = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31)).map(
    lambda d: d.replace(tzinfo=UTC))


@st.composite
def calendars(draw: st.DrawFn) -> BusinessCalendar:
    start = draw(st.integers(0, 20))
    end = draw(st.integers(start + 1, 24))
    days = draw(st.frozensets(st.integers(1, 7), min_size=1))
    holidays = draw(st.frozensets(st.dates(date(2025, 1, 1), date(2028, 1, 1)), max_size=20))
    return BusinessCalendar(tz=draw(st.sampled_from(ZONES)), days=days, start=time(start),
                            end=time(end) if end < 24 else time(23, 59), holidays=holidays)


@settings(max_examples=150, deadline=None)
@given(calendars(), instants, st.floats(0, 60))
def test_due_times_lie_in_business_hours_and_never_on_holidays(cal: BusinessCalendar, start: datetime,
                                                               hours: float) -> None:
    """Whatever the zone (DST included), hours and holidays, a due time is inside an opening window."""
    due = cal.add(start, hours)
    assert due >= start
    assert cal.is_open(due)
    local = due.astimezone(cal._zone)
    assert local.date() not in cal.holidays or local.time() < cal.start  # the window of the day before
    assert local.isoweekday() in cal.days or local.time() < cal.start


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(ZONES), instants, st.lists(st.floats(0, 24 * 40), min_size=2, max_size=6),
       st.lists(st.tuples(st.floats(0, 24 * 30), st.floats(0, 72)), max_size=3))
def test_due_never_moves_backwards_as_now_advances(zone: str, created: datetime, offsets: list[float],
                                                   pauses: list[tuple[float, float]]) -> None:
    """For fixed events, the reported due time (and the level) only move forward as `now` advances."""
    cal = BusinessCalendar(tz=zone)
    changes: list[tuple[datetime, str]] = []
    for begin, length in sorted(pauses):
        changes.append((created + timedelta(hours=begin), "waiting"))
        changes.append((created + timedelta(hours=begin + length), "open"))
    f = facts(created, status_changes=tuple(changes))
    p = policy(cal, first=8, step=8)
    last: tuple[int, datetime] | None = None
    for offset in sorted(offsets):
        now = created + timedelta(hours=offset)
        waiting = any(w <= now < o for (w, _), (o, _) in zip(changes[::2], changes[1::2]))
        verdict = next_due(facts(created, status_changes=tuple(changes),
                                 status="waiting" if waiting else "open"), p, now)
        assert verdict.due_at is not None and verdict.level is not None
        key = (verdict.level, verdict.due_at)
        if last is not None:
            assert key[0] >= last[0]
            if key[0] == last[0]:
                assert key[1] >= last[1]
        last = key
    assert f.created_at == created


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(["Europe/Berlin", "America/New_York"]), st.floats(0, 40),
       st.sampled_from([datetime(2026, 3, 6, 12, tzinfo=UTC), datetime(2026, 3, 27, 12, tzinfo=UTC),
                        datetime(2026, 10, 23, 12, tzinfo=UTC), datetime(2026, 10, 30, 12, tzinfo=UTC)]))
def test_dst_weeks_count_the_same_business_hours(zone: str, hours: float, start: datetime) -> None:
    """Across a DST change the business time between start and due is exactly what was asked for."""
    cal = BusinessCalendar(tz=zone)
    due = cal.add(start, hours)
    counted = timedelta()
    for s, e in cal.windows_from(start):
        if s >= due:
            break
        counted += min(e, due) - s
    assert abs(counted - timedelta(hours=hours)) < timedelta(microseconds=2)


def level_the_run_sends(clock: Clock, now: datetime) -> tuple[int, datetime] | None:
    """What the reminder run's SQL makes of a stored clock: the highest level due, if the next one is."""
    if clock.next_at is None or clock.next_at > now:
        return None
    return max((level, at) for level, at in enumerate(clock.due, start=1) if at is not None and at <= now)


@settings(max_examples=200, deadline=None)
@given(calendars(), instants, st.floats(0, 24 * 20), st.sampled_from(["open", "new", "waiting", "resolved"]),
       st.frozensets(st.sampled_from([1, 2, 3]), max_size=3),
       st.lists(st.tuples(st.floats(0, 24 * 10), st.floats(0, 48)), max_size=2), st.floats(1, 30), st.floats(1, 30))
def test_stored_clock_agrees_with_next_due(cal: BusinessCalendar, created: datetime, later: float, status: str,
                                           reminded: frozenset[int], pauses: list[tuple[float, float]],
                                           first: float, step: float) -> None:
    """The clock kept on the ticket, read as the run's SQL reads it, fires exactly what `next_due` fires."""
    now = created + timedelta(hours=later)
    changes: list[tuple[datetime, str]] = []
    for begin, length in sorted(pauses):  # closed pauses only: a ticket waiting now has a stopped clock
        end = min(created + timedelta(hours=begin + length), now)
        if created + timedelta(hours=begin) < end:
            changes += [(created + timedelta(hours=begin), "waiting"), (end, "open")]
    f = facts(created, status=status, status_changes=tuple(changes), reminded=reminded)
    p = policy(cal, first=first, step=step)
    clock = ticket_clock(f, p, now)
    verdict = next_due(f, p, now)
    read = level_the_run_sends(clock, now)
    if isinstance(verdict, Due):
        assert read == (verdict.level, verdict.due_at)
    elif verdict.reason == "outside-business-hours":
        assert read is not None and not cal.is_open(now)  # the run skips it for the same reason
    else:
        assert read is None, (verdict, clock)
