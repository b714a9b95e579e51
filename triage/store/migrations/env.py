"""Alembic environment: runs on the connection that `triage.store.schema` hands it."""

from __future__ import annotations

from alembic import context

from triage.search.kinds import include_name
from triage.store import tables  # noqa: F401 - registers every table on Base.metadata
from triage.store.db import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only `alembic` run by hand reaches this
    raise RuntimeError("run migrations through `triage db upgrade`, which supplies the connection")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    include_name=include_name,  # the search index is built by its migration's DDL, not the models
)
with context.begin_transaction():
    context.run_migrations()
