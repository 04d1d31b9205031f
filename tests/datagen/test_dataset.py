import json

import cv2
import numpy as np
import pandas as pd
import pytest

from datadir import PAIR_COLUMNS, Dataset


def test_round_trip_create_add_reopen_validate(dataset):
    reopened = Dataset.open(dataset.path)
    assert reopened.name == "tiny" and reopened.settings == {"seed": 3}
    table = reopened.pairs
    assert list(table.columns) == PAIR_COLUMNS
    assert table["pair_id"].tolist() == ["000000", "000001", "000002"]  # ids stay strings
    assert table["n_observers_x"].tolist() == [7, 7, 7]
    assert reopened.validate() == []
    meta = json.loads((dataset.path / "dataset.json").read_text())
    assert meta["splits"] == {"train": 3, "val": 0, "test": 0} and meta["n_pairs"] == 3


def test_add_pairs_is_atomic_and_rejects_duplicates(dataset):
    before = (dataset.path / "pairs.csv").read_bytes()
    with pytest.raises(ValueError, match="000001"):
        dataset.add_pairs([{"pair_id": "000001", "split": "val"}])
    with pytest.raises(ValueError, match="unknown pairs.csv columns"):
        dataset.add_pairs([{"pair_id": "new", "colour": "red"}])
    assert (dataset.path / "pairs.csv").read_bytes() == before
    assert not [p for p in dataset.path.iterdir() if p.name.endswith(".tmp")]


def test_update_pairs_sets_columns(dataset):
    dataset.update_pairs([{"pair_id": "000002", "n_observers_y": 15, "kl_xy": 0.4}])
    table = Dataset.open(dataset.path).pairs.set_index("pair_id")
    assert table.loc["000002", "n_observers_y"] == 15 and table.loc["000002", "kl_xy"] == pytest.approx(0.4)
    assert table.loc["000001", "n_observers_y"] == 8
    with pytest.raises(ValueError, match="nope"):
        dataset.update_pairs([{"pair_id": "nope", "kl_xy": 1.0}])


def test_path_of(dataset):
    assert dataset.path_of("000001", "mask", "y") == dataset.path / "masks/000001_y.png"
    assert dataset.path_of("000001", "scene") == dataset.path / "scenes/000001.json"
    with pytest.raises(ValueError, match="kind 'depth'"):
        dataset.path_of("000001", "depth")
    with pytest.raises(ValueError, match="side 'z'"):
        dataset.path_of("000001", "image", "z")


def test_create_refuses_an_existing_dataset(dataset):
    with pytest.raises(FileExistsError, match="already holds a dataset"):
        Dataset.create(dataset.path, "other")


