"""Which contacts are probably the same person: pure functions over what the desk knows of each.

Three signs, each a reason the liaison reads next to the suggested merge:
- the same name at the same mail domain (Ada Lovelace <ada@x.org> and <a.lovelace@x.org>);
- plus-addresses: ada+wiki@x.org is ada@x.org's mailbox;
- one contact's address appears in another contact's signature ("also: ada@home.example").
Candidates are grouped by key (never compared pairwise), so a large address book stays cheap.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

_ADDRESS_IN_TEXT = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
MAX_GROUP = 20  # a key shared by more contacts than this (a role name, "info") suggests nothing


@dataclass(frozen=True)
class ContactFacts:
    id: int
    name: str | None
    addresses: tuple[str, ...]
    signatures: tuple[str, ...] = ()


@dataclass(frozen=True)
class Duplicate:
    """Two contacts that look like one person; `keep` is the older (lower id), `merge` the other."""

    keep: int
    merge: int
    reasons: tuple[str, ...]


def normal_name(name: str | None) -> str | None:
    """A name compared across spellings: accents, case, punctuation and spacing ignored; None when
    too short to mean anything (initials, a single letter)."""
    if not name:
        return None
    decomposed = unicodedata.normalize("NFKD", name)
    letters = "".join(c for c in decomposed if not unicodedata.combining(c))
    words = re.sub(r"[^\w\s]", " ", letters.casefold()).split()
    joined = " ".join(words)
    return joined if len(joined) >= 3 and len(words) >= 2 else None


def domain(address: str) -> str:
    return address.rpartition("@")[2].lower()


def base_address(address: str) -> str:
    """The mailbox a plus-address delivers to: ada+wiki@x.org -> ada@x.org."""
    local, _, host = address.lower().rpartition("@")
    return f"{local.split('+', 1)[0]}@{host}"


def addresses_in(text: str) -> set[str]:
    return {a.lower().rstrip(".") for a in _ADDRESS_IN_TEXT.findall(text)}


def find_duplicates(contacts: Sequence[ContactFacts]) -> list[Duplicate]:
    """Every pair of contacts that shares a sign, once, with all its reasons, in a stable order."""
    reasons: dict[tuple[int, int], list[str]] = defaultdict(list)

    def pairs(groups: dict[str, set[int]], why: str) -> None:
        for key, ids in sorted(groups.items()):
            if len(ids) < 2 or len(ids) > MAX_GROUP:
                continue
            ordered = sorted(ids)
            for i, a in enumerate(ordered):
                for b in ordered[i + 1:]:
                    reasons[(a, b)].append(why.format(key=key))

    by_name_domain: dict[str, set[int]] = defaultdict(set)
    by_base: dict[str, set[int]] = defaultdict(set)
    owner: dict[str, int] = {}
    for contact in contacts:
        name = normal_name(contact.name)
        for address in contact.addresses:
            owner[address.lower()] = contact.id
            by_base[base_address(address)].add(contact.id)
            if name:
                by_name_domain[f"{name} at {domain(address)}"].add(contact.id)
    pairs(by_name_domain, "same name and domain ({key})")
    pairs(by_base, "plus-address of {key}")
    for contact in contacts:
        own = {a.lower() for a in contact.addresses}
        for signature in contact.signatures:
            for found in sorted(addresses_in(signature) - own):
                other = owner.get(found)
                if other is not None and other != contact.id:
                    key = (min(contact.id, other), max(contact.id, other))
                    why = f"{found} appears in the signature of #{contact.id}"
                    if why not in reasons[key]:
                        reasons[key].append(why)
    return [Duplicate(a, b, tuple(why)) for (a, b), why in sorted(reasons.items())]


__all__ = ["ContactFacts", "Duplicate", "addresses_in", "base_address", "find_duplicates", "normal_name"]
