"""imap_folders.last_pass_at: when a poller last read the folder to its end. Any worker's /metrics
reports it for every mailbox (triage_mailbox_last_pass_timestamp_seconds), so an operator sees a
mailbox nobody reads whichever worker they scrape.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('imap_folders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_pass_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('imap_folders', schema=None) as batch_op:
        batch_op.drop_column('last_pass_at')
