import json

import cv2
import numpy as np
import pytest
import torch

from datadir import Dataset
from models.arrays import JointAugment, collate, read_density
from models.data import FolderSaliencyDataset, PairDataset, SingleImageDataset


def test_pair_items_have_keys_shapes_and_ranges(dataset):
    data = PairDataset(dataset.path, size=(32, 24))
    assert len(data) == 3
    item = data[0]
    for side in ("x", "y"):
        assert item[side].shape == (3, 24, 32) and item[side].dtype == torch.float32
        assert 0 <= item[side].min() and item[side].max() <= 1 and item[side].max() > 0.5
        assert item[f"{side}_map"].shape == (1, 24, 32)
        assert item[f"{side}_map"].min() >= 0
        assert item[f"{side}_map"].sum().item() == pytest.approx(1, abs=1e-5)
        assert item[f"{side}_mask"].shape == (24, 32) and item[f"{side}_mask"].dtype == torch.int64
        assert set(item[f"{side}_mask"].unique().tolist()) == {0, 1, 2}  # nearest keeps labels exact
        assert [o["mask_id"] for o in item[f"{side}_objects"]] == [1, 2]
    assert item["pair_id"] == "000000" and item["edit"] == {"type": "recolor"}


def test_native_size_matches_files_and_images_are_rgb(dataset):
    item = PairDataset(dataset.path)[1]
    assert item["x"].shape == (3, 12, 16)
    bgr = cv2.imread(str(dataset.path_of("000001", "image", "x")))
    assert torch.allclose(item["x"][0], torch.from_numpy(bgr[:, :, 2] / 255.0).float())


def test_sides_and_png_maps_become_densities(tmp_path, write_pair):
    ds = Dataset.create(tmp_path / "ds", "t")
    row = write_pair(ds.path, "p0")
    peak = np.zeros((12, 16), np.uint8)
    peak[5, 7], peak[2, 2] = 255, 51
    cv2.imwrite(str(ds.path / "maps/p0_x.png"), peak)
    (ds.path / "maps/p0_x.npy").unlink()
    row["x_map"] = "maps/p0_x.png"
    ds.add_pairs([row])
    item = PairDataset(ds.path, sides=("x",))[0]
    assert "y" not in item and "y_map" not in item
    assert item["x_map"].sum().item() == pytest.approx(1, abs=1e-6)
    assert item["x_map"][0, 5, 7].item() == pytest.approx(255 / 306)


def test_dataloader_with_collate_and_augment(dataset):
    data = PairDataset(dataset.path, size=(32, 24), augment=JointAugment(seed=1))
    batch = next(iter(torch.utils.data.DataLoader(data, batch_size=2, collate_fn=collate)))
    assert batch["x"].shape == (2, 3, 24, 32) and batch["x_mask"].shape == (2, 24, 32)
    assert batch["y_map"].sum(dim=(1, 2, 3)).tolist() == pytest.approx([1, 1], abs=1e-5)
    assert batch["pair_id"] == ["000000", "000001"]
    assert isinstance(batch["x_objects"], list) and len(batch["x_objects"]) == 2


def test_collate_names_the_field_that_cannot_stack():
    batch = [{"x": torch.zeros(3, 4, 4)}, {"x": torch.zeros(3, 5, 4)}]
    with pytest.raises(ValueError, match="'x'.*size="):
        collate(batch)
    assert collate([{"a": torch.ones(1)}, {"b": 2}]) == {"a": [torch.ones(1), None], "b": [None, 2]}


def _peaked_item(row, col, height=24, width=32):
    image = torch.zeros(3, height, width)
    image[:, row, col] = 1
    density = torch.full((1, height, width), 1e-6)
    density[0, row, col] = 1
    mask = torch.zeros(height, width, dtype=torch.int64)
    mask[row - 2:row + 3, col - 2:col + 3] = 7
    return {"x": image, "x_map": density / density.sum(), "x_mask": mask, "pair_id": "p"}


@pytest.mark.parametrize("seed", range(8))
def test_augment_moves_map_peak_image_and_mask_together(seed):
    item = _peaked_item(10, 6)
    out = JointAugment(hflip=0.5, crop_scale=(0.6, 0.9), seed=seed)(item)
    peak = divmod(int(out["x_map"].argmax()), 32)
    assert out["x_mask"][peak].item() == 7
    assert divmod(int(out["x"][0].argmax()), 32) == peak
    assert out["x_map"].sum().item() == pytest.approx(1, abs=1e-5)
    assert set(out["x_mask"].unique().tolist()) <= {0, 7} and out["pair_id"] == "p"


def test_flip_only_mirrors_everything():
    item = _peaked_item(10, 6)
    out = JointAugment(hflip=1.0, crop_scale=(1.0, 1.0))(item)
    assert divmod(int(out["x_map"].argmax()), 32) == (10, 32 - 1 - 6)
    assert torch.equal(out["x_mask"], item["x_mask"].flip(-1))


