"""The ticket list (triage.desk.lists) as the CLI and /tickets share it, and the mail on no
ticket (triage.desk.unmatched), on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from tests.conftest import make_mail
from triage.bootstrap import App
from triage.desk import lists
from triage.desk.actions import merge
from triage.desk.actors import Actor, cli_actor
from triage.desk.errors import Forbidden, Invalid
from triage.desk.unmatched import list_unmatched
from triage.store.web_models import Role

LIAISON = cli_actor("test")
VIEWER = Actor("vic", Role.viewer)
STAFF = Actor("fay", Role.staff, "fundraising")


def ingest(app: App, *raws: bytes) -> list[str | None]:
    ingestor = app.ingestor()
    return [ingestor.ingest(raw, source="test").ticket_reference for raw in raws]


def test_ticket_list_orders_counts_messages_and_leaves_out_merged_tickets(app: App) -> None:
    """Newest or oldest first, each row with its message count; no limit lists all; a ticket
    merged into another is listed only as the survivor; an unknown order is refused."""
    first, second, third = ingest(app, make_mail(subject="one", message_id="<1@v.example>"),
                                  make_mail(subject="two", sender="bo@v.example", message_id="<2@v.example>"),
                                  make_mail(subject="three", sender="cy@v.example", message_id="<3@v.example>"))
    ingest(app, make_mail(subject="Re: one", message_id="<1b@v.example>", in_reply_to="<1@v.example>"))

    def listed(order: str = "newest", limit: int | None = 100) -> list[tuple[str, int]]:
        return [(r.reference, r.messages) for r in lists.list_tickets(app, LIAISON, order=order, limit=limit).rows]

    assert listed() == [(third, 1), (second, 1), (first, 2)]
    assert listed(order="oldest", limit=None) == [(first, 2), (second, 1), (third, 1)]
    assert listed(order="oldest", limit=1) == [(first, 2)]
    assert lists.list_tickets(app, LIAISON, limit=1).total == 3
    assert lists.ticket_row(app, LIAISON, first or "").messages == 2
    merge(app, LIAISON, second or "", third or "")
    assert listed(order="oldest") == [(first, 2), (third, 1)]
    with pytest.raises(Invalid, match="order"):
        lists.list_tickets(app, LIAISON, order="sideways")


def test_unmatched_mail_is_the_liaisons_and_a_viewers_not_staffs(app: App) -> None:
    """An out-of-office on no ticket is listed for the liaison and a viewer, filtered by kind;
    staff are refused (such mail belongs to no team), like the outbox and the quarantine."""
    ingest(app, make_mail(subject="Automatic reply: away", headers={"Auto-Submitted": "auto-replied"}))
    rows = list_unmatched(app, LIAISON)
    assert [(r["kind"], r["subject"]) for r in rows] == [("autoreply", "Automatic reply: away")]
    assert list_unmatched(app, VIEWER, kind="autoreply") == rows
    assert list_unmatched(app, LIAISON, kind="bounce") == []
    with pytest.raises(Forbidden):
        list_unmatched(app, STAFF)
