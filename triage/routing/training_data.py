"""Labelled mail for the routing classifier, from the places a liaison already keeps it.

- A folder of sorted mail: one mbox file per team (the file's stem is the team), or one
  subfolder per team holding `.eml` files or a maildir.
- A CSV file with the columns `subject, body, team` (optional: `sender`, `date`).

Mail is read one message at a time and parsed by the project's own parser, so training
sees exactly what the desk sees. A mail that cannot be parsed is skipped and reported, never
fatal: one bad mail never stops the line.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import formataddr, parsedate_to_datetime
from pathlib import Path

from tqdm import tqdm

from classifiers import Example, TrainingDataError
from triage.ingest.parse import parse_mail
from triage.ingest.parsed import NotAMailError
from triage.ingest.sources import MailSource, SourceError, open_source

_EXTRA_HEADERS = ("organization", "keywords")
_HEADER_PARSER = BytesHeaderParser(policy=compat32)


@dataclass
class TrainingSet:
    """The examples read, and the mails skipped with the reason (where, why)."""

    examples: list[Example] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def teams(self) -> list[str]:
        return sorted({e.label for e in self.examples if e.label is not None})


def _header_text(value: str) -> str:
    try:
        return str(make_header(decode_header(value)))
    except (ValueError, LookupError, UnicodeError):
        return value


def example_from_mail(raw: bytes, label: str | None = None) -> Example:
    """One raw mail as a classifier `Example`. Raises `NotAMailError` for bytes that are not a mail."""
    mail = parse_mail(raw)
    headers: dict[str, str] = {}
    if mail.from_addr:
        headers["from"] = formataddr((mail.from_name or "", mail.from_addr))
    if mail.to:
        headers["to"] = ", ".join(mail.to)
    if mail.cc:
        headers["cc"] = ", ".join(mail.cc)
    if mail.list_id:
        headers["list-id"] = mail.list_id
    head = _HEADER_PARSER.parsebytes(raw, headersonly=True)
    for name in _EXTRA_HEADERS:
        value = head.get(name)
        if value:
            headers[name] = _header_text(str(value)).strip()
    return Example(
        subject=mail.subject or "", body=mail.body_text, sender=mail.from_addr or "", headers=headers,
        label=label, date=mail.date,
    )


def team_sources(path: Path) -> list[tuple[str, MailSource]]:
    """The teams of a sorted-mail folder and where each one's mail is."""
    if not path.is_dir():
        raise TrainingDataError(f"{path} is not a folder of sorted mail")
    found: list[tuple[str, MailSource]] = []
    for entry in sorted(path.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file() and entry.suffix.lower() not in (".mbox", ""):
            continue
        try:
            found.append((entry.stem if entry.is_file() else entry.name, open_source(entry)))
        except SourceError:
            continue
    if not found:
        raise TrainingDataError(
            f"{path} holds no team mail: expected one mbox file per team (legal.mbox, ...) "
            f"or one subfolder per team with .eml files or a maildir"
        )
    return found


def iter_labelled_mail(path: Path, *, progress: bool = False) -> Iterator[tuple[str, str, bytes]]:
    """(team, where, raw bytes) for every mail of a sorted-mail folder, one at a time."""
    sources = team_sources(path)
    total = sum(source.count for _, source in sources)
    with tqdm(total=total, desc="reading mail", unit="mail", disable=not progress, leave=False) as bar:
        for team, source in sources:
            for where, raw in source:
                bar.update(1)
                yield team, where, raw


def _load_mail_folder(path: Path, progress: bool) -> TrainingSet:
    result = TrainingSet()
    for team, where, raw in iter_labelled_mail(path, progress=progress):
        try:
            result.examples.append(example_from_mail(raw, team))
        except NotAMailError as exc:
            result.skipped.append((where, str(exc) or "not a mail"))
    return result


def _parse_date(value: str) -> datetime | None:
    value = value.strip()
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        try:
            parsed = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _load_csv(path: Path, progress: bool) -> TrainingSet:
    result = TrainingSet()
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = {"subject", "body", "team"} - set(reader.fieldnames or [])
        if missing:
            raise TrainingDataError(
                f"{path} lacks the column(s) {', '.join(sorted(missing))}; expected a header row "
                f"with subject, body, team (and optionally sender, date)"
            )
        for row in tqdm(reader, desc="reading rows", unit="row", disable=not progress, leave=False):
            team = (row.get("team") or "").strip()
            if not team:
                result.skipped.append((f"{path}:{reader.line_num}", "no team"))
                continue
            sender = (row.get("sender") or "").strip()
            result.examples.append(Example(
                subject=row.get("subject") or "", body=row.get("body") or "", sender=sender,
                headers={"from": sender} if sender else {}, label=team, date=_parse_date(row.get("date") or ""),
            ))
    return result


def load_examples(path: str | Path, *, progress: bool = False) -> TrainingSet:
    """Read labelled examples from a CSV file or a folder of sorted mail (see the module doc)."""
    path = Path(path)
    if not path.exists():
        raise TrainingDataError(f"{path} does not exist")
    if path.is_file():
        if path.suffix.lower() != ".csv":
            raise TrainingDataError(f"{path} is a file but not a .csv; give a CSV or a folder of sorted mail")
        return _load_csv(path, progress)
    return _load_mail_folder(path, progress)


def example_from_file(path: str | Path) -> Example:
    """One mail file (an .eml, or any RFC 822 message) as an unlabelled example."""
    path = Path(path)
    try:
        return example_from_mail(path.read_bytes())
    except OSError as exc:
        raise TrainingDataError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except NotAMailError as exc:
        raise TrainingDataError(f"{path} is not a mail: {exc}") from exc
