import hashlib
import logging

import cv2
import numpy as np
import pytest

from datadir import SUBDIRS, Dataset
from datadir.schema import PAIR_ID_PATTERN
from datagen.photos import import_pairs, import_singles, photo_pair_id
from datagen.splits import assign_split, parse_splits


def _photo(path, size=(20, 15), value=0):
    image = np.full((size[1], size[0], 3), value, np.uint8)
    image[3:6, 4:9] = 255 - value
    assert cv2.imwrite(str(path), image)


@pytest.fixture
def photo_dirs(tmp_path):
    x_dir, y_dir = tmp_path / "x", tmp_path / "y"
    x_dir.mkdir(), y_dir.mkdir()
    for stem in ("kitchen 1", "street", "park"):
        _photo(x_dir / f"{stem}.jpg", value=10)
        _photo(y_dir / f"{stem}.png", value=200)
    return x_dir, y_dir


def test_import_pairs_writes_a_valid_dataset_and_resumes(photo_dirs, tmp_path):
    x_dir, y_dir = photo_dirs
    summary = import_pairs(x_dir, y_dir, tmp_path / "out", seed=1)
    assert (summary.imported, summary.skipped) == (3, 0)
    dataset = Dataset.open(tmp_path / "out")
    # a safe stem is its own id; 'kitchen 1' is cleaned and suffixed with a hash of the stem
    assert sorted(dataset.pairs["pair_id"]) == [photo_pair_id("kitchen 1"), "park", "street"]
    assert photo_pair_id("kitchen 1").startswith("kitchen_1-h")
    assert set(dataset.pairs["source"]) == {"photo"} and set(dataset.pairs["edit_type"]) == {"none"}
    assert dataset.validate() == []
    y = cv2.imread(str(dataset.path_of("park", "image", "y")))
    assert y.shape == (15, 20, 3) and y[0, 0, 0] == 200
    _photo(x_dir / "beach.png"), _photo(y_dir / "beach.png")
    again = import_pairs(x_dir, y_dir, tmp_path / "out", seed=1)
    assert (again.imported, again.skipped) == (1, 3)


def test_import_pairs_errors_leave_nothing_half_written(photo_dirs, tmp_path):
    x_dir, y_dir = photo_dirs
    _photo(x_dir / "lonely.png")
    with pytest.raises(ValueError, match="lonely"):
        import_pairs(x_dir, y_dir, tmp_path / "out")
    (x_dir / "lonely.png").unlink()
    _photo(y_dir / "street.png", size=(21, 15))
    (y_dir / "street.jpg").unlink(missing_ok=True)
    with pytest.raises(ValueError, match="21x15"):
        import_pairs(x_dir, y_dir, tmp_path / "out2")
    # a refused import into a new folder leaves no folder, and nothing beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x", "y"]


def test_import_pairs_rejects_unreadable_images(photo_dirs, tmp_path):
    x_dir, y_dir = photo_dirs
    (x_dir / "street.jpg").write_text("not really a jpeg")
    with pytest.raises(ValueError, match="street.jpg is not a readable image"):
        import_pairs(x_dir, y_dir, tmp_path / "out")


def test_import_singles_with_target_maps(tmp_path):
    images, maps = tmp_path / "images", tmp_path / "maps"
    images.mkdir(), maps.mkdir()
    _photo(images / "a.png"), _photo(images / "b.png")
    target = np.zeros((15, 20), np.float32)
    target[5, 5] = 3.0
    np.save(maps / "a.npy", target)
    cv2.imwrite(str(maps / "b.png"), np.full((15, 20), 80, np.uint8))
    summary = import_singles(images, tmp_path / "out", target_maps=maps)
    assert summary.imported == 2
    dataset = Dataset.open(tmp_path / "out")
    assert dataset.validate() == []
    density = np.load(dataset.path_of("a", "map_npy", "y"))
    assert density.sum() == pytest.approx(1.0) and density[5, 5] == pytest.approx(1.0)
    assert set(dataset.pairs["split"]) == {"test"} and set(dataset.pairs["y_image"]) == {""}
    with pytest.raises(ValueError, match="refusing to add 'photo'"):
        import_pairs(images, images, tmp_path / "out")


def test_import_singles_checks_maps(tmp_path):
    images, maps = tmp_path / "images", tmp_path / "maps"
    images.mkdir(), maps.mkdir()
    _photo(images / "a.png")
    with pytest.raises(ValueError, match="holds no images"):
        import_singles(images, tmp_path / "out", target_maps=maps)
    np.save(maps / "a.npy", np.zeros((15, 20), np.float32))
    with pytest.raises(ValueError, match="all zeros"):
        import_singles(images, tmp_path / "out", target_maps=maps)


