"""Render one mail from its template folder: `templates/email/<name>/subject.txt`, `body.txt`, `body.html`.

Every mail folder's files extend `templates/email/_base/`, which carries the signature.
A translation lives in a language subfolder with the same file names,
`templates/email/<name>/<lang>/subject.txt` and `body.txt` (and `body.html` if it has one):
a translated mail takes all its parts from that folder, so a German text body never travels
with an English HTML alternative.

Rendering is sandboxed (`SandboxedEnvironment`: no attribute of Python internals is reachable
from a template), HTML is autoescaped, and a variable missing from the context is an error,
not an empty string. Mail content (a volunteer's subject, the liaison's text) is only ever
passed in the context as data: it is never compiled as template source, so `{{ 7*7 }}` in a
subject is printed as written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from triage.bundled import bundled, resolve

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,63}$")
_LANGUAGE = re.compile(r"^[a-z]{2}$")
TEMPLATE_LANGUAGE = "en"  # the language of each mail folder's own files; translations sit in <lang>/


class TemplateError(Exception):
    """A template is missing or failed to render; the message names the template and the cause."""


@dataclass(frozen=True, slots=True)
class Rendered:
    """The parts of one rendered mail, and the language they are written in."""

    name: str
    language: str
    subject: str
    text: str
    html: str | None = None


def default_templates_dir() -> Path:
    """The templates shipped with triage (the checkout's top-level templates/ folder)."""
    shipped = bundled("templates")
    if shipped is None:
        raise TemplateError("the templates shipped with triage are missing; reinstall triage")
    return shipped


def resolve_templates_dir(configured: str) -> Path:
    """`outbox.templates_dir` if it holds an email/ folder (relative: in the working directory,
    then among the shipped files), else the shipped templates."""
    path = resolve(configured)
    if path.is_dir() and (path / "email").is_dir():
        return path
    return default_templates_dir()


class Renderer:
    """One sandboxed Jinja environment over a templates folder; cheap to call, templates are cached."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._env = SandboxedEnvironment(
            loader=jinja2.FileSystemLoader(self.root),
            autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            auto_reload=False,
        )

    def warm(self) -> None:
        """Compile every mail's templates now, so that a long-running process compiles them once,
        at start, and not inside the first run that sends mail. A template that does not compile
        is left for `render` to report, with the mail that needs it."""
        for name in self._env.list_templates(extensions=("txt", "html")):
            try:
                self._env.get_template(name)
            except jinja2.TemplateError:
                continue

    def names(self) -> list[str]:
        """The mails that have a template folder."""
        folder = self.root / "email"
        return sorted(p.name for p in folder.iterdir() if p.is_dir() and _NAME.match(p.name)) if folder.is_dir() else []

    def languages(self, name: str) -> set[str]:
        """Languages this mail has a translation for, beside the default folder's own."""
        folder = self._folder(name)
        return {p.name for p in folder.iterdir() if _LANGUAGE.match(p.name) and (p / "body.txt").is_file()}

    def render(self, name: str, context: Mapping[str, Any], language: str | None = None) -> Rendered:
        """Render mail `name` in `language` if translated (else the default folder) with `context` as data."""
        folder = self._folder(name)
        prefix = f"email/{name}"
        used = TEMPLATE_LANGUAGE
        if language and _LANGUAGE.match(language) and (folder / language / "body.txt").is_file():
            prefix, used = f"{prefix}/{language}", language
        try:
            subject = self._env.get_template(f"{prefix}/subject.txt").render(context)
            text = self._env.get_template(f"{prefix}/body.txt").render(context)
            html_path = f"{prefix}/body.html"
            html = self._env.get_template(html_path).render(context) if (self.root / html_path).is_file() else None
        except jinja2.TemplateError as exc:
            raise TemplateError(f"template {prefix!r}: {type(exc).__name__}: {exc}") from exc
        return Rendered(name=name, language=used, subject=subject.strip(), text=text.strip("\n") + "\n", html=html)

    @property
    def environment(self) -> SandboxedEnvironment:
        """The sandboxed environment (for tests that show what a template cannot reach)."""
        return self._env

    def _folder(self, name: str) -> Path:
        if not _NAME.match(name) or name.startswith("_"):
            raise TemplateError(f"{name!r} is not a mail template name (lower-case letters, digits, hyphens)")
        folder = self.root / "email" / name
        if not (folder / "body.txt").is_file() or not (folder / "subject.txt").is_file():
            known = ", ".join(self.names()) or "none"
            raise TemplateError(f"no mail template {name!r} in {self.root / 'email'} (known: {known})")
        return folder


__all__ = ["TEMPLATE_LANGUAGE", "Rendered", "Renderer", "TemplateError", "default_templates_dir", "resolve_templates_dir"]
