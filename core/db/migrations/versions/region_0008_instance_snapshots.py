"""instance_snapshots (all disks of a server at one instant) and snapshots.instance_snapshot_id

Revision ID: region_0008
Revises: region_0007
Create Date: 2026-12-07 01:10:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import core.db.base

revision = 'region_0008'
down_revision = 'region_0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('instance_snapshots',
    sa.Column('guest_id', sa.String(length=36), nullable=False),
    sa.Column('server_config', sa.JSON(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=64), nullable=False),
    sa.Column('metadata', sa.JSON(), nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('created_at', core.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', core.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('domain_id', sa.String(length=64), nullable=False),
    sa.Column('is_public', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_instance_snapshots'))
    )
    with op.batch_alter_table('instance_snapshots', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_instance_snapshots_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_instance_snapshots_guest_id'), ['guest_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_instance_snapshots_name'), ['name'], unique=False)
        batch_op.create_index(batch_op.f('ix_instance_snapshots_tenant_id'), ['tenant_id'], unique=False)

    with op.batch_alter_table('snapshots', schema=None) as batch_op:
        batch_op.add_column(sa.Column('instance_snapshot_id', sa.String(length=36), nullable=True))
        batch_op.create_index(batch_op.f('ix_snapshots_instance_snapshot_id'), ['instance_snapshot_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('snapshots', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_snapshots_instance_snapshot_id'))
        batch_op.drop_column('instance_snapshot_id')

    op.drop_table('instance_snapshots')
