"""Erasure: `erasures` (the tombstone of each erasure: counts, ticket references, when, by whom)
and `erased_tickets` (the tickets an erasure emptied, which the retention run skips).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('erasures',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('reason', sa.String(length=16), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=True),
    sa.Column('tickets', sa.JSON(), nullable=False),
    sa.Column('counts', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_erasures'))
    )
    with op.batch_alter_table('erasures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_erasures_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_erasures_contact_id'), ['contact_id'], unique=False)

    op.create_table('erased_tickets',
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('erasure_id', sa.Integer(), nullable=False),
    sa.Column('erased_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['erasure_id'], ['erasures.id'], name=op.f('fk_erased_tickets_erasure_id_erasures')),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_erased_tickets_ticket_id_tickets')),
    sa.PrimaryKeyConstraint('ticket_id', name=op.f('pk_erased_tickets'))
    )
    with op.batch_alter_table('erased_tickets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_erased_tickets_erasure_id'), ['erasure_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('erased_tickets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_erased_tickets_erasure_id'))
    op.drop_table('erased_tickets')
    with op.batch_alter_table('erasures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_erasures_contact_id'))
        batch_op.drop_index(batch_op.f('ix_erasures_at'))
    op.drop_table('erasures')
