"""hosts: the driver an agent hosts, its version and capabilities (the host contract)

Revision ID: region_0003
Revises: region_0002
Create Date: 2026-12-03 11:45:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import core.db.base  # noqa: F401  (custom column types)

revision = 'region_0003'
down_revision = 'region_0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # hosts registered before this revision ran the built-in KVM agent: say so (they re-register
    # with their real capabilities at the next agent start)
    with op.batch_alter_table('hosts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('driver', sa.String(length=64), nullable=False, server_default='kvm'))
        batch_op.add_column(sa.Column('driver_version', sa.String(length=64), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('capabilities', sa.JSON(), nullable=True))
    op.execute("UPDATE hosts SET capabilities = '[]' WHERE capabilities IS NULL")
    with op.batch_alter_table('hosts', schema=None) as batch_op:
        batch_op.alter_column('capabilities', existing_type=sa.JSON(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('hosts', schema=None) as batch_op:
        batch_op.drop_column('capabilities')
        batch_op.drop_column('driver_version')
        batch_op.drop_column('driver')
