"""riders signed in by phone, one-time codes, family links, favourites, sent notices

Revision ID: 0005
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0002'
branch_labels = None
depends_on = None

TS = sa.TIMESTAMP(timezone=True)


def upgrade() -> None:
    op.create_table(
        'riders',
        sa.Column('account_id', sa.String(64), nullable=False),
        sa.Column('phone', sa.String(20), nullable=False),
        sa.Column('line_user_id', sa.String(64), nullable=True),
        sa.Column('near_minutes', sa.Integer(), nullable=False),
        sa.Column('created_at', TS, nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_riders_account_id_accounts')),
        sa.PrimaryKeyConstraint('account_id', name=op.f('pk_riders')),
        sa.UniqueConstraint('phone', name=op.f('uq_riders_phone')),
        sa.UniqueConstraint('line_user_id', name=op.f('uq_riders_line_user_id')),
    )
    op.create_table(
        'one_time_codes',
        sa.Column('id', sa.String(64), nullable=False),
        sa.Column('purpose', sa.String(16), nullable=False),
        sa.Column('subject', sa.String(64), nullable=False),
        sa.Column('code_hash', sa.String(64), nullable=False),
        sa.Column('data', sa.JSON(), nullable=False),
        sa.Column('created_at', TS, nullable=False),
        sa.Column('expires_at', TS, nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('used_at', TS, nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_one_time_codes')),
    )
    with op.batch_alter_table('one_time_codes', schema=None) as batch_op:
        batch_op.create_index('ix_one_time_codes_subject', ['purpose', 'subject', 'created_at'], unique=False)
        batch_op.create_index('ix_one_time_codes_hash', ['purpose', 'code_hash'], unique=False)
    op.create_table(
        'family_links',
        sa.Column('id', sa.String(64), nullable=False),
        sa.Column('guardian_id', sa.String(64), nullable=False),
        sa.Column('member_id', sa.String(64), nullable=False),
        sa.Column('consent', sa.String(16), nullable=False),
        sa.Column('consented_by', sa.String(64), nullable=False),
        sa.Column('created_at', TS, nullable=False),
        sa.Column('revoked_at', TS, nullable=True),
        sa.ForeignKeyConstraint(['guardian_id'], ['accounts.id'], name=op.f('fk_family_links_guardian_id_accounts')),
        sa.ForeignKeyConstraint(['member_id'], ['accounts.id'], name=op.f('fk_family_links_member_id_accounts')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_family_links')),
        sa.UniqueConstraint('guardian_id', 'member_id', name='uq_family_links_pair'),
    )
    op.create_table(
        'favourites',
        sa.Column('id', sa.String(64), nullable=False),
        sa.Column('account_id', sa.String(64), nullable=False),
        sa.Column('label', sa.String(100), nullable=False),
        sa.Column('origin_stop_id', sa.String(64), nullable=False),
        sa.Column('destination_stop_id', sa.String(64), nullable=False),
        sa.Column('party_size', sa.Integer(), nullable=False),
        sa.Column('wheelchairs', sa.Integer(), nullable=False),
        sa.Column('created_at', TS, nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_favourites_account_id_accounts')),
        sa.ForeignKeyConstraint(['origin_stop_id'], ['stops.id'], name=op.f('fk_favourites_origin_stop_id_stops')),
        sa.ForeignKeyConstraint(['destination_stop_id'], ['stops.id'],
                                name=op.f('fk_favourites_destination_stop_id_stops')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_favourites')),
    )
    with op.batch_alter_table('favourites', schema=None) as batch_op:
        batch_op.create_index('ix_favourites_account', ['account_id'], unique=False)
    op.create_table(
        'sent_notices',
        sa.Column('key', sa.String(200), nullable=False),
        sa.Column('account_id', sa.String(64), nullable=False),
        sa.Column('kind', sa.String(32), nullable=False),
        sa.Column('channel', sa.String(16), nullable=False),
        sa.Column('status', sa.String(16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('booking_id', sa.String(64), nullable=True),
        sa.Column('created_at', TS, nullable=False),
        sa.Column('updated_at', TS, nullable=False),
        sa.PrimaryKeyConstraint('key', name=op.f('pk_sent_notices')),
    )


def downgrade() -> None:
    op.drop_table('sent_notices')
    with op.batch_alter_table('favourites', schema=None) as batch_op:
        batch_op.drop_index('ix_favourites_account')
    op.drop_table('favourites')
    op.drop_table('family_links')
    with op.batch_alter_table('one_time_codes', schema=None) as batch_op:
        batch_op.drop_index('ix_one_time_codes_hash')
        batch_op.drop_index('ix_one_time_codes_subject')
    op.drop_table('one_time_codes')
    op.drop_table('riders')
