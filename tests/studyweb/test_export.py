"""studyweb.export: maps and fixations into a dataset that validates, never made worse without
force; tidy CSVs that are safe to open in a spreadsheet."""
import csv
import logging
import os

import cv2
import numpy as np
import pandas as pd
import pytest
from sqlalchemy import update

from analysis.eval_pairs import pixel_digest
from analysis.metrics import kld
from datadir import Dataset
from studyweb import db
from studyweb.experiments import create_experiment
from studyweb.export import FewerObservers, export_csv, export_to_dataset, spreadsheet_cell
from studyweb.maps import build_maps, current_maps
from studyweb.qc import run_qc

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@pytest.fixture
def fresh_dataset(tmp_path, write_pair):
    """Two pairs of 16x12 images without maps."""
    ds = Dataset.create(tmp_path / "ds", "fresh", seed=1)
    ds.add_pairs([write_pair(ds.path, f"p{i}", with_maps=False) for i in range(2)])
    return ds


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
    assert sorted(participants["source"]) == ["human", "simulated"]  # the study export's names (DESIGN.md §2)
    assert len(trials) == 6 and set(trials["pair_id"]) == {"p0", "p1"}
    assert len(clicks) == 18 and {"x", "y", "t_ms", "participant_id"} <= set(clicks.columns)
    assert list(events["kind"]) == ["resize", "resize"] and events["payload"][0] == '{"w": 800}'
    stimuli = pd.read_csv(paths["stimuli"], keep_default_na=False)
    assert len(stimuli) == len(experiment.stimuli) and set(stimuli["method"]) == {"original"}
    for row in stimuli.itertuples():  # the digest of the pixels of the file each stimulus is served from
        image = cv2.cvtColor(cv2.imread(row.image), cv2.COLOR_BGR2RGB)
        assert row.pixel_sha256 == pixel_digest(image) and (row.height, row.width) == image.shape[:2]


def add_participants(session, experiment, clicks_by_label, n=1):
    """n complete participants, each with one saved trial per stimulus label: {label: [(x, y), ...]}."""
    labels = {s.label: s for s in experiment.stimuli}
    for _ in range(n):
        participant = db.Participant(experiment_id=experiment.id, status="complete", source="simulated")
        session.add(participant)
        session.flush()
        for position, (label, points) in enumerate(clicks_by_label.items()):
            trial = db.Trial(participant_id=participant.id, stimulus_id=labels[label].id, position=position + 1,
                             status="done")
            session.add(trial)
            session.flush()
            session.add_all(db.Click(trial_id=trial.id, x=x, y=y, t_ms=40.0 * k) for k, (x, y) in enumerate(points))
    session.commit()


@pytest.fixture
def one_observer(session, dataset):
    """An experiment on the `dataset` fixture (maps of 7 observers on x, 8 on y) with one
    participant's map of 000000_x."""
    experiment = create_experiment(session, dataset.path, "one", sigma_px=1.0, allow_both_sides=True)
    session.commit()
    add_participants(session, experiment, {"000000_x": [(3, 3), (4, 5)]})
    build_maps(session, experiment)
    session.commit()
    return experiment


