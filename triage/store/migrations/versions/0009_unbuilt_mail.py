"""Unbuilt mail: an outbox row may have no bytes, for a mail that could not be built.

A mail that composition refused (a poison address, a template error) is still recorded in the
outbox, `failed` with the reason in `last_error`, so that `triage outbox` shows it beside the
mail that was sent; it has no bytes, and the sender never claims or retries it.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.alter_column('raw', existing_type=sa.LargeBinary(), nullable=True)


def downgrade() -> None:
    outbox = sa.table('outbox', sa.column('raw', sa.LargeBinary()))
    op.execute(outbox.update().where(outbox.c.raw.is_(None)).values(raw=b''))  # still failed, never sent
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.alter_column('raw', existing_type=sa.LargeBinary(), nullable=False)