def test_open_errors(tmp_path):
    with pytest.raises(ValueError, match="dataset.json is missing"):
        Dataset.open(tmp_path)
    (tmp_path / "dataset.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        Dataset.open(tmp_path)


def _kinds(dataset):
    return {(p.pair_id, p.kind) for p in Dataset.open(dataset.path).validate()}


def test_validate_missing_and_unreadable_files(dataset):
    (dataset.path / "images/000000_y.png").unlink()
    (dataset.path / "masks/000001_x.png").write_text("garbage")
    assert _kinds(dataset) == {("000000", "missing"), ("000001", "unreadable")}


def test_validate_size_mismatches(dataset, write_pair):
    write_pair(dataset.path, "000000", size=(16, 12))
    cv2.imwrite(str(dataset.path / "images/000000_y.png"), np.zeros((10, 16, 3), np.uint8))
    cv2.imwrite(str(dataset.path / "masks/000001_x.png"), np.zeros((12, 15), np.uint8))
    np.save(dataset.path / "maps/000002_y.npy", np.full((12, 10), 1 / 120, np.float32))
    problems = Dataset.open(dataset.path).validate()
    assert {(p.pair_id, p.kind) for p in problems} == {("000000", "size"), ("000001", "size"), ("000002", "size")}


def test_validate_mask_ids_not_in_scene(dataset, write_pair):
    write_pair(dataset.path, "000001", mask_ids=(1, 2, 9), scene_ids=(1, 2))
    problems = Dataset.open(dataset.path).validate()
    assert {(p.pair_id, p.kind) for p in problems} == {("000001", "mask_ids")}
    assert "[9]" in str(problems[0])


def test_validate_maps_that_are_not_densities(dataset):
    np.save(dataset.path / "maps/000000_x.npy", np.full((12, 16), 0.5, np.float32))
    np.save(dataset.path / "maps/000001_x.npy", np.full((12, 16), -1 / 192, np.float32))
    cv2.imwrite(str(dataset.path / "maps/000002_x.png"), np.full((12, 16), 100, np.uint8))
    assert _kinds(dataset) == {("000000", "density"), ("000001", "density"), ("000002", "density")}


def test_validate_duplicates_splits_and_edit_types(dataset):
    table = pd.read_csv(dataset.path / "pairs.csv", dtype=str, keep_default_na=False)
    table.loc[1, "pair_id"] = "000000"
    table.loc[2, "split"] = "holdout"
    table.loc[0, "edit_type"] = "explode"
    table.to_csv(dataset.path / "pairs.csv", index=False)
    problems = Dataset.open(dataset.path).validate()
    kinds = {(p.pair_id, p.kind) for p in problems}
    assert kinds == {("000000", "duplicate"), ("000000", "edit_type"), ("000002", "split")}
    assert any("holdout" in str(p) for p in problems)


def test_source_file_columns_are_kept_only_where_used(dataset, write_pair):
    header = (dataset.path / "pairs.csv").read_text().splitlines()[0]
    assert header.split(",") == PAIR_COLUMNS  # a dataset without imports keeps the §2 header
    row = write_pair(dataset.path, "photo1")
    dataset.add_pairs([{**row, "x_source_file": "a b.jpg", "y_source_file": "a b.png"}])
    header = (dataset.path / "pairs.csv").read_text().splitlines()[0].split(",")
    assert header == PAIR_COLUMNS + ["x_source_file", "y_source_file"]
    table = Dataset.open(dataset.path).pairs.set_index("pair_id")
    assert table.loc["photo1", "x_source_file"] == "a b.jpg" and table.loc["000000", "x_source_file"] == ""
    dataset.update_pairs([{"pair_id": "000000", "kl_xy": 0.5}])
    reopened = Dataset.open(dataset.path)
    assert reopened.pairs.set_index("pair_id").loc["photo1", "y_source_file"] == "a b.png"
    assert reopened.validate() == []


def test_validate_reports_files_that_no_row_lists(dataset):
    strays = ["images/ghost_x.png", "masks/ghost_x.png", "maps/ghost_y.npy", "scenes/ghost.json",
              "fixations/ghost_x.csv", "images/.ghost_y.png.tmp.png"]
    for rel in strays:
        (dataset.path / rel).write_bytes(b"left over")
    (dataset.path / "fixations/000001_x.csv").write_text("participant_id,x,y,t_ms\n")  # a listed pair's
    (dataset.path / "images/.DS_Store").write_bytes(b"")  # a file manager's, not debris
    problems = Dataset.open(dataset.path).validate()
    assert {(p.pair_id, p.kind) for p in problems} == {("", "unlisted")}
    assert sorted(str(p) for p in problems) == sorted(
        f"dataset: unlisted: {rel} is a file that no pairs.csv row lists" for rel in strays)


def test_validate_counts_unlisted_files_beyond_a_limit(dataset):
    from datadir.validation import MAX_UNLISTED_SHOWN

    for k in range(MAX_UNLISTED_SHOWN + 7):
        (dataset.path / f"images/ghost{k:03d}_x.png").write_bytes(b"")
    problems = Dataset.open(dataset.path).validate()
    assert len(problems) == MAX_UNLISTED_SHOWN + 1
    assert str(problems[-1]) == "dataset: unlisted: 7 more files that no pairs.csv row lists"


def test_validate_reports_a_photo_imported_twice(dataset, write_pair):
    dataset.add_pairs([{**write_pair(dataset.path, pid), "source": "photo", "edit_type": "none", "x_source_file": name}
                       for pid, name in (("a_b", "a_b.jpg"), ("a_b_2", "a_b.png"), ("c", "c.jpg"))])
    problems = Dataset.open(dataset.path).validate()
    assert [(p.pair_id, p.kind) for p in problems] == [("a_b_2", "duplicate_source")]
    assert "a_b" in problems[0].message


def test_validate_with_a_relative_dataset_path(tmp_path, monkeypatch, write_pair):
    """`gazelab dataset validate ds` from the dataset's parent folder: maps are checked, not refused."""
    ds = Dataset.create(tmp_path / "ds", "relative", seed=0)
    ds.add_pairs([write_pair(ds.path, "000001")])
    monkeypatch.chdir(tmp_path)
    assert Dataset.open("ds").validate() == []
