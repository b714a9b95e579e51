"""What a mail's headers say about answering it automatically and about its sender's authenticity. Pure.

Two later stages need facts the parser otherwise drops, and both read them from the stored
message, not from the raw mail: the acknowledgment must not answer bulk, list or robot mail
(RFC 3834 section 2) and must not answer a forged sender, and threading must not let a forged
participant into a ticket. The facts travel as short strings (`ParsedMail.header_signals`,
kept in `Message.extra["signals"]`), each a code, some with a value after a colon:

- `null-return-path`: a `Return-Path: <>` (the envelope of a bounce or of another robot's mail);
- `precedence:bulk|list|junk`;
- `list-headers:<name>`: a List-* header other than List-Id (List-Unsubscribe, List-Post, ...);
- `auto-response-suppress:<value>`: Exchange's X-Auto-Response-Suppress asking for no auto-reply;
- `auth:<authserv-id>:<dmarc result or ->:<header.from or ->`: one Authentication-Results field
  (RFC 8601), top-down, and `auth-gap` between two such fields that are not next to each other.

Who may be believed about DMARC is configuration (`mail.trusted_authserv_ids`), so the parser
records every Authentication-Results field and `sender_authentication` judges them later.
Everything here runs in linear time: a scan, `str.split`, and anchored patterns on short
tokens; values are capped before they are read and sanitised before they are kept.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Literal

SenderAuthentication = Literal["pass", "fail", "none"]

MAX_AUTH_FIELDS = 8  # the topmost ones are the only ones that can be ours
_VALUE_CAP = 4096
_BULK = frozenset({"bulk", "list", "junk"})
_SUPPRESS = frozenset({"all", "oof", "autoreply"})  # DR, NDR, RN, NRN are about receipts, not replies
_LIST_ID = "list-id"
_TOKEN = re.compile(r"[a-z0-9][a-z0-9._-]{0,252}")  # an authserv-id, a result or a domain, once lower-cased
_RESULT = re.compile(r"[a-z]{1,16}")


def header_signals(fields: Iterable[tuple[str, object]]) -> tuple[str, ...]:
    """The signals of a header section, given its (name, value) fields in order, top first."""
    found: list[str] = []
    auth: list[str] = []
    last_auth = -2
    for index, (raw_name, raw_value) in enumerate(fields):
        name = raw_name.strip().lower()
        if not (name in _NAMES or name.startswith("list-")):
            continue
        value = " ".join(str(raw_value)[:_VALUE_CAP].split())
        if name == "return-path":
            if value.replace(" ", "") in ("<>", ""):
                found.append("null-return-path")
        elif name == "precedence":
            word = value.split(" ", 1)[0].lower()
            if word in _BULK:
                found.append(f"precedence:{word}")
        elif name == "x-auto-response-suppress":
            words = {w.strip().lower() for w in value.split(",")}
            for word in sorted(words & _SUPPRESS):
                found.append(f"auto-response-suppress:{word}")
        elif name.startswith("list-") and name != _LIST_ID:
            found.append(f"list-headers:{_safe(name) or 'list-'}")
        elif name == "authentication-results" and len(auth) < MAX_AUTH_FIELDS:
            if auth and index != last_auth + 1:
                auth.append("auth-gap")
            auth.append(_auth_signal(value))
            last_auth = index
    return tuple(dict.fromkeys(found)) + tuple(auth)


_NAMES = frozenset({"return-path", "precedence", "x-auto-response-suppress", "authentication-results"})


def _safe(value: str) -> str:
    """A lower-cased token fit to store and show, or '' if the value is anything else."""
    value = value.strip().lower()
    return value if _TOKEN.fullmatch(value) else ""


def _plain(value: str) -> str:
    """The value without RFC 5322 comments and quoted strings (neither holds what is read here)."""
    out: list[str] = []
    depth = 0
    quoted = escaped = False
    for char in value:
        if escaped:
            escaped = False
        elif char == "\\" and (quoted or depth):
            escaped = True
        elif quoted:
            quoted = char != '"'
        elif char == "(":
            depth += 1
        elif char == ")" and depth:
            depth -= 1
        elif depth:
            continue
        elif char == '"':
            quoted = True
        else:
            out.append(char)
    return "".join(out)


def _auth_signal(value: str) -> str:
    """`auth:<authserv-id>:<dmarc result>:<header.from>` of one Authentication-Results value."""
    parts = _plain(value).split(";")
    head = parts[0].split()
    server = _safe(head[0]) if head else ""
    result = domain = "-"
    for resinfo in parts[1:]:
        joined = " ".join(resinfo.split())
        for glue in "=./":
            joined = joined.replace(f" {glue}", glue).replace(f"{glue} ", glue)
        words = joined.split()
        if not words or not words[0].lower().startswith(("dmarc=", "dmarc/")):
            continue
        method_result = words[0].lower().split("=", 1)
        if len(method_result) == 2 and _RESULT.fullmatch(method_result[1]):
            result = method_result[1]
        for word in words[1:]:
            if word.lower().startswith("header.from="):
                domain = _safe(word.split("=", 1)[1].rsplit("@", 1)[-1]) or "-"
        break
    return f"auth:{server or '-'}:{result}:{domain}"


def sender_authentication(
    signals: Sequence[str], from_addr: str | None, trusted_authserv_ids: Iterable[str]
) -> SenderAuthentication:
    """Did our own receiving server find the From domain's DMARC check passed, failed, or neither?

    Only Authentication-Results fields whose authserv-id is trusted count, and of those only the
    topmost run of adjacent ones: a receiving server puts its results above every field the
    sender wrote, so a forged field claiming our id sits lower down and is not read (RFC 8601
    section 5 asks the server to remove such fields as well). A fail anywhere in that run is a
    fail (whichever From it was for); a pass counts only for the domain of `from_addr`. No
    trusted field, or no DMARC result in it (none, temperror, permerror), is "none": not
    evidence either way.
    """
    trusted = {t.strip().lower() for t in trusted_authserv_ids if t.strip()}
    if not trusted or not from_addr or "@" not in from_addr:
        return "none"
    domain = from_addr.rsplit("@", 1)[1].lower()
    run: list[tuple[str, str]] = []
    for signal in signals:
        if signal == "auth-gap":
            if run:
                break
            continue
        if not signal.startswith("auth:"):
            continue
        _, server, result, header_from = (signal.split(":", 3) + ["-", "-", "-"])[:4]
        if server in trusted:
            run.append((result, header_from))
        elif run:
            break
    if any(result == "fail" for result, _ in run):
        return "fail"  # for the From domain or for another From header: either way, not to be believed
    if any(result == "pass" and header_from in (domain, "-") for result, header_from in run):
        return "pass"
    return "none"


__all__ = ["MAX_AUTH_FIELDS", "SenderAuthentication", "header_signals", "sender_authentication"]