def test_augment_is_deterministic_per_seed_epoch_and_index(dataset):
    make = lambda seed: PairDataset(dataset.path, size=(32, 24), augment=JointAugment(crop_scale=(0.5, 0.9), seed=seed))
    first, again, other = make(3), make(3), make(4)
    assert torch.equal(first[0]["x"], again[0]["x"]) and torch.equal(first[0]["x_mask"], again[0]["x_mask"])
    outputs = [other[0]["x"]]
    other.set_epoch(1)
    outputs.append(other[0]["x"])
    assert not all(torch.equal(first[0]["x"], out) for out in outputs)


def test_single_image_dataset(tmp_path, write_pair):
    ds = Dataset.create(tmp_path / "ds", "t")
    row = write_pair(ds.path, "s0")
    target = np.zeros((12, 16), np.float32)
    target[3:6, 3:6] = 1 / 9
    np.save(ds.path / "maps/s0_target.npy", target)
    row.update(source="single", edit_type="none", y_image="", y_mask="", y_map="maps/s0_target.npy")
    ds.add_pairs([row, write_pair(ds.path, "p0")])
    data = SingleImageDataset(ds.path, size=(32, 24))
    assert [r["pair_id"] for r in data.rows] == ["s0"]
    item = data[0]
    assert item["target_map"].shape == (1, 24, 32) and item["target_map"].sum().item() == pytest.approx(1, abs=1e-5)
    assert {"x", "x_map", "x_mask", "x_objects"} <= set(item)
    assert [r["pair_id"] for r in PairDataset(ds.path).rows] == ["p0"]


def test_folder_dataset_matches_stems_and_reports_the_rest(tmp_path, caplog):
    images, maps, fixations = (tmp_path / name for name in ("images", "maps", "fix"))
    for folder in (images, maps, fixations):
        folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b", "only_image"):
        cv2.imwrite(str(images / f"{name}.jpg"), rng.integers(0, 255, (12, 16, 3), np.uint8))
    for name in ("a", "b", "only_map"):
        cv2.imwrite(str(maps / f"{name}_fixMap.png"), rng.integers(1, 255, (12, 16), np.uint8))
        points = np.zeros((12, 16), np.uint8)
        points[4, 5] = points[11, 15] = 255
        cv2.imwrite(str(fixations / f"{name}.png"), points)
    data = FolderSaliencyDataset(images, maps, fixations, size=(32, 24), map_suffix="_fixMap")
    assert [name for name, *_ in data.rows] == ["a", "b"]
    assert data.unmatched["images"] == ["only_image"] and data.unmatched["maps"] == ["only_map"]
    assert "only_image" in caplog.text
    item = data[0]
    assert item["x"].shape == (3, 24, 32) and item["x_map"].sum().item() == pytest.approx(1, abs=1e-5)
    assert item["x_fixations"].sum().item() == 2  # points scaled, not smeared
    assert item["x_fixations"][9, 11] == 1 and item["x_fixations"][23, 31] == 1
    with pytest.raises(ValueError, match="only_image"):
        FolderSaliencyDataset(images, maps, map_suffix="_fixMap", strict=True)
    with pytest.raises(ValueError, match="no images"):
        FolderSaliencyDataset(images, fixations, map_suffix="_nothing")


def test_image_and_map_of_different_sizes(tmp_path, write_pair):
    ds = Dataset.create(tmp_path / "ds", "t")
    ds.add_pairs([write_pair(ds.path, "p0")])
    np.save(ds.path / "maps/p0_y.npy", np.full((10, 16), 1 / 160, np.float32))
    with pytest.raises(ValueError, match=r"pair p0: .*p0_y\.npy is 16×10.*16×12"):
        PairDataset(ds.path)[0]


def test_map_that_is_not_a_density(tmp_path, write_pair):
    ds = Dataset.create(tmp_path / "ds", "t")
    ds.add_pairs([write_pair(ds.path, "p0")])
    np.save(ds.path / "maps/p0_x.npy", np.ones((12, 16), np.float32))
    with pytest.raises(ValueError, match=r"p0_x\.npy is not a density.*sum 192"):
        PairDataset(ds.path)[0]
    with pytest.raises(ValueError, match="not a density"):
        read_density(ds.path / "maps/p0_x.npy")


def test_missing_maps_name_the_pair_and_file(tmp_path, write_pair):
    ds = Dataset.create(tmp_path / "ds", "t")
    ds.add_pairs([write_pair(ds.path, "p0", with_maps=False)])
    with pytest.raises(ValueError, match=r"pair p0: no x map.*maps/p0_x\.npy"):
        PairDataset(ds.path)
    item = PairDataset(ds.path, require_maps=False)[0]
    assert "x_map" not in item and "x" in item


def test_map_listed_but_missing(dataset):
    (dataset.path / "maps/000002_y.npy").unlink()
    with pytest.raises(ValueError, match=r"pair 000002: y map file .*000002_y\.npy is missing"):
        PairDataset(dataset.path)


