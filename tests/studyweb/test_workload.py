"""Workload and pacing (`studyweb.workload`, by which `studyweb.assignment` and
the tasks build the trials): every example design gives every participant the
same work until every image has its observers; per_participant larger than the pairs is an
error naming both numbers; every block with a catch task gets its catch trials (a warning names
a block that cannot); break, between-block and inter-trial screens go on the trials."""
from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest
from studyweb import db
from studyweb.assignment import StudyFull, assign, choose_stimuli, observer_counts
from studyweb.designs import DesignError, create_from_design, load_design
from studyweb.tasks import task_named
from studyweb.workload import (
    catch_count, catch_gaps, main_trials, pace_trials, participants_needed, workload_warnings,
)
from support.study_data import EXAMPLES, example_dataset, method_outputs

N_PAIRS = 26  # more than any example's per_participant (Gatys: 24); for none is units x observers a multiple of it
H = "X-Participant-Token"


@pytest.fixture(scope="module")
def examples_data(tmp_path_factory):
    """(folder, dataset of N_PAIRS pairs, {method: folder} of every example's methods)."""
    root = tmp_path_factory.mktemp("examples")
    ds = example_dataset(root, N_PAIRS)
    methods = {}
    for example in EXAMPLES:
        methods.update(method_outputs(example, root / "edits", ds))
    return root, ds, methods


@pytest.fixture
def session(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    db.init_db(url)
    engine = db.make_engine(url)
    with db.session_factory(engine)() as session:
        yield session
    engine.dispose()


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.stem)
def test_every_example_gives_every_participant_the_same_work_until_every_image_has_its_observers(
        example, examples_data, session):
    _, ds, all_methods = examples_data
    design = load_design(example, {m: all_methods[m] for m in _methods_of(example)})
    experiment = create_from_design(session, design, ds.path, "even")
    session.commit()
    values = design.values
    needed = participants_needed(values, N_PAIRS)
    workloads = []
    for n in range(needed + 3):
        participant = db.Participant(experiment_id=experiment.id, status="trials")
        session.add(participant)
        session.flush()
        try:
            trials = assign(session, experiment, participant, rng_seed=n)
        except StudyFull:
            session.rollback()
            break
        participant.status = "complete"
        session.commit()
        workloads.append(sum(not t.is_practice for t in trials))
    else:
        pytest.fail(f"still open after {needed + 3} participants ({needed} needed)")
    sentinel_every = (experiment.settings.get("codecharts") or {}).get("sentinel_every")
    assert set(workloads) == {main_trials(values, N_PAIRS, sentinel_every)}  # the same work for everyone
    assert needed <= len(workloads) <= needed + 1
    wanted = int(values["observers"])
    counts = observer_counts(session, experiment, by_block=experiment.task == "questionnaire")
    units = _units(experiment)
    assert units and all(wanted <= counts.get(unit, 0) <= wanted + 1 for unit in units)  # the target, at most 1 over


def test_choose_stimuli_tops_a_workload_up_with_the_least_observed_full_ones():
    class S:
        def __init__(self, id, pair_id):
            self.id, self.pair_id = id, pair_id

    stimuli = [S(1, "a"), S(2, "b"), S(3, "c"), S(4, "d")]
    counts = {1: 3, 2: 2, 3: 4, 4: 3}  # m = 3: only stimulus 2 still wants an observer
    rng = np.random.default_rng(0)
    assert [s.id for s in choose_stimuli(stimuli, counts, k=3, m=3, allow_both_sides=False, rng=rng)] == [2]
    chosen = choose_stimuli(stimuli, counts, k=3, m=3, allow_both_sides=False, rng=rng, top_up=True)
    assert chosen[0].id == 2 and {s.id for s in chosen[1:]} == {1, 4}  # then the least observed full ones


def test_per_participant_larger_than_the_pairs_is_an_error_naming_both(dataset, session):
    blocks = [{"name": "look", "task": "bubbleview"}]
    design = {"per_participant": 4, "observers": 2, "blocks": blocks}
    with pytest.raises(DesignError, match=r"per_participant: 4 images per block and participant, but stimuli selects"
                                          r" 3 pair\(s\).*at most 3"):
        create_from_design(session, design, dataset.path, "big")
    questions = {**design, "blocks": [{"name": "fid", "task": "rate", "image": "original"}]}
    with pytest.raises(DesignError, match=r"per_participant: 4 .* 3 pair\(s\)"):
        create_from_design(session, questions, dataset.path, "big2")
    with pytest.raises(DesignError, match=r"line 2: per_participant: 5 images .* at most 2"):
        load_design("stimuli: {pairs: [a, b]}\nper_participant: 5\nblocks: [{name: look, task: bubbleview}]\n")
    experiment = create_from_design(session, {**design, "per_participant": "all"}, dataset.path, "all")
    assert experiment.settings["per_participant"] == 3  # every pair: always possible


