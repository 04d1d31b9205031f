"""studyweb.qc and studyweb.maps: the QC rules by hand, maps from clicks, skipped rebuilds, the QC
decision stored with each map."""
import numpy as np
import pytest
from sqlalchemy import update

from studyweb import db
from studyweb.experiments import create_experiment
from studyweb.maps import build_maps, current_maps, map_sigma, recorded_flags
from studyweb.qc import apply_rules, iqr_bounds, run_qc

QC = {"min_clicks": 2, "iqr_k": 3.0, "max_focus_losses": 5}


@pytest.fixture
def experiment(session, dataset):
    experiment = create_experiment(session, dataset.path, "exp", sigma_px=1.5, per_participant=6,
                                   allow_both_sides=True)
    session.commit()
    return experiment


def add_participant(session, experiment, clicks_by_stimulus, status="complete", focus_losses=0):
    """A participant with one saved trial per stimulus index: {index: [(x, y), ...]}."""
    participant = db.Participant(experiment_id=experiment.id, status=status, source="simulated")
    session.add(participant)
    session.flush()
    for position, (index, clicks) in enumerate(clicks_by_stimulus.items()):
        trial = db.Trial(participant_id=participant.id, stimulus_id=experiment.stimuli[index].id,
                         position=position + 1, status="done")
        session.add(trial)
        session.flush()
        session.add_all(db.Click(trial_id=trial.id, x=x, y=y, t_ms=100.0 * k) for k, (x, y) in enumerate(clicks))
    session.add_all(db.Event(participant_id=participant.id, kind="focus_lost") for _ in range(focus_losses))
    session.commit()
    return participant


def test_iqr_rule_by_hand():
    # Means 2, 3, 3, 4, 40: Q1 = 3, Q3 = 4, IQR = 1, k = 3 → bounds [0, 7]: only 40 is out.
    assert iqr_bounds([2, 3, 3, 4, 40], 3.0) == (0.0, 7.0)
    counts = [2, 3, 3, 4, 40]
    trials = [(i + 1, 100 + i) for i in range(5)]
    rows = [(i + 1, 100 + i, 7, 1.0, 1.0, 0.0, 16, 12) for i, n in enumerate(counts) for _ in range(n)]
    result = apply_rules(trials, rows, {}, QC)
    assert result.kept == [100, 101, 102, 103]
    assert [(f.participant_id, f.excluded) for f in result.flags] == [(104, True)]
    assert "40.00 outside [0.00, 7.00]" in result.flags[0].reason
    assert len(result.x) == 12 and set(result.participant_id) == {100, 101, 102, 103}


def test_outside_clicks_short_trials_and_focus_losses_are_flagged():
    trials = [(1, 10), (2, 10), (3, 11)]
    rows = [
        (1, 10, 7, 1.0, 1.0, 0.0, 16, 12), (1, 10, 7, 16.0, 1.0, 0.0, 16, 12),  # x = width is outside
        (1, 10, 7, 2.0, 2.0, 0.0, 16, 12), (2, 10, 8, 3.0, 3.0, 0.0, 16, 12),   # trial 2: one click
        (3, 11, 7, 4.0, 4.0, 0.0, 16, 12), (3, 11, 7, 5.0, 5.0, 0.0, 16, 12),
    ]
    result = apply_rules(trials, rows, {11: 6}, QC)
    flags = [(f.participant_id, f.excluded, f.reason) for f in result.flags]
    assert flags == [
        (10, False, "1 click(s) outside the image dropped"),
        (10, False, "1 trial(s) with fewer than 2 clicks dropped"),
        (None, False, "IQR rule skipped: 2 participant(s) < 4"),
        (11, True, "6 focus losses > max 5"),
    ]
    assert result.kept == [10]
    np.testing.assert_array_equal(np.column_stack([result.x, result.y]), [[1, 1], [2, 2]])


