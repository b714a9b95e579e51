"""Model files that cannot run code when loaded: a folder with `model.json` and `arrays.npz`.

`model.json` holds the metadata (format, version, creation date, training-set hash, labels,
metrics, threshold) and the vocabularies; `arrays.npz` holds plain numeric arrays, read with
`allow_pickle=False`. A pickle is never loaded: unpickling a file runs whatever code its
author put in it, so a model shared by mail or downloaded would be a way in. Such files are
refused with `UnsafeModelError`, which says how to get a safe model instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from numpy.typing import NDArray

from classifiers.base import Example, ModelFileError, UnsafeModelError

FORMAT = "triage-routing-model"
FORMAT_VERSION = 1
META_FILE = "model.json"
ARRAYS_FILE = "arrays.npz"
_SAFE_KINDS = frozenset("fiub")
_PICKLE_PROTOCOL_OPCODE = 0x80
_RETRAIN_HINT = "train a model with `triage train --data PATH --out MODEL`"
PRIVATE_FILE, PRIVATE_FOLDER = 0o600, 0o700


@dataclass(frozen=True, slots=True)
class Artefact:
    meta: dict[str, Any]
    arrays: dict[str, NDArray[Any]]


def training_set_sha256(examples: Iterable[Example]) -> str:
    """A hash of the labelled examples that does not depend on their order."""
    digests = []
    for e in examples:
        record = {
            "subject": e.subject, "body": e.body, "sender": e.sender, "headers": dict(sorted(e.headers.items())),
            "label": e.label, "date": e.date.isoformat() if e.date else None,
        }
        line = json.dumps(record, ensure_ascii=False, sort_keys=True).encode("utf-8")
        digests.append(hashlib.sha256(line).digest())
    total = hashlib.sha256()
    for d in sorted(digests):
        total.update(d)
    return total.hexdigest()


def _private_file(path: Path) -> BinaryIO:
    """A new file readable by its owner only: a model's vocabulary is words from the mail it learnt."""
    path.unlink(missing_ok=True)  # a leftover of a crashed save keeps its old mode; start afresh
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE), "wb")


def write_artefact(path: str | Path, meta: Mapping[str, Any], arrays: Mapping[str, NDArray[Any]]) -> None:
    """Write the folder `path` (created if needed, mode 0700; files 0600); each file is replaced atomically."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ModelFileError(f"{path} is a file; a model is saved as a folder, give a folder path")
    path.mkdir(mode=PRIVATE_FOLDER, parents=True, exist_ok=True)
    for name, array in arrays.items():
        if array.dtype.kind not in _SAFE_KINDS:
            raise ModelFileError(f"array {name!r} has dtype {array.dtype}; only numbers are saved")
    tmp_arrays = path / (ARRAYS_FILE + ".tmp")
    with _private_file(tmp_arrays) as handle:
        np.savez_compressed(handle, allow_pickle=False, **arrays)
    tmp_meta = path / (META_FILE + ".tmp")
    with _private_file(tmp_meta) as handle:
        meta_json = json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION, **meta}, ensure_ascii=False)
        handle.write(meta_json.encode("utf-8"))
    os.replace(tmp_arrays, path / ARRAYS_FILE)
    os.replace(tmp_meta, path / META_FILE)


def _refuse_if_pickle(path: Path) -> None:
    with path.open("rb") as handle:
        head = handle.read(2)
    if len(head) == 2 and head[0] == _PICKLE_PROTOCOL_OPCODE and 2 <= head[1] <= 5:
        raise UnsafeModelError(
            f"{path} is a Python pickle; triage never loads pickles, because loading one can run any code "
            f"its author put in it. Ask for the model folder (model.json + arrays.npz) instead, or {_RETRAIN_HINT}"
        )


def read_artefact(path: str | Path) -> Artefact:
    """Read a model folder, refusing anything that could run code. A link to a folder is followed
    once, first: both files come from the one folder it named then, even if it is swapped meanwhile."""
    path = Path(path)
    if path.is_symlink():
        path = path.resolve()
    if not path.exists():
        raise ModelFileError(f"no model at {path}; {_RETRAIN_HINT}")
    if path.is_file():
        _refuse_if_pickle(path)
        raise ModelFileError(f"{path} is a file; a model is a folder holding {META_FILE} and {ARRAYS_FILE}")
    meta_path, arrays_path = path / META_FILE, path / ARRAYS_FILE
    for p in (meta_path, arrays_path):
        if not p.is_file():
            raise ModelFileError(f"{path} is not a model folder: {p.name} is missing; {_RETRAIN_HINT}")
        _refuse_if_pickle(p)
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{meta_path} is not valid JSON ({exc}); {_RETRAIN_HINT}") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{meta_path} is not a triage routing model; {_RETRAIN_HINT}")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(
            f"{path} has model format {meta.get('format_version')!r}, this triage reads {FORMAT_VERSION}; "
            f"{_RETRAIN_HINT}"
        )
    return Artefact(meta, _read_arrays(arrays_path))


def _read_arrays(path: Path) -> dict[str, NDArray[Any]]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except ValueError as exc:
        raise UnsafeModelError(
            f"{path} holds pickled Python objects and is refused, because loading them can run code ({exc}); "
            f"{_RETRAIN_HINT}"
        ) from exc
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ModelFileError(f"{path} cannot be read ({exc}); {_RETRAIN_HINT}") from exc
    for name, array in arrays.items():
        if array.dtype.kind not in _SAFE_KINDS:
            raise UnsafeModelError(f"{path}: array {name!r} has dtype {array.dtype}, not numbers; refused")
    return arrays
