"""GazeShiftNet's training items: one qualifying object mask per X and Y image of a dataset split."""

from __future__ import annotations

from typing import Any

import numpy as np

from models.data import TrainingItems
from models.targets import select_gazeshift_mask

__all__ = ["GazeShiftSamples"]


class GazeShiftSamples(TrainingItems):
    """CoCoClutter-style training pairs from the X and Y images of a gazelab dataset split.

    Each image with a label mask and a fixation map gets one object, drawn by
    `models.targets.select_gazeshift_mask` at the training size when the item is read: ≥ 2
    objects, area within [min_area, max_area], not already the most salient. Each image draws
    from its own random stream (`mask_seed`, side, row), so its object does not depend on the
    other images, on the order of reads or on the number of loader workers; construction reads no
    mask. An image without such an object is unusable: the next usable image takes its place
    (logged once per image). `size` = (W, H). Items: ``image`` (3, H, W) in [0, 1], ``mask``
    (1, H, W) float {0, 1}, ``mask_id`` (int), ``pair_id`` ("<pair>/<side>").
    """

    def __init__(self, data_dir, split: str | None, size: tuple[int, int], min_area: float = 0.01,
                 max_area: float = 0.5, mask_seed: int = 0):
        self.min_area, self.max_area, self.mask_seed = float(min_area), float(max_area), int(mask_seed)
        super().__init__(data_dir, split, unit="image", size=size, require=("map", "mask"), owner="GazeShiftNet")

    def choose_object(self, item: dict[str, Any], index: int) -> int | None:
        """The mask id drawn for item `index` (as read), or None when its image has no qualifying object."""
        labels, density = item["mask"].numpy(), item["map"][0].double().numpy()
        side, row = self.rows[index]
        rng = np.random.default_rng([self.mask_seed, "xy".index(side), row])
        chosen = select_gazeshift_mask(density, labels, rng, self.min_area, self.max_area)
        return None if chosen is None else int(labels[chosen][0])

    def prepare(self, item: dict[str, Any], index: int) -> dict[str, Any] | None:
        mask_id = self.choose_object(item, index)
        if mask_id is None:
            return None
        return {"image": item["image"], "mask": (item["mask"] == mask_id).float()[None], "mask_id": mask_id,
                "pair_id": item["pair_id"]}

    def refusal_reason(self) -> str:
        return (f"no qualifying object: each needs a label mask with ≥ 2 objects, one covering "
                f"{self.min_area:g}–{self.max_area:g} of the image and less salient than the most salient one")
