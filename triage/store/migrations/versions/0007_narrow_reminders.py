"""Narrow reminders: keyed by (ticket, level, due time) alone, and the ticket's log of its reminders.

The run writes thousands of these rows in one statement, so each row carries only what is not
found elsewhere: the serial id, the address (the outbox row has it), the next level's due time
(the clock has it) and the run id go. The `reminded` and `escalated` events rows that runs wrote
beside each reminder are removed: the ticket's log now reads them from this table. The index
on tickets (status, created_at), which served the candidate query the clocks replaced, goes too.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('reminders', schema=None) as batch_op:
        batch_op.drop_index('ix_reminders_run_id')
        batch_op.drop_constraint('uq_reminders_ticket_level_due', type_='unique')
        batch_op.drop_constraint('pk_reminders', type_='primary')
        batch_op.drop_column('id')
        batch_op.drop_column('to_addr')
        batch_op.drop_column('next_due_at')
        batch_op.drop_column('run_id')
        batch_op.create_primary_key('pk_reminders', ['ticket_id', 'level', 'due_at'])
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index('ix_tickets_status_created_at')
    events = sa.table('events', sa.column('actor', sa.String()), sa.column('action', sa.String()))
    op.execute(events.delete().where(events.c.actor == 'system:remind',
                                     events.c.action.in_(['reminded', 'escalated'])))


def downgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.create_index('ix_tickets_status_created_at', ['status', 'created_at'], unique=False)
    with op.batch_alter_table('reminders', schema=None) as batch_op:
        batch_op.drop_constraint('pk_reminders', type_='primary')
        batch_op.add_column(sa.Column('id', sa.Integer(), sa.Identity(), nullable=False))
        batch_op.add_column(sa.Column('to_addr', sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column('next_due_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('run_id', sa.String(length=32), nullable=True))
        batch_op.create_primary_key('pk_reminders', ['id'])
        batch_op.create_unique_constraint('uq_reminders_ticket_level_due', ['ticket_id', 'level', 'due_at'])
        batch_op.create_index('ix_reminders_run_id', ['run_id'], unique=False)