def test_every_block_with_a_catch_task_gets_catch_trials_and_a_warning_names_the_others(dataset, session, tmp_path,
                                                                                      caplog):
    methods = _method_dirs(tmp_path, dataset, ["edit"])
    design = {"per_participant": 3, "observers": 5, "methods": methods, "catch": {"every": 8, "max_failures": 0},
              "blocks": [{"name": "best", "task": "choose_best", "question": "Which is best?",
                          "candidates": ["original", "edit"], "reference": {"input": True, "target_map": False}},
                         {"name": "fidelity", "task": "rate", "scale": "fidelity"},
                         {"name": "realism", "task": "rate", "scale": "realism"}]}
    with caplog.at_level(logging.WARNING, logger="studyweb.designs"):
        experiment = create_from_design(session, design, dataset.path, "catches")
    session.commit()
    warnings = workload_warnings(experiment.settings["design"], 3)
    assert [w.split(" ")[1] for w in warnings] == ["'best'", "'fidelity'", "'realism'"]
    assert "fewer than catch.every − 1 = 7: it gets one catch trial all the same (1 in 4)" in warnings[0]
    assert "'realism' (rate, realism scale) has no catch trials" in warnings[2]
    assert all(w in caplog.text for w in warnings)  # logged when the experiment is made
    participant = db.Participant(experiment_id=experiment.id, status="trials")
    session.add(participant)
    session.flush()
    trials = assign(session, experiment, participant, rng_seed=3)
    catches = {name: sum(bool(t.spec["catch"]) for t in trials if t.spec["block"] == name)
               for name in ("best", "fidelity", "realism")}
    assert catches == {"best": 1, "fidelity": 1, "realism": 0}


def test_a_warning_says_when_catch_trials_can_exclude_no_one():
    design = {"per_participant": 12, "catch": {"every": 10, "max_failures": 1},
              "blocks": [{"name": "fidelity", "task": "rate", "scale": {"name": "fidelity"}}]}
    assert workload_warnings(design, 24) == ["catch: a participant gets 1 catch trial(s) and may fail 1 (max_failures),"
                                             " so catch trials exclude no one; lower max_failures or catch.every"]
    assert workload_warnings({**design, "catch": {"every": 5, "max_failures": 1}}, 24) == []  # 3 catch trials


def test_catch_trials_one_in_every_in_distinct_gaps():
    assert [catch_count(n, 8) for n in (0, 1, 3, 7, 10, 11, 24)] == [0, 1, 1, 1, 1, 2, 3]
    rng = np.random.default_rng(1)
    for n in range(1, 40):
        gaps = catch_gaps(n, 5, rng)
        assert len(gaps) == catch_count(n, 5) and gaps == sorted(set(gaps)) and 0 <= gaps[0] and gaps[-1] <= n


def test_breaks_block_screens_and_the_grey_interval_go_on_the_trials(dataset, session, tmp_path):
    methods = _method_dirs(tmp_path, dataset, ["edit"])
    design = {"per_participant": 3, "observers": 5, "methods": methods, "break_after": 2, "iti_ms": 500,
              "between_blocks": "Next: how realistic each image looks.",
              "blocks": [{"name": "fidelity", "task": "rate", "scale": "fidelity", "image": "edit"},
                         {"name": "realism", "task": "rate", "scale": "realism", "image": "edit"}]}
    experiment = create_from_design(session, design, dataset.path, "paced")
    participant = db.Participant(experiment_id=experiment.id, status="trials")
    session.add(participant)
    session.flush()
    trials = assign(session, experiment, participant, rng_seed=0)
    paces = [t.spec.get("pace") or {} for t in trials]
    assert [p.get("iti_ms") for p in paces] == [None] + [500] * 5  # every trial but the first
    screens = {t.position: (p["screen"]["kind"], p["screen"]["title"]) for t, p in zip(trials, paces)
               if "screen" in p}
    assert screens == {3: ("break", "Time for a short break"), 4: ("block", "Part 1 of 2 done"),
                       5: ("break", "Time for a short break")}
    assert paces[3]["screen"]["text"] == "Next: how realistic each image looks."
    assert paces[2]["screen"]["text"].startswith("You have done 2 of 6 trials.")


def test_pace_trials_leaves_trials_of_a_design_without_pacing_alone():
    trials = [db.Trial(position=i, is_practice=False, spec=None) for i in range(3)]
    assert [t.spec for t in pace_trials(trials, {"blocks": []})] == [None] * 3


