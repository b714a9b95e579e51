"""The README's pictures of the workbench, taken by the test suite's browser: the sample mailbox
ingested and routed, the liaison logged in, the queue and one ticket at 1200x800.

Every run checks that the two pages render the sample tickets without console errors or requests
to other hosts; with TRIAGE_SCREENSHOTS=1 it also writes docs/screenshots/queue.png and
ticket.png (commit them when the pages change). SQLite only: a picture needs one engine.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.workbench import Account, log_in
from triage.bootstrap import App
from triage.config import Settings, load_settings
from triage.ingest.pipeline import IncomingMail

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "docs" / "screenshots"
VIEWPORT = {"width": 1200, "height": 800}
MAX_BYTES = 150_000
TICKET = "T-2026-00002"  # the bot account question: an inline image, a threaded follow-up

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    """The test database, and a routing model trained from the seed data into this test's folder."""
    return load_settings(environ={"TRIAGE_DATABASE_URL": db_url,
                                  "TRIAGE_ROUTING_MODEL_PATH": str(tmp_path / "model")})


@pytest.fixture
def desk(app: App, page: Any, make_account: Callable[..., Account]) -> Iterator[Any]:
    """The sample mailbox ingested and routed, the liaison logged in on a 1200x800 page."""
    mails = sorted((ROOT / "data" / "sample-mailbox" / "new").iterdir())
    app.ingestor().ingest_many([IncomingMail(path.read_bytes(), source=path.name) for path in mails])
    while app.router().suggest_pending():
        pass
    page.set_viewport_size(VIEWPORT)
    log_in(page, make_account())
    yield page
    assert page.watch.console_errors == [] and page.watch.foreign_requests == []


def keep(page: Any, name: str) -> None:
    """Write the picture only when asked (TRIAGE_SCREENSHOTS=1), in 64 colours: a page of text
    loses nothing visible and the file shrinks to a third (about 50 kB instead of 160)."""
    if os.environ.get("TRIAGE_SCREENSHOTS") != "1":
        return
    from PIL import Image

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = Image.open(io.BytesIO(page.screenshot(full_page=False))).convert("RGB")
    shot.quantize(colors=64, dither=Image.Dither.NONE).save(SCREENSHOTS / name, optimize=True)
    assert (SCREENSHOTS / name).stat().st_size < MAX_BYTES


def test_the_queue_renders_the_sample_mailbox(desk: Any) -> None:
    """The queue lists the sample's waiting tickets with their suggested teams."""
    text = desk.locator("main").inner_text()
    assert "T-2026-00001" in text and "Logo-Nutzung" in text  # an encoded German subject, decoded
    assert "Bot account locked" in text
    keep(desk, "queue.png")


def test_a_ticket_page_renders_its_thread(desk: Any) -> None:
    """A ticket shows its thread: the question and the threaded follow-up (once /tickets/<ref>,
    built beside this test, exists: until then it answers 404 and this test skips)."""
    response = desk.goto(f"/tickets/{TICKET}")
    if response is not None and response.status == 404:
        desk.watch.console_errors.clear()  # the browser logs the 404 itself
        pytest.skip(f"/tickets/{TICKET} answers 404: the ticket page is not in this branch yet")
    assert response is not None and response.status == 200
    text = desk.locator("main").inner_text()
    assert TICKET in text and "Bot account locked" in text
    keep(desk, "ticket.png")
