"""root_0001: the shared root every service branch starts on

Revision ID: root_0001
Revises:
Create Date: 2026-11-22
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import core.db.base

revision = "root_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "actions",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("start_time", core.db.base.UTCDateTime(), nullable=False),
        sa.Column("service", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("obj_type", sa.String(64), nullable=False),
        sa.Column("obj_id", sa.String(128), nullable=False),
        sa.Column("obj_name", sa.String(255), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("user", sa.String(255), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("tenant", sa.String(255), nullable=False),
        sa.Column("domain_id", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_actions")),
    )
    op.create_index("ix_actions_obj", "actions", ["obj_type", "obj_id"])
    op.create_index(op.f("ix_actions_start_time"), "actions", ["start_time"])
    op.create_index(op.f("ix_actions_tenant_id"), "actions", ["tenant_id"])
    op.create_index(op.f("ix_actions_user_id"), "actions", ["user_id"])
    op.create_table(
        "db_leases",
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("expires_at", core.db.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_db_leases")),
    )


def downgrade() -> None:
    op.drop_table("db_leases")
    op.drop_index(op.f("ix_actions_user_id"), table_name="actions")
    op.drop_index(op.f("ix_actions_tenant_id"), table_name="actions")
    op.drop_index(op.f("ix_actions_start_time"), table_name="actions")
    op.drop_index("ix_actions_obj", table_name="actions")
    op.drop_table("actions")