def _snapshot(path):
    """{relative path: bytes} of every file under a dataset directory."""
    return {p.relative_to(path): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_seven_observer_map_is_not_replaced_by_a_one_observer_map(session, one_observer, dataset):
    before = _snapshot(dataset.path)
    with pytest.raises(FewerObservers, match="--force") as refused:
        export_to_dataset(session, one_observer)
    assert refused.value.sides == [("000000", "x", 7, 1)]
    assert "000000_x 7 → 1" in str(refused.value)
    assert _snapshot(dataset.path) == before  # nothing written


def test_forced_export_replaces_the_map_and_recomputes_kl_from_the_other_side_on_disk(session, one_observer,
                                                                                     dataset):
    summary = export_to_dataset(session, one_observer, force=True)
    assert summary["replaced_fewer"] == [("000000", "x", 7, 1)]
    pairs = Dataset.open(dataset.path).pairs.set_index("pair_id")
    assert pairs.loc["000000", "n_observers_x"] == 1 and pairs.loc["000000", "n_observers_y"] == 8
    new_x = np.load(dataset.path / "maps/000000_x.npy")
    np.testing.assert_array_equal(new_x, current_maps(session, one_observer)[one_observer.stimuli[0].id]
                                  .density_array())
    y_on_disk = np.load(dataset.path / "maps/000000_y.npy")  # not rewritten: the fixture's uniform map
    assert pairs.loc["000000", "kl_xy"] == pytest.approx(kld(y_on_disk, new_x))
    assert pairs.loc["000000", "kl_xy"] > 0.5  # two clicks against a uniform map
    assert pd.isna(pairs.loc["000001", "kl_xy"])  # pairs not touched keep their columns


def test_one_refused_side_means_nothing_is_written(session, experiment, fresh_dataset):
    # p1_x already has a 7-observer map; the export would write p0_x, p0_y (new) and p1_x (2 observers).
    np.save(fresh_dataset.path / "maps/p1_x.npy", np.full((12, 16), 1 / 192, np.float32))
    fresh_dataset.update_pairs([{"pair_id": "p1", "x_map": "maps/p1_x.npy", "n_observers_x": 7}])
    before = _snapshot(fresh_dataset.path)
    with pytest.raises(FewerObservers) as refused:
        export_to_dataset(session, experiment)
    assert refused.value.sides == [("p1", "x", 7, 2)]
    assert _snapshot(fresh_dataset.path) == before
    assert not (fresh_dataset.path / "maps/p0_x.npy").exists()


def test_equal_observer_counts_are_replaced(session, experiment, fresh_dataset):
    export_to_dataset(session, experiment)
    summary = export_to_dataset(session, experiment)  # 2 observers in pairs.csv, 2 in the maps
    assert summary["maps"] == 3 and summary["replaced_fewer"] == []


def test_kl_xy_follows_the_maps_of_a_new_export(session, one_observer, dataset):
    # Only X maps come from this experiment: Y stays the dataset's map, and kl_xy must still follow X.
    export_to_dataset(session, one_observer, force=True)
    first = Dataset.open(dataset.path).pairs.set_index("pair_id").loc["000000", "kl_xy"]
    add_participants(session, one_observer, {"000000_x": [(12, 8), (13, 9)]}, n=3)
    assert build_maps(session, one_observer)["built"] == 1
    session.commit()
    export_to_dataset(session, one_observer)  # 4 participants now, more than the 1 in pairs.csv
    pairs = Dataset.open(dataset.path).pairs.set_index("pair_id")
    on_disk = kld(np.load(dataset.path / "maps/000000_y.npy"), np.load(dataset.path / "maps/000000_x.npy"))
    assert pairs.loc["000000", "n_observers_x"] == 4
    assert pairs.loc["000000", "kl_xy"] == pytest.approx(on_disk) and abs(pairs.loc["000000", "kl_xy"] - first) > 0.1


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664)])
def test_files_get_the_usual_mode(session, experiment, fresh_dataset, tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        export_to_dataset(session, experiment)
        csvs = export_csv(session, experiment, tmp_path / "csv")
    finally:
        os.umask(old)
    written = [fresh_dataset.path / f for f in ("maps/p0_x.npy", "maps/p0_x.png", "fixations/p0_x.csv",
                                                "pairs.csv", "dataset.json")] + list(csvs.values())
    assert {str(p.relative_to(p.parents[1])): oct(p.stat().st_mode & 0o777) for p in written} == \
           {str(p.relative_to(p.parents[1])): oct(mode) for p in written}
    assert not list(fresh_dataset.path.rglob(".*.tmp*"))  # no temporary file left behind


def test_fixations_follow_the_map_not_a_new_qc_run(session, experiment, fresh_dataset):
    export_to_dataset(session, experiment)
    exported = (fresh_dataset.path / "fixations/p0_y.csv").read_bytes()
    experiment.settings = {**experiment.settings, "qc": {"min_clicks": 5}}  # no trial has 5 clicks
    session.commit()
    assert len(run_qc(session, experiment).x) == 0  # a new QC run would keep nothing
    export_to_dataset(session, experiment)  # maps not rebuilt: the export follows them
    assert (fresh_dataset.path / "fixations/p0_y.csv").read_bytes() == exported
    assert len(pd.read_csv(fresh_dataset.path / "fixations/p0_y.csv")) == 4


def test_maps_from_before_stored_points_export_from_a_new_qc_run_and_say_so(session, experiment, fresh_dataset,
                                                                           caplog):
    session.execute(update(db.FixationMap).values(points=None, qc_flags=None))
    session.commit()
    session.expire_all()
    with caplog.at_level(logging.WARNING, logger="studyweb.export"):
        export_to_dataset(session, experiment)
    assert "predates stored points" in caplog.text and "p0_y" in caplog.text
    fixations = pd.read_csv(fresh_dataset.path / "fixations/p0_y.csv")
    assert len(fixations) == 4 and fixations["x"].max() < 16


def test_cli_refusal_is_one_line_exit_2_and_force_replaces(session, one_observer, dataset, url, run_cli):
    code, out, err = run_cli("study", "export", "one", "--to", dataset.path, "--db", url)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "000000_x 7 → 1" in err and "--force" in err
    assert Dataset.open(dataset.path).pairs.set_index("pair_id").loc["000000", "n_observers_x"] == 7
    code, out, _ = run_cli("study", "export", "one", "--to", dataset.path, "--force", "--db", url)
    assert code == 0 and "replaced 000000_x: 7 observers → 1" in out
    assert Dataset.open(dataset.path).pairs.set_index("pair_id").loc["000000", "n_observers_x"] == 1


INJECTIONS = ['=HYPERLINK("http://evil","x")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)", "\t=1", "\r=1",
              "'=already quoted"]


def test_csv_cells_cannot_start_a_formula(session, experiment, tmp_path):
    participant = db.Participant(experiment_id=experiment.id, recruit_id=INJECTIONS[0], study_id="-5",
                                 user_agent="@agent", status="complete")
    session.add(participant)
    session.flush()
    stimulus = experiment.stimuli[0]
    for position, text in enumerate(INJECTIONS):
        session.add(db.Trial(participant_id=participant.id, stimulus_id=stimulus.id, position=position,
                             status="done", response_text=text))
    session.flush()
    trial = session.query(db.Trial).filter_by(participant_id=participant.id, position=0).one()
    session.add(db.Click(trial_id=trial.id, x=-3.5, y=2.0, t_ms=-1.0))
    session.add(db.Event(participant_id=participant.id, kind="note", payload="=1+1"))
    session.add(db.Event(participant_id=participant.id, kind="note", payload={"text": "=1+1"}))
    session.commit()
    paths = export_csv(session, experiment, tmp_path / "csv")

    cells = {}
    for name, path in paths.items():
        with open(path, encoding="utf-8", newline="") as handle:
            cells[name] = list(csv.DictReader(handle))
        for row in cells[name]:
            for column, cell in row.items():
                if cell.startswith(FORMULA_STARTS):  # only numbers may start so
                    assert float(cell) < 0, (name, column, cell)
    recruit = [r["recruit_id"] for r in cells["participants"] if r["participant_id"] == str(participant.id)]
    assert recruit == ["'" + INJECTIONS[0]]
    texts = [r["response_text"] for r in cells["trials"] if r["participant_id"] == str(participant.id)]
    assert texts == ["'" + text for text in INJECTIONS]
    assert [t[1:] for t in texts] == INJECTIONS  # undone by dropping one leading quote
    click = [r for r in cells["clicks"] if r["participant_id"] == str(participant.id)][0]
    assert (click["x"], click["t_ms"]) == ("-3.5", "-1.0")
    assert ',-3.5,2.0,-1.0,' in paths["clicks"].read_text(encoding="utf-8")  # numbers stay bare numbers
    assert [r["payload"] for r in cells["events"] if r["kind"] == "note"] == ["'=1+1", '{"text": "=1+1"}']


def test_spreadsheet_cell_rule():
    assert [spreadsheet_cell(v) for v in ("=1", "+1", "-1", "@x", "\tx", "\rx", "'x", "a=1", "", None)] == \
           ["'=1", "'+1", "'-1", "'@x", "'\tx", "'\rx", "''x", "a=1", "", ""]
    assert [spreadsheet_cell(v) for v in (-3.5, -2, 0, True)] == [-3.5, -2, 0, True]
    assert spreadsheet_cell({"a": "=1"}) == '{"a": "=1"}' and spreadsheet_cell(["=1"]) == '["=1"]'


def test_a_map_on_one_side_only_exports_with_an_empty_kl(session, fresh_dataset):
    experiment = create_experiment(session, fresh_dataset.path, "xonly", sigma_px=1.0, allow_both_sides=True)
    session.commit()
    add_participants(session, experiment, {"p1_x": [(7, 7), (8, 6)]}, n=2)
    build_maps(session, experiment)
    session.commit()
    summary = export_to_dataset(session, experiment, fresh_dataset.path)  # was a TypeError after writing maps
    assert (summary["maps"], summary["pairs"]) == (1, 1)
    pairs = Dataset.open(fresh_dataset.path).pairs.set_index("pair_id")
    assert pairs.loc["p1", "n_observers_x"] == 2 and pd.isna(pairs.loc["p1", "kl_xy"])
    assert pairs.loc["p1", "x_map"] == "maps/p1_x.npy" and (fresh_dataset.path / "maps/p1_x.npy").is_file()


def test_an_export_that_fails_midway_changes_nothing(session, one_observer, dataset, monkeypatch):
    before = _snapshot(dataset.path)

    def broken(self, rows):
        raise OSError("disk full")

    monkeypatch.setattr(Dataset, "update_pairs", broken)
    with pytest.raises(OSError, match="disk full"):
        export_to_dataset(session, one_observer, force=True)
    assert _snapshot(dataset.path) == before  # no map written without its observer counts, no staged file left
    monkeypatch.undo()
    with pytest.raises(FewerObservers):  # so the guard still holds afterwards
        export_to_dataset(session, one_observer)


def _rows(path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_participants_csv_holds_the_decision_build_maps_stored_not_a_new_qc_run(session, experiment, tmp_path,
                                                                              monkeypatch):
    first, second = sorted(p.id for p in experiment.participants)
    session.add(db.Event(participant_id=first, kind="focus_lost"))
    experiment.settings = {**experiment.settings, "qc": {**experiment.settings["qc"], "max_focus_losses": 0}}
    session.commit()
    assert first not in run_qc(session, experiment).kept  # a new QC run would now exclude the first

    def no_qc(*args, **kwargs):
        raise AssertionError("the CSV export ran QC")

    with monkeypatch.context() as patched:
        patched.setattr("studyweb.qc.run_qc", no_qc)
        rows = _rows(export_csv(session, experiment, tmp_path / "before")["participants"])
    assert [(r["participant_id"], r["qc_status"], r["qc_reason"]) for r in rows] == [
        (str(first), "kept", ""), (str(second), "kept", "")]  # as the maps were built
    build_maps(session, experiment)
    session.commit()
    rows = _rows(export_csv(session, experiment, tmp_path / "after")["participants"])
    assert [(r["qc_status"], r["qc_reason"]) for r in rows] == [("excluded", "1 focus losses > max 0"),
                                                                ("kept", "")]
    decided = pd.Timestamp(rows[0]["qc_decided_at"])
    assert decided.tzinfo is not None and decided.utcoffset().total_seconds() == 0


def test_a_participant_never_decided_has_an_empty_qc_status(session, experiment, tmp_path):
    session.add(db.Participant(experiment_id=experiment.id, status="returned"))
    session.commit()
    rows = _rows(export_csv(session, experiment, tmp_path / "csv")["participants"])
    assert [r["qc_status"] for r in rows] == ["kept", "kept", ""] and rows[2]["qc_decided_at"] == ""


def test_every_time_in_the_csvs_is_iso_8601_utc(session, experiment, tmp_path):
    import datetime as dt

    session.execute(update(db.Trial).values(started_at=dt.datetime(2026, 3, 1, 12, 0, 0, 250000),
                                            ended_at=dt.datetime(2026, 3, 1, 12, 0, 10)))
    session.execute(update(db.Participant).values(completed_at=dt.datetime(2026, 3, 1, 12, 5)))
    session.commit()
    paths = export_csv(session, experiment, tmp_path / "csv")
    columns = {"participants": ["created_at", "last_seen_at", "completed_at", "qc_decided_at"],
               "trials": ["started_at", "ended_at"], "events": ["created_at"]}
    for name, names in columns.items():
        for row in _rows(paths[name]):
            for column in names:
                value = dt.datetime.fromisoformat(row[column])
                assert value.utcoffset() == dt.timedelta(0), (name, column, row[column])
    trial = _rows(paths["trials"])[0]
    assert trial["started_at"] == "2026-03-01T12:00:00.250000+00:00"


def test_clicks_csv_says_which_clicks_were_late(session, experiment, tmp_path):
    trial = session.query(db.Trial).order_by(db.Trial.id).first()
    session.add(db.Click(trial_id=trial.id, x=1.0, y=1.0, t_ms=12_700.0, late=True))
    session.commit()
    clicks = _rows(export_csv(session, experiment, tmp_path / "csv")["clicks"])
    assert [c["t_ms"] for c in clicks if c["late"] == "True"] == ["12700.0"]
    assert sum(c["late"] == "False" for c in clicks) == 18


def test_bubbleview_descriptions_are_rows_of_responses_csv(session, experiment, tmp_path):
    import datetime as dt

    trials = session.query(db.Trial).order_by(db.Trial.id).all()
    ended = dt.datetime(2026, 3, 1, 12, 0, 10)
    trials[0].response_text, trials[0].ended_at = "=a red cube on the left", ended
    trials[4].response_text = "   "  # a description of nothing: a row, not valid
    session.commit()
    rows = _rows(export_csv(session, experiment, tmp_path / "csv")["responses"])
    assert len(rows) == 2 and {r["task"] for r in rows} == {"bubbleview"}
    assert {r["question"] for r in rows} == {"describe"}
    first = rows[0]
    stimulus = session.get(db.Stimulus, trials[0].stimulus_id)
    assert first["text"] == "'=a red cube on the left"  # spreadsheet-safe
    assert (first["trial_id"], first["stimulus_id"], first["pair_id"], first["side"], first["method"]) == (
        str(trials[0].id), str(stimulus.id), stimulus.pair_id, stimulus.side, "original")
    assert first["source"] == "human" and first["valid"] == "True" and first["rt_ms"] == ""
    assert first["created_at"] == "2026-03-01T12:00:10+00:00" and first["is_practice"] == "False"
    assert rows[1]["valid"] == "False" and rows[1]["source"] == "simulated"
