"""Outbox rate window: the rate limits read the last hour's automatic mail across addresses.

The per-address limit now counts sub-addresses (victim+1@, victim+2@ ...) as one mailbox and
a per-domain limit counts acknowledgments to a whole domain, so the query is by time alone:
the (to_addr, created_at) index, which served the exact-address count, gives way to one on
created_at.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_to_addr_created_at')
        batch_op.create_index('ix_outbox_created_at', ['created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_created_at')
        batch_op.create_index('ix_outbox_to_addr_created_at', ['to_addr', 'created_at'], unique=False)