def test_map_is_a_density_peaking_at_the_clicks(session, experiment):
    for _ in range(2):
        add_participant(session, experiment, {0: [(3.5, 4.5), (3.5, 4.5)], 1: [(10.2, 2.7), (11.0, 3.0)]})
    summary = build_maps(session, experiment)
    session.commit()
    assert (summary["built"], summary["empty"]) == (2, 4)
    maps = current_maps(session, experiment)
    density = maps[experiment.stimuli[0].id].density_array()
    assert density.shape == (12, 16) and density.dtype == np.float32
    assert density.sum() == pytest.approx(1.0, abs=1e-5)
    assert np.unravel_index(density.argmax(), density.shape) == (4, 3)
    first = maps[experiment.stimuli[0].id]
    assert (first.n_participants, first.n_points, first.params["sigma_px"]) == (2, 4, 1.5)


def test_rebuild_skipped_when_unchanged_and_done_when_data_or_params_change(session, experiment):
    add_participant(session, experiment, {0: [(3, 4), (5, 6)]})
    assert build_maps(session, experiment)["built"] == 1
    session.commit()
    assert build_maps(session, experiment)["skipped"] == 1
    add_participant(session, experiment, {0: [(8, 8), (9, 9)]})
    assert build_maps(session, experiment)["built"] == 1
    session.commit()
    assert build_maps(session, experiment, sigma_px=3.0)["built"] == 1
    session.commit()
    rows = session.query(db.FixationMap).filter_by(stimulus_id=experiment.stimuli[0].id).all()
    assert [m.is_current for m in rows] == [False, False, True]
    assert rows[-1].params["sigma_px"] == 3.0 and rows[-1].n_participants == 2


def test_excluded_participants_do_not_enter_maps(session, experiment):
    good = add_participant(session, experiment, {0: [(3, 4), (5, 6)]})
    add_participant(session, experiment, {0: [(12, 10), (12, 10)]}, focus_losses=9)
    summary = build_maps(session, experiment)
    session.commit()
    assert len(summary["excluded_participants"]) == 1
    assert current_maps(session, experiment)[experiment.stimuli[0].id].participant_ids == [good.id]
    assert run_qc(session, experiment).kept == [good.id]


def test_practice_and_unsaved_trials_are_ignored(session, experiment):
    participant = add_participant(session, experiment, {0: [(3, 4), (5, 6)]})
    session.add(db.Trial(participant_id=participant.id, stimulus_id=experiment.stimuli[1].id, position=0,
                         is_practice=True, status="done"))
    session.commit()
    practice = session.query(db.Trial).filter_by(is_practice=True).one()
    session.add_all([db.Click(trial_id=practice.id, x=1, y=1, t_ms=0), db.Click(trial_id=practice.id, x=2, y=2, t_ms=1)])
    session.commit()
    assert build_maps(session, experiment)["built"] == 1


def test_late_clicks_are_left_out_of_the_map_and_flagged(session, experiment):
    participant = add_participant(session, experiment, {0: [(3, 4), (5, 6)]})
    trial = session.query(db.Trial).filter_by(participant_id=participant.id).one()
    session.add(db.Click(trial_id=trial.id, x=12.0, y=10.0, t_ms=12_700.0, late=True))  # after a 10-s limit
    session.commit()
    result = run_qc(session, experiment)
    assert sorted(zip(result.x, result.y)) == [(3, 4), (5, 6)]
    assert (participant.id, "1 late click(s) left out", False) in [(f.participant_id, f.reason, f.excluded)
                                                                    for f in result.flags]
    build_maps(session, experiment)
    session.commit()
    points = current_maps(session, experiment)[experiment.stimuli[0].id].points_array()
    assert points[:, 1:3].tolist() == [[3, 4], [5, 6]]


def test_late_clicks_count_for_no_trial():
    # Two clicks in time and one late: the late one was left out by the query, so the trial has one.
    rows = [(1, 10, 7, 1.0, 1.0, 0.0, 16, 12)]
    result = apply_rules([(1, 10)], rows, {}, QC, late_clicks={10: 1})
    assert [(f.participant_id, f.reason) for f in result.flags][:2] == [
        (10, "1 late click(s) left out"), (10, "1 trial(s) with fewer than 2 clicks dropped")]


