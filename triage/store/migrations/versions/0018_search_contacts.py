"""Full-text search over contacts (triage.search.kinds.CONTACT): a person's name, addresses, labels
and notes, built from the contacts already stored. SQLite: an FTS5 table with its own copy of the
text, re-indexed by triggers on contacts, contact_addresses and contact_labels; PostgreSQL: a
contacts.search_vector column kept by triggers on the same three tables, with a GIN index.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

from triage.search.kinds import CONTACT, create, drop

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    create(op.get_bind(), (CONTACT,), functions=False)


def downgrade() -> None:
    drop(op.get_bind(), (CONTACT,), functions=False)
