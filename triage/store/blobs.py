"""Content-addressed byte storage: a raw mail or an attachment is written once, read back whole."""

from __future__ import annotations

import zlib

from sqlalchemy import select
from sqlalchemy.orm import Session

from triage.store.codec import encode, sha256_hex
from triage.store.db import upsert_insert, utcnow
from triage.store.models import Blob


def put_blob(session: Session, data: bytes, digest: str | None = None) -> str:
    """Store `data` unless a blob with its sha256 exists (also when another worker races us)."""
    digest = digest or sha256_hex(data)
    codec, packed = encode(data)
    values = {"sha256": digest, "size": len(data), "codec": codec, "data": packed, "created_at": utcnow()}
    session.execute(upsert_insert(session)(Blob).values(**values).on_conflict_do_nothing(index_elements=["sha256"]))
    return digest


# The codec of a raw mail's blob after its person was erased: no bytes, only the sha256 it is keyed
# by, so that the same mail delivered again is recognised and refused (triage.privacy.erase).
ERASED_CODEC = "erased"


class BlobErased(LookupError):
    """The blob's bytes were erased; only its sha256 is kept."""


def get_blob(session: Session, digest: str) -> bytes:
    row = session.execute(select(Blob.codec, Blob.data).where(Blob.sha256 == digest)).one()
    if row.codec == ERASED_CODEC:
        raise BlobErased(f"blob {digest} was erased")
    if row.codec == "zlib":
        return zlib.decompress(row.data)
    if row.codec == "raw":
        return bytes(row.data)
    raise ValueError(f"blob {digest} has unknown codec {row.codec!r}")


def get_blob_head(session: Session, digest: str, limit: int) -> bytes:
    """The first `limit` bytes of a blob, without inflating the rest (a mail's header, say)."""
    row = session.execute(select(Blob.codec, Blob.data).where(Blob.sha256 == digest)).one()
    if row.codec == ERASED_CODEC:
        raise BlobErased(f"blob {digest} was erased")
    if row.codec == "zlib":
        return zlib.decompressobj().decompress(row.data, limit)
    if row.codec == "raw":
        return bytes(row.data[:limit])
    raise ValueError(f"blob {digest} has unknown codec {row.codec!r}")


__all__ = ["ERASED_CODEC", "BlobErased", "encode", "get_blob", "get_blob_head", "put_blob", "sha256_hex"]  # encode, sha256_hex: from triage.store.codec
