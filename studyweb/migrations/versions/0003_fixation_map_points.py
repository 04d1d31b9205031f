"""Fixation maps keep the QC decision they were built with: the points that went in and the
build's QC flags about the stimulus' participants and the experiment.

fixation_maps: points (float64 bytes, rows of participant id, x, y, t_ms) and qc_flags (JSON
list), both NULL for maps built before this revision (the export then re-runs QC for them).

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('fixation_maps') as batch_op:
        batch_op.add_column(sa.Column('points', sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column('qc_flags', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('fixation_maps') as batch_op:
        batch_op.drop_column('qc_flags')
        batch_op.drop_column('points')
