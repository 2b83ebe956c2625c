"""hosts: target (agent | executor) and the executor's encrypted driver config; work_items: a lease

Revision ID: region_0005
Revises: region_0004
Create Date: 2026-12-03 18:45:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import core.db.base

revision = 'region_0005'
down_revision = 'region_0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # every host before this revision was run by an agent; TEXT cannot have a server default on
    # MariaDB: add driver_config nullable, fill it, then make it required
    with op.batch_alter_table('hosts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('target', sa.String(length=64), nullable=False, server_default='agent'))
        batch_op.add_column(sa.Column('driver_config', sa.Text(), nullable=True))
    op.execute("UPDATE hosts SET driver_config = '' WHERE driver_config IS NULL")
    with op.batch_alter_table('hosts', schema=None) as batch_op:
        batch_op.alter_column('driver_config', existing_type=sa.Text(), nullable=False)
    # an executor (a controller replica) holds the items it runs under a lease, like tasks
    with op.batch_alter_table('work_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('owner', sa.String(length=128), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('lease_expires_at', core.db.base.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('work_items', schema=None) as batch_op:
        batch_op.drop_column('lease_expires_at')
        batch_op.drop_column('owner')
    with op.batch_alter_table('hosts', schema=None) as batch_op:
        batch_op.drop_column('driver_config')
        batch_op.drop_column('target')
