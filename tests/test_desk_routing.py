"""The routing service (triage.desk.routing): the queue and its filters, decisions by role, a
decision racing another one, and the ticket list (triage.desk.lists), on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from tests.conftest import make_mail
from tests.test_routing_desk import fixture_model_dir  # noqa: F401 - the model_dir fixture: the seed model
from triage.bootstrap import App
from triage.desk import lists, routing
from triage.desk.actors import Actor
from triage.desk.errors import Conflict, Forbidden, Invalid, NotFound
from triage.ingest.pipeline import IncomingMail
from triage.routing.desk import Router, load_teams
from triage.schedule.policy import Policies
from triage.store.models import Contact, Decision, Event, Suggestion, Ticket
from triage.store.web_models import Role

DATA = Path(__file__).resolve().parents[1] / "data"
LIAISON = Actor("ana", Role.liaison)
VIEWER = Actor("vic", Role.viewer)
FUNDRAISING_STAFF = Actor("fay", Role.staff, "fundraising")
LEGAL_STAFF = Actor("leo", Role.staff, "legal")

DONATION = {"subject": "Donation receipt for my tax return", "sender": "don@v.example",
                "body": "Hello, I donated 50 euros by card in March. Could you send me a donation receipt "
                     "for my tax return? Thank you."}
VAGUE = {"subject": "hello", "sender": "bo@v.example", "body": "hi, quick question"}
LOGO = {"subject": "Trademark question about using the logo", "sender": "lo@v.example",
            "body": "May our chapter print the trademark logo on a banner? Is a licence needed from legal?"}


def use_router(app: App, model_dir: Path, on_routed: Callable[..., object] | None = None) -> Router:
    """The app's router with the module's model (and the hand-off, or a hook a test wraps around it)."""
    from classifiers import load_model

    router = Router(app.sessions, load_model(str(model_dir)), load_teams(DATA / "teams.toml"),
                    on_routed=on_routed or app.handoff)
    app.router = lambda: router  # type: ignore[method-assign]
    return router


@pytest.fixture
def router(app: App, model_dir: Path) -> Router:
    return use_router(app, model_dir)


def ingest(app: App, *mails: dict[str, str], date: datetime | None = None) -> list[str]:
    """Store the mails and suggest teams for them, as the worker's routing runner does."""
    outcomes = app.ingestor().ingest_many(
        [IncomingMail(make_mail(**m, date=date), source="test") for m in mails])  # type: ignore[arg-type]
    app.router().suggest_pending()
    return [o.ticket_reference or "" for o in outcomes]


def test_queue_shows_suggestion_evidence_and_the_first_mail(app: App, router: Router) -> None:
    """A waiting ticket comes with its suggested team, confidence, evidence words and mail text."""
    donation, vague = ingest(app, DONATION, VAGUE)
    result = routing.queue(app, LIAISON)
    assert [i.reference for i in result.items] == [donation, vague] and result.total == 2
    first = result.items[0]
    assert first.suggested_team == "fundraising" and first.confidence is not None and first.confidence > 0.5
    assert "donation receipt" in first.excerpt and first.evidence_words
    assert any(w in ("receipt", "donation", "tax", "donated") for w in first.evidence_words)
    assert result.items[1].suggested_team is None and result.teams["fundraising"] == "Fundraising"
    newest = routing.queue(app, LIAISON, order="newest")
    assert [i.reference for i in newest.items] == [vague, donation]
    with pytest.raises(Invalid):
        routing.queue(app, LIAISON, order="sideways")


def test_filters_and_saved_views(app: App, router: Router) -> None:
    """team (the suggested one), status, language, flagged, overdue; the saved views are presets."""
    donation, vague, logo = ingest(app, DONATION, VAGUE, LOGO)
    with app.sessions.begin() as session:
        session.execute(update(Ticket).where(Ticket.reference == vague).values(flag="stranger"))
        session.execute(update(Contact).where(Contact.address == "lo@v.example").values(language="de"))

    def refs(filters: routing.QueueFilters, actor: Actor = LIAISON, **kw: Any) -> list[str]:
        return [i.reference for i in routing.queue(app, actor, filters=filters, **kw).items]

    assert refs(routing.QueueFilters(team="fundraising")) == [donation]
    assert refs(routing.QueueFilters(flagged=True)) == refs(routing.saved_view("flagged", LIAISON)) == [vague]
    assert refs(routing.QueueFilters(language="de")) == [logo]
    assert refs(routing.QueueFilters(status="new")) == [donation, vague, logo]
    assert refs(routing.QueueFilters(status="waiting")) == []
    assert vague not in refs(routing.saved_view("awaiting-approval", LIAISON))  # the model abstained on it
    lead = Actor("ida", Role.liaison, "fundraising")
    assert routing.saved_view("my-team", lead) == routing.QueueFilters(team="fundraising")
    with pytest.raises(Invalid):
        routing.saved_view("my-team", LIAISON)  # a liaison without a team has no "my team"
    with pytest.raises(Invalid):
        routing.saved_view("everything", LIAISON)
    with pytest.raises(Invalid):
        routing.queue(app, LIAISON, filters=routing.QueueFilters(status="lost"))
    # Overdue: past the first response time of the default policy, in business hours.
    now = datetime.now(UTC)
    assert refs(routing.saved_view("overdue", LIAISON), now=now) == []
    later = now + timedelta(days=10)
    assert refs(routing.QueueFilters(overdue=True), now=later) == [donation, vague, logo]
    assert all(i.overdue for i in routing.queue(app, LIAISON, now=later).items)


