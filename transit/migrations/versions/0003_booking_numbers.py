"""booking numbers, door-to-door addresses and notes, rider cards on accounts

Revision ID: 0003
Revises: 0006

Every booking gets a short unique number (transit/numbers.py); existing bookings are numbered
here. Door-to-door places carry an address, a booking may carry a note for the driver, and a
rider account may carry the number of its rider card (unique) so a kiosk or the desk can attach
a booking to it.
"""
import secrets

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0006'
branch_labels = None
depends_on = None

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # as transit/numbers.py (a migration stays frozen)


def upgrade() -> None:
    with op.batch_alter_table('bookings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('number', sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column('origin_address', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('destination_address', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('driver_note', sa.String(length=200), nullable=True))
    conn = op.get_bind()
    bookings = sa.table('bookings', sa.column('id', sa.String), sa.column('number', sa.String))
    used: set[str] = set()
    for (booking_id,) in conn.execute(sa.select(bookings.c.id)).all():
        number = ""
        while not number or number in used:
            number = "".join(secrets.choice(_ALPHABET) for _ in range(6))
        used.add(number)
        conn.execute(bookings.update().where(bookings.c.id == booking_id).values(number=number))
    with op.batch_alter_table('bookings', schema=None) as batch_op:
        batch_op.alter_column('number', existing_type=sa.String(length=8), nullable=False)
        batch_op.create_index('ix_bookings_number', ['number'], unique=True)
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rider_card', sa.String(length=64), nullable=True))
        batch_op.create_index('ix_accounts_rider_card', ['rider_card'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_index('ix_accounts_rider_card')
        batch_op.drop_column('rider_card')
    with op.batch_alter_table('bookings', schema=None) as batch_op:
        batch_op.drop_index('ix_bookings_number')
        batch_op.drop_column('driver_note')
        batch_op.drop_column('destination_address')
        batch_op.drop_column('origin_address')
        batch_op.drop_column('number')
