"""parse_mail's own reading of plainly built mail gives the stdlib feed parser's tree, exactly.

`_parse_clean` skips the feed parser for well-formed header blocks and top-level multiparts
and must build the same Message tree (headers, payloads, defects, preamble, epilogue,
default types) or leave the mail to the feed parser; these tests compare the two on real
mail, on damaged real mail and on generated multipart line soup.
"""

from __future__ import annotations

from email.message import Message
from email.parser import Parser
from email.policy import compat32
from pathlib import Path
from typing import cast

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from triage.ingest.parse import _parse_clean, _ShallowMessage

CORPUS = Path(__file__).parent / "corpus"
TEXTS = [p.read_bytes().decode("ascii", "surrogateescape") for p in sorted(CORPUS.glob("*/*"))]
SMALL = [text for text in TEXTS if len(text) < 20_000]
PROFILE = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def tree(msg: Message) -> tuple[object, ...]:
    """Everything the feed parser sets on a message and its parts."""
    if msg.is_multipart():
        kids: object = [tree(part) for part in cast(list[Message], msg.get_payload())]
    else:
        kids = msg._payload  # type: ignore[attr-defined]
    return (
        msg._headers,  # type: ignore[attr-defined]
        kids,
        [type(defect).__name__ for defect in msg.defects],
        msg.get_unixfrom(),
        msg.get_default_type(),
        msg.preamble,
        msg.epilogue,
        msg.get_charset(),
    )


def same_as_feed_parser(text: str) -> bool:
    """Compare with the feed parser when the fast reading takes the mail; True if it did."""
    fast = _parse_clean(text)
    if fast is None:
        return False
    assert tree(fast) == tree(Parser(_ShallowMessage, policy=compat32).parsestr(text))
    return True


def test_corpus_mails_read_alike() -> None:
    """Every corpus mail the fast reading takes gives the feed parser's tree; it takes most."""
    taken = sum(same_as_feed_parser(text) for text in TEXTS)
    assert taken > len(TEXTS) // 2


@PROFILE
@given(st.sampled_from(SMALL), st.data())
def test_cut_and_flipped_corpus_mails_read_alike(text: str, data: st.DataObject) -> None:
    """A real mail cut anywhere and with characters overwritten reads alike or is left alone."""
    cut = data.draw(st.integers(min_value=0, max_value=len(text)))
    chars = list(text[:cut])
    for _ in range(data.draw(st.integers(0, 5))):
        if chars:
            where = data.draw(st.integers(0, len(chars) - 1))
            chars[where] = data.draw(st.sampled_from(["\r", "\n", "-", " ", ":", "\t", "x", "\udcff"]))
    same_as_feed_parser("".join(chars))


FIELDS = ["Content-Type: text/plain", "Content-Type: message/rfc822", "X-A: b", " folded"]
BODY = ["text", "", "--Bx", " --B", "--B--x", "From somebody", "no colon: here", "\udcff\udcfe", "text"]
ENDS = st.sampled_from(["\n", "\r\n", "\r"])


@st.composite
def multipart(draw: st.DrawFn) -> str:
    """A multipart mostly built by the rules, with line ends, boundary lines and parts varied."""

    def lines(pool: list[str], most: int) -> str:
        return "".join(line + draw(ENDS) for line in draw(st.lists(st.sampled_from(pool), max_size=most)))

    ctype = draw(st.sampled_from(["mixed", "alternative", "mixed", "digest"]))
    text = f'From: a@example.org{draw(ENDS)}Content-Type: multipart/{ctype}; boundary="B"{draw(ENDS)}'
    text += draw(ENDS) + lines(BODY, 2)
    for _ in range(draw(st.integers(0, 4))):
        text += "--B" + draw(st.sampled_from(["", " ", "\t "])) + draw(ENDS) + lines(FIELDS, 3)
        text += draw(st.sampled_from(["\n", "\r\n", "\r", "\n", ""])) + lines(BODY, 3)
        if draw(st.integers(0, 9)) == 0:  # a rule broken now and then
            text += draw(st.sampled_from(["--B", "--B--", "Content-Type: multipart/x"])) + draw(ENDS)
    text += draw(st.sampled_from(["--B--", "--B--", "--B--", "--B-- ", "--B--x", ""]))
    return text + draw(st.sampled_from(["", "\n", "\r\n", "\r"])) + lines(BODY, 2)


@PROFILE
@given(multipart())
def test_generated_multiparts_read_alike(text: str) -> None:
    """Multiparts with odd line ends, boundary look-alikes and headerless parts read alike."""
    same_as_feed_parser(text)