def test_splits_are_deterministic_and_follow_fractions():
    fractions = parse_splits("0.8,0.1,0.1")
    first = [assign_split(5, i, fractions) for i in range(4000)]
    assert first == [assign_split(5, i, fractions) for i in range(4000)]
    assert abs(first.count("train") / 4000 - 0.8) < 0.03
    assert [assign_split(5, i, (0, 0, 1)) for i in range(10)] == ["test"] * 10
    for bad in ("0.5,0.5", "0.9,0.2,0.1", "a,b,c", "-0.1,0.6,0.5"):
        with pytest.raises(ValueError, match="splits"):
            parse_splits(bad)


def _x_values(dataset):
    """The grey value of each pair's X image (the photos here are flat but for a small patch)."""
    return sorted(int(cv2.imread(str(dataset.path / path))[0, 0, 0]) for path in dataset.pairs["x_image"])


def test_a_reimport_after_a_name_that_cleans_the_same_is_exact(tmp_path):
    """'a_b' imported, then 'a b' added: 'a b' is imported (not taken for 'a_b') and 'a_b' not again."""
    x_dir, y_dir = tmp_path / "x", tmp_path / "y"
    x_dir.mkdir(), y_dir.mkdir()
    _photo(x_dir / "a_b.jpg", value=10), _photo(y_dir / "a_b.jpg", value=10)
    assert import_pairs(x_dir, y_dir, tmp_path / "out").imported == 1
    _photo(x_dir / "a b.png", value=90), _photo(y_dir / "a b.png", value=90)
    again = import_pairs(x_dir, y_dir, tmp_path / "out")
    assert (again.imported, again.skipped) == (1, 1)
    dataset = Dataset.open(tmp_path / "out")
    assert _x_values(dataset) == [10, 90]  # both photos, each once
    assert sorted(dataset.pairs["x_source_file"]) == ["a b.png", "a_b.jpg"]
    assert sorted(dataset.pairs["y_source_file"]) == ["a b.png", "a_b.jpg"]
    assert dataset.validate() == []
    third = import_pairs(x_dir, y_dir, tmp_path / "out")
    assert (third.imported, third.skipped) == (0, 2) and len(Dataset.open(tmp_path / "out").pairs) == 2


def test_a_photo_gets_the_same_id_whatever_else_is_imported(tmp_path):
    """The id of 'a b' does not depend on whether 'a_b' came first (import order, folder contents)."""
    for order, stems in (("alone", ["a b"]), ("both", ["a_b", "a b"])):
        for stem in stems:
            (tmp_path / order / "x").mkdir(parents=True, exist_ok=True), (tmp_path / order / "y").mkdir(exist_ok=True)
            _photo(tmp_path / order / "x" / f"{stem}.png"), _photo(tmp_path / order / "y" / f"{stem}.png")
        import_pairs(tmp_path / order / "x", tmp_path / order / "y", tmp_path / order / "out")
    ids = {order: dict(zip(Dataset.open(tmp_path / order / "out").pairs["x_source_file"],
                           Dataset.open(tmp_path / order / "out").pairs["pair_id"])) for order in ("alone", "both")}
    assert ids["alone"]["a b.png"] == ids["both"]["a b.png"] != ids["both"]["a_b.png"] == "a_b"


def test_ids_are_file_name_safe_and_injective():
    stems = ["a b", "a_b", "a-b", "a.b", "a", "A", " a", "_a", "a%20b", "a:b", "ä", "日本", "..", "-", "x" * 300]
    ids = [photo_pair_id(stem) for stem in stems]
    assert len(set(ids)) == len(stems)
    assert all(PAIR_ID_PATTERN.match(pid) and len(pid) <= 120 for pid in ids)
    assert photo_pair_id("kitchen_1") == "kitchen_1" and photo_pair_id("IMG_0001.raw") == "IMG_0001.raw"
    # a safe stem that looks like a derived id is itself derived, so it cannot take another photo's id
    derived = photo_pair_id("a b")
    assert photo_pair_id(derived) != derived and photo_pair_id(derived) not in ids


def _files_under(root):
    return sorted(str(p.relative_to(root)) for sub in SUBDIRS for p in (root / sub).rglob("*") if p.is_file())


