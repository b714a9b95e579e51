"""Turning a mail into a sparse TF-IDF vector, one weighted block per view of the mail.

Written here rather than taken from scikit-learn's vectorizers for two reasons: a mail must
be vectorised in well under a millisecond (the worker suggests one mail per call, and the
scikit-learn vectorizers cost about 0.5 ms each per call), and the fitted state must be
plain data (term lists and idf arrays) that can be saved without pickling. Training and
prediction share `Block.weigh`, so a saved and reloaded model gives identical vectors.

The maths is the usual one: sublinear term frequency `1 + ln(tf)`, smoothed idf
`ln((1 + n) / (1 + df)) + 1`, L2 normalisation per block, then the block's weight.
"""

from __future__ import annotations

import bisect
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from email.utils import getaddresses
from itertools import repeat
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from classifiers.base import Example

Analyzer = Literal["word", "char_wb", "address", "language"]
Source = Literal["all", "subject", "body", "addresses", "language"]

TEXT_HEADERS = ("from", "to", "cc", "organization", "keywords")
"""Header fields whose words join the mail's text: who wrote (display names), to whom, and the
descriptive `Organization` and RFC 5322 `Keywords`."""

ADDRESS_HEADERS = ("to", "cc")
"""Header fields whose addresses say where the sender thought the mail belonged."""

_WORD = re.compile(r"(?u)\b\w\w+\b")
# An address starts where the character before cannot be part of it: from each character of a
# long word that is no address, the word was read again to its end (quadratic in its length).
_ADDRESS = re.compile(r"(?<![\w.+-])[\w.+-]++@[\w-]++(?:\.[\w-]++)++")
_MAX_CHAR_WORD = 40


@dataclass(frozen=True, slots=True)
class BlockSpec:
    """One view of the mail: which text, how it is cut into terms, how much it weighs."""

    name: str
    source: Source
    analyzer: Analyzer
    ngram: tuple[int, int] = (1, 1)
    min_df: int = 1
    max_df: float = 1.0
    weight: float = 1.0

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "source": self.source, "analyzer": self.analyzer, "ngram": list(self.ngram),
            "min_df": self.min_df, "max_df": self.max_df, "weight": self.weight,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BlockSpec:
        return cls(
            name=str(data["name"]), source=data["source"], analyzer=data["analyzer"],
            ngram=(int(data["ngram"][0]), int(data["ngram"][1])), min_df=int(data["min_df"]),
            max_df=float(data["max_df"]), weight=float(data["weight"]),
        )


def source_text(example: Example, source: Source) -> str:
    if source == "subject":
        return example.subject
    if source == "body":
        return example.body
    headers = [example.headers.get(name, "") for name in TEXT_HEADERS]
    return "\n".join([example.subject, example.sender, *headers, example.body])


def _domains(address: str) -> list[str]:
    """`a@lists.example.org` -> [`lists.example.org`, `example.org`] (never a bare top-level domain)."""
    domain = address.rpartition("@")[2]
    labels = domain.split(".")
    return [".".join(labels[i:]) for i in range(max(len(labels) - 1, 1))] if domain else []


def address_terms(example: Example) -> list[str]:
    """The sender, the recipients and the addresses quoted in the body, each with its domains.

    Who writes, to which alias, and whom the mail quotes or mentions are strong routing
    evidence (a press office, a law firm, a grants platform).
    """
    terms: list[str] = []
    sender = example.sender.strip().lower()
    if sender:
        terms.append(f"from:{sender}")
        terms.extend(f"from-domain:{d}" for d in _domains(sender))
    values = [example.headers.get(name, "") for name in ADDRESS_HEADERS]
    for _, addr in getaddresses([v for v in values if v]):
        addr = addr.strip().lower()
        if "@" in addr:
            terms.append(f"to:{addr}")
            terms.extend(f"to-domain:{d}" for d in _domains(addr))
    for addr in sorted({m.lower() for w in example.body.split() if "@" in w for m in _ADDRESS.findall(w)}):
        terms.append(f"mention:{addr}")
        terms.extend(f"mention-domain:{d}" for d in _domains(addr))
    return terms


