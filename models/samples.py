"""(image, fixation density) samples for training saliency predictors, from either layout.

`SaliencySamples(data_dir)` accepts a gazelab dataset dir (every X and Y image of a split that
has a map — the maps a study built) or a SALICON/MIT1003-style folder holding ``images/`` and
``maps/`` (and optionally ``fixations/``). Items: ``x`` (3, H, W) in [0, 1], ``x_map``
(1, H, W) density, ``pair_id`` ("<pair>/x", "<pair>/y" or the file stem), and ``x_fixations``
where the folder has them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import torch

from models.data import FolderSaliencyDataset, PairDataset, _check_size

__all__ = ["SaliencySamples"]


class SaliencySamples(torch.utils.data.Dataset):
    """Every image with a fixation map under `data_dir` (see the module docstring).

    `size` = (W, H) resizes every item (maps by area, renormalised); `augment` is a `JointAugment`.
    A dataset dir whose split has no maps raises ValueError saying how to get them.
    """

    def __init__(self, data_dir: str | os.PathLike, split: str | None = "train", size=None,
                 augment: Callable | None = None):
        root = Path(data_dir)
        self.size = _check_size(size)
        if not root.is_dir():
            raise ValueError(f"data dir {root} does not exist or is not a directory")
        if (root / "pairs.csv").is_file():
            self.source = "dataset"
            # one PairDataset per side, so that an item reads only its own image, map and mask
            self.sides = {side: PairDataset(root, split=split, size=size, sides=(side,), require_maps=False,
                                            augment=augment) for side in ("x", "y")}
            self.items = [(index, side) for side, pairs in self.sides.items()
                          for index, maps in enumerate(pairs.map_paths) if maps.get(side) is not None]
            if not self.items:
                raise ValueError(f"split {split or 'all'} of dataset {root} has no fixation maps; collect them "
                                 "with a study (`gazelab study build-maps` then `gazelab study export`)")
        elif (root / "images").is_dir() and (root / "maps").is_dir():
            self.source = "folders"
            fixations = root / "fixations"
            self.folders = FolderSaliencyDataset(root / "images", root / "maps",
                                                 fixations if fixations.is_dir() else None, size=size,
                                                 augment=augment)
            self.items = list(range(len(self.folders)))
        else:
            raise ValueError(f"{root} is neither a gazelab dataset dir (no pairs.csv) nor a folder with "
                             "images/ and maps/ subfolders (SALICON/MIT1003 layout)")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if self.source == "folders":
            return self.folders[self.items[index]]
        pair_index, side = self.items[index]
        item = self.sides[side][pair_index]
        return {"x": item[side], "x_map": item[f"{side}_map"], "pair_id": f"{item['pair_id']}/{side}"}
