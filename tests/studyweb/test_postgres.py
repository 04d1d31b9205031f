"""studyweb on a real PostgreSQL server (the throwaway one from tests/conftest.py), each test on a
fresh database of its own: migrations on an empty database and against the models, idempotent
saves and the assignment rules under real concurrency (threads with their own sessions), and
the API, participant and security suites (test_api.py, test_participant.py, test_security.py)
run again here with `app` on PostgreSQL instead of SQLite."""
from __future__ import annotations

import importlib.util
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, inspect, select

from studyweb import db
from studyweb.assignment import AlreadyParticipated, StudyFull, assign
from studyweb.db.revisions import current_revision, head_revision
from studyweb.experiments import create_experiment

pytestmark = pytest.mark.postgres
H = "X-Participant-Token"


@pytest.fixture
def app(study_app_on, postgres_db):
    """The conftest `app` (experiment 'pilot', admin 'alice'), on a fresh PostgreSQL database:
    every fixture built on `app` (client, enrol, dbs, participant_of) follows it here."""
    return study_app_on(postgres_db)


@pytest.fixture
def engine(postgres_db):
    # Room for every thread of the concurrency tests to hold a connection at once.
    engine = db.make_engine(postgres_db, pool_size=25, max_overflow=0)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine):
    with db.session_factory(engine)() as session:
        yield session


@pytest.fixture
def make_experiment(session, dataset):
    """make_experiment(**settings) -> a committed experiment on the 3-pair dataset (6 stimuli)."""
    def make(name="exp", **settings):
        experiment = create_experiment(session, dataset.path, name, **settings)
        session.commit()
        return experiment
    return make


def test_migrations_reach_head_on_an_empty_database(postgres_database):
    url = postgres_database(migrated=False)
    assert current_revision(url) is None
    db.init_db(url)
    assert current_revision(url) == head_revision()
    db.init_db(url)  # already at head: a no-op, not an error
    assert current_revision(url) == head_revision()
    engine = db.make_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert set(db.Base.metadata.tables) <= tables


def test_migration_matches_models(postgres_database):
    url = postgres_database(migrated=False)
    db.init_db(url)
    engine = db.make_engine(url)
    try:
        with engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}),
                                    db.Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


def _participant(session, name="exp"):
    experiment = db.Experiment(name=name, settings={"observers": 3})
    session.add(experiment)
    session.flush()
    participant = db.Participant(experiment_id=experiment.id)
    session.add(participant)
    session.commit()
    return participant


def _save_records(session, key=None) -> int:
    query = select(func.count()).select_from(db.SaveRecord)
    if key is not None:
        query = query.where(db.SaveRecord.idempotency_key == key)
    return session.scalar(query)


def test_same_idempotency_key_twice_is_one_row(session):
    participant = _participant(session)
    assert db.record_save(session, "key-1", participant.id, "trial") is True
    session.commit()
    assert db.record_save(session, "key-1", participant.id, "trial") is False
    assert db.record_save(session, "key-2", participant.id, "trial") is True
    session.commit()
    assert _save_records(session) == 2


def test_a_second_claim_waits_for_the_first_and_then_skips(engine, session):
    """Two transactions claim one key: the second blocks on the first's uncommitted row, and
    once that commits it gets False (skip), not an error and not a second row."""
    participant = _participant(session)
    factory = db.session_factory(engine)
    first, second = factory(), factory()
    outcome = {}
    try:
        assert db.record_save(first, "same", participant.id, "trial") is True  # not committed yet

        def claim():
            outcome["second"] = db.record_save(second, "same", participant.id, "trial")
            second.commit()

        thread = threading.Thread(target=claim)
        thread.start()
        thread.join(timeout=0.5)
        assert thread.is_alive(), "the second claim did not wait for the first transaction"
        first.commit()
        thread.join(timeout=10)
        assert not thread.is_alive() and outcome == {"second": False}
    finally:
        first.close()
        second.close()
    assert _save_records(session, "same") == 1


def test_a_claim_rolled_back_frees_the_key(engine, session):
    participant = _participant(session)
    factory = db.session_factory(engine)
    with factory() as first:
        assert db.record_save(first, "retry-me", participant.id, "trial") is True
        first.rollback()  # the save failed half way: the key must not stay claimed
    with factory() as again:
        assert db.record_save(again, "retry-me", participant.id, "trial") is True
        again.commit()
    assert _save_records(session, "retry-me") == 1