def test_build_maps_stores_each_participants_decision(session, experiment):
    good = add_participant(session, experiment, {0: [(3, 4), (5, 6)]})
    bad = add_participant(session, experiment, {0: [(12, 10), (12, 10)]}, focus_losses=9)
    idle = add_participant(session, experiment, {}, status="returned")  # no saved trial: nothing to decide
    build_maps(session, experiment)
    session.commit()
    session.expire_all()
    assert (good.qc_status, good.qc_reason) == ("kept", "")
    assert (bad.qc_status, bad.qc_reason) == ("excluded", "9 focus losses > max 5")
    assert (idle.qc_status, idle.qc_reason, idle.qc_decided_at) == (None, None, None)
    decided = good.qc_decided_at
    assert decided is not None
    build_maps(session, experiment)  # the same decision: made then, not now
    session.commit()
    session.expire_all()
    assert good.qc_decided_at == decided
    experiment.settings = {**experiment.settings, "qc": {**experiment.settings["qc"], "max_focus_losses": 20}}
    build_maps(session, experiment)  # new settings, a new decision, stored with the new maps
    session.commit()
    session.expire_all()
    assert (bad.qc_status, bad.qc_reason) == ("kept", "") and bad.qc_decided_at >= decided


def test_a_questionnaire_build_stores_the_catch_decision(session, experiment):
    """A participant who failed more catch trials than allowed is excluded, and the build says so
    on the participant (a questionnaire makes no maps)."""
    experiment.task = "questionnaire"
    experiment.settings = {**experiment.settings, "design": {"catch": {"every": 2, "max_failures": 0}}}
    people = [add_participant(session, experiment, {}) for _ in range(2)]
    for k, person in enumerate(people):
        trial = db.Trial(participant_id=person.id, position=1, status="done", task="choose_best",
                         spec={"catch": {"question": "catch", "expected": "A"}})
        session.add(trial)
        session.flush()
        session.add(db.Response(participant_id=person.id, trial_id=trial.id, task="choose_best", question="catch",
                                choice="original" if k == 0 else "hag", correct=k == 0, idempotency_key=f"k{k}"))
    session.commit()
    summary = build_maps(session, experiment)
    session.commit()
    session.expire_all()
    assert summary["built"] == 0
    assert [(p.qc_status, p.qc_reason) for p in people] == [
        ("kept", ""), ("excluded", "1 catch trial(s) failed > max 0")]


def test_sigma_defaults():
    assert map_sigma(640, {}) == 25.0 and map_sigma(320, {}) == 12.5
    assert map_sigma(640, {"px_per_degree": 30.0}) == 30.0
    assert map_sigma(640, {"sigma_px": 7.0, "px_per_degree": 30.0}) == 7.0
    assert map_sigma(640, {"sigma_px": 7.0}, sigma_px=2.0) == 2.0


def test_popout_density_favours_the_odd_one_out():
    from studyweb.simulate import popout_density, sample_clicks

    common = {"color": "gray", "shape": "cube", "material": "rubber", "size": "small"}
    objects = [{**common, "pixel_coords": [20 + 30 * i, 40, 5]} for i in range(3)]
    objects.append({"color": "red", "shape": "sphere", "material": "metal", "size": "large",
                    "pixel_coords": [140, 100, 5]})
    density = popout_density({"objects": objects}, (160, 120))
    assert density.shape == (120, 160) and density.sum() == pytest.approx(1.0)
    row, col = np.unravel_index(density.argmax(), density.shape)
    assert abs(row - 99.5) <= 0.5 and abs(col - 139.5) <= 0.5  # pixel j covers x in [j, j + 1)
    centre = popout_density(None, (160, 120))
    assert np.unravel_index(centre.argmax(), centre.shape) in {(59, 79), (59, 80), (60, 79), (60, 80)}
    clicks = sample_clicks(density, 50, np.random.default_rng(0))
    assert all(0 <= c["x"] < 160 and 0 <= c["y"] < 120 for c in clicks)
    assert [c["t_ms"] for c in clicks] == sorted(c["t_ms"] for c in clicks)


