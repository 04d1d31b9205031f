"""Stimuli can be a method's output of a pair's image: a method column ('' for the image as
rendered), part of the stimulus' identity with the pair and side.

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('stimuli') as batch:
        batch.add_column(sa.Column('method', sa.String(length=64), server_default='', nullable=False))
        batch.drop_constraint('uq_stimuli_pair_side', type_='unique')
        batch.create_unique_constraint('uq_stimuli_version', ['experiment_id', 'pair_id', 'side', 'method'])


def downgrade() -> None:
    op.execute("DELETE FROM stimuli WHERE method != ''")
    with op.batch_alter_table('stimuli') as batch:
        batch.drop_constraint('uq_stimuli_version', type_='unique')
        batch.create_unique_constraint('uq_stimuli_pair_side', ['experiment_id', 'pair_id', 'side'])
        batch.drop_column('method')
