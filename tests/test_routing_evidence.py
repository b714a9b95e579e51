"""Evidence a person can read (triage.routing.evidence): over the real sample mailbox, the queue's
evidence is words a person would underline, each with its sentence; on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from classifiers import Example
from tests.conftest import Clock
from tests.test_desk_routing import LIAISON, use_router
from tests.test_routing_desk import fixture_model_dir  # noqa: F401 - the model_dir fixture: the seed model
from triage.bootstrap import App
from triage.desk import routing
from triage.digest.topics import DESK_LANGUAGES, stop_words
from triage.ingest.sources import open_source
from triage.routing.evidence import readable_evidence, stored_evidence

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample-mailbox"
NOT_EVIDENCE = {"das", "example", "he", "on", "me"}  # what the queue showed before (issue 4)


def test_sample_mailbox_evidence_reads_as_words(app: App, clock: Clock, model_dir: Path) -> None:
    """No stop word of any desk language, no piece of an address, at most five terms, each in its sentence."""
    router = use_router(app, model_dir)
    ingestor = app.ingestor(clock=clock)
    for label, raw in open_source(SAMPLE):
        ingestor.ingest(raw, source=label)
    assert router.suggest_pending() == 21
    stop = stop_words(DESK_LANGUAGES)
    items = routing.queue(app, LIAISON, limit=100).items
    assert len(items) == 21
    shown = [item for item in items if item.evidence]
    assert len(shown) >= 18, [i.subject for i in items if not i.evidence]
    for item in shown:
        assert len(item.evidence) <= 5
        for evidence in item.evidence:
            term, sentence = evidence["term"], evidence["sentence"]
            assert term not in NOT_EVIDENCE and term not in stop, (item.subject, term)
            assert not re.search(r"\b(org|com|net|example)\b", term) or "@" in term, (item.subject, term)
            assert re.search(rf"(?<!\w){re.escape(term)}(?!\w)", sentence, re.IGNORECASE), (term, sentence)
    logo = next(i for i in items if i.reference == "T-2026-00001")
    assert logo.evidence[0]["term"] == "logo" and "Logo" in logo.evidence[0]["sentence"]
    assert logo.evidence_words[0] == "logo"
    sentences = [sentence for _, sentence in logo.evidence_sentences]
    assert len(sentences) == len(set(sentences)) < len(logo.evidence)  # a sentence with two terms is shown once


def test_cli_queue_shows_each_term_with_its_sentence(app: App, clock: Clock, model_dir: Path) -> None:
    from triage.routing import desk_commands

    use_router(app, model_dir)
    ingestor = app.ingestor(clock=clock)
    for label, raw in list(open_source(SAMPLE))[:1]:
        ingestor.ingest(raw, source=label)

    class Obj:
        def open_app(self) -> App:
            app.close = lambda: None  # type: ignore[method-assign]
            return app

    result = CliRunner().invoke(desk_commands.queue, [], obj=Obj())
    assert result.exit_code == 0, result.output
    assert re.search(r'because: logo(, \w+)*: ".*Logo.*"', result.output), result.output


def test_readable_evidence_is_pure_and_filters() -> None:
    """Stop words, address pieces and the desk's own address go, and words found only inside a web
    address or domain; an n-gram stands for its subject word; an address stands for itself with its
    header line; a domain alone never shows."""
    mail = Example(subject="Trademark question about the logo", sender="ann@chapter.example.org",
                   body="Hello, we write from chapter.example.org. May we print the logo on a banner?\n"
                        "See https://wiki.example.org/unseen for the print file.\n"
                        "> the quoted logo line\nThe trademark matters to us.",
                   headers={"to": "liaison@desk.example"})
    features = [("words:the", 0.5), ("words:example", 0.4), ("subject:\" trade\"", 0.3), ("words:logo", 0.2),
                ("addresses:from-domain:chapter.example.org", 0.2), ("addresses:from:ann@chapter.example.org", 0.1),
                ("words:liaison", 0.1), ("words:banner", 0.05), ("words:we", 0.05), ("words:print", 0.01),
                ("words:unseen", 0.01), ("words:chapter", 0.01)]
    out = readable_evidence(features, mail, stop=stop_words(("en",)), own_addresses=["liaison@desk.example"],
                            limit=5)
    assert [e.term for e in out] == ["trademark", "logo", "ann@chapter.example.org", "banner", "print"]
    assert out[0].sentence == "Trademark question about the logo"
    assert out[1].sentence == "Trademark question about the logo"
    assert out[2].sentence == "From: ann@chapter.example.org"
    assert out[3].sentence == "May we print the logo on a banner?"
    assert out[4].sentence == "May we print the logo on a banner?"  # "unseen" is only a piece of a web address
    assert stored_evidence([["words:das", 0.3], ["words:logo", 0.2], ["subject:\" lo\"", 0.1]],
                           stop_words(("de",))) == [type(out[0])("logo", 0.2, "")]


def test_uncertain_first_orders_by_the_lead_of_the_suggested_team(app: App, clock: Clock, model_dir: Path) -> None:
    """Over the sample mailbox: the smallest lead of the top team over the runner-up first, tickets
    without a suggestion last; the default order stays the oldest first."""
    router = use_router(app, model_dir)
    ingestor = app.ingestor(clock=clock)
    for label, raw in list(open_source(SAMPLE))[:12]:
        ingestor.ingest(raw, source=label)
    router.suggest_pending()
    ingestor.ingest(list(open_source(SAMPLE))[12][1], source="late")  # no suggestion yet
    oldest = routing.queue(app, LIAISON, limit=100).items
    assert [i.reference for i in oldest] == sorted(i.reference for i in oldest)
    uncertain = routing.queue(app, LIAISON, order="uncertain", limit=100).items
    leads = [i.ranked[0][1] - i.ranked[1][1] for i in uncertain if i.ranked]
    assert leads == sorted(leads) and leads[0] < leads[-1]
    assert uncertain[-1].ranked == [] and {i.reference for i in uncertain} == {i.reference for i in oldest}
    page = routing.queue(app, LIAISON, order="uncertain", limit=3, page=2).items
    assert [i.reference for i in page] == [i.reference for i in uncertain[3:6]]


def test_a_long_sentence_is_cut_around_its_term() -> None:
    from triage.routing.evidence import around

    long = "wir organisieren seit zwei Jahren einen monatlichen Stammtisch in Leipzig und möchten für " \
           "unseren Stand beim Stadtteilfest im Dezember ein größeres Banner drucken lassen, sagen wir."
    cut = around(long, ["stand"], width=60)
    assert "Stand" in cut and cut.startswith("…") and cut.endswith("…") and len(cut) <= 62
    assert around("Short sentence.", ["short"]) == "Short sentence."
    assert around(long, ["wir"], width=60).startswith("wir organisieren")


def test_evidence_reads_only_the_start_of_a_huge_body() -> None:
    """A 5 MB body is not split into sentences whole: a word only past `READ_CHARS` is no evidence,
    one at the start is, and looking costs a few MB, not a multiple of the body."""
    import tracemalloc

    from triage.routing.evidence import READ_CHARS

    filler = "The volunteers met again on Tuesday. " * (5_000_000 // 37)
    body = "Our chapter needs a trademark licence. " + filler + " We also ask about a scholarship."
    assert body.index("scholarship") > READ_CHARS
    example = Example("Question", body, "v@volunteers.example")
    features = [("words:scholarship", 0.9), ("words:trademark", 0.5)]
    tracemalloc.start()
    try:
        found = readable_evidence(features, example, stop=frozenset())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [(e.term, e.sentence) for e in found] == [("trademark", "Our chapter needs a trademark licence.")]
    assert peak < 2_000_000, peak
