"""tickets.language: the ISO 639-1 code of the first mail's language, detected when the ticket opens
(triage.language). Tickets opened before stay NULL until `triage tickets detect-language` fills them
(detection needs the mail text and the detector, which a schema migration should not load).

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('language', sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_column('language')