def language_terms(example: Example) -> list[str]:
    """The mail's language as one term (`lang:de`), when known: the optional `LANGUAGE_BLOCK`."""
    return [f"lang:{example.language}"] if example.language else []


LANGUAGE_BLOCK = BlockSpec("language", "language", "language", (1, 1), min_df=2, max_df=1.0, weight=0.3)
"""An optional block (not in the default model): the mail's detected language, for desks where a
language says something about the team (measured on the seed data: see classifiers/README.md)."""


def word_terms(text: str, ngram: tuple[int, int]) -> list[str]:
    words = _WORD.findall(text.lower())
    lo, hi = ngram
    if (lo, hi) == (1, 1):
        return words
    terms = words if lo == 1 else []
    for n in range(max(lo, 2), hi + 1):
        terms = terms + [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]
    return terms


def char_wb_terms(text: str, ngram: tuple[int, int]) -> list[str]:
    """Character n-grams inside word boundaries, each word padded with a space on both sides."""
    lo, hi = ngram
    terms: list[str] = []
    for word in text.lower().split():
        padded = f" {word[:_MAX_CHAR_WORD]} "
        for n in range(lo, min(hi, len(padded)) + 1):
            terms += [padded[i : i + n] for i in range(len(padded) - n + 1)]
    return terms


def analyzer_for(spec: BlockSpec) -> Callable[[Example], list[str]]:
    if spec.analyzer == "address":
        return address_terms
    if spec.analyzer == "language":
        return language_terms
    source, ngram = spec.source, spec.ngram
    if spec.analyzer == "char_wb":
        return lambda example: char_wb_terms(source_text(example, source), ngram)
    return lambda example: word_terms(source_text(example, source), ngram)


class Block:
    """A fitted block: its spec, its terms (index = feature id inside the block) and their idf."""

    def __init__(self, spec: BlockSpec, terms: list[str], idf: NDArray[np.float64]) -> None:
        self.spec = spec
        self.terms = terms
        self.idf = idf
        self.index = {term: i for i, term in enumerate(terms)}
        self.analyze = analyzer_for(spec)

    def counts(self, example: Example) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """The example's known terms as sorted unique ids and their counts."""
        terms = Counter(self.analyze(example))
        ids = np.fromiter(map(self.index.get, terms, repeat(-1)), dtype=np.int64, count=len(terms))
        counts = np.fromiter(terms.values(), dtype=np.int64, count=len(terms))
        known = ids >= 0
        ids, counts = ids[known], counts[known]
        order = np.argsort(ids, kind="stable")
        return ids[order], counts[order]

    def weigh(
        self, ids: NDArray[np.int64], counts: NDArray[np.int64]
    ) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """Sorted unique term ids and their counts -> the same ids and their TF-IDF values."""
        if ids.size == 0:
            return ids, np.zeros(0)
        values = (1.0 + np.log(counts)) * self.idf[ids]
        norm = float(np.sqrt(values @ values))
        return ids, values * (self.spec.weight / norm)

    def vector(self, example: Example) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        return self.weigh(*self.counts(example))

    def name(self, local_id: int) -> str:
        term = self.terms[local_id]
        if self.spec.analyzer == "char_wb":
            return f'{self.spec.name}:"{term}"'
        return f"{self.spec.name}:{term}"


