"""servers: status_reason (why a server is unknown or failed: a guest its host lost, a host offline)

Revision ID: region_0004
Revises: region_0003
Create Date: 2026-12-03 15:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import core.db.base  # noqa: F401  (custom column types)

revision = 'region_0004'
down_revision = 'region_0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # TEXT cannot have a server default on MariaDB: add it nullable, fill it, then make it required
    with op.batch_alter_table('servers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status_reason', sa.Text(), nullable=True))
    op.execute("UPDATE servers SET status_reason = '' WHERE status_reason IS NULL")
    with op.batch_alter_table('servers', schema=None) as batch_op:
        batch_op.alter_column('status_reason', existing_type=sa.Text(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('servers', schema=None) as batch_op:
        batch_op.drop_column('status_reason')
