"""The reminder clock on tickets (due time per level, level sent, next look); reminders remember their run.

Existing open tickets start stale, so the next reminder run computes their clocks.

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

STALE = datetime(1970, 1, 1, tzinfo=UTC)  # triage.store.db.CLOCK_STALE, frozen here as migrations are


def upgrade() -> None:
    with op.batch_alter_table('reminders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('run_id', sa.String(length=32), nullable=True))
        batch_op.create_index(batch_op.f('ix_reminders_run_id'), ['run_id'], unique=False)

    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reminder_due_1', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('reminder_due_2', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('reminder_due_3', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('reminded_level', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('next_reminder_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_tickets_next_reminder_at'), ['next_reminder_at'], unique=False)

    tickets = sa.table('tickets', sa.column('id', sa.Integer()), sa.column('status', sa.String()),
                       sa.column('reminded_level', sa.Integer()),
                       sa.column('next_reminder_at', sa.DateTime(timezone=True)))
    reminders = sa.table('reminders', sa.column('ticket_id', sa.Integer()), sa.column('level', sa.Integer()))
    sent = (sa.select(sa.func.max(reminders.c.level)).where(reminders.c.ticket_id == tickets.c.id)
            .scalar_subquery())
    op.execute(tickets.update().values(reminded_level=sa.func.coalesce(sent, 0)))
    op.execute(tickets.update().where(tickets.c.status != 'resolved').values(next_reminder_at=STALE))


def downgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tickets_next_reminder_at'))
        batch_op.drop_column('next_reminder_at')
        batch_op.drop_column('reminded_level')
        batch_op.drop_column('reminder_due_3')
        batch_op.drop_column('reminder_due_2')
        batch_op.drop_column('reminder_due_1')

    with op.batch_alter_table('reminders', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reminders_run_id'))
        batch_op.drop_column('run_id')
