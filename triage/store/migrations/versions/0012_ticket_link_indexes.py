"""Indexes on tickets.linked_ticket_id and tickets.merged_into_id: the ticket page asks which tickets
link to or were merged into the one shown, which scanned every ticket without them.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tickets_linked_ticket_id'), ['linked_ticket_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_tickets_merged_into_id'), ['merged_into_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tickets_merged_into_id'))
        batch_op.drop_index(batch_op.f('ix_tickets_linked_ticket_id'))