def test_split_without_pairs_and_bad_arguments(dataset):
    with pytest.raises(ValueError, match="split val .* has no pairs"):
        PairDataset(dataset.path, split="val")
    with pytest.raises(ValueError, match="split 'dev' is not one of"):
        PairDataset(dataset.path, split="dev")
    with pytest.raises(ValueError, match="size must be"):
        PairDataset(dataset.path, size=(0, 4))
    with pytest.raises(ValueError, match="sides"):
        PairDataset(dataset.path, sides=("z",))
    with pytest.raises(ValueError, match="crop_scale"):
        JointAugment(crop_scale=(0.0, 1.0))


def test_unreadable_scene_names_the_pair(dataset):
    (dataset.path / "scenes/000001.json").write_text("{not json")
    with pytest.raises(ValueError, match="pair 000001: scene file"):
        PairDataset(dataset.path)[1]
    assert json.loads((dataset.path / "scenes/000000.json").read_text())["edit"]["type"] == "recolor"


def test_augmentation_does_not_depend_on_worker_count(dataset):
    data = PairDataset(dataset.path, size=(32, 24), augment=JointAugment(crop_scale=(0.5, 0.9), seed=2))
    batches = [next(iter(torch.utils.data.DataLoader(data, batch_size=3, collate_fn=collate, num_workers=n)))
               for n in (0, 2)]
    assert torch.equal(batches[0]["x"], batches[1]["x"]) and torch.equal(batches[0]["y_map"], batches[1]["y_map"])


# ---------------------------------------------------------------- TrainingItems, the one training-data class


@pytest.fixture
def mixed(tmp_path, write_pair):
    """p0, p1 with maps; p2 without maps; s0 a single row (image + target map)."""
    ds = Dataset.create(tmp_path / "mixed", "t")
    single = write_pair(ds.path, "s0")
    np.save(ds.path / "maps/s0_target.npy", np.full((12, 16), 1 / 192, np.float32))
    single.update(source="single", edit_type="none", y_image="", y_mask="", y_map="maps/s0_target.npy")
    ds.add_pairs([write_pair(ds.path, "p0"), write_pair(ds.path, "p1"), write_pair(ds.path, "p2", with_maps=False),
                  single])
    return ds


def test_training_items_per_pair_and_per_image_keep_what_the_model_requires(mixed, caplog):
    import logging

    from models.data import TrainingItems

    with caplog.at_level(logging.INFO, logger="models.data"):
        pairs = TrainingItems(mixed.path, None, unit="pair", require=("y_map",), singles=True, owner="M")
    assert [pairs[i]["pair_id"] for i in range(len(pairs))] == ["p0", "p1", "s0"]
    assert "left out 1 with no y_map (M needs y_map)" in caplog.text
    assert "y" not in pairs[2] and pairs[2]["y_map"].shape == (1, 12, 16)  # the single row's target
    images = TrainingItems(mixed.path, None, unit="image", size=(32, 24), require=("map", "mask"))
    assert [images[i]["pair_id"] for i in range(len(images))] == ["p0/x", "p1/x", "p0/y", "p1/y"]
    item = images[3]
    assert item["side"] == "y" and item["image"].shape == (3, 24, 32) and item["mask"].shape == (24, 32)
    assert item["map"].sum().item() == pytest.approx(1, abs=1e-5)
    assert [o["mask_id"] for o in item["objects"]] == [1, 2]
    everything = TrainingItems(mixed.path, None, unit="image")
    assert len(everything) == 6  # X and Y of p0, p1 and the map-less p2: nothing required


def test_training_items_replace_an_unusable_item_by_the_next_and_say_when_none_is_usable(mixed):
    from models.data import TrainingItems

    class OnlyP1(TrainingItems):
        def prepare(self, item, index):
            return item if item["pair_id"] == "p1" else None

    data = OnlyP1(mixed.path, None, require=("y_map",))
    assert [data[i]["pair_id"] for i in range(len(data))] == ["p1", "p1"]
    assert data.refused == {0}

    class Nothing(TrainingItems):
        def prepare(self, item, index):
            return None

    with pytest.raises(ValueError, match=r"no item M can train on: every one of the 2 was refused"):
        Nothing(mixed.path, None, require=("y_map",), owner="M")[0]


@pytest.mark.parametrize("kwargs, message", [
    ({"unit": "scene"}, r"unit must be 'pair' or 'image', got 'scene'"),
    ({"unit": "image", "require": ("y_map",)}, r"require has \['y_map'\]; an image item can require map, mask"),
    ({"unit": "pair", "require": ("y", "x_map"), "split": "test"}, r"nothing the model can train on: split test of .* has no pairs"),
])
def test_training_items_refuse_bad_arguments_by_name(mixed, kwargs, message):
    from models.data import TrainingItems

    with pytest.raises(ValueError, match=message):
        TrainingItems(mixed.path, **kwargs)


def test_training_items_need_a_dataset_dir(tmp_path):
    from models.data import TrainingItems

    message = r"is not a gazelab dataset dir \(no dataset.json and pairs.csv\); SalG-GAN trains on one"
    with pytest.raises(ValueError, match=message):
        TrainingItems(tmp_path, owner="SalG-GAN")
