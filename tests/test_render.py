"""Mail templates: sandboxed, autoescaped HTML, strict about variables, localised acknowledgment."""

from __future__ import annotations

from typing import Any

import jinja2
import pytest
from jinja2.sandbox import SecurityError

from triage.outbox.language import choose_language, detect, normalise
from triage.outbox.render import Renderer, TemplateError, default_templates_dir

MAILS = ["acknowledgment", "handoff-team", "handoff-volunteer", "reminder", "escalation", "resolution", "reply"]


def full_context(**over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "desk": {"name": "Community Liaison", "address": "liaison@example.org",
                 "comment_address": "liaison+comment@example.org"},
        "ticket": {"reference": "T-2026-00001", "subject": "Logo on a banner", "status": "new", "team": None,
                   "created_at": "2026-11-02T09:00+00:00"},
        "volunteer": {"name": "Ada", "address": "ada@volunteers.example"},
        "team": {"key": "legal", "name": "Legal", "address": "legal@example.org"},
        "signature": "The Community Liaison desk",
        "language": "en",
        "message": {"subject": "Logo", "text": "May we use the logo?", "date": "2026-11-02T08:30+00:00",
                    "from_addr": "ada@volunteers.example"},
        "history": [{"direction": "inbound", "date": "2026-11-02T08:30+00:00", "from_addr": "ada@volunteers.example",
                     "subject": "Logo", "kind": "normal"}],
        "body": "Yes, you may.",
        "actor": "liaison",
        "recipient_name": "Legal",
        "waiting_days": 3,
        "tickets": [{"reference": "T-2026-00001", "subject": "Logo on a banner", "waiting_days": 3}],
        "total": 1,
    }
    data.update(over)
    return data


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(default_templates_dir())


@pytest.mark.parametrize("name", MAILS)
def test_every_mail_renders_with_reference_and_signature(renderer: Renderer, name: str) -> None:
    """Each mail folder renders a one-line subject and a body carrying the base's signature."""
    rendered = renderer.render(name, full_context())
    assert rendered.subject and "\n" not in rendered.subject
    assert "The Community Liaison desk" in rendered.text and "-- \n" in rendered.text
    assert "T-2026-00001" in rendered.text


def test_sandbox_keeps_templates_away_from_python_internals(renderer: Renderer) -> None:
    """A template cannot walk from a value to Python internals: the sandbox refuses __class__ and friends."""
    env = renderer.environment
    with pytest.raises(SecurityError):
        env.from_string("{{ ''.__class__.__mro__ }}").render()
    with pytest.raises(SecurityError):
        env.from_string("{{ desk.__class__.__subclasses__() }}").render(desk={"name": "x"})
    with pytest.raises(SecurityError):
        env.from_string("{{ cycler.__init__.__globals__ }}").render()


def test_mail_content_is_data_never_template_source(renderer: Renderer) -> None:
    """A volunteer's subject holding template syntax is printed as written, not evaluated."""
    subject = "{{ 7*7 }} {{ ''.__class__.__mro__ }} {% for x in range(3) %}x{% endfor %}"
    context = full_context(ticket={**full_context()["ticket"], "subject": subject})
    rendered = renderer.render("acknowledgment", context)
    assert subject in rendered.subject and subject in rendered.text
    assert "49" not in rendered.text and "xxx" not in rendered.text


def test_html_is_autoescaped_and_text_is_not(renderer: Renderer) -> None:
    """The HTML alternative escapes mail content; the text body keeps it verbatim."""
    context = full_context(ticket={**full_context()["ticket"], "subject": "<script>alert(1)</script> & co"})
    rendered = renderer.render("acknowledgment", context)
    assert rendered.html is not None
    assert "<script>" not in rendered.html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in rendered.html
    assert "<script>alert(1)</script> & co" in rendered.text


def test_missing_variable_is_an_error_not_an_empty_string(renderer: Renderer) -> None:
    """StrictUndefined: a context without a key the template uses fails loudly, naming the template."""
    context = full_context()
    del context["volunteer"]
    with pytest.raises(TemplateError, match="acknowledgment"):
        renderer.render("acknowledgment", context)
    with pytest.raises(jinja2.UndefinedError):
        renderer.environment.from_string("{{ nobody }}").render()