def test_overdue_cutoff_is_the_last_arrival_already_due() -> None:
    """The bisection finds the latest arrival whose first response is due by now (to the second)."""
    from triage.config import load_settings

    policy = Policies(load_settings(environ={}).reminders).default  # 09:00-17:00 Mon-Fri UTC, 8 hours
    now = datetime(2026, 11, 4, 12, 0, tzinfo=UTC)  # a Wednesday noon
    cutoff = routing.overdue_cutoff(policy, now)
    assert policy.calendar.add(cutoff, 8) <= now < policy.calendar.add(cutoff + timedelta(seconds=2), 8)
    assert cutoff == datetime(2026, 11, 3, 12, 0, tzinfo=UTC) or abs(
        (cutoff - datetime(2026, 11, 3, 12, 0, tzinfo=UTC)).total_seconds()) <= 1


def test_approve_correct_and_bulk_log_the_user(app: App, router: Router) -> None:
    """The liaison approves, corrects and bulk-approves; each decision names the user in the log."""
    donation, vague, logo = ingest(app, DONATION, VAGUE, LOGO)
    assert routing.approve(app, LIAISON, donation)["team"] == "fundraising"
    corrected = routing.correct(app, LIAISON, vague, "technology")
    assert corrected["agreed"] is False
    with pytest.raises(Invalid):
        routing.correct(app, LIAISON, logo, "catering")
    done = routing.approve_confident(app, LIAISON, 0.0)
    assert [d["reference"] for d in done] == [logo]
    with pytest.raises(Invalid):
        routing.approve_confident(app, LIAISON, 1.5)
    with app.reads() as session:
        actors = set(session.scalars(select(Decision.actor)))
        routed = session.scalars(select(Event.actor).where(Event.action == "routed")).all()
    assert actors == {"liaison:ana"} and len(routed) == 3
    assert routing.queue(app, LIAISON).items == []


def test_the_queue_only_reads(app: App, router: Router) -> None:
    """Loading the queue makes no suggestion (the routing runner does): new mail waits unsuggested."""
    app.ingestor().ingest_many([IncomingMail(make_mail(**DONATION), source="test")])  # type: ignore[arg-type]
    assert routing.queue(app, LIAISON).items[0].suggested_team is None
    with app.reads() as session:
        assert session.scalars(select(Suggestion)).all() == []
    router.suggest_pending()
    assert routing.queue(app, LIAISON).items[0].suggested_team == "fundraising"


def test_bulk_approval_keeps_to_the_filters(app: App, router: Router) -> None:
    """With filters, bulk approval approves only the suggestions those filters select."""
    donation, logo = ingest(app, DONATION, LOGO)
    with app.sessions.begin() as session:
        session.execute(update(Contact).where(Contact.address == "lo@v.example").values(language="de"))
    done = routing.approve_confident(app, LIAISON, 0.0, filters=routing.QueueFilters(language="de"))
    assert [d["reference"] for d in done] == [logo]
    assert routing.approve_confident(app, LIAISON, 0.0, filters=routing.QueueFilters(flagged=True)) == []
    assert [i.reference for i in routing.queue(app, LIAISON).items] == [donation]


def test_queue_pages(app: App, router: Router) -> None:
    """`limit` rows a page: the total counts every page, `has_more` says whether one follows."""
    donation, vague, logo = ingest(app, DONATION, VAGUE, LOGO)
    first = routing.queue(app, LIAISON, limit=2)
    assert [i.reference for i in first.items] == [donation, vague] and first.total == 3 and first.has_more
    second = routing.queue(app, LIAISON, limit=2, page=2)
    assert [i.reference for i in second.items] == [logo] and second.total == 3 and not second.has_more
    beyond = routing.queue(app, LIAISON, limit=2, page=3)
    assert beyond.items == [] and beyond.total == 3 and not beyond.has_more
    exact = routing.queue(app, LIAISON, limit=3)
    assert exact.total == 3 and not exact.has_more
    with pytest.raises(Invalid):
        routing.queue(app, LIAISON, page=0)


