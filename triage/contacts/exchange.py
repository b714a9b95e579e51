"""The address book as files: CSV (the standard library's csv) and vCard (vobject), both ways.

Reading is hostile-input work: every row becomes a `Card` or a refusal with the reason, never an
exception; a file too big, not UTF-8 or without an address column is refused whole (`FileRefused`).
Writing neutralises spreadsheet formulas: a cell starting with = + - @ (or a tab or carriage
return) gets a leading apostrophe, which a spreadsheet shows as text and our own reader strips.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import vobject

from triage.ingest.boundary import address as valid_address

MAX_BYTES = 5_000_000
MAX_ROWS = 10_000
MAX_NAME = 200
MAX_LABEL = 200
MAX_NOTES = 10_000
MAX_ADDRESSES = 20
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
LABEL_COLUMNS = {"languages": "language", "projects": "project", "wikis": "project", "roles": "role", "tags": "tag"}
CSV_COLUMNS = ["id", "uid", "name", "addresses", "language", "languages", "projects", "roles", "tags", "notes",
               "consent", "first_seen", "last_seen"]
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_LINE_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_LANGUAGE = re.compile(r"[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*")
_SPLIT_LABELS = re.compile(r"[;,]")
_SPLIT_ADDRESSES = re.compile(r"[;,\s]+")
_YES = {"yes", "y", "true", "1"}
_NO = {"no", "n", "false", "0"}


class FileRefused(ValueError):
    """The whole file is refused (too big, not text, no address column); the message says why."""


@dataclass(frozen=True)
class Card:
    """One person as a file carries them."""

    addresses: tuple[str, ...]
    name: str | None = None
    language: str | None = None
    labels: tuple[tuple[str, str], ...] = ()  # (kind, value)
    notes: str = ""
    consent: bool | None = None  # None: the file does not say


@dataclass(frozen=True)
class Row:
    """A row (CSV) or card (vCard) read from a file: `card`, or the reason it was refused."""

    line: int
    card: Card | None = None
    refused: str | None = None


@dataclass(frozen=True)
class Record:
    """One contact as the export writes it."""

    id: int
    uid: str
    name: str | None
    addresses: tuple[str, ...]  # the primary first
    language: str | None
    labels: dict[str, list[str]] = field(default_factory=dict)
    notes: str = ""
    consent: bool = False
    first_seen: datetime | None = None
    last_seen: datetime | None = None


class _Refused(Exception):
    pass


def neutralise(cell: str) -> str:
    """A cell a spreadsheet will not run: formulas (and what could start one) become text."""
    return "'" + cell if cell.startswith(FORMULA_START) else cell


def _unneutralise(cell: str) -> str:
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(FORMULA_START) else cell


def _one_line(value: str, what: str, limit: int) -> str:
    value = _unneutralise(value.strip())
    if _LINE_CONTROL.search(value):
        raise _Refused(f"control characters in {what}")
    if len(value) > limit:
        raise _Refused(f"{what} longer than {limit} characters")
    return value


def _addresses(values: Iterable[str]) -> tuple[str, ...]:
    found: dict[str, None] = {}
    for value in values:
        for item in _SPLIT_ADDRESSES.split(_unneutralise(value.strip())):
            if not item:
                continue
            address = valid_address(item.strip("<>"))
            if address is None:
                raise _Refused(f"not an address: {item[:80]!r}")
            found.setdefault(address, None)
    if not found:
        raise _Refused("no address")
    if len(found) > MAX_ADDRESSES:
        raise _Refused(f"more than {MAX_ADDRESSES} addresses")
    return tuple(found)


def _labels(kind: str, value: str) -> list[tuple[str, str]]:
    out = []
    for item in _SPLIT_LABELS.split(value):
        label = _one_line(item, kind, MAX_LABEL)
        if label:
            if kind == "language" and not _LANGUAGE.fullmatch(label):
                raise _Refused(f"not a language code: {label[:20]!r}")
            out.append((kind, label))
    return out


def _card(name: str, addresses: Sequence[str], language: str, labels: Iterable[tuple[str, str]], notes: str,
          consent: str) -> Card:
    language = _one_line(language, "language", 16)
    if language and not _LANGUAGE.fullmatch(language):
        raise _Refused(f"not a language code: {language!r}")
    notes = _unneutralise(notes.strip())
    if _CONTROL.search(notes):
        raise _Refused("control characters in notes")
    if len(notes) > MAX_NOTES:
        raise _Refused(f"notes longer than {MAX_NOTES} characters")
    said = consent.strip().lower()
    if said and said not in _YES | _NO:
        raise _Refused(f"consent must be yes or no, not {consent[:20]!r}")
    return Card(_addresses(addresses), _one_line(name, "name", MAX_NAME) or None, language or None,
                tuple(dict.fromkeys(labels)), notes, (said in _YES) if said else None)


def _text(data: bytes) -> str:
    if len(data) > MAX_BYTES:
        raise FileRefused(f"the file is larger than {MAX_BYTES // 1_000_000} MB")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileRefused(f"the file is not UTF-8 text (byte {exc.start})") from None


def _column(header: str) -> str | None:
    key = " ".join(header.strip().lower().replace("_", " ").split())
    if key in ("name", "full name", "display name", "fn"):
        return "name"
    if key.startswith(("email", "e-mail", "address", "mail")):
        return "addresses"
    if key in LABEL_COLUMNS or key in ("language", "notes", "note", "consent"):
        return "notes" if key == "note" else key
    return None


def read_csv(data: bytes) -> list[Row]:
    """The rows of a CSV file with a header row (name, email or addresses, language, languages,
    projects, roles, tags, notes, consent; other columns are ignored)."""
    reader = csv.reader(io.StringIO(_text(data), newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise FileRefused("the file is empty") from None
    except csv.Error as exc:
        raise FileRefused(f"the header row is not CSV: {exc}") from None
    columns = [_column(h) for h in header]
    if "addresses" not in columns:
        raise FileRefused("no address column: name one 'email' or 'addresses'")
    rows: list[Row] = []
    while True:
        line = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            rows.append(Row(line, refused=f"not CSV: {exc}"))
            break  # the reader cannot resynchronise after a broken quote or a NUL
        if not any(c.strip() for c in cells):
            continue
        if len(rows) >= MAX_ROWS:
            rows.append(Row(line, refused=f"more than {MAX_ROWS} rows: the rest is not read"))
            break
        values: dict[str, list[str]] = {}
        for column, cell in zip(columns, cells, strict=False):
            if column is not None:
                values.setdefault(column, []).append(cell)
        try:
            labels = [pair for column, kind in LABEL_COLUMNS.items() for cell in values.get(column, [])
                      for pair in _labels(kind, cell)]
            card = _card(" ".join(values.get("name", [])), values.get("addresses", []),
                         "".join(values.get("language", [])), labels, "\n".join(values.get("notes", [])),
                         "".join(values.get("consent", [])))
        except _Refused as why:
            rows.append(Row(line, refused=str(why)))
            continue
        rows.append(Row(line, card=card))
    return rows


def _vcard_values(card: Any, name: str) -> list[str]:
    values: list[str] = []
    for item in card.contents.get(name, []):
        value = item.value
        values.extend(str(v) for v in value) if isinstance(value, list) else values.append(str(value))
    return values


def read_vcard(data: bytes) -> list[Row]:
    """The cards of a vCard file (FN, EMAIL, NOTE, CATEGORIES as tags, ROLE, and the X-TRIAGE-*
    properties the export writes)."""
    text = _text(data)
    rows: list[Row] = []
    number = 0
    try:
        for component in vobject.readComponents(text, ignoreUnreadable=True):
            number += 1
            if len(rows) >= MAX_ROWS:
                rows.append(Row(number, refused=f"more than {MAX_ROWS} cards: the rest is not read"))
                break
            if component.name != "VCARD":
                rows.append(Row(number, refused=f"not a vCard: {component.name[:20]}"))
                continue
            try:
                labels = [pair for prop, kind in (("categories", "tag"), ("role", "role"),
                                                  ("x-triage-projects", "project"), ("x-triage-roles", "role"),
                                                  ("x-triage-languages", "language"))
                          for value in _vcard_values(component, prop) for pair in _labels(kind, value)]
                rows.append(Row(number, card=_card(
                    " ".join(_vcard_values(component, "fn"))[:MAX_NAME * 2], _vcard_values(component, "email"),
                    "".join(_vcard_values(component, "x-triage-language")), labels,
                    "\n".join(_vcard_values(component, "note")),
                    "".join(_vcard_values(component, "x-triage-consent")))))
            except _Refused as why:
                rows.append(Row(number, refused=str(why)))
    except Exception as exc:  # noqa: BLE001 - vobject raises many kinds on a broken file; the rest is unread
        rows.append(Row(number + 1, refused=f"not a readable vCard: {type(exc).__name__}"))
    return rows


def read_file(data: bytes, filename: str = "") -> list[Row]:
    """CSV or vCard, by the name's extension or else by the content."""
    vcard = filename.lower().endswith((".vcf", ".vcard")) or data.lstrip()[:11].upper() == b"BEGIN:VCARD"
    return read_vcard(data) if vcard else read_csv(data)


