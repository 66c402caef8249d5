"""TOMP webhooks: one registration per MaaS account, and the outbox of events sent to it

Revision ID: 0007_open
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = '0007_open'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'tomp_webhooks',
        sa.Column('account_id', sa.String(length=64), nullable=False),
        sa.Column('callback_url', sa.String(length=500), nullable=False),
        sa.Column('secret', sa.String(length=200), nullable=False),
        sa.Column('maas_id', sa.String(length=200), nullable=False),
        sa.Column('language', sa.String(length=8), nullable=False),
        sa.Column('created_at', sa.TIMESTAMP(timezone=True), nullable=False),
        sa.Column('updated_at', sa.TIMESTAMP(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('account_id', name=op.f('pk_tomp_webhooks')),
    )
    op.create_table(
        'tomp_outbox',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('account_id', sa.String(length=64), nullable=False),
        sa.Column('tomp_id', sa.String(length=64), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('path', sa.String(length=300), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('eta_s', sa.Integer(), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('last_error', sa.String(length=100), nullable=True),
        sa.Column('created_at', sa.TIMESTAMP(timezone=True), nullable=False),
        sa.Column('updated_at', sa.TIMESTAMP(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_tomp_outbox')),
    )
    op.create_index('ix_tomp_outbox_status', 'tomp_outbox', ['status', 'updated_at'])
    op.create_index('ix_tomp_outbox_tomp_id', 'tomp_outbox', ['tomp_id', 'kind'])


def downgrade() -> None:
    op.drop_index('ix_tomp_outbox_tomp_id', table_name='tomp_outbox')
    op.drop_index('ix_tomp_outbox_status', table_name='tomp_outbox')
    op.drop_table('tomp_outbox')
    op.drop_table('tomp_webhooks')
