"""metric_samples: usage history of servers and hosts (minute buckets a day, hour buckets a month)

Revision ID: metrics_0001
Revises: root_0001
Create Date: 2026-12-07 01:30:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'metrics_0001'
down_revision = 'root_0001'
branch_labels = ('metrics',)
depends_on = None


def upgrade() -> None:
    op.create_table('metric_samples',
    sa.Column('obj_id', sa.String(length=36), nullable=False),
    sa.Column('resolution', sa.Integer(), nullable=False),
    sa.Column('ts', sa.BigInteger(), nullable=False),
    sa.Column('obj_type', sa.String(length=16), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.Column('cpu_percent', sa.Float(), nullable=True),
    sa.Column('mem_mb', sa.Float(), nullable=True),
    sa.Column('disk_read_bps', sa.Float(), nullable=True),
    sa.Column('disk_write_bps', sa.Float(), nullable=True),
    sa.Column('net_rx_bps', sa.Float(), nullable=True),
    sa.Column('net_tx_bps', sa.Float(), nullable=True),
    sa.Column('disk_used_percent', sa.Float(), nullable=True),
    sa.Column('load_1m', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('obj_id', 'resolution', 'ts', name=op.f('pk_metric_samples'))
    )
    op.create_index('ix_metric_samples_resolution_ts', 'metric_samples', ['resolution', 'ts'], unique=False)


def downgrade() -> None:
    op.drop_table('metric_samples')