def _listed_files(dataset):
    table = dataset.pairs
    return sorted(v for column in ("x_image", "y_image", "x_map", "y_map") for v in table[column] if v)


def test_an_aborted_import_leaves_no_file_that_pairs_csv_does_not_list(photo_dirs, tmp_path):
    x_dir, y_dir = photo_dirs
    import_pairs(x_dir, y_dir, tmp_path / "out")
    before = _files_under(tmp_path / "out")
    for stem in ("apple", "berry", "zebra"):  # sorted after 'apple' and 'berry', the bad pair comes last
        _photo(x_dir / f"{stem}.png"), _photo(y_dir / f"{stem}.png", size=(21, 15) if stem == "zebra" else (20, 15))
    with pytest.raises(ValueError, match="21x15"):
        import_pairs(x_dir, y_dir, tmp_path / "out")
    dataset = Dataset.open(tmp_path / "out")
    assert _files_under(dataset.path) == before == _listed_files(dataset)
    assert dataset.validate() == []


def test_a_failed_commit_removes_the_files_of_the_import(photo_dirs, tmp_path, monkeypatch):
    x_dir, y_dir = photo_dirs

    def refuse(self, rows):
        raise OSError("disk full")

    import_pairs(x_dir, y_dir, tmp_path / "old")
    before = _files_under(tmp_path / "old")
    _photo(x_dir / "beach.png"), _photo(y_dir / "beach.png")
    monkeypatch.setattr(Dataset, "add_pairs", refuse)
    with pytest.raises(OSError, match="disk full"):  # after the files were moved in: they go again
        import_pairs(x_dir, y_dir, tmp_path / "old")
    assert _files_under(tmp_path / "old") == before and len(Dataset.open(tmp_path / "old").pairs) == 3
    assert [p.name for p in (tmp_path / "old").iterdir() if p.name.startswith(".")] == []
    with pytest.raises(OSError, match="disk full"):
        import_pairs(x_dir, y_dir, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    images, maps = tmp_path / "images", tmp_path / "maps"
    images.mkdir(), maps.mkdir()
    _photo(images / "a.png")
    np.save(maps / "a.npy", np.ones((15, 20), np.float32))
    with pytest.raises(OSError, match="disk full"):
        import_singles(images, tmp_path / "singles", target_maps=maps)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "maps", "old", "x", "y"]


def test_import_singles_records_sources_and_resumes_exactly(tmp_path):
    images, maps = tmp_path / "images", tmp_path / "maps"
    images.mkdir(), maps.mkdir()
    _photo(images / "a_b.png", value=10), np.save(maps / "a_b.npy", np.ones((15, 20), np.float32))
    import_singles(images, tmp_path / "out", target_maps=maps)
    _photo(images / "a b.png", value=90), np.save(maps / "a b.npy", np.ones((15, 20), np.float32))
    again = import_singles(images, tmp_path / "out", target_maps=maps)
    assert (again.imported, again.skipped) == (1, 1)
    dataset = Dataset.open(tmp_path / "out")
    assert _x_values(dataset) == [10, 90]
    assert sorted(zip(dataset.pairs["x_source_file"], dataset.pairs["y_source_file"])) == [
        ("a b.png", "a b.npy"), ("a_b.png", "a_b.npy")]
    assert dataset.validate() == []


def test_a_dataset_imported_before_sources_were_recorded(tmp_path):
    """Rows without a recorded source are matched by id == stem; a stem that may be such a row is refused."""
    dataset = Dataset.create(tmp_path / "out", "old", source="photo", seed=0, splits=[1.0, 0.0, 0.0])
    x_dir, y_dir = tmp_path / "x", tmp_path / "y"
    x_dir.mkdir(), y_dir.mkdir()
    rows = []
    for pair_id in ("park", "a_b"):
        _photo(dataset.path_of(pair_id, "image", "x")), _photo(dataset.path_of(pair_id, "image", "y"))
        rows.append({"pair_id": pair_id, "split": "train", "source": "photo", "edit_type": "none",
                     "x_image": f"images/{pair_id}_x.png", "y_image": f"images/{pair_id}_y.png"})
    dataset.add_pairs(rows)
    _photo(x_dir / "park.png"), _photo(y_dir / "park.png")
    assert (import_pairs(x_dir, y_dir, tmp_path / "out").skipped, len(Dataset.open(dataset.path).pairs)) == (1, 2)
    _photo(x_dir / "a b.png"), _photo(y_dir / "a b.png")
    with pytest.raises(ValueError, match=r"'a b'.*a_b"):
        import_pairs(x_dir, y_dir, tmp_path / "out")
    assert len(Dataset.open(dataset.path).pairs) == 2


