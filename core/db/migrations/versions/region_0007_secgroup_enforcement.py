"""guestsecgroups (a server in several security groups), secgrouprules.peer_secgroup_id,
servers.src_ip_check/src_mac_check, hosts.secgroup_version (the agent's "secgroups changed" signal)

Revision ID: region_0007
Revises: region_0006
Create Date: 2026-12-06 22:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import core.db.base  # custom column types

revision = 'region_0007'
down_revision = 'region_0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'guestsecgroups',
        sa.Column('guest_id', sa.String(length=36), nullable=False),
        sa.Column('secgroup_id', sa.String(length=36), nullable=False),
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('created_at', core.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column('updated_at', core.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['secgroup_id'], ['secgroups.id'],
                                name=op.f('fk_guestsecgroups_secgroup_id_secgroups')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_guestsecgroups')),
        sa.UniqueConstraint('guest_id', 'secgroup_id', name='uq_guestsecgroups_guest_secgroup'),
    )
    with op.batch_alter_table('guestsecgroups', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_guestsecgroups_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_guestsecgroups_guest_id'), ['guest_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_guestsecgroups_secgroup_id'), ['secgroup_id'], unique=False)
    with op.batch_alter_table('secgrouprules', schema=None) as batch_op:
        batch_op.add_column(sa.Column('peer_secgroup_id', sa.String(length=36), nullable=True))
    with op.batch_alter_table('servers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('src_ip_check', sa.Boolean(), nullable=False, server_default=sa.true()))
        batch_op.add_column(sa.Column('src_mac_check', sa.Boolean(), nullable=False, server_default=sa.true()))
    with op.batch_alter_table('hosts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('secgroup_version', sa.Integer(), nullable=False, server_default='0'))
    # servers created before kept their one group in servers.secgroup_id: they are its members now
    op.execute("INSERT INTO guestsecgroups (id, guest_id, secgroup_id, created_at, updated_at) "
               "SELECT id, id, secgroup_id, created_at, updated_at FROM servers WHERE secgroup_id IS NOT NULL "
               "AND secgroup_id IN (SELECT id FROM secgroups)")


def downgrade() -> None:
    with op.batch_alter_table('hosts', schema=None) as batch_op:
        batch_op.drop_column('secgroup_version')
    with op.batch_alter_table('servers', schema=None) as batch_op:
        batch_op.drop_column('src_mac_check')
        batch_op.drop_column('src_ip_check')
    with op.batch_alter_table('secgrouprules', schema=None) as batch_op:
        batch_op.drop_column('peer_secgroup_id')
    op.drop_table('guestsecgroups')
