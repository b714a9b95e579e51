"""Reminder clocks: a narrow row per open ticket with its due times; tickets say when their clock went stale.

Every ticket not resolved starts stale, so the next reminder run computes its clock.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ticket_clocks',
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('team', sa.String(length=64), nullable=True),
    sa.Column('due_1', sa.DateTime(timezone=True), nullable=True),
    sa.Column('due_2', sa.DateTime(timezone=True), nullable=True),
    sa.Column('due_3', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reminded_level', sa.Integer(), nullable=False),
    sa.Column('next_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('stopped', sa.String(length=32), nullable=True),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_ticket_clocks_ticket_id_tickets')),
    sa.PrimaryKeyConstraint('ticket_id', name=op.f('pk_ticket_clocks'))
    )
    with op.batch_alter_table('ticket_clocks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ticket_clocks_next_at'), ['next_at'], unique=False)

    with op.batch_alter_table('reminders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('run_id', sa.String(length=32), nullable=True))
        batch_op.create_index(batch_op.f('ix_reminders_run_id'), ['run_id'], unique=False)
        # The clocks replace the query it served; the unique key covers lookups by ticket.
        batch_op.drop_index('ix_reminders_ticket_id_next_due_at')

    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('clock_stale_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_tickets_clock_stale', ['id'], unique=False,
                              postgresql_where=sa.text('clock_stale_at IS NOT NULL'),
                              sqlite_where=sa.text('clock_stale_at IS NOT NULL'))

    tickets = sa.table('tickets', sa.column('status', sa.String()),
                       sa.column('clock_stale_at', sa.DateTime(timezone=True)))
    op.execute(tickets.update().where(tickets.c.status != 'resolved')
               .values(clock_stale_at=datetime.now(UTC)))


def downgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index('ix_tickets_clock_stale')
        batch_op.drop_column('clock_stale_at')

    with op.batch_alter_table('reminders', schema=None) as batch_op:
        batch_op.create_index('ix_reminders_ticket_id_next_due_at', ['ticket_id', 'next_due_at'], unique=False)
        batch_op.drop_index(batch_op.f('ix_reminders_run_id'))
        batch_op.drop_column('run_id')

    with op.batch_alter_table('ticket_clocks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ticket_clocks_next_at'))

    op.drop_table('ticket_clocks')
