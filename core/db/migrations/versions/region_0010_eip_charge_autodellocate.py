"""eips.charge_type (traffic|bandwidth) and eips.auto_dellocate (released when dissociated)

Revision ID: region_0010
Revises: region_0009
Create Date: 2026-12-07 05:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'region_0010'
down_revision = 'region_0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('eips', schema=None) as batch_op:
        batch_op.add_column(sa.Column('charge_type', sa.String(length=64), nullable=False,
                                      server_default='bandwidth'))
        batch_op.add_column(sa.Column('auto_dellocate', sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('eips', schema=None) as batch_op:
        batch_op.drop_column('auto_dellocate')
        batch_op.drop_column('charge_type')
