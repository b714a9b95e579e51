"""The routing queue's index: the tickets no team owns yet, by id (partial: routed tickets are not in it).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.create_index('ix_tickets_unrouted', ['id'], unique=False,
                              postgresql_where=sa.text('team IS NULL'),
                              sqlite_where=sa.text('team IS NULL'))


def downgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index('ix_tickets_unrouted')
