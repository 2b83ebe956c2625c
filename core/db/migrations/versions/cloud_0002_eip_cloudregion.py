"""eips: cloudregion_id (the region a cloud's elastic IP lives in; "" / NULL for this cloud's own)

Revision ID: cloud_0002
Revises: cloud_0001
Create Date: 2026-12-07 01:15:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'cloud_0002'
down_revision = 'cloud_0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # existing eips are this cloud's (network eips) or synced ones the next sync gives a region
    with op.batch_alter_table('eips', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cloudregion_id', sa.String(length=36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('eips', schema=None) as batch_op:
        batch_op.drop_column('cloudregion_id')
