"""studyweb.assignment: least-observed first, the M cap, sides, active timeout, returning ids."""
import datetime as dt
import threading
from collections import Counter

import pytest
from sqlalchemy import select

from studyweb import db
from studyweb.assignment import (
    AlreadyParticipated, StudyFull, assign, expire_inactive, observer_counts,
)
from studyweb.experiments import create_experiment


@pytest.fixture
def engine(tmp_path):
    url = f"sqlite:///{tmp_path / 'instance' / 'gazelab.db'}"
    db.init_db(url)
    engine = db.make_engine(url)
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


def _new(session, experiment, **kwargs):
    participant = db.Participant(experiment_id=experiment.id, status="trials", **kwargs)
    session.add(participant)
    session.flush()
    return participant


def _labels(trials, session):
    return [session.get(db.Stimulus, t.stimulus_id).label for t in trials if not t.is_practice]


def test_least_observed_first_spreads_observers_evenly(session, make_experiment):
    experiment = make_experiment(per_participant=2, observers=10, allow_both_sides=True)
    for seed in range(3):
        assign(session, experiment, _new(session, experiment), rng_seed=seed)
        session.commit()
    assert sorted(observer_counts(session, experiment).values()) == [1] * 6
    fourth = assign(session, experiment, _new(session, experiment), rng_seed=9)
    assert len(_labels(fourth, session)) == 2


def test_practice_trial_comes_first_and_is_outside_the_participants_pairs(session, make_experiment):
    experiment = make_experiment(per_participant=2, observers=5)
    participant = _new(session, experiment)
    trials = assign(session, experiment, participant, rng_seed=1)
    assert [t.position for t in trials] == [0, 1, 2]
    assert trials[0].is_practice and not any(t.is_practice for t in trials[1:])
    pairs = {session.get(db.Stimulus, t.stimulus_id).pair_id for t in trials}
    assert len(pairs) == 3  # the practice image comes from the third pair
    assert participant.assignment_seed == 1
    assert assign(session, experiment, participant) == trials  # a reload resumes, no new trials


def test_two_sides_of_a_pair_never_go_to_one_participant(session, make_experiment):
    experiment = make_experiment(per_participant=3, observers=50)
    for seed in range(12):
        labels = _labels(assign(session, experiment, _new(session, experiment), rng_seed=seed), session)
        assert len(labels) == 3 and len({label.split("_")[0] for label in labels}) == 3
    both = make_experiment(name="both", per_participant=6, observers=50, allow_both_sides=True)
    assert len(_labels(assign(session, both, _new(session, both), rng_seed=0), session)) == 6


def test_observer_cap_then_study_full(session, make_experiment):
    experiment = make_experiment(per_participant=2, observers=1, allow_both_sides=True)
    for seed in range(3):
        assign(session, experiment, _new(session, experiment), rng_seed=seed)
    assert observer_counts(session, experiment) == {s.id: 1 for s in experiment.stimuli}
    with pytest.raises(StudyFull, match="1 observers"):
        assign(session, experiment, _new(session, experiment), rng_seed=5)


def test_inactive_participants_stop_counting_and_completed_ones_count(session, make_experiment):
    experiment = make_experiment(per_participant=6, observers=1, allow_both_sides=True, active_timeout_min=30)
    now = db.utcnow()
    done = _new(session, experiment)
    assign(session, experiment, done, now=now)
    done.status = "complete"
    stale = _new(session, experiment)
    session.flush()
    later = now + dt.timedelta(minutes=31)
    # `done` completed: it holds all 6 slots forever.
    with pytest.raises(StudyFull):
        assign(session, experiment, stale, now=later)
    done.status = "trials"  # unfinished and last seen 31 minutes ago: no longer an observer
    session.flush()
    assert observer_counts(session, experiment, now=later) == {}
    assert len(_labels(assign(session, experiment, stale, now=later), session)) == 6
    assert expire_inactive(session, experiment, now=later + dt.timedelta(minutes=1)) == 1
    session.refresh(done)
    assert done.status == "timed_out"


def test_returning_recruit_id_is_refused_unless_repeats_allowed(session, make_experiment):
    experiment = make_experiment(per_participant=1, observers=5)
    assign(session, experiment, _new(session, experiment, recruit_source="prolific", recruit_id="PID1"))
    with pytest.raises(AlreadyParticipated, match="PID1"):
        assign(session, experiment, _new(session, experiment, recruit_source="prolific", recruit_id="PID1"))
    assign(session, experiment, _new(session, experiment, recruit_source="prolific", recruit_id="PID2"))

    repeat = make_experiment(name="repeat", per_participant=1, observers=5, allow_repeat=True)
    first = assign(session, repeat, _new(session, repeat, recruit_id="W1"), rng_seed=0)
    second = assign(session, repeat, _new(session, repeat, recruit_id="W1"), rng_seed=0)
    pair = lambda trials: _labels(trials, session)[0].split("_")[0]  # noqa: E731
    assert pair(first) != pair(second)  # a repeat participant gets new images


def test_same_seed_same_order(session, make_experiment):
    experiment = make_experiment(per_participant=3, observers=5)
    first = _new(session, experiment)
    order = _labels(assign(session, experiment, first, rng_seed=42), session)
    first.status = "returned"  # no longer counts, so the next one sees the same counts
    session.flush()
    assert _labels(assign(session, experiment, _new(session, experiment), rng_seed=42), session) == order


def test_concurrent_assignments_never_exceed_the_cap(engine, session, make_experiment):
    experiment = make_experiment(per_participant=1, observers=1, allow_both_sides=True)
    ids = [_new(session, experiment).id for _ in range(10)]
    session.commit()
    outcomes = []
    factory = db.session_factory(engine)

    def worker(participant_id):
        with factory() as own:
            exp = own.get(db.Experiment, experiment.id)
            try:
                assign(own, exp, own.get(db.Participant, participant_id))
                own.commit()
                outcomes.append("ok")
            except StudyFull:
                own.rollback()
                outcomes.append("full")

    threads = [threading.Thread(target=worker, args=(pid,)) for pid in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Counter(outcomes) == {"ok": 6, "full": 4}
    trials = session.scalars(select(db.Trial).where(db.Trial.is_practice.is_(False))).all()
    assert sorted(Counter(t.stimulus_id for t in trials).values()) == [1] * 6