def test_two_photos_whose_ids_would_clash_are_refused_before_any_file(photo_dirs, tmp_path, monkeypatch):
    monkeypatch.setattr("datagen.photos.photo_pair_id", lambda stem: "same")  # stands in for a hash collision
    x_dir, y_dir = photo_dirs
    with pytest.raises(ValueError, match=r"photo '(park|street)' would get pair id same, which photo '.+' has"):
        import_pairs(x_dir, y_dir, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_reimport_knows_a_photo_by_content_as_well_as_by_name(photo_dirs, tmp_path):
    x_dir, y_dir = photo_dirs
    import_pairs(x_dir, y_dir, tmp_path / "out")
    table = Dataset.open(tmp_path / "out").pairs.set_index("pair_id")
    assert table.loc["park", "x_source_sha256"] == _sha256(x_dir / "park.jpg")
    assert table.loc["park", "y_source_sha256"] == _sha256(y_dir / "park.png")
    before = (tmp_path / "out/pairs.csv").read_bytes()
    _photo(y_dir / "park.png", value=123)  # another photo under a stem already imported
    _photo(x_dir / "zoo.png"), _photo(y_dir / "zoo.png")
    with pytest.raises(ValueError, match=r"1 file\(s\) differ from what .* imported under their stem: park\.png"
                                         r" \(pair park, imported from 'park\.png'\); restore them, or rename"):
        import_pairs(x_dir, y_dir, tmp_path / "out")
    assert (tmp_path / "out/pairs.csv").read_bytes() == before and _files_under(tmp_path / "out") == sorted(
        f"images/{pid}_{side}.png" for pid in table.index for side in "xy")
    _photo(y_dir / "park.png", value=200)  # the imported photo back: same bytes, so it is skipped
    again = import_pairs(x_dir, y_dir, tmp_path / "out")
    assert (again.imported, again.skipped) == (1, 3)


def test_rows_imported_before_hashes_were_recorded_are_matched_by_name(photo_dirs, tmp_path, caplog):
    x_dir, y_dir = photo_dirs
    import_pairs(x_dir, y_dir, tmp_path / "out")
    table = Dataset.open(tmp_path / "out").pairs.drop(columns=["x_source_sha256", "y_source_sha256"])
    (tmp_path / "out/pairs.csv").write_text(table.to_csv(index=False, lineterminator="\n"), encoding="utf-8")
    _photo(y_dir / "park.png", value=123)
    with caplog.at_level(logging.WARNING, logger="datagen"):
        again = import_pairs(x_dir, y_dir, tmp_path / "out")
    assert (again.imported, again.skipped) == (0, 3)
    assert any("3 photo(s) already in" in r.getMessage() and "by file name only" in r.getMessage()
               for r in caplog.records)


def test_a_target_map_added_after_the_import_is_reported(tmp_path):
    images, maps = tmp_path / "images", tmp_path / "maps"
    images.mkdir(), maps.mkdir()
    _photo(images / "a.png")
    import_singles(images, tmp_path / "out")
    assert import_singles(images, tmp_path / "out").skipped == 1  # no maps given: the image alone is compared
    np.save(maps / "a.npy", np.ones((15, 20), np.float32))
    with pytest.raises(ValueError, match=r"a\.npy \(pair a, imported without it\)"):
        import_singles(images, tmp_path / "out", target_maps=maps)


def test_an_id_that_differs_only_in_case_from_one_in_the_dataset_is_refused(tmp_path):
    x_dir, y_dir = tmp_path / "x", tmp_path / "y"
    x_dir.mkdir(), y_dir.mkdir()
    _photo(x_dir / "Cat.png"), _photo(y_dir / "Cat.png")
    import_pairs(x_dir, y_dir, tmp_path / "out")
    for side in (x_dir, y_dir):
        (side / "Cat.png").rename(side / "cat.png")
    before = _files_under(tmp_path / "out")
    with pytest.raises(ValueError, match=r"differ only in case .*: photo 'cat' \(id cat\) against photo 'Cat'"
                                         r" \(id Cat\); rename"):
        import_pairs(x_dir, y_dir, tmp_path / "out")
    assert _files_under(tmp_path / "out") == before and list(Dataset.open(tmp_path / "out").pairs["pair_id"]) == ["Cat"]
