"""ip_allocations.bw_limit: a server nic's bandwidth limit in Mbps (0: none), enforced with tc

Revision ID: region_0009
Revises: region_0008
Create Date: 2026-12-07 01:30:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'region_0009'
down_revision = 'region_0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('ip_allocations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('bw_limit', sa.Integer(), nullable=False, server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('ip_allocations', schema=None) as batch_op:
        batch_op.drop_column('bw_limit')
