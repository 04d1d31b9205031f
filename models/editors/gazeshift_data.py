"""GazeShiftNet's training items: one qualifying object mask per X and Y image of a dataset split."""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.data import PairDataset, read_mask_and_map
from models.targets import select_gazeshift_mask

logger = logging.getLogger(__name__)

__all__ = ["GazeShiftSamples"]


class GazeShiftSamples(torch.utils.data.Dataset):
    """CoCoClutter-style training pairs from the X and Y images of a gazelab dataset split.

    Each image with a label mask and a fixation map gets one object, drawn once by
    `models.targets.select_gazeshift_mask` at the training size: ≥ 2 objects, area within
    [min_area, max_area], not already the most salient. The draw of each image has its own
    random stream from (`mask_seed`, side, row), so it does not depend on the other images; the
    choices read only masks and maps, on `workers` threads (a 60,000-pair dataset is 120,000
    of them). Images with no such object are skipped (logged); none left is a ValueError.
    `size` = (W, H). Items: ``image`` (3, H, W) in [0, 1], ``mask`` (1, H, W) float {0, 1},
    ``mask_id`` (int), ``pair_id`` ("<pair>/x").
    """

    def __init__(self, data_dir, split: str | None, size: tuple[int, int], min_area: float = 0.01,
                 max_area: float = 0.5, mask_seed: int = 0, workers: int | None = None):
        root = Path(data_dir)
        if not (root / "pairs.csv").is_file():
            raise ValueError(f"{root} is not a gazelab dataset dir (no pairs.csv); GazeShiftNet trains on its "
                             "images, object masks and fixation maps")
        self.sides = {side: PairDataset(root, split=split, size=size, sides=(side,), require_maps=False)
                      for side in ("x", "y")}
        skipped = {"no mask": 0, "no fixation map": 0, "no qualifying object": 0}
        candidates = []  # (side, row index, mask path, map path)
        for side, pairs in self.sides.items():
            for index, (row, maps) in enumerate(zip(pairs.rows, pairs.map_paths)):
                if not row[f"{side}_image"]:
                    continue  # a pair without a Y image
                if not row[f"{side}_mask"] or maps.get(side) is None:
                    skipped["no mask" if not row[f"{side}_mask"] else "no fixation map"] += 1
                    continue
                candidates.append((side, index, root / row[f"{side}_mask"], maps[side]))

        def choose(candidate) -> int | None:
            side, index, mask_path, map_path = candidate
            try:
                labels, density = read_mask_and_map(mask_path, map_path, tuple(size))
            except ValueError as exc:
                raise ValueError(f"pair {self.sides[side].rows[index]['pair_id']}: {exc}") from exc
            rng = np.random.default_rng([mask_seed, "xy".index(side), index])
            chosen = select_gazeshift_mask(density.astype(np.float64), labels, rng, min_area, max_area)
            return None if chosen is None else int(labels[chosen][0])

        with ThreadPoolExecutor(workers or min(8, os.cpu_count() or 1)) as pool:  # OpenCV and numpy release the GIL
            choices = list(pool.map(choose, candidates))
        self.items: list[tuple[str, int, int]] = []
        for (side, index, _, _), mask_id in zip(candidates, choices):
            if mask_id is None:
                skipped["no qualifying object"] += 1
            else:
                self.items.append((side, index, mask_id))
        summary = ", ".join(f"{count} with {reason}" for reason, count in skipped.items() if count)
        if summary:
            logger.info("%s: skipped %s (GazeShiftNet needs a mask, a map and an object with ≥ 2 objects in the "
                        "image, area in [%g, %g], not already the most salient)", root, summary, min_area, max_area)
        if not self.items:
            raise ValueError(f"split {split or 'all'} of {root} has no image GazeShiftNet can train on: {summary}; "
                             f"each needs a label mask with ≥ 2 objects, one covering {min_area:g}–{max_area:g} of "
                             "the image and less salient than the most salient object, and a fixation map")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        side, pair_index, mask_id = self.items[index]
        item = self.sides[side][pair_index]
        mask = (item[f"{side}_mask"] == mask_id).float()[None]
        return {"image": item[side], "mask": mask, "mask_id": mask_id, "pair_id": f"{item['pair_id']}/{side}"}
