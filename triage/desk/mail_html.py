"""A mail's HTML made safe to show: pure, no I/O.

Mail HTML is hostile. `sanitise` keeps a conservative set of formatting tags and attributes
(nh3, i.e. ammonia) and drops the rest: scripts, event handlers, forms, frames, SVG and MathML
(with their content), `<meta>` and `<base>`, `javascript:` and every other scheme but
http(s) and mailto, relative URLs (`//host/x` is one: it would load from anywhere). Images load
nothing unless the liaison asked for this message's remote images: their `src` is removed, and
even then only an http(s) `src` stays (never `cid:` or `data:`). Inline styles keep only plain
properties and lose any value that could load or run something (`url(`, `expression(`,
`@import`, escapes and comments that hide either). The page shows the result in a sandboxed
iframe under a CSP that forbids scripts and remote content: this is the first of two walls.
"""

from __future__ import annotations

import re
from functools import cache

import nh3

TAGS = frozenset({
    "a", "abbr", "b", "big", "blockquote", "br", "caption", "center", "cite", "code", "col", "colgroup", "dd",
    "del", "div", "dl", "dt", "em", "font", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd",
    "li", "ol", "p", "pre", "q", "s", "small", "span", "strike", "strong", "sub", "sup", "table", "tbody", "td",
    "tfoot", "th", "thead", "tr", "tt", "u", "ul",
})
# Dropped together with everything inside them (their text is code or invisible, not mail).
DROPPED_WITH_CONTENT = frozenset({
    "script", "style", "svg", "math", "template", "noscript", "iframe", "frame", "frameset", "object", "embed",
    "applet", "title", "head", "textarea", "select", "option", "xmp", "noembed", "noframes", "plaintext",
})
_TABLE_CELL = {"align", "valign", "width", "height", "bgcolor", "colspan", "rowspan", "nowrap"}
ATTRIBUTES = {
    "*": {"title", "dir", "lang", "align", "style"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "table": {"width", "border", "cellpadding", "cellspacing", "bgcolor", "summary"},
    "td": _TABLE_CELL,
    "th": _TABLE_CELL,
    "tr": {"valign", "bgcolor"},
    "col": {"span", "width"},
    "colgroup": {"span", "width"},
    "font": {"color", "face", "size"},
    "ol": {"start", "type"},
    "blockquote": {"cite"},
}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
STYLE_PROPERTIES = frozenset({
    "color", "background-color", "font", "font-family", "font-size", "font-style", "font-weight",
    "text-align", "text-decoration", "text-indent", "text-transform", "line-height", "letter-spacing",
    "white-space", "vertical-align", "margin", "margin-top", "margin-right", "margin-bottom", "margin-left",
    "padding", "padding-top", "padding-right", "padding-bottom", "padding-left", "border", "border-top",
    "border-right", "border-bottom", "border-left", "border-color", "border-style", "border-width",
    "border-collapse", "border-spacing", "border-radius", "width", "max-width", "min-width", "height",
    "display", "list-style-type",
})
# A style value containing any of these could fetch or run something, now or in an old browser.
_UNSAFE_STYLE = re.compile(r"url\s*\(|image-set|expression|@import|javascript:|behavior|binding|\\|/\*|&#|<",
                           re.IGNORECASE)
_REMOTE = re.compile(r"https?://", re.IGNORECASE)


def _filter(remote_images: bool):  # type: ignore[no-untyped-def]
    def keep(tag: str, attribute: str, value: str) -> str | None:
        if attribute == "style":
            return None if _UNSAFE_STYLE.search(value) else value
        if tag == "img" and attribute == "src":
            return value if remote_images and _REMOTE.match(value.strip()) else None
        return value

    return keep


@cache
def _cleaner(remote_images: bool) -> nh3.Cleaner:
    return nh3.Cleaner(
        tags=set(TAGS),
        clean_content_tags=set(DROPPED_WITH_CONTENT),
        attributes={tag: set(names) for tag, names in ATTRIBUTES.items()},
        attribute_filter=_filter(remote_images),
        strip_comments=True,
        link_rel="noopener noreferrer nofollow",
        set_tag_attribute_values={"img": {"referrerpolicy": "no-referrer"}},
        url_schemes=set(URL_SCHEMES),
        filter_style_properties=set(STYLE_PROPERTIES),
        url_relative="deny",
    )


def sanitise(html: str, *, remote_images: bool = False) -> str:
    """`html` with only safe formatting left; remote images kept only when `remote_images`."""
    return _cleaner(remote_images).clean(html)


def framed_document(fragment: str) -> str:
    """A sanitised fragment as the whole document of the mail's iframe."""
    return ('<!doctype html><html><head><meta charset="utf-8"><meta name="referrer" content="no-referrer">'
            f"</head><body>{fragment}</body></html>")


__all__ = ["ATTRIBUTES", "TAGS", "framed_document", "sanitise"]
