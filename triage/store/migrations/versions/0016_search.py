"""Full-text search: the index of tickets, messages and internal notes (triage.search.kinds), built
from the rows already stored. SQLite: FTS5 tables over views of the source tables, kept by triggers;
PostgreSQL: a search_vector tsvector column per source table, kept by a trigger, with a GIN index.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

from triage.search.kinds import MESSAGE, NOTE, TICKET, create, drop

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

KINDS = (TICKET, MESSAGE, NOTE)


def upgrade() -> None:
    create(op.get_bind(), KINDS)


def downgrade() -> None:
    drop(op.get_bind(), KINDS)
