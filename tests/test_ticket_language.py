"""The ticket's language (triage.language: fastText, then Lingua where it is unsure): detected once when the ticket opens, filled in
for older tickets by `triage db detect-languages`, shown and filtered in the queue, and the
acknowledgment's language; on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import select, update

from tests.conftest import Clock
from tests.test_desk_routing import LIAISON
from triage.bootstrap import App
from triage.cli import cli
from triage.config import Settings
from triage.desk import routing
from triage.ingest.language_backfill import detect_missing_languages
from triage.ingest.sources import open_source
from triage.language import detect
from triage.outbox.language import choose_language
from triage.store.models import Ticket

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample-mailbox"
# data/sample-mailbox/README.md: the German logo question, the Spanish grant report, the French
# erasure request and the Portuguese election question; the rest is English
NOT_ENGLISH = {"T-2026-00001": "de", "T-2026-00006": "es", "T-2026-00007": "fr", "T-2026-00009": "pt"}


def _languages(app: App) -> dict[str, str | None]:
    with app.reads() as session:
        return dict(session.execute(select(Ticket.reference, Ticket.language).order_by(Ticket.id)).all())


def test_language_is_stored_when_the_ticket_opens_and_filled_in_later(app: App, clock: Clock,
                                                                     settings: Settings) -> None:
    ingestor = app.ingestor(clock=clock)
    for label, raw in open_source(SAMPLE):
        ingestor.ingest(raw, source=label)
    stored = _languages(app)
    assert len(stored) == 21
    assert {ref: lang for ref, lang in stored.items() if lang != "en"} == NOT_ENGLISH
    german = routing.queue(app, LIAISON, filters=routing.QueueFilters(language="de")).items
    assert [i.reference for i in german] == ["T-2026-00001"] and german[0].language == "de"

    with app.sessions.begin() as session:  # tickets opened before detection
        session.execute(update(Ticket).values(language=None))
    assert detect_missing_languages(app.sessions, batch=4) == (21, 21)
    assert _languages(app) == stored
    assert detect_missing_languages(app.sessions) == (0, 0)
    with app.sessions.begin() as session:
        session.execute(update(Ticket).where(Ticket.reference == "T-2026-00006").values(language=None))
    result = CliRunner().invoke(cli, ["db", "detect-languages"], env={"TRIAGE_DATABASE_URL": settings.database.url})
    assert result.exit_code == 0, result.output
    assert "1 tickets without a language read, 1 given one" in result.output
    assert _languages(app)["T-2026-00006"] == "es"


def test_one_detector_and_the_acknowledgment_prefers_the_ticket_language() -> None:
    """Short or unclear text gives no language; the ticket's stored language is used before the text's."""
    assert detect("500 error") is None and detect("Thanks!") is None
    assert detect("Olá, gostaria de saber quem pode se candidatar ao conselho este ano.") == "pt"
    assert choose_language(contact_language=None, text="Hello there, a question about the logo please",
                           available={"de"}, ticket_language="de") == ("de", "detected from the mail")
    assert choose_language(contact_language="fr", text="", available={"de", "fr"}, ticket_language="de")[0] == "fr"


def test_the_quick_detector_answers_most_mail_and_lingua_the_rest() -> None:
    """A clear English or German mail is named by fastText's small model and Lingua's 75 MB are never
    loaded; a short Swahili mail, which fastText is unsure of, is named by Lingua. A fresh process, so
    that no other test has built either detector."""
    script = (
        "import triage.language as language\n"
        "english = language.detect('Hello, could you tell me who handles the grant reports this year?')\n"
        "german = language.detect('Guten Tag, wir möchten das Logo für unser Banner beim Stammtisch verwenden.')\n"
        "print(english, german, language._thorough is None)\n"
        "swahili = language.detect('Habari, tunaweza kutumia nembo kwa tukio letu mwezi ujao? Sisi ni wanaojitolea.')\n"
        "print(swahili, language._thorough is None)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.splitlines() == ["en de True", "sw False"]


def test_a_language_detected_where_the_mail_was_parsed_is_stored_as_is(app: App, clock: Clock) -> None:
    """The IMAP parse pool detects a new mail's language with its parsing; the store takes that
    answer (even None) instead of detecting again, and detects a mail that comes without one."""
    from tests.conftest import make_mail
    from triage.ingest.parse import parse_mail
    from triage.ingest.parse_worker import detect_language
    from triage.ingest.pipeline import IncomingMail
    from triage.language import Detected

    english = "Hello, could you tell me who handles the grant reports this year?"
    raws = [make_mail(message_id=f"<d{i}@v.example>", sender=f"d{i}@v.example", body=english) for i in range(3)]
    assert detect_language(parse_mail(raws[0])) == Detected("en")
    app.ingestor(clock=clock).ingest_many([IncomingMail(raws[0], detected=Detected("fr")),
                                           IncomingMail(raws[1], detected=Detected(None)), IncomingMail(raws[2])])
    assert list(_languages(app).values()) == ["fr", None, "en"]


def test_the_optional_language_block_is_learnt_saved_and_explained(tmp_path: Path) -> None:
    """With LANGUAGE_BLOCK the model reads `Example.language`; it survives save and load, and the
    evidence a person reads never shows it (it is no word of the mail)."""
    from classifiers import Example, LinearRouter, load_model
    from classifiers.features import LANGUAGE_BLOCK
    from classifiers.linear import DEFAULT_BLOCKS
    from triage.routing.evidence import readable_evidence

    words = ["logo", "banner", "grant", "report", "press", "forum", "venue", "visa"]
    examples = [Example(f"question {i}", f"about the {words[i % 8]} and the {words[(i + 3) % 8]}",
                        label="chapters" if i % 2 else "central", language="de" if i % 2 else "en")
                for i in range(40)]
    model = LinearRouter((*DEFAULT_BLOCKS, LANGUAGE_BLOCK), folds=2)
    model.fit(examples)
    model.save(tmp_path / "m")
    again = load_model(str(tmp_path / "m"))
    probe = Example("question 99", "about the logo and the report", language="de")
    assert again.predict([probe])[0].ranked[0][0] == "chapters"
    assert model.predict([probe])[0].ranked == again.predict([probe])[0].ranked
    explained = again.explain(probe, top_k=20)
    assert any(feature == "language:lang:de" for feature, _ in explained)
    assert all(e.term != "lang:de" for e in readable_evidence(explained, probe, stop=set()))
