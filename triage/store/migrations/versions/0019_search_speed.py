"""Indexes on messages.received_at and tickets.created_at for search's date filter: PostgreSQL ANDs
their ranges with the full-text GIN bitmap instead of walking a common word's matches newest first,
and SQLite reads the id range of a date window from them to bound its FTS5 walk (triage.search.sqlite).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_messages_received_at', 'messages', ['received_at'], unique=False)
    op.create_index('ix_tickets_created_at', 'tickets', ['created_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_tickets_created_at', table_name='tickets')
    op.drop_index('ix_messages_received_at', table_name='messages')