def test_only_the_liaison_decides(app: App, router: Router) -> None:
    """A viewer and staff are Forbidden to approve, correct or bulk-approve; nothing is routed."""
    donation, = ingest(app, DONATION)
    for actor in (VIEWER, FUNDRAISING_STAFF):
        with pytest.raises(Forbidden):
            routing.approve(app, actor, donation)
        with pytest.raises(Forbidden):
            routing.correct(app, actor, donation, "legal")
        with pytest.raises(Forbidden):
            routing.approve_confident(app, actor, 0.0)
    with app.reads() as session:
        assert session.scalar(select(Ticket.team).where(Ticket.reference == donation)) is None


def test_staff_see_only_their_team(app: App, router: Router) -> None:
    """Staff list only their team's tickets, see nothing unrouted in the queue, and another team's
    ticket is NotFound, exactly like a missing one."""
    donation, vague, logo = ingest(app, DONATION, VAGUE, LOGO)
    routing.approve(app, LIAISON, donation)
    routing.correct(app, LIAISON, logo, "legal")
    assert [r.reference for r in lists.list_tickets(app, FUNDRAISING_STAFF).rows] == [donation]
    assert [r.reference for r in lists.list_tickets(app, LEGAL_STAFF).rows] == [logo]
    assert lists.list_tickets(app, FUNDRAISING_STAFF, lists.TicketFilters(team="legal")).rows == []
    assert routing.queue(app, FUNDRAISING_STAFF).items == []  # the waiting ticket is nobody's yet
    assert [i.reference for i in routing.queue(app, VIEWER).items] == [vague]
    assert lists.ticket_row(app, FUNDRAISING_STAFF, donation).team == "fundraising"
    for ref in (logo, vague, "T-2026-09999"):
        with pytest.raises(NotFound, match="no ticket"):
            lists.ticket_row(app, FUNDRAISING_STAFF, ref)
    assert lists.ticket_row(app, LIAISON, logo).team == "legal"


def test_ticket_list_filters(app: App, router: Router) -> None:
    """Status, team (empty: unrouted), flagged and subject text, newest first; a reference matches too."""
    donation, vague, logo = ingest(app, DONATION, VAGUE, LOGO)
    routing.approve(app, LIAISON, donation)
    with app.sessions.begin() as session:
        session.execute(update(Ticket).where(Ticket.reference == logo).values(flag="bounce"))

    def refs(**kw: Any) -> list[str]:
        return [r.reference for r in lists.list_tickets(app, LIAISON, lists.TicketFilters(**kw)).rows]

    assert refs() == [logo, vague, donation]
    assert refs(team="fundraising") == [donation] and refs(team="") == [logo, vague]
    assert refs(status="open") == [donation] and refs(flagged=True) == [logo]
    assert refs(text="RECEIPT") == [donation] and refs(text="%") == [] and refs(text=logo.lower()) == [logo]
    with pytest.raises(Invalid):
        refs(status="lost")


def test_a_decision_racing_another_is_refused_not_applied_twice(app: App, model_dir: Path) -> None:
    """Two liaisons decide the same ticket at once: the first wins, the second gets a Conflict that
    names the team and who chose it, and the ticket has one decision. The first decision is held
    open (inside its transaction, in the hand-off) until the second has started."""
    first_inside, release = threading.Event(), threading.Event()

    def slow_handoff(*args: Any) -> None:
        first_inside.set()
        assert release.wait(10)

    use_router(app, model_dir, on_routed=slow_handoff)
    donation, = ingest(app, DONATION)
    results: dict[str, Any] = {}

    def decide(name: str, actor: Actor, team: str | None) -> None:
        try:
            results[name] = (routing.correct(app, actor, donation, team) if team
                             else routing.approve(app, actor, donation))
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            results[name] = exc

    ana = threading.Thread(target=decide, args=("ana", LIAISON, None))
    ana.start()
    assert first_inside.wait(10)
    bob = threading.Thread(target=decide, args=("bob", Actor("bob", Role.liaison), "legal"))
    bob.start()
    bob.join(0.5)  # bob waits for ana's lock (or reads before her commit, where nothing locks)
    release.set()
    ana.join(10)
    bob.join(10)
    assert results["ana"]["team"] == "fundraising"
    refused = results["bob"]
    assert isinstance(refused, Conflict), refused
    assert str(refused.message) == f"{donation} was already routed to fundraising by liaison:ana"
    assert refused.hint and refused.status == 409
    with app.reads() as session:
        assert session.scalar(select(Ticket.team).where(Ticket.reference == donation)) == "fundraising"
        assert len(session.scalars(select(Decision)).all()) == 1
        assert len(session.scalars(select(Event).where(Event.action == "routed")).all()) == 1
    with pytest.raises(Conflict, match="already routed to fundraising by liaison:ana"):
        routing.approve(app, LIAISON, donation)  # and later, plainly
