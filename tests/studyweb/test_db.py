"""studyweb.db: the schema round trip, migrations == models, idempotent saves, SQLite pragmas."""
import multiprocessing
import threading
import time

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import IntegrityError

from studyweb import db
from studyweb.db.revisions import current_revision, head_revision


@pytest.fixture
def url(tmp_path):
    url = f"sqlite:///{tmp_path / 'instance' / 'gazelab.db'}"
    db.init_db(url)
    return url


@pytest.fixture
def session(url):
    engine = db.make_engine(url)
    with db.session_factory(engine)() as session:
        yield session
    engine.dispose()


def _participant(session, **kwargs):
    experiment = db.Experiment(name="exp", settings={"observers": 3})
    session.add(experiment)
    session.flush()
    participant = db.Participant(experiment_id=experiment.id, **kwargs)
    session.add(participant)
    session.commit()
    return experiment, participant


def test_init_db_migrates_to_head_and_is_repeatable(url):
    assert current_revision(url) == head_revision()
    db.init_db(url)  # a second run is a no-op, not an error
    assert current_revision(url) == head_revision()


def test_migration_matches_models(url):
    engine = db.make_engine(url)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), db.Base.metadata)
    engine.dispose()
    assert diff == []


def test_sqlite_connections_use_wal_and_foreign_keys(session):
    assert session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    assert session.execute(text("PRAGMA foreign_keys")).scalar() == 1
    assert session.execute(text("PRAGMA busy_timeout")).scalar() == db.SQLITE_BUSY_TIMEOUT_MS
    session.add(db.Trial(participant_id=999, position=0))
    with pytest.raises(IntegrityError):
        session.commit()


def test_round_trip_of_every_table(session):
    experiment, participant = _participant(session, recruit_source="prolific", recruit_id="P1")
    stimulus = db.Stimulus(experiment_id=experiment.id, image_path="images/a_x.png", pair_id="a", side="x",
                           width=4, height=3)
    session.add(stimulus)
    session.flush()
    trial = db.Trial(participant_id=participant.id, stimulus_id=stimulus.id, position=0)
    session.add(trial)
    session.flush()
    session.add_all([
        db.Click(trial_id=trial.id, x=1.5, y=2.25, t_ms=120.0, display_w=400, display_h=300, idempotency_key="k"),
        db.Event(participant_id=participant.id, trial_id=trial.id, kind="focus_lost", t_ms=5.0, payload={"a": 1}),
    ])
    density = np.arange(12, dtype=np.float32).reshape(3, 4)
    density /= density.sum()
    session.add(db.FixationMap(stimulus_id=stimulus.id, params={"sigma_px": 2.0}, n_participants=1, n_points=1,
                               participant_ids=[participant.id], height=3, width=4, density=density.tobytes()))
    admin = db.Admin(username="root")
    admin.set_password("s3cret")
    session.add(admin)
    session.commit()
    session.expunge_all()

    loaded = session.scalars(select(db.Participant)).one()
    assert len(loaded.token) >= 40 and loaded.status == "consent" and loaded.source == "real"
    assert loaded.trials[0].stimulus.label == "a_x"
    assert loaded.trials[0].clicks[0].x == 1.5 and loaded.events[0].payload == {"a": 1}
    fixation_map = session.scalars(select(db.FixationMap)).one()
    np.testing.assert_array_equal(fixation_map.density_array(), density)
    admin = session.scalars(select(db.Admin)).one()
    assert admin.password_hash != "s3cret" and admin.check_password("s3cret") and not admin.check_password("x")


def test_tokens_are_unique(session):
    experiment, participant = _participant(session)
    session.add(db.Participant(experiment_id=experiment.id, token=participant.token))
    with pytest.raises(IntegrityError):
        session.commit()


def test_same_idempotency_key_twice_is_one_row(session):
    _, participant = _participant(session)
    assert db.record_save(session, "key-1", participant.id, "trial") is True
    session.commit()
    assert db.record_save(session, "key-1", participant.id, "trial") is False
    assert db.record_save(session, "key-2", participant.id, "trial") is True
    session.commit()
    assert session.scalar(select(db.SaveRecord).where(db.SaveRecord.idempotency_key == "key-1")) is not None
    assert len(session.scalars(select(db.SaveRecord)).all()) == 2


