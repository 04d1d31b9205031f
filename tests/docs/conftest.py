"""The fixtures behind the guide's placeholders (tests/docs/test_doc_commands.py): tiny, valid data
written through `datadir`, made only where a page's runnable blocks name them."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def placeholder_fixtures():
    """make(folder, text): make in `folder` the fixtures whose placeholders `text` names."""
    return make_fixtures


def make_fixtures(folder: Path, text: str) -> None:
    """Make in `folder` the fixtures whose placeholders `text` names (listed in the docstring of
    tests/docs/test_doc_commands.py)."""
    folder.mkdir(parents=True, exist_ok=True)
    named = set(re.findall(r"\b[A-Z][A-Z_]+[A-Z]\b", text))
    if named & {"DATASET", "EDITS", "FIXATIONS_CSV"}:
        dataset = make_dataset(folder / "DATASET")
        if "EDITS" in named:
            make_edits(dataset, folder / "EDITS")
        if "FIXATIONS_CSV" in named:
            make_fixations(dataset, folder / "FIXATIONS_CSV")
    if named & {"BEFORE_DIR", "AFTER_DIR"}:
        make_photo_pairs(folder / "BEFORE_DIR", folder / "AFTER_DIR")
    if named & {"PHOTOS_DIR", "TARGET_MAPS_DIR"}:
        make_single_photos(folder / "PHOTOS_DIR", folder / "TARGET_MAPS_DIR")


DATASET_SPLITS = ("train",) * 6 + ("val",) * 2 + ("test",) * 10
DATASET_SIZE = (160, 120)  # width, height: the demo's
PHOTO_SIZE = (480, 360)
COLOURS = {"red": (173, 35, 35), "blue": (42, 75, 215), "green": (29, 105, 20), "yellow": (255, 238, 51),
           "purple": (129, 38, 192), "cyan": (41, 208, 208)}
METHODS = ("salggan", "hag", "cyclegan", "bicyclegan", "gazeshiftnet")


def make_dataset(path: Path):
    """DATASET: CLEVR-like pairs (three boxes on a grey floor; Y recolours object 1) with masks,
    scenes, human maps of 7 observers peaked on an object (Y's on the recoloured one) and kl_xy as
    a study export writes it, written through datadir."""
    from datadir import Dataset

    dataset = Dataset.create(path, "docs-fixture", seed=0)
    dataset.add_pairs([_scene_pair(dataset.path, f"{i:06d}", split, np.random.default_rng(i))
                       for i, split in enumerate(DATASET_SPLITS)])
    return dataset


def _scene_pair(root: Path, pair_id: str, split: str, rng: np.random.Generator) -> dict:
    from analysis.metrics import kld
    from datadir import PairWriter

    width, height = DATASET_SIZE
    names = list(COLOURS)
    boxes = [(int(width * (0.08 + 0.3 * k) + rng.integers(0, width // 20)),
              int(height * 0.4 + rng.integers(-height // 8, height // 8)), width // 6, height // 5) for k in range(3)]
    colours = {"x": [names[int(rng.integers(0, len(names)))] for _ in boxes]}
    colours["y"] = [next(c for c in names if c != colours["x"][0]), *colours["x"][1:]]
    writer = PairWriter(root)
    images, masks, scene, maps, densities = {}, {}, {}, {}, {}
    ys, xs = np.mgrid[0:height, 0:width]
    for side in ("x", "y"):
        image = np.full((height, width, 3), 118, np.uint8) + rng.integers(0, 6, (height, width, 3), np.uint8)
        mask = np.zeros((height, width), np.uint8)
        objects = []
        for mask_id, ((x0, y0, w, h), colour) in enumerate(zip(boxes, colours[side]), start=1):
            image[y0:y0 + h, x0:x0 + w] = COLOURS[colour]
            mask[y0:y0 + h, x0:x0 + w] = mask_id
            objects.append({"id": mask_id, "mask_id": mask_id, "shape": "cube", "color": colour, "material": "rubber",
                            "size": "large", "pixel_coords": [x0 + w / 2, y0 + h / 2, 10.0]})
        images[side], masks[side], scene[side] = image, mask, {"objects": objects}
        x0, y0, w, h = boxes[0] if side == "y" else boxes[int(rng.integers(0, len(boxes)))]
        density = np.exp(-((xs - x0 - w / 2) ** 2 + (ys - y0 - h / 2) ** 2) / (2 * (width / 12) ** 2)) + 1e-4
        maps[f"{side}_map"] = writer.map(pair_id, side, density)
        densities[side] = density / density.sum()
    scene["edit"] = {"type": "recolor", "object_ids": [1]}
    return writer.write(pair_id, split=split, source="clevr", edit_type="recolor", n_edited=1, images=images,
                        masks=masks, scene=scene, **maps, n_observers_x=7, n_observers_y=7,
                        kl_xy=kld(densities["y"], densities["x"]))


def make_edits(dataset, folder: Path) -> None:
    """EDITS/<method>/<pair_id>.png for DATASET's test pairs: X tinted by a method's own amount."""
    import cv2

    test = dataset.pairs[dataset.pairs["split"] == "test"]["pair_id"]
    for k, method in enumerate(METHODS, start=1):
        (folder / method).mkdir(parents=True)
        for pair_id in test:
            image = cv2.imread(str(dataset.path_of(pair_id, "image", "x")))
            cv2.imwrite(str(folder / method / f"{pair_id}.png"), np.clip(image.astype(int) + 9 * k, 0, 255).astype(np.uint8))


def make_fixations(dataset, path: Path) -> None:
    """FIXATIONS_CSV: three participants, four fixations on every X and Y image of DATASET."""
    import pandas as pd

    width, height = DATASET_SIZE
    rng = np.random.default_rng(1)
    rows = [{"image": f"{pair_id}_{side}.png", "participant": participant,
             "x": round(float(rng.uniform(0.1, 0.9) * width), 1), "y": round(float(rng.uniform(0.3, 0.7) * height), 1),
             "t_ms": t_ms}
            for pair_id in dataset.pairs["pair_id"] for side in ("x", "y") for participant in ("p1", "p2", "p3")
            for t_ms in (200, 500, 800, 1100)]
    pd.DataFrame(rows).to_csv(path, index=False)


def make_photo_pairs(before: Path, after: Path, n: int = 6) -> None:
    """BEFORE_DIR / AFTER_DIR: n smooth 'photos' (a gradient, soft shapes) and the same with one shape changed."""
    import cv2

    before.mkdir()
    after.mkdir()
    for i in range(n):
        rng = np.random.default_rng(100 + i)
        image = _photo(rng)
        changed = image.copy()
        cx, cy = int(rng.integers(80, 400)), int(rng.integers(80, 280))
        cv2.circle(changed, (cx, cy), 40, tuple(int(c) for c in rng.integers(0, 255, 3)), -1, cv2.LINE_AA)
        cv2.imwrite(str(before / f"scene_{i:02d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 92])
        cv2.imwrite(str(after / f"scene_{i:02d}.jpg"), changed, [cv2.IMWRITE_JPEG_QUALITY, 92])


def make_single_photos(images: Path, maps: Path, n: int = 3) -> None:
    """PHOTOS_DIR / TARGET_MAPS_DIR: n photos and a target density (.npy) peaked somewhere on each."""
    import cv2

    images.mkdir()
    maps.mkdir()
    width, height = PHOTO_SIZE
    ys, xs = np.mgrid[0:height, 0:width]
    for i in range(n):
        rng = np.random.default_rng(200 + i)
        cv2.imwrite(str(images / f"photo_{i}.jpg"), _photo(rng), [cv2.IMWRITE_JPEG_QUALITY, 92])
        cx, cy = rng.uniform(0.2, 0.8) * width, rng.uniform(0.2, 0.8) * height
        density = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * 30.0**2)).astype(np.float32)
        np.save(maps / f"photo_{i}.npy", density / density.sum())


def _photo(rng: np.random.Generator) -> np.ndarray:
    """A 480×360 BGR picture: a vertical gradient and a few blurred discs."""
    import cv2

    width, height = PHOTO_SIZE
    top, bottom = rng.integers(60, 200, 3), rng.integers(60, 200, 3)
    ramp = np.linspace(0, 1, height)[:, None, None]
    image = np.broadcast_to(top * (1 - ramp) + bottom * ramp, (height, width, 3)).astype(np.uint8).copy()
    for _ in range(4):
        centre = (int(rng.integers(40, width - 40)), int(rng.integers(40, height - 40)))
        cv2.circle(image, centre, int(rng.integers(15, 45)), tuple(int(c) for c in rng.integers(0, 255, 3)), -1,
                   cv2.LINE_AA)
    return cv2.GaussianBlur(image, (5, 5), 0)
