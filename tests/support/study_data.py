"""Datasets to run the example designs on (studyweb/examples/): test-split CLEVR-like pairs
whose images are large enough for legible CodeCharts codes, with masks (two objects), target
maps and scenes, and stand-in outputs (a tinted copy of each input) for every method a design
names."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import yaml

from datadir import Dataset, PairWriter

EXAMPLES = sorted((Path(__file__).parents[2] / "studyweb" / "examples").glob("*.yaml"))
SIZE = (480, 360)  # CodeCharts shows these at 960x720 CSS px: codes above codecharts.MIN_CODE_PX


def example_dataset(root: Path, n_pairs: int, size: tuple[int, int] = SIZE) -> Dataset:
    """A dataset at root/ds of n_pairs test pairs p00, p01, ... of `size` (w, h) images."""
    ds = Dataset.create(Path(root) / "ds", "examples", seed=2)
    ds.add_pairs([_pair(ds.path, f"p{i:02d}", size) for i in range(n_pairs)])
    return ds


def method_outputs(example: Path, root: Path, dataset: Dataset) -> dict[str, str]:
    """{method: folder} of stand-in outputs (<pair_id>.png) for every method the example names."""
    names = list(yaml.safe_load(Path(example).read_text()).get("methods") or {})
    out = {}
    for k, name in enumerate(names):
        folder = Path(root) / name
        folder.mkdir(parents=True, exist_ok=True)
        for pair_id in dataset.pairs["pair_id"]:
            image = cv2.imread(str(dataset.path_of(pair_id, "image", "x")))
            tinted = np.clip(image.astype(int) + 20 * (k + 1), 0, 255).astype(np.uint8)
            cv2.imwrite(str(folder / f"{pair_id}.png"), tinted)
        out[name] = str(folder)
    return out


def _pair(root: Path, pair_id: str, size: tuple[int, int]) -> dict:
    """The files of one pair (two objects in each mask and scene); its pairs.csv row."""
    width, height = size
    rng = np.random.default_rng(int(pair_id[1:]))
    writer = PairWriter(root)
    images, masks, maps = {}, {}, {}
    objects = []
    for side in ("x", "y"):
        images[side] = rng.integers(0, 255, (height, width, 3), np.uint8)
        mask = np.zeros((height, width), np.uint8)
        objects = []
        for mask_id, (fx, fy) in enumerate([(0.3, 0.4), (0.7, 0.6)], start=1):
            x, y = int(fx * width), int(fy * height)
            mask[y - height // 10:y + height // 10, x - width // 10:x + width // 10] = mask_id
            objects.append({"id": mask_id, "mask_id": mask_id, "pixel_coords": [x, y, 10.0], "color": "red",
                            "shape": "cube" if mask_id == 1 else "sphere", "material": "rubber", "size": "large"})
        masks[side] = mask
        maps[f"{side}_map"] = writer.map(pair_id, side, np.ones((height, width)), png=False)
    return writer.write(pair_id, split="test", source="clevr", edit_type="recolor", n_edited=1, images=images,
                        masks=masks, scene={"x": {"objects": objects}, "y": {"objects": objects},
                                            "edit": {"type": "recolor"}},
                        **maps, n_observers_x=7, n_observers_y=8)
