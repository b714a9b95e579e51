"""Readable plain text from a mail's HTML body, for HTML-only mail.

The text feeds quote splitting, classification and the liaison's preview, so it must keep the
reading order and line structure of the mail, not its markup. `inscriptis` does the layout
(block elements, lists, tables); this module only guards it against the input a mail can carry.
"""

from __future__ import annotations

import html as html_lib
import re

import lxml.html
from inscriptis import get_text
from inscriptis.css_profiles import CSS_PROFILES
from inscriptis.html_properties import Display
from inscriptis.model.config import ParserConfig
from inscriptis.model.html_element import HtmlElement
from lxml.etree import LxmlError, ParserError

# inscriptis' relaxed profile (spaces around inline elements, so words of badly built HTML do not
# run together), without its two-space indent per <div>: mail HTML nests divs deeply (Gmail,
# Outlook), and each level indented the text the liaison reads.
_CSS = {**CSS_PROFILES["relaxed"], "div": HtmlElement(display=Display.block)}
_CONFIG = ParserConfig(css=_CSS, display_links=False, display_images=False)
MAX_HTML = 256 * 1024
"""Characters of HTML laid out as text; the rest is left out. inscriptis takes about 0.1 ms per
table cell, so a mail of nothing but cells would cost seconds per 100 kB; a real mail's words
are in its first 256 kB."""
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_TAG = re.compile(r"<[^>]*>")
_BLANK_RUN = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")
# What mail clients mark as the quoted earlier mail (Apple Mail and Thunderbird cite, Gmail, Yahoo).
# A bare <blockquote> is left alone: Thunderbird's "indent" writes one around the sender's own words.
_QUOTES = ("//blockquote[@type='cite' or @cite or contains(@class, 'gmail_quote')]"
           "[not(ancestor::blockquote)] | //div[contains(@class, 'yahoo_quoted')][not(ancestor::blockquote)]")


def html_to_text(html: str) -> str:
    """Render `html` (its first MAX_HTML characters) as readable text; never raises, whatever the markup.

    Control characters are removed first because lxml refuses strings that hold them. Runs
    of blank lines are collapsed so a layout built of empty table cells stays readable.
    """
    if not html or html.isspace():
        return ""
    cleaned = _CONTROL.sub("", html[:MAX_HTML])
    try:
        text = get_text(_mark_quotes(cleaned), _CONFIG)
    except (LxmlError, ValueError):
        # lxml gives up on some broken documents; a tag strip still yields the words.
        text = _strip_tags(cleaned)
    lines = [line.rstrip() for line in text.splitlines()]
    return _BLANK_RUN.sub("\n\n", "\n".join(lines)).strip("\n")


def _strip_tags(html: str) -> str:
    """The words of `html` without its tags. Only the part up to the last '>' can hold a tag: on
    the rest the tag pattern would read from every '<' to the end and find none (quadratic)."""
    end = html.rfind(">") + 1
    return html_lib.unescape(_TAG.sub(" ", html[:end]) + html[end:])


def _mark_quotes(html: str) -> str:
    """`html` with each quoted earlier mail rendered as text with "> " before every line, so the
    quote splitter finds it as it finds a plain-text quote, attribution line or not."""
    lowered = html.lower()
    if "quote" not in lowered and "cite" not in lowered:
        return html
    try:
        document = lxml.html.document_fromstring(html)
    except (LxmlError, ParserError, ValueError):
        return html
    quotes = document.xpath(_QUOTES)
    if not quotes:
        return html
    for quote in quotes:
        inner = get_text(lxml.html.tostring(quote, encoding="unicode"), _CONFIG)
        marked = lxml.html.Element("pre")
        marked.text = "\n" + "\n".join(f"> {line.strip()}".rstrip() for line in inner.strip("\n").splitlines()) + "\n"
        marked.tail = quote.tail
        parent = quote.getparent()
        if parent is None:
            return html
        parent.replace(quote, marked)
    return str(lxml.html.tostring(document, encoding="unicode"))
