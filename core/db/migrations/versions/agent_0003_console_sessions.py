"""console_sessions: one-time console tokens (sha256 only) and the sessions they open

Revision ID: agent_0003
Revises: agent_0002
Create Date: 2026-12-06 22:10:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import core.db.base

revision = 'agent_0003'
down_revision = 'agent_0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('console_sessions',
    sa.Column('token_sha256', sa.String(length=64), nullable=False),
    sa.Column('server_id', sa.String(length=36), nullable=False),
    sa.Column('host_id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('protocol', sa.String(length=16), nullable=False),
    sa.Column('expires_at', core.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', core.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('relay_url', sa.String(length=255), nullable=False),
    sa.Column('endpoint', sa.String(length=255), nullable=False),
    sa.Column('reason', sa.String(length=255), nullable=False),
    sa.Column('closed_at', core.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('bytes_up', sa.BigInteger(), nullable=False),
    sa.Column('bytes_down', sa.BigInteger(), nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('created_at', core.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', core.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_console_sessions')),
    sa.UniqueConstraint('token_sha256', name=op.f('uq_console_sessions_token_sha256'))
    )
    with op.batch_alter_table('console_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_console_sessions_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_console_sessions_server_id'), ['server_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_console_sessions_host_id'), ['host_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_console_sessions_status'), ['status'], unique=False)


def downgrade() -> None:
    op.drop_table('console_sessions')