def test_same_key_from_many_threads_at_once_applies_once(engine, session):
    participant = _participant(session)
    n = 12
    factory = db.session_factory(engine)
    barrier = threading.Barrier(n)
    claimed, errors = [], []

    def claim():
        with factory() as own:
            try:
                barrier.wait(timeout=10)
                claimed.append(db.record_save(own, "raced", participant.id, "trial"))
                own.commit()
            except Exception as exc:  # noqa: BLE001 — reported by the assertion below
                errors.append(repr(exc))

    _run_threads(claim, n)
    assert errors == []
    assert Counter(claimed) == {True: 1, False: n - 1}
    assert _save_records(session, "raced") == 1


def _run_threads(target, n, args_of=lambda i: ()):
    threads = [threading.Thread(target=target, args=args_of(i)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"


def _assign_concurrently(engine, experiment, participant_ids):
    """assign() for each participant in its own thread and session, all released at once;
    returns (outcomes by participant id: 'ok' | 'full' | 'repeat', unexpected errors)."""
    factory = db.session_factory(engine)
    barrier = threading.Barrier(len(participant_ids))
    outcomes, errors = {}, []

    def worker(participant_id):
        with factory() as own:
            exp = own.get(db.Experiment, experiment.id)
            participant = own.get(db.Participant, participant_id)
            try:
                barrier.wait(timeout=10)
                assign(own, exp, participant)
                own.commit()
                outcomes[participant_id] = "ok"
            except StudyFull:
                own.rollback()
                outcomes[participant_id] = "full"
            except AlreadyParticipated:
                own.rollback()
                outcomes[participant_id] = "repeat"
            except Exception as exc:  # noqa: BLE001 — reported by the caller's assertion
                errors.append(repr(exc))

    _run_threads(worker, len(participant_ids), lambda i: (participant_ids[i],))
    return outcomes, errors


def _new_participants(session, experiment, n, **kwargs):
    participants = [db.Participant(experiment_id=experiment.id, status="trials", **kwargs) for _ in range(n)]
    session.add_all(participants)
    session.commit()
    return [p.id for p in participants]


def _main_trials(session, experiment):
    return session.scalars(
        select(db.Trial).join(db.Participant, db.Participant.id == db.Trial.participant_id)
        .where(db.Participant.experiment_id == experiment.id, db.Trial.is_practice.is_(False))
    ).all()


def test_concurrent_assignments_never_exceed_the_cap(engine, session, make_experiment):
    experiment = make_experiment(per_participant=1, observers=1, allow_both_sides=True)
    outcomes, errors = _assign_concurrently(engine, experiment, _new_participants(session, experiment, 10))
    assert errors == []
    assert Counter(outcomes.values()) == {"ok": 6, "full": 4}
    session.expire_all()
    assert sorted(Counter(t.stimulus_id for t in _main_trials(session, experiment)).values()) == [1] * 6


def test_concurrent_assignments_fill_every_stimulus_to_m_and_at_most_one_over(engine, session, make_experiment):
    # 6 stimuli x M=3 = 18 observer slots, K=2 each, sides of a pair never together; 20 arrive at once.
    # Even workloads (studyweb.workload): the participant who takes the last open slot gets a full
    # session, topped up with a least-observed full image, so an image may end at M + 1.
    experiment = make_experiment(per_participant=2, observers=3)
    outcomes, errors = _assign_concurrently(engine, experiment, _new_participants(session, experiment, 20))
    assert errors == []
    session.expire_all()
    trials = _main_trials(session, experiment)
    observers = Counter(t.stimulus_id for t in trials)
    assert len(observers) == 6 and min(observers.values()) == 3 and max(observers.values()) <= 4
    by_participant: dict[int, list[db.Trial]] = {}
    for trial in trials:
        by_participant.setdefault(trial.participant_id, []).append(trial)
    assert set(by_participant) == {pid for pid, outcome in outcomes.items() if outcome == "ok"}
    for own in by_participant.values():
        pairs = [session.get(db.Stimulus, t.stimulus_id).pair_id for t in own]
        assert len(pairs) == len(set(pairs)) and len(own) == 2  # the same workload for everyone
    assert set(outcomes.values()) == {"ok", "full"} and len(outcomes) == 20


def test_one_recruit_id_arriving_many_times_at_once_gets_one_assignment(engine, session, make_experiment):
    experiment = make_experiment(per_participant=1, observers=20)
    ids = _new_participants(session, experiment, 6, recruit_source="prolific", recruit_id="SAME")
    outcomes, errors = _assign_concurrently(engine, experiment, ids)
    assert errors == []
    assert Counter(outcomes.values()) == {"ok": 1, "repeat": 5}


def test_flow_to_completion_on_postgres(enrol, app, participant_of):
    """The whole flow through the app, every save sent twice: stored once, in image pixels."""
    client, token = enrol(PROLIFIC_PID="pg-flow")
    state = client.get("/api/v1/session", headers={H: token}).get_json()
    for n, trial in enumerate(state["trials"]):
        body = {"idempotency_key": f"pg-{n}", "clicks": [{"x": 15.75, "y": 0.5 + n, "t_ms": 100.0 + n}],
                "display_w": 32.0, "display_h": 24.0, "done": True}
        answers = [client.post(trial["save_url"], headers={H: token}, json=body).get_json() for _ in range(2)]
        assert [a["duplicate"] for a in answers] == [False, True]
    assert client.post("/s/pilot/debrief", data={"comments": "fine"}).status_code == 302
    page = client.get("/s/pilot/complete")
    assert page.status_code == 200 and b"CODE123" in page.data
    participant = participant_of(token)
    assert participant.status == "complete" and participant.completed_at is not None
    assert [[(c.x, c.y, c.t_ms) for c in t.clicks] for t in participant.trials] == [
        [(15.75, 0.5 + n, 100.0 + n)] for n in range(3)]


@pytest.mark.parametrize("trial_id", [2**31, 2**63 - 1, 10**30])
def test_ids_beyond_the_integer_columns_are_4xx_not_500(started, trial_id):
    """PostgreSQL's INTEGER stops at 2**31 - 1 (SQLite's at 2**63 - 1): a larger id from a URL
    or a body is simply not one of the participant's trials."""
    client, token, _ = started
    r = client.post(f"/api/v1/trials/{trial_id}/save", headers={H: token},
                    json={"idempotency_key": "big", "clicks": []})
    assert 400 <= r.status_code < 500 and r.is_json
    r = client.post("/api/v1/events", headers={H: token},
                    json={"idempotency_key": "big-ev", "trial_id": trial_id, "events": []})
    assert 400 <= r.status_code < 500 and r.is_json
    assert client.get(f"/t/trials/{trial_id}/sharp.png", headers={H: token}).status_code == 404


@pytest.mark.parametrize("where", ["response_text", "event_data", "debrief", "recruit_id"])
def test_nul_characters_are_refused_or_stored_never_500(started, app, where):
    """PostgreSQL text cannot hold U+0000 (SQLite can): such input must not become a 500."""
    client, token, s = started
    tid = s["trials"][1]["id"]
    if where == "response_text":
        r = client.post(f"/api/v1/trials/{tid}/save", headers={H: token},
                        json={"idempotency_key": "nul1", "response_text": "a\x00b"})
    elif where == "event_data":
        r = client.post("/api/v1/events", headers={H: token},
                        json={"idempotency_key": "nul2", "events": [{"type": "resize", "data": {"k": "a\x00b"}}]})
    elif where == "debrief":
        r = client.post("/s/pilot/debrief", data={"comments": "a\x00b"})
    else:
        r = app.test_client().get("/s/pilot?PROLIFIC_PID=a%00b")
    assert r.status_code < 500, r.data[:300]


# --- The API, participant and security suites, collected again here against PostgreSQL ------


def _load_sibling(filename: str):
    """A sibling test module, imported afresh through pytest's assertion-rewriting import hook
    (test modules are not importable by name under --import-mode=importlib)."""
    path = Path(__file__).with_name(filename)
    for finder in sys.meta_path:
        spec = finder.find_spec(path.stem, [str(path.parent)])
        if spec is not None:
            break
    else:
        raise ImportError(f"cannot find {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Names already here (the `app` fixture above first of all) win; pytest then collects each suite's
# tests and fixtures as this module's, so they get this module's PostgreSQL `app` and its mark.
for _suite in ("test_api.py", "test_participant.py", "test_security.py"):
    for _name, _value in vars(_load_sibling(_suite)).items():
        if not _name.startswith("__") and _name not in globals():
            globals()[_name] = _value
del _suite, _name, _value