def test_idempotency_key_is_checked(session):
    _, participant = _participant(session)
    with pytest.raises(ValueError, match="1..64"):
        db.record_save(session, "k" * 65, participant.id, "trial")


def test_sqlite_writers_take_turns_on_one_file_lock(tmp_path):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'study.db'}")
    lock = db.write_lock(engine)
    assert db.write_lock(db.make_engine(f"sqlite:///{tmp_path}/./study.db")) is lock  # one per file
    assert lock.path == tmp_path / "study.db-writelock"
    ctx = multiprocessing.get_context("spawn")  # a process of its own, as a gunicorn worker is
    holding, release = ctx.Event(), ctx.Event()
    child = ctx.Process(target=_hold_write_lock, args=(str(tmp_path / "study.db"), holding, release))
    child.start()
    try:
        assert holding.wait(60)
        waited = []

        def wait_for_the_lock():
            with lock:
                waited.append(time.monotonic())

        waiter = threading.Thread(target=wait_for_the_lock)
        waiter.start()
        time.sleep(0.3)
        assert not waited  # blocked while the other process holds the lock
        released_at = time.monotonic()
        release.set()
        waiter.join(30)
        assert waited and waited[0] >= released_at
    finally:
        release.set()
        child.join(30)
    with lock:  # re-usable, and a thread's exception releases it
        pass
    with pytest.raises(RuntimeError), lock:
        raise RuntimeError("boom")
    with lock:
        pass


def _hold_write_lock(path, holding, release):
    from studyweb import db as child_db

    with child_db.write_lock(child_db.make_engine(f"sqlite:///{path}")):
        holding.set()
        release.wait(60)


def test_write_lock_is_a_no_op_without_a_sqlite_file():
    for url in ("sqlite://", "sqlite:///:memory:", "postgresql+psycopg://u@localhost/db"):
        lock = db.write_lock(create_engine(url))
        assert not isinstance(lock, db.SQLiteWriteLock)
        with lock:
            pass


def test_upgrading_a_study_with_data_keeps_every_row(tmp_path):
    """Migrations that rebuild a table on SQLite (batch mode: copy, drop, rename) must not let
    the drop cascade into the tables that point at it: a study at revision 0002 with
    participants, trials, clicks and maps upgrades to head with every row kept."""
    from sqlalchemy import text

    from studyweb.db.revisions import upgrade

    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0002")
    engine = db.make_engine(url)
    statements = [
        "INSERT INTO experiments (id, name, title, description, task, dataset_path, settings, status, created_at)"
        " VALUES (1, 'e', '', '', 'bubbleview', '', '{}', 'open', '2024-01-01')",
        "INSERT INTO stimuli (id, experiment_id, image_path, pair_id, side, width, height)"
        " VALUES (1, 1, 'a.png', 'a', 'x', 2, 1)",
        "INSERT INTO participants (id, experiment_id, token, recruit_source, source, status, created_at, last_seen_at)"
        " VALUES (1, 1, 't', 'anonymous', 'real', 'complete', '2024-01-01', '2024-01-01')",
        "INSERT INTO trials (id, participant_id, stimulus_id, position, is_practice, status)"
        " VALUES (1, 1, 1, 1, 0, 'done')",
        "INSERT INTO clicks (trial_id, x, y, t_ms) VALUES (1, 0.5, 0.5, 100)",
        "INSERT INTO events (participant_id, trial_id, kind, created_at) VALUES (1, 1, 'focus_lost', '2024-01-01')",
        "INSERT INTO fixation_maps (stimulus_id, params, n_participants, n_points, participant_ids, height, width,"
        " density, built_at, is_current) VALUES (1, '{}', 1, 1, '[1]', 1, 2, x'0000003f0000003f', '2024-01-01', 1)",
    ]
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement))
    tables = ("experiments", "stimuli", "participants", "trials", "clicks", "events", "fixation_maps")
    upgrade(url)
    with engine.connect() as connection:
        counts = {table: connection.execute(text(f"SELECT count(*) FROM {table}")).scalar() for table in tables}
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1  # back on for the app
    engine.dispose()
    assert counts == dict.fromkeys(tables, 1)
