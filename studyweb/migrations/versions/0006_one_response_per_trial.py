"""One response per trial and question, enforced by the database; the QC decision stored on
the participant when it is made; late BubbleView clicks kept, flagged.

- responses: a unique (trial_id, question). Rows that break it (several answers raced into one
  trial before this revision) are not lost: every row but the first (lowest id) of each
  (trial, question) is moved, whole, as JSON, into `duplicate_responses`, and the migration
  logs how many it moved from how many trials.
- participants: qc_status (kept | excluded | screened_out, NULL until decided), qc_reason and
  qc_decided_at.
- clicks: late (a click after the trial's time limit plus the grace; QC leaves it out).

Revision ID: 0006
Revises: 0005
"""
import json
import logging

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

log = logging.getLogger("studyweb.migrations")


def upgrade() -> None:
    op.create_table(
        'duplicate_responses',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('response_id', sa.Integer(), nullable=False),
        sa.Column('trial_id', sa.Integer(), nullable=False),
        sa.Column('question', sa.String(length=64), nullable=False),
        sa.Column('row', sa.Text(), nullable=False),
        sa.Column('moved_at', sa.DateTime(), nullable=False, server_default=sa.func.current_timestamp()),
        sa.PrimaryKeyConstraint('id'),
    )
    _move_duplicates(op.get_bind())
    with op.batch_alter_table('responses') as batch:
        batch.create_unique_constraint('uq_responses_trial_question', ['trial_id', 'question'])
    with op.batch_alter_table('participants') as batch:
        batch.add_column(sa.Column('qc_status', sa.String(length=16), nullable=True))
        batch.add_column(sa.Column('qc_reason', sa.Text(), nullable=True))
        batch.add_column(sa.Column('qc_decided_at', sa.DateTime(), nullable=True))
    with op.batch_alter_table('clicks') as batch:
        batch.add_column(sa.Column('late', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('clicks') as batch:
        batch.drop_column('late')
    with op.batch_alter_table('participants') as batch:
        batch.drop_column('qc_decided_at')
        batch.drop_column('qc_reason')
        batch.drop_column('qc_status')
    with op.batch_alter_table('responses') as batch:
        batch.drop_constraint('uq_responses_trial_question', type_='unique')
    op.drop_table('duplicate_responses')


def _move_duplicates(connection) -> None:
    responses = sa.table('responses', *(sa.column(name) for name in (
        'id', 'participant_id', 'trial_id', 'task', 'question', 'choice', 'rating', 'text', 'x', 'y', 'valid',
        'correct', 'rt_ms', 'shown_methods', 'payload', 'idempotency_key', 'created_at')))
    first = (sa.select(responses.c.trial_id, responses.c.question, sa.func.min(responses.c.id).label('keep'))
             .group_by(responses.c.trial_id, responses.c.question).having(sa.func.count() > 1).subquery())
    rows = connection.execute(
        sa.select(responses).join(first, (first.c.trial_id == responses.c.trial_id)
                                  & (first.c.question == responses.c.question))
        .where(responses.c.id != first.c.keep).order_by(responses.c.id)).mappings().all()
    if not rows:
        return
    moved = sa.table('duplicate_responses', sa.column('response_id'), sa.column('trial_id'), sa.column('question'),
                     sa.column('row'))
    connection.execute(moved.insert(), [
        {"response_id": row["id"], "trial_id": row["trial_id"], "question": row["question"],
         "row": json.dumps({key: _jsonable(value) for key, value in row.items()})} for row in rows])
    connection.execute(responses.delete().where(responses.c.id.in_([row["id"] for row in rows])))
    trials = len({row["trial_id"] for row in rows})
    message = (f"migration 0006: {len(rows)} duplicate response(s) in {trials} trial(s) moved to "
               "duplicate_responses (the first answer of each trial and question is kept)")
    log.warning(message)
    print(message)


def _jsonable(value):
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value if isinstance(value, (int, float, str, bool, list, dict, type(None))) else str(value)
