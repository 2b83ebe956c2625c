"""agent_join_tokens: uses (redemptions allowed) and used (redemptions so far)

Revision ID: agent_0002
Revises: agent_0001
Create Date: 2026-12-04 18:40:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import core.db.base  # noqa: F401  (custom column types)

revision = 'agent_0002'
down_revision = 'agent_0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # every token before this revision was one-time: uses 1, and used 1 where it was spent
    with op.batch_alter_table('agent_join_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('uses', sa.Integer(), nullable=False, server_default='1'))
        batch_op.add_column(sa.Column('used', sa.Integer(), nullable=False, server_default='0'))
    op.execute("UPDATE agent_join_tokens SET used = 1 WHERE used_at IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table('agent_join_tokens', schema=None) as batch_op:
        batch_op.drop_column('used')
        batch_op.drop_column('uses')
