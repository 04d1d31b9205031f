"""Answers that are not clicks: a responses table (CodeCharts codes, questionnaire answers), and
per-trial task and spec columns on trials.

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('trials') as batch:
        batch.add_column(sa.Column('task', sa.String(length=32), nullable=True))
        batch.add_column(sa.Column('spec', sa.JSON(), nullable=True))
    op.create_table('responses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=False),
    sa.Column('trial_id', sa.Integer(), nullable=False),
    sa.Column('task', sa.String(length=32), nullable=False),
    sa.Column('question', sa.String(length=64), nullable=False),
    sa.Column('choice', sa.String(length=64), nullable=True),
    sa.Column('rating', sa.Float(), nullable=True),
    sa.Column('text', sa.Text(), nullable=True),
    sa.Column('x', sa.Float(), nullable=True),
    sa.Column('y', sa.Float(), nullable=True),
    sa.Column('valid', sa.Boolean(), nullable=False),
    sa.Column('correct', sa.Boolean(), nullable=True),
    sa.Column('rt_ms', sa.Float(), nullable=True),
    sa.Column('shown_methods', sa.JSON(), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=True),
    sa.Column('idempotency_key', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['trial_id'], ['trials.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('participant_id', 'idempotency_key', 'question', name='uq_responses_key')
    )
    op.create_index(op.f('ix_responses_participant_id'), 'responses', ['participant_id'], unique=False)
    op.create_index(op.f('ix_responses_trial_id'), 'responses', ['trial_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_responses_trial_id'), table_name='responses')
    op.drop_index(op.f('ix_responses_participant_id'), table_name='responses')
    op.drop_table('responses')
    with op.batch_alter_table('trials') as batch:
        batch.drop_column('spec')
        batch.drop_column('task')
