"""timed plans: plan origin and stored ETAs on vehicles; broken promises on bookings

Revision ID: 0006
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('vehicles', schema=None) as batch_op:
        batch_op.add_column(sa.Column('plan_origin', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('etas', sa.JSON(), nullable=True))
    with op.batch_alter_table('bookings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('promise_broken_at', sa.TIMESTAMP(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('relaxed', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('bookings', schema=None) as batch_op:
        batch_op.drop_column('relaxed')
        batch_op.drop_column('promise_broken_at')
    with op.batch_alter_table('vehicles', schema=None) as batch_op:
        batch_op.drop_column('etas')
        batch_op.drop_column('plan_origin')
