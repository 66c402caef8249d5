"""rider_homes: a door-to-door rider's home (address and pin), set once by the rider

Revision ID: 0007_ui3
Revises: 0007_open
"""
import sqlalchemy as sa
from alembic import op

revision = '0007_ui3'
down_revision = '0007_open'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'rider_homes',
        sa.Column('account_id', sa.String(length=64), nullable=False),
        sa.Column('address', sa.String(length=200), nullable=False),
        sa.Column('lat', sa.Float(), nullable=False),
        sa.Column('lon', sa.Float(), nullable=False),
        sa.Column('updated_at', sa.TIMESTAMP(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_rider_homes_account_id_accounts')),
        sa.PrimaryKeyConstraint('account_id', name=op.f('pk_rider_homes')),
    )


def downgrade() -> None:
    op.drop_table('rider_homes')
