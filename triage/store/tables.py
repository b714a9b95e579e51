"""Every table on `Base.metadata`: imported by whatever needs the whole schema (Alembic's
environment, the schema test), so that no model module has to import the others for them."""

from __future__ import annotations

from triage.store import (
    contact_models,
    digest_models,
    lease_models,
    models,
    outbox_models,
    privacy_models,
    schedule_models,
    web_models,
)
from triage.store.db import Base

metadata = Base.metadata

__all__ = [
    "contact_models", "digest_models", "lease_models", "metadata", "models", "outbox_models", "privacy_models", "schedule_models", "web_models",
]
