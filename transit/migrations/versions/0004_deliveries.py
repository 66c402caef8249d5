"""deliveries: store orders on the minibuses, handover attempts, delivery windows

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('bookings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dropoff_earliest', sa.TIMESTAMP(timezone=True), nullable=True))
    op.create_table('deliveries',
    sa.Column('booking_id', sa.String(length=64), nullable=False),
    sa.Column('store_id', sa.String(length=64), nullable=False),
    sa.Column('order_number', sa.String(length=32), nullable=True),
    sa.Column('shopping_list', sa.Text(), nullable=True),
    sa.Column('temperature', sa.String(length=16), nullable=False),
    sa.Column('parcels_ready', sa.Integer(), nullable=True),
    sa.Column('ready_at', sa.TIMESTAMP(timezone=True), nullable=True),
    sa.Column('return_stop_id', sa.String(length=64), nullable=True),
    sa.Column('returned_at', sa.TIMESTAMP(timezone=True), nullable=True),
    sa.Column('handover_failures', sa.Integer(), nullable=False),
    sa.Column('locked_at', sa.TIMESTAMP(timezone=True), nullable=True),
    sa.Column('created_at', sa.TIMESTAMP(timezone=True), nullable=False),
    sa.Column('updated_at', sa.TIMESTAMP(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['booking_id'], ['bookings.id'], name=op.f('fk_deliveries_booking_id_bookings')),
    sa.ForeignKeyConstraint(['return_stop_id'], ['stops.id'], name=op.f('fk_deliveries_return_stop_id_stops')),
    sa.PrimaryKeyConstraint('booking_id', name=op.f('pk_deliveries'))
    )
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_deliveries_store', ['store_id', 'created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_deliveries_store')
    op.drop_table('deliveries')
    with op.batch_alter_table('bookings', schema=None) as batch_op:
        batch_op.drop_column('dropoff_earliest')