@pytest.mark.parametrize(("extra", "message"), [
    ({"between_blocks": "Next part."}, r"between_blocks: this design has one block"),
    ({"iti_ms": -1}, r"iti_ms: expected an integer in \[0, 60000\]"),
    ({"break_after": 0}, r"break_after: expected an integer in \[1, 10000\]"),
    ({"pilot": {"catch_failure_rate": 1.5}}, r"pilot\.catch_failure_rate: expected a finite number in \[0, 1\]"),
    ({"pilot": {"dropout_rate": 0.1}}, r"pilot\.dropout_rate: unknown key"),
])
def test_pacing_and_pilot_keys_are_checked(extra, message):
    design = {"per_participant": 2, "observers": 2, "blocks": [{"name": "look", "task": "bubbleview"}], **extra}
    with pytest.raises(DesignError, match=message):
        load_design(design)


def test_the_page_gets_each_trial_s_pace(app, dataset, enrol_in, tmp_path):
    methods = _method_dirs(tmp_path, dataset, ["edit"])
    design = {"per_participant": 2, "observers": 5, "methods": methods, "iti_ms": 2000,
              "between_blocks": "Part two.", "completion_code": "P1",
              "blocks": [{"name": "a", "task": "rate", "scale": "fidelity", "image": "edit"},
                         {"name": "b", "task": "rate", "scale": "realism", "image": "edit"}]}
    session = app.extensions["studyweb.sessions"]()
    create_from_design(session, design, dataset.path, "paced")
    session.commit()
    session.close()
    client, token = enrol_in("paced")
    trials = client.get("/api/v1/session", headers={H: token}).get_json()["trials"]
    assert [t.get("pace") for t in trials] == [
        None, {"iti_ms": 2000}, {"iti_ms": 2000, "screen": {"kind": "block", "title": "Part 1 of 2 done",
                                                           "text": "Part two."}}, {"iti_ms": 2000}]


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_each_questionnaire_block_counts_its_own_observers(database, dataset, tmp_path, request):
    """Two blocks rating the same images (GazeShiftNet's fidelity and realism): a rating in one
    block is no observer of the other's question, on SQLite and PostgreSQL alike."""
    url = request.getfixturevalue("postgres_db") if database == "postgres" else f"sqlite:///{tmp_path / 'b.db'}"
    db.init_db(url)
    engine = db.make_engine(url)
    methods = _method_dirs(tmp_path, dataset, ["edit"])
    design = {"per_participant": 3, "observers": 1, "methods": methods,
              "blocks": [{"name": "fidelity", "task": "rate", "scale": "fidelity", "image": "edit"},
                         {"name": "realism", "task": "rate", "scale": "realism", "image": "edit"}]}
    try:
        with db.session_factory(engine)() as session:
            experiment = create_from_design(session, design, dataset.path, "blocks")
            person = db.Participant(experiment_id=experiment.id, status="complete")
            session.add(person)
            session.flush()
            assign(session, experiment, person, rng_seed=0)
            session.commit()
            edits = sorted(s.id for s in experiment.stimuli if s.method == "edit")
            assert observer_counts(session, experiment, by_block=True) == {(b, s): 1 for b in (0, 1) for s in edits}
            assert observer_counts(session, experiment) == {s: 1 for s in edits}
            with pytest.raises(StudyFull):  # 1 observer in each block: full
                assign(session, experiment, db.Participant(experiment_id=experiment.id, status="trials"))
    finally:
        engine.dispose()


def test_participants_needed_is_the_largest_block_s_units_times_observers_over_k():
    design = {"per_participant": 12, "observers": 25, "methods": {"a": "", "b": ""},
              "blocks": [{"name": "fid", "task": "rate", "image": "methods"}, {"name": "o", "task": "rate",
                                                                               "image": "original"}]}
    assert participants_needed(design, 24) == 100  # 48 images x 25 / 12
    assert participants_needed({**design, "per_participant": "all"}, 24) == 50


def _methods_of(example) -> list[str]:
    import yaml

    return list(yaml.safe_load(example.read_text()).get("methods") or {})


def _units(experiment) -> list:
    """The keys `observer_counts` counts for every unit that wants observers."""
    return task_named(experiment.task).units(experiment)


def _method_dirs(tmp_path, dataset, names) -> dict[str, str]:
    out = {}
    for k, name in enumerate(names):
        folder = tmp_path / "edits" / name
        folder.mkdir(parents=True)
        for pair_id in dataset.pairs["pair_id"]:
            cv2.imwrite(str(folder / f"{pair_id}.png"), np.full((12, 16, 3), 60 * (k + 1), np.uint8))
        out[name] = str(folder)
    return out
