"""Idempotency keys belong to one participant, with a digest of the content they saved;
admin sessions kept on the server (so logout ends them).

save_records: primary key (participant_id, idempotency_key) instead of idempotency_key alone,
and a content_sha256 column (NULL for saves recorded before this revision). SQLite cannot
change a primary key in place, so the table is rebuilt (the same way on PostgreSQL).

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('save_records_new',
    sa.Column('participant_id', sa.Integer(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('content_sha256', sa.String(length=64), nullable=True),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('participant_id', 'idempotency_key')
    )
    op.execute("INSERT INTO save_records_new (participant_id, idempotency_key, kind, received_at)"
               " SELECT participant_id, idempotency_key, kind, received_at FROM save_records")
    op.drop_index(op.f('ix_save_records_participant_id'), table_name='save_records')
    op.drop_table('save_records')
    op.rename_table('save_records_new', 'save_records')

    op.create_table('admin_sessions',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('admin_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(), nullable=False),
    sa.Column('address', sa.String(length=64), nullable=True),
    sa.Column('user_agent', sa.String(length=300), nullable=True),
    sa.ForeignKeyConstraint(['admin_id'], ['admins.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_admin_sessions_admin_id'), 'admin_sessions', ['admin_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_admin_sessions_admin_id'), table_name='admin_sessions')
    op.drop_table('admin_sessions')

    op.create_table('save_records_old',
    sa.Column('idempotency_key', sa.String(length=64), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('idempotency_key')
    )
    # One row per key: a key two participants used keeps the first participant's record.
    op.execute("INSERT INTO save_records_old (idempotency_key, participant_id, kind, received_at)"
               " SELECT idempotency_key, MIN(participant_id), MIN(kind), MIN(received_at) FROM save_records"
               " GROUP BY idempotency_key")
    op.drop_table('save_records')
    op.rename_table('save_records_old', 'save_records')
    op.create_index(op.f('ix_save_records_participant_id'), 'save_records', ['participant_id'], unique=False)
