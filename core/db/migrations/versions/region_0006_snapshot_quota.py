"""quotas: snapshot (disk snapshots a project may keep) and its usage

Revision ID: region_0006
Revises: region_0005
Create Date: 2026-12-06 22:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'region_0006'
down_revision = 'region_0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # every project had no snapshots before (the API could not take any): usage 0, Cloudpods' default limit
    with op.batch_alter_table('quotas', schema=None) as batch_op:
        batch_op.add_column(sa.Column('snapshot', sa.BigInteger(), nullable=False, server_default='100'))
        batch_op.add_column(sa.Column('used_snapshot', sa.BigInteger(), nullable=False, server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('quotas', schema=None) as batch_op:
        batch_op.drop_column('used_snapshot')
        batch_op.drop_column('snapshot')
