"""studyweb.export: maps and fixations into a dataset that validates; tidy CSVs."""
import cv2
import numpy as np
import pandas as pd
import pytest

from datagen.dataset import Dataset
from studyweb import db
from studyweb.experiments import create_experiment
from studyweb.export import export_csv, export_to_dataset
from studyweb.maps import build_maps


@pytest.fixture
def fresh_dataset(tmp_path, write_pair):
    """Two pairs of 16x12 images without maps."""
    ds = Dataset.create(tmp_path / "ds", "fresh", seed=1)
    ds.add_pairs([write_pair(ds.path, f"p{i}", with_maps=False) for i in range(2)])
    return ds


@pytest.fixture
def session(tmp_path):
    url = f"sqlite:///{tmp_path / 'gazelab.db'}"
    db.init_db(url)
    engine = db.make_engine(url)
    with db.session_factory(engine)() as session:
        yield session
    engine.dispose()


@pytest.fixture
def experiment(session, fresh_dataset):
    experiment = create_experiment(session, fresh_dataset.path, "exp", sigma_px=1.0, allow_both_sides=True)
    session.commit()
    labels = {s.label: s for s in experiment.stimuli}
    clicks = {"p0_x": [(2.5, 3.5), (4, 4)], "p0_y": [(12.5, 8.5), (13, 9)], "p1_x": [(7, 7), (8, 6)]}
    for n in range(2):
        participant = db.Participant(experiment_id=experiment.id, status="complete",
                                     source="simulated" if n else "real")
        session.add(participant)
        session.flush()
        for position, (label, points) in enumerate(clicks.items()):
            trial = db.Trial(participant_id=participant.id, stimulus_id=labels[label].id, position=position + 1,
                             status="done", duration_ms=10000.0)
            session.add(trial)
            session.flush()
            session.add_all(db.Click(trial_id=trial.id, x=x, y=y, t_ms=50.0 * k, display_w=32, display_h=24)
                            for k, (x, y) in enumerate(points + [(99, 99)]))  # one click outside
        session.add(db.Event(participant_id=participant.id, kind="resize", payload={"w": 800}))
    session.commit()
    build_maps(session, experiment)
    session.commit()
    return experiment


def test_export_into_dataset_validates_and_fills_map_columns(session, experiment, fresh_dataset):
    summary = export_to_dataset(session, experiment, fresh_dataset.path)
    assert (summary["maps"], summary["pairs"]) == (3, 2)
    reopened = Dataset.open(fresh_dataset.path)
    assert reopened.validate() == []
    pairs = reopened.pairs.set_index("pair_id")
    assert pairs.loc["p0", "x_map"] == "maps/p0_x.npy" and pairs.loc["p0", "y_map"] == "maps/p0_y.npy"
    assert pairs.loc["p0", "n_observers_x"] == 2 and pairs.loc["p0", "n_observers_y"] == 2
    assert pairs.loc["p0", "kl_xy"] > 1.0  # clicks in opposite corners: far-apart maps
    assert pairs.loc["p1", "x_map"] == "maps/p1_x.npy" and pairs.loc["p1", "y_map"] == ""
    assert pd.isna(pairs.loc["p1", "kl_xy"]) and pd.isna(pairs.loc["p1", "n_observers_y"])
    density = np.load(fresh_dataset.path / "maps/p0_x.npy")
    assert density.shape == (12, 16) and abs(density.sum() - 1) < 1e-5
    assert cv2.imread(str(fresh_dataset.path / "maps/p0_x.png"), cv2.IMREAD_UNCHANGED).max() == 255
    fixations = pd.read_csv(fresh_dataset.path / "fixations/p0_y.csv")
    assert list(fixations.columns) == ["participant_id", "x", "y", "t_ms"]
    assert len(fixations) == 4 and fixations["x"].max() < 16  # the outside click is not exported


def test_export_via_cli_passes_dataset_validate(session, experiment, fresh_dataset, run_cli):
    export_to_dataset(session, experiment)  # the experiment's own dataset by default
    code, out, _ = run_cli("dataset", "validate", fresh_dataset.path)
    assert code == 0 and out.startswith("ok: 2 pairs")


def test_export_without_maps_says_so(session, fresh_dataset):
    experiment = create_experiment(session, fresh_dataset.path, "empty")
    with pytest.raises(ValueError, match="build-maps empty"):
        export_to_dataset(session, experiment)


def test_export_csv_is_tidy(session, experiment, tmp_path):
    paths = export_csv(session, experiment, tmp_path / "csv")
    participants = pd.read_csv(paths["participants"])
    trials = pd.read_csv(paths["trials"])
    clicks = pd.read_csv(paths["clicks"])
    events = pd.read_csv(paths["events"])
    assert sorted(participants["source"]) == ["real", "simulated"]
    assert len(trials) == 6 and set(trials["pair_id"]) == {"p0", "p1"}
    assert len(clicks) == 18 and {"x", "y", "t_ms", "participant_id"} <= set(clicks.columns)
    assert list(events["kind"]) == ["resize", "resize"] and events["payload"][0] == '{"w": 800}'
