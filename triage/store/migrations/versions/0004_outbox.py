"""Outbox: one row per outgoing mail with its raw bytes, delivery state and SMTP transaction record.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('outbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.String(length=998), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=True),
    sa.Column('message_pk', sa.Integer(), nullable=True),
    sa.Column('template', sa.String(length=64), nullable=False),
    sa.Column('auto_submitted', sa.String(length=32), nullable=True),
    sa.Column('envelope_from', sa.String(length=320), nullable=False),
    sa.Column('recipients', sa.JSON(), nullable=False),
    sa.Column('to_addr', sa.String(length=320), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('raw', sa.LargeBinary(), nullable=False),
    sa.Column('status', sa.Enum('pending', 'sending', 'sent', 'failed', 'uncertain', name='outbox_status', native_enum=False, length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('smtp_phase', sa.Enum('claimed', 'data_end', name='smtp_phase', native_enum=False, length=16), nullable=True),
    sa.Column('claimed_by', sa.String(length=200), nullable=True),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('smtp_server', sa.String(length=300), nullable=True),
    sa.Column('smtp_reply', sa.Text(), nullable=True),
    sa.Column('smtp_queue_id', sa.String(length=200), nullable=True),
    sa.Column('refused', sa.JSON(), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sent_copy', sa.String(length=500), nullable=True),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['message_pk'], ['messages.id'], name=op.f('fk_outbox_message_pk_messages')),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_outbox_ticket_id_tickets')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox')),
    sa.UniqueConstraint('message_id', name=op.f('uq_outbox_message_id'))
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_status_next_attempt_at', ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbox_ticket_id'), ['ticket_id'], unique=False)
        batch_op.create_index('ix_outbox_to_addr_created_at', ['to_addr', 'created_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_to_addr_created_at')
        batch_op.drop_index(batch_op.f('ix_outbox_ticket_id'))
        batch_op.drop_index('ix_outbox_status_next_attempt_at')

    op.drop_table('outbox')
