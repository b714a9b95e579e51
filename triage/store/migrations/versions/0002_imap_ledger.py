"""IMAP ledger: per-folder UIDVALIDITY and last UID, and one row per server message.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('imap_folders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account', sa.String(length=100), nullable=False),
    sa.Column('folder', sa.String(length=500), nullable=False),
    sa.Column('uidvalidity', sa.BigInteger(), nullable=False),
    sa.Column('last_uid', sa.BigInteger(), nullable=False),
    sa.Column('first_contact_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('start_policy', sa.String(length=32), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_imap_folders')),
    sa.UniqueConstraint('account', 'folder', name=op.f('uq_imap_folders_account'))
    )
    op.create_table('imap_ledger',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account', sa.String(length=100), nullable=False),
    sa.Column('folder', sa.String(length=500), nullable=False),
    sa.Column('uidvalidity', sa.BigInteger(), nullable=False),
    sa.Column('uid', sa.BigInteger(), nullable=False),
    sa.Column('message_id', sa.String(length=998), nullable=True),
    sa.Column('raw_sha256', sa.String(length=64), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('message_pk', sa.Integer(), nullable=True),
    sa.Column('seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('marked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['message_pk'], ['messages.id'], name=op.f('fk_imap_ledger_message_pk_messages')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_imap_ledger')),
    sa.UniqueConstraint('account', 'folder', 'uidvalidity', 'uid', name=op.f('uq_imap_ledger_account'))
    )
    with op.batch_alter_table('imap_ledger', schema=None) as batch_op:
        batch_op.create_index('ix_imap_ledger_unmarked', ['account', 'folder', 'marked_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('imap_ledger', schema=None) as batch_op:
        batch_op.drop_index('ix_imap_ledger_unmarked')

    op.drop_table('imap_ledger')
    op.drop_table('imap_folders')
