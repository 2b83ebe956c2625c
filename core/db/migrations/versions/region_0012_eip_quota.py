"""quotas.eip / used_eip (EIPs on eip networks per project) and domain_quotas.eip

Revision ID: region_0012
Revises: region_0011
Create Date: 2026-12-07 08:30:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'region_0012'
down_revision = 'region_0011'
branch_labels = None
depends_on = ('cloud_0001',)  # eips.manager_id: a cloud's elastic IPs do not count


def upgrade() -> None:
    with op.batch_alter_table('quotas', schema=None) as batch_op:
        batch_op.add_column(sa.Column('eip', sa.BigInteger(), nullable=False, server_default='10'))
        batch_op.add_column(sa.Column('used_eip', sa.BigInteger(), nullable=False, server_default='0'))
    with op.batch_alter_table('domain_quotas', schema=None) as batch_op:
        batch_op.add_column(sa.Column('eip', sa.BigInteger(), nullable=False, server_default='-1'))
    # the EIPs projects already hold are their usage (a project without a row counts them when it gets one)
    op.execute("UPDATE quotas SET used_eip = (SELECT COUNT(*) FROM eips WHERE eips.tenant_id = quotas.tenant_id "
               "AND eips.manager_id IS NULL)")


def downgrade() -> None:
    with op.batch_alter_table('domain_quotas', schema=None) as batch_op:
        batch_op.drop_column('eip')
    with op.batch_alter_table('quotas', schema=None) as batch_op:
        batch_op.drop_column('used_eip')
        batch_op.drop_column('eip')
