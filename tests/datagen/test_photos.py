import cv2
import numpy as np
import pytest

from datagen.dataset import Dataset
from datagen.photos import import_pairs, import_singles
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
    assert sorted(dataset.pairs["pair_id"]) == ["kitchen_1", "park", "street"]
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
    assert Dataset.open(tmp_path / "out2").pairs.empty


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
