"""The routing model's promotions: the latest row is the model every worker and web process uses.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('routing_models',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version', sa.String(length=100), nullable=False),
    sa.Column('folder', sa.String(length=200), nullable=False),
    sa.Column('replaces', sa.Integer(), nullable=False),
    sa.Column('promoted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('promoted_by', sa.String(length=200), nullable=False),
    sa.Column('scores', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_routing_models')),
    sa.UniqueConstraint('folder', name=op.f('uq_routing_models_folder')),
    sa.UniqueConstraint('replaces', name=op.f('uq_routing_models_replaces'))
    )


def downgrade() -> None:
    op.drop_table('routing_models')