def fit_block(spec: BlockSpec, examples: Iterable[Example]) -> tuple[Block, list[NDArray[np.int64]]]:
    """Learn a block's terms and idf in one pass; also return each document's term ids (for the matrix)."""
    analyze = analyzer_for(spec)
    provisional: dict[str, int] = {}
    docs: list[NDArray[np.int64]] = []
    for example in examples:
        ids = [provisional.setdefault(term, len(provisional)) for term in analyze(example)]
        docs.append(np.asarray(ids, dtype=np.int64))
    n_docs = len(docs)
    if provisional:
        df = np.bincount(np.concatenate([np.unique(d) for d in docs]), minlength=len(provisional))
    else:
        df = np.zeros(0, dtype=np.int64)
    keep = (df >= spec.min_df) & (df <= spec.max_df * n_docs)
    kept_terms = sorted(term for term, i in provisional.items() if keep[i])
    final = np.full(len(provisional), -1, dtype=np.int64)
    for new_id, term in enumerate(kept_terms):
        final[provisional[term]] = new_id
    kept_df = np.array([df[provisional[t]] for t in kept_terms], dtype=np.float64)
    idf = np.log((1.0 + n_docs) / (1.0 + kept_df)) + 1.0
    mapped = []
    for d in docs:
        m = final[d] if d.size else d
        mapped.append(m[m >= 0])
    return Block(spec, kept_terms, idf), mapped


class FeatureSpace:
    """The blocks side by side: feature ids are offsets into the concatenation of the blocks."""

    def __init__(self, blocks: list[Block]) -> None:
        self.blocks = blocks
        sizes = [len(b.terms) for b in blocks]
        self.offsets = [int(x) for x in np.cumsum([0, *sizes[:-1]])]
        self.n_features = int(sum(sizes))

    @classmethod
    def fit(
        cls, specs: Sequence[BlockSpec], examples: Sequence[Example],
        progress: Callable[[Iterable[Example], str], Iterator[Example]] | None = None,
    ) -> tuple[FeatureSpace, sp.csr_matrix]:
        """Fit every block on `examples` and return the space with the training matrix."""
        blocks: list[Block] = []
        per_block: list[list[NDArray[np.int64]]] = []
        for spec in specs:
            stream: Iterable[Example] = progress(examples, spec.name) if progress else examples
            block, docs = fit_block(spec, stream)
            blocks.append(block)
            per_block.append(docs)
        space = cls(blocks)
        rows = [
            [
                block.weigh(*np.unique(docs[i], return_counts=True))
                for block, docs in zip(blocks, per_block, strict=True)
            ]
            for i in range(len(examples))
        ]
        return space, space._matrix(rows)

    def vector(self, example: Example) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """One example as (feature ids, values); the fast path for a single suggestion."""
        parts = [block.vector(example) for block in self.blocks]
        ids = np.concatenate([p[0] + off for p, off in zip(parts, self.offsets, strict=True)])
        return ids, np.concatenate([p[1] for p in parts])

    def transform(self, examples: Sequence[Example]) -> sp.csr_matrix:
        rows = [[block.vector(e) for block in self.blocks] for e in examples]
        return self._matrix(rows)

    def _matrix(
        self, rows: list[list[tuple[NDArray[np.int64], NDArray[np.float64]]]]
    ) -> sp.csr_matrix:
        indptr = [0]
        indices: list[NDArray[np.int64]] = []
        data: list[NDArray[np.float64]] = []
        for parts in rows:
            for (ids, values), off in zip(parts, self.offsets, strict=True):
                indices.append(ids + off)
                data.append(values)
            indptr.append(indptr[-1] + sum(p[0].size for p in parts))
        return sp.csr_matrix(
            (
                np.concatenate(data) if data else np.zeros(0),
                np.concatenate(indices) if indices else np.zeros(0, dtype=np.int64),
                np.asarray(indptr, dtype=np.int64),
            ),
            shape=(len(rows), self.n_features),
        )

    def name(self, feature: int) -> str:
        """A readable name for a feature id, prefixed with its block: `words:refund`, `addresses:from:...`."""
        k = bisect.bisect_right(self.offsets, feature) - 1
        return self.blocks[k].name(feature - self.offsets[k])
