"""Indexes for the reports: a person's mail per ticket in time order (partial, covering: the first
response of each ticket is one index seek), tickets by (merged away, arrival) covering team and
contact, inbound mail by arrival and kind, suggestions by day: the reports' readings do not touch
the tables (a message's row holds its body); decisions by (suggested, chosen) for the corrections,
which then group without a sort.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_answers', ['ticket_id', 'created_at', 'status', 'auto_submitted'],
                              unique=False, postgresql_where=sa.text('auto_submitted IS NULL'),
                              sqlite_where=sa.text('auto_submitted IS NULL'))
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.create_index('ix_tickets_reports', ['merged_into_id', 'created_at', 'team', 'contact_id'],
                              unique=False)
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.create_index('ix_messages_reports', ['direction', 'received_at', 'kind', 'ticket_id'], unique=False)
    with op.batch_alter_table('suggestions', schema=None) as batch_op:
        batch_op.create_index('ix_suggestions_reports', ['created_at', 'team', 'ticket_id'], unique=False)
    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.create_index('ix_decisions_pairs', ['suggested_team', 'team', 'decided_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.drop_index('ix_decisions_pairs')
    with op.batch_alter_table('suggestions', schema=None) as batch_op:
        batch_op.drop_index('ix_suggestions_reports')
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index('ix_messages_reports')
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index('ix_tickets_reports')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_answers')
