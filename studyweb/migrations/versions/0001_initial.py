"""Initial schema: experiments, stimuli, participants, trials, clicks, events, save records,
fixation maps, admins (studyweb.db).

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('admins',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('password_hash', sa.String(length=256), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('username')
    )
    op.create_table('experiments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('task', sa.String(length=32), nullable=False),
    sa.Column('dataset_path', sa.Text(), nullable=False),
    sa.Column('settings', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('participants',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('experiment_id', sa.Integer(), nullable=False),
    sa.Column('token', sa.String(length=64), nullable=False),
    sa.Column('recruit_source', sa.String(length=16), nullable=False),
    sa.Column('recruit_id', sa.String(length=128), nullable=True),
    sa.Column('study_id', sa.String(length=128), nullable=True),
    sa.Column('session_id', sa.String(length=128), nullable=True),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('user_agent', sa.Text(), nullable=True),
    sa.Column('screen_w', sa.Integer(), nullable=True),
    sa.Column('screen_h', sa.Integer(), nullable=True),
    sa.Column('window_w', sa.Integer(), nullable=True),
    sa.Column('window_h', sa.Integer(), nullable=True),
    sa.Column('assignment_seed', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(), nullable=False),
    sa.Column('completed_at', sa.DateTime(), nullable=True),
    sa.Column('completion_code', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['experiment_id'], ['experiments.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token')
    )
    op.create_index(op.f('ix_participants_experiment_id'), 'participants', ['experiment_id'], unique=False)
    op.create_index('ix_participants_recruit', 'participants', ['experiment_id', 'recruit_id'], unique=False)
    op.create_table('stimuli',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('experiment_id', sa.Integer(), nullable=False),
    sa.Column('image_path', sa.Text(), nullable=False),
    sa.Column('pair_id', sa.String(length=128), nullable=False),
    sa.Column('side', sa.String(length=1), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('blurred_path', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['experiment_id'], ['experiments.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('experiment_id', 'pair_id', 'side', name='uq_stimuli_pair_side')
    )
    op.create_index(op.f('ix_stimuli_experiment_id'), 'stimuli', ['experiment_id'], unique=False)
    op.create_table('fixation_maps',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('stimulus_id', sa.Integer(), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('n_participants', sa.Integer(), nullable=False),
    sa.Column('n_points', sa.Integer(), nullable=False),
    sa.Column('participant_ids', sa.JSON(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('density', sa.LargeBinary(), nullable=False),
    sa.Column('built_at', sa.DateTime(), nullable=False),
    sa.Column('is_current', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['stimulus_id'], ['stimuli.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_fixation_maps_stimulus_id'), 'fixation_maps', ['stimulus_id'], unique=False)
    op.create_table('save_records',
    sa.Column('idempotency_key', sa.String(length=64), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('idempotency_key')
    )
    op.create_index(op.f('ix_save_records_participant_id'), 'save_records', ['participant_id'], unique=False)
    op.create_table('trials',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=False),
    sa.Column('stimulus_id', sa.Integer(), nullable=True),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('is_practice', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=True),
    sa.Column('ended_at', sa.DateTime(), nullable=True),
    sa.Column('duration_ms', sa.Float(), nullable=True),
    sa.Column('display_w', sa.Float(), nullable=True),
    sa.Column('display_h', sa.Float(), nullable=True),
    sa.Column('response_text', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['stimulus_id'], ['stimuli.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('participant_id', 'position', name='uq_trials_position')
    )
    op.create_index(op.f('ix_trials_participant_id'), 'trials', ['participant_id'], unique=False)
    op.create_index(op.f('ix_trials_stimulus_id'), 'trials', ['stimulus_id'], unique=False)
    op.create_table('clicks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('trial_id', sa.Integer(), nullable=False),
    sa.Column('x', sa.Float(), nullable=False),
    sa.Column('y', sa.Float(), nullable=False),
    sa.Column('t_ms', sa.Float(), nullable=False),
    sa.Column('display_w', sa.Float(), nullable=True),
    sa.Column('display_h', sa.Float(), nullable=True),
    sa.Column('idempotency_key', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['trial_id'], ['trials.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_clicks_trial_id', 'clicks', ['trial_id'], unique=False)
    op.create_table('events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=False),
    sa.Column('trial_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('t_ms', sa.Float(), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['trial_id'], ['trials.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_events_participant_id'), 'events', ['participant_id'], unique=False)
    op.create_index(op.f('ix_events_trial_id'), 'events', ['trial_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_events_trial_id'), table_name='events')
    op.drop_index(op.f('ix_events_participant_id'), table_name='events')
    op.drop_table('events')
    op.drop_index('ix_clicks_trial_id', table_name='clicks')
    op.drop_table('clicks')
    op.drop_index(op.f('ix_trials_stimulus_id'), table_name='trials')
    op.drop_index(op.f('ix_trials_participant_id'), table_name='trials')
    op.drop_table('trials')
    op.drop_index(op.f('ix_save_records_participant_id'), table_name='save_records')
    op.drop_table('save_records')
    op.drop_index(op.f('ix_fixation_maps_stimulus_id'), table_name='fixation_maps')
    op.drop_table('fixation_maps')
    op.drop_index(op.f('ix_stimuli_experiment_id'), table_name='stimuli')
    op.drop_table('stimuli')
    op.drop_index('ix_participants_recruit', table_name='participants')
    op.drop_index(op.f('ix_participants_experiment_id'), table_name='participants')
    op.drop_table('participants')
    op.drop_table('experiments')
    op.drop_table('admins')