def _label_cell(record: Record, kind: str) -> str:
    return "; ".join(record.labels.get(kind, []))


def write_csv(records: Iterable[Record]) -> str:
    """The address book as CSV, one contact a row, every cell neutralised against formulas."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for r in records:
        cells = [str(r.id), r.uid, r.name or "", " ".join(r.addresses), r.language or "",
                 _label_cell(r, "language"), _label_cell(r, "project"), _label_cell(r, "role"), _label_cell(r, "tag"),
                 r.notes, "yes" if r.consent else "no",
                 r.first_seen.isoformat() if r.first_seen else "", r.last_seen.isoformat() if r.last_seen else ""]
        writer.writerow([neutralise(c) for c in cells])
    return out.getvalue()


def write_vcard(records: Iterable[Record]) -> str:
    """The address book as vCard 3.0 (vobject escapes every value: a name cannot add a property)."""
    parts: list[str] = []
    for r in records:
        card = vobject.vCard()
        card.add("uid").value = r.uid
        display = r.name or (r.addresses[0] if r.addresses else f"contact {r.id}")
        card.add("fn").value = display
        card.add("n").value = vobject.vcard.Name(given=display)
        for address in r.addresses:
            email = card.add("email")
            email.value = address
            email.type_param = "INTERNET"
        if r.notes:
            card.add("note").value = r.notes
        if r.labels.get("tag"):
            card.add("categories").value = list(r.labels["tag"])
        for prop, kind in (("x-triage-roles", "role"), ("x-triage-projects", "project"),
                           ("x-triage-languages", "language")):
            if r.labels.get(kind):
                card.add(prop).value = "; ".join(r.labels[kind])
        if r.language:
            card.add("x-triage-language").value = r.language
        card.add("x-triage-consent").value = "yes" if r.consent else "no"
        parts.append(card.serialize())
    return "".join(parts)


__all__ = ["CSV_COLUMNS", "Card", "FileRefused", "Record", "Row", "neutralise", "read_csv", "read_file",
           "read_vcard", "write_csv", "write_vcard"]