def test_a_map_keeps_the_points_and_flags_qc_decided(session, experiment):
    good = add_participant(session, experiment, {0: [(3.5, 4.5), (5, 6), (40, 4)], 1: [(1, 1), (2, 2)]})
    bad = add_participant(session, experiment, {0: [(12, 10), (12, 10)]}, focus_losses=9)
    build_maps(session, experiment)
    session.commit()
    maps = current_maps(session, experiment)
    first, second = maps[experiment.stimuli[0].id], maps[experiment.stimuli[1].id]
    # (participant, x, y, t_ms) of the clicks that went in: not the one outside, not the excluded participant's
    np.testing.assert_array_equal(first.points_array(), [[good.id, 3.5, 4.5, 0.0], [good.id, 5, 6, 100.0]])
    assert first.points_array().shape == (first.n_points, 4)
    reasons = {(f["participant_id"], f["excluded"]): f["reason"] for f in first.qc_flags}
    assert reasons[(bad.id, True)] == "9 focus losses > max 5"
    assert reasons[(good.id, False)] == "1 click(s) outside the image dropped"
    assert reasons[(None, False)].startswith("IQR rule skipped")
    assert all(f["participant_id"] != bad.id for f in second.qc_flags)  # bad never saw stimulus 1


def test_new_flags_on_unchanged_points_are_recorded_without_a_rebuild(session, experiment):
    add_participant(session, experiment, {0: [(3, 4), (5, 6)]})
    build_maps(session, experiment)
    session.commit()
    before = current_maps(session, experiment)[experiment.stimuli[0].id]
    late = add_participant(session, experiment, {0: [(12, 10), (12, 10)]}, focus_losses=9)
    summary = build_maps(session, experiment)
    session.commit()
    session.expire_all()
    after = current_maps(session, experiment)[experiment.stimuli[0].id]
    assert summary["built"] == 0 and after.id == before.id  # the same points: the same map
    assert {"participant_id": late.id, "reason": "9 focus losses > max 5", "excluded": True} in after.qc_flags


def test_a_map_from_before_stored_points_is_rebuilt_once(session, experiment):
    add_participant(session, experiment, {0: [(3, 4), (5, 6)]})
    build_maps(session, experiment)
    session.execute(update(db.FixationMap).values(points=None, qc_flags=None))
    session.commit()
    assert build_maps(session, experiment)["built"] == 1
    session.commit()
    assert build_maps(session, experiment)["skipped"] == 1
    assert current_maps(session, experiment)[experiment.stimuli[0].id].points_array() is not None


def test_recorded_flags_are_each_listed_once_experiment_first(session, experiment):
    participant = add_participant(session, experiment, {0: [(3, 4), (5, 6), (99, 1)], 1: [(3, 4), (5, 6)]})
    build_maps(session, experiment)
    session.commit()
    flags, legacy = recorded_flags(current_maps(session, experiment, arrays=False).values())
    assert [(f["participant_id"], f["reason"]) for f in flags] == [
        (None, "IQR rule skipped: 1 participant(s) < 4"), (participant.id, "1 click(s) outside the image dropped")]
    assert legacy == 0


def test_migration_0003_adds_and_removes_the_columns(tmp_path):
    from alembic import command
    from sqlalchemy import inspect, text

    from studyweb.db.revisions import alembic_config, upgrade

    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0002")
    engine = db.make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO experiments (id, name, title, description, task, dataset_path, settings,"
                                " status, created_at) VALUES (1, 'e', '', '', 'bubbleview', '', '{}', 'open',"
                                " '2024-01-01 00:00:00')"))
        connection.execute(text("INSERT INTO stimuli (id, experiment_id, image_path, pair_id, side, width, height)"
                                " VALUES (1, 1, 'a.png', 'a', 'x', 2, 1)"))
        connection.execute(text("INSERT INTO fixation_maps (stimulus_id, params, n_participants, n_points,"
                                " participant_ids, height, width, density, built_at, is_current) VALUES (1, '{}', 1,"
                                " 1, '[1]', 1, 2, :density, '2024-01-01 00:00:00', 1)"),
                           {"density": np.array([0.5, 0.5], np.float32).tobytes()})
    upgrade(url)
    with db.session_factory(engine)() as session:
        old_map = session.query(db.FixationMap).one()
        assert old_map.points_array() is None and old_map.qc_flags is None
        assert old_map.density_array().tolist() == [[0.5, 0.5]]
    command.downgrade(alembic_config(url), "0002")
    assert {"points", "qc_flags"}.isdisjoint(c["name"] for c in inspect(engine).get_columns("fixation_maps"))
    engine.dispose()