@pytest.mark.parametrize("name", ["../../etc/passwd", "_base", "Reply", "nope"])
def test_unknown_or_unsafe_template_names_are_refused(renderer: Renderer, name: str) -> None:
    """Only lower-case mail folders under templates/email/ can be named; paths and _base cannot."""
    with pytest.raises(TemplateError):
        renderer.render(name, full_context())


@pytest.mark.parametrize(("language", "phrase"), [
    ("de", "Eingangsbestätigung"), ("fr", "accusé de réception"), ("es", "acuse de recibo"), ("en", "acknowledgment"),
])
def test_acknowledgment_is_translated(renderer: Renderer, language: str, phrase: str) -> None:
    """The acknowledgment exists in de, fr and es; a translated mail takes every part from its folder."""
    rendered = renderer.render("acknowledgment", full_context(), language)
    assert rendered.language == language and phrase in rendered.text
    assert {"de", "fr", "es"} <= renderer.languages("acknowledgment")
    if language != "en":
        assert rendered.html is None  # no English HTML alternative under a translated text


def test_untranslated_language_falls_back_to_english(renderer: Renderer) -> None:
    """A language without a translation renders the mail folder's own (English) files."""
    rendered = renderer.render("handoff-volunteer", full_context(), "de")
    assert rendered.language == "en" and "your ticket" in rendered.text


@pytest.mark.parametrize(("text", "expected"), [
    ("Hallo, darf unsere Ortsgruppe das Logo auf einem Transparent verwenden? Vielen Dank!", "de"),
    ("Bonjour, est-ce que notre groupe local peut utiliser le logo sur une banderole ? Merci beaucoup.", "fr"),
    ("Hola, ¿nuestro grupo local puede usar el logotipo en una pancarta? Muchas gracias.", "es"),
    ("Hello, may our chapter use the logo on a banner at the fair? Thanks a lot.", "en"),
])
def test_language_is_detected_from_the_mail(text: str, expected: str) -> None:
    """The detector recognises the languages the acknowledgment is translated into."""
    assert detect(text) == expected
    assert choose_language(contact_language=None, text=text, available={"de", "fr", "es"})[0] == expected


def test_contact_language_wins_and_unknown_languages_fall_back() -> None:
    """The contact record's language beats detection; an untranslated or unclear language gives English."""
    german = "Hallo, darf unsere Ortsgruppe das Logo auf einem Transparent verwenden?"
    assert choose_language(contact_language="fr-CA", text=german, available={"de", "fr"}) == ("fr", "contact record")
    assert choose_language(contact_language=None, text="Ciao, possiamo usare il logo sul nostro striscione?",
                           available={"de", "fr", "es"})[0] == "en"
    assert choose_language(contact_language=None, text="Thx", available={"de"}) == ("en", "language not detected")
    assert normalise("de_CH") == "de" and normalise("not a tag") is None


@pytest.mark.parametrize("name", ["reminder", "escalation"])
def test_reminder_digest_lists_its_tickets_and_counts_the_rest(renderer: Renderer, name: str) -> None:
    """Several tickets in one reminder: each listed by reference (mail text stays data), the overflow counted."""
    tickets = [{"reference": f"T-2026-{n:05d}", "subject": "{{ 7 * 7 }}" if n == 2 else f"Question {n}",
                "waiting_days": n} for n in range(1, 4)]
    rendered = renderer.render(name, full_context(tickets=tickets, total=5, ticket=tickets[0], volunteer=None))
    assert "5 tickets" in rendered.subject and "\n" not in rendered.subject
    for ticket in tickets:
        assert f"- {ticket['reference']}: " in rendered.text
    assert "{{ 7 * 7 }}" in rendered.text and "49" not in rendered.text
    assert "and 2 more" in rendered.text and "(waiting 1 day)" in rendered.text


def test_warm_compiles_every_template_once_and_leaves_a_broken_one_to_render(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """After warm(), a template edited on disk still renders as compiled (compiled at warm, not at
    first use); a template that does not compile does not stop warm(), and render names it."""
    import shutil

    root = tmp_path / "templates"
    shutil.copytree(default_templates_dir(), root)
    broken = root / "email" / "broken"
    broken.mkdir()
    (broken / "subject.txt").write_text("{% if %}\n")
    (broken / "body.txt").write_text("body\n")
    renderer = Renderer(root)
    renderer.warm()
    (root / "email" / "reply" / "body.txt").write_text("edited after warm\n")
    assert "edited after warm" not in renderer.render("reply", full_context()).text
    with pytest.raises(TemplateError, match="broken"):
        renderer.render("broken", full_context())
