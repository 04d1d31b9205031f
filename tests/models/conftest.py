"""A small model-training dataset: 6 pairs of 32×24 images with objects, masks and real maps."""

import json

import cv2
import numpy as np
import pytest

from datagen.dataset import Dataset


def _write_scene_pair(root, pair_id: str, rng: np.random.Generator, size=(32, 24)):
    """Coloured rectangles on a grey ground; masks label them 1..k; maps peak on one object."""
    width, height = size
    n_objects = int(rng.integers(2, 4))
    boxes = []
    for k in range(n_objects):
        w, h = int(rng.integers(5, 9)), int(rng.integers(4, 7))
        x0 = int(rng.integers(0, width - w)) if k else 2
        y0 = 2 + 7 * k if 2 + 7 * k + h <= height else int(rng.integers(0, height - h))
        boxes.append((x0, y0, w, h))
    row = {"pair_id": pair_id, "split": "train", "source": "clevr", "edit_type": "recolor", "n_edited": 1,
           "scene": f"scenes/{pair_id}.json"}
    objects = []
    for side in ("x", "y"):
        image = np.full((height, width, 3), 110, np.uint8) + rng.integers(0, 12, (height, width, 3), np.uint8)
        mask = np.zeros((height, width), np.uint8)
        for k, (x0, y0, w, h) in enumerate(boxes, start=1):
            colour = rng.integers(20, 255, 3)
            image[y0 : y0 + h, x0 : x0 + w] = colour
            mask[y0 : y0 + h, x0 : x0 + w] = k
        cv2.imwrite(str(root / f"images/{pair_id}_{side}.png"), image)
        cv2.imwrite(str(root / f"masks/{pair_id}_{side}.png"), mask)
        ys, xs = np.mgrid[0:height, 0:width]
        x0, y0, w, h = boxes[int(rng.integers(0, n_objects))]
        centre = (x0 + w / 2, y0 + h / 2)
        density = np.exp(-((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / (2 * 3.0**2)) + 1e-3
        np.save(root / f"maps/{pair_id}_{side}.npy", (density / density.sum()).astype(np.float32))
        row.update({f"{side}_image": f"images/{pair_id}_{side}.png", f"{side}_mask": f"masks/{pair_id}_{side}.png",
                    f"{side}_map": f"maps/{pair_id}_{side}.npy", f"n_observers_{side}": 7})
        objects = [{"id": k, "mask_id": k} for k in range(1, n_objects + 1)]
    scene = {"x": {"objects": objects}, "y": {"objects": objects}, "edit": {"type": "recolor"}}
    (root / f"scenes/{pair_id}.json").write_text(json.dumps(scene))
    return row


@pytest.fixture(scope="session")
def scene_dataset(tmp_path_factory):
    """A valid dataset of 6 train pairs (32×24) with 2–3 objects each, masks and peaked maps."""
    ds = Dataset.create(tmp_path_factory.mktemp("models") / "ds", "tiny-scenes", seed=5)
    rng = np.random.default_rng(5)
    ds.add_pairs([_write_scene_pair(ds.path, f"{i:06d}", rng) for i in range(6)])
    return ds
