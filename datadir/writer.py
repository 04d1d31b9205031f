"""`PairWriter`: the one way a pair's files get into a dataset directory.

Every producer (the renderer's workers, the photo import, study exports, simulated studies,
benchmarks and test fixtures) writes a pair's images, masks, maps, fixations and scene through it,
and gets back the pairs.csv row that names them. Each file is written atomically (temporary file,
rename); the scene file, which marks a rendered pair complete, is written last by `write`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from datadir.files import atomic_write_text, write_json, write_png
from datadir.layout import COLUMN_OF_KIND, SIDES, SUBDIRS, relative_path
from datadir.maps import save_map, to_density


class PairWriter:
    """Writes pairs into the dataset folder `root` (its sub-folders are made on first use)."""

    def __init__(self, root):
        self.root = Path(root)
        for sub in SUBDIRS:
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    def path(self, pair_id: str, kind: str, side: str = "x") -> Path:
        """Where `kind`'s file of a pair goes, for producers that write it themselves (Blender
        renders straight into it; write through a temporary file and rename)."""
        return self.root / relative_path(pair_id, kind, side)

    def image(self, pair_id: str, side: str, rgb: np.ndarray) -> str:
        """An (H, W, 3) uint8 RGB image; returns its relative path."""
        array = np.asarray(rgb)
        if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
            raise ValueError(f"pair {pair_id} {side} image: expected (H, W, 3) uint8 RGB, got {array.shape} "
                             f"{array.dtype}")
        write_png(self.path(pair_id, "image", side), array)
        return relative_path(pair_id, "image", side)

    def mask(self, pair_id: str, side: str, labels: np.ndarray) -> str:
        """An (H, W) uint8 label image (0 background, k = the object with mask_id k)."""
        array = np.asarray(labels)
        if array.ndim != 2 or array.dtype != np.uint8:
            raise ValueError(f"pair {pair_id} {side} mask: expected (H, W) uint8 labels, got {array.shape} {array.dtype}")
        write_png(self.path(pair_id, "mask", side), array, rgb=False)
        return relative_path(pair_id, "mask", side)

    def map(self, pair_id: str, side: str, saliency, *, png: bool = True) -> str:
        """A saliency map as the float32 density (.npy, sums to 1) and, with `png`, also as the 8-bit
        PNG scaled so max = 255 (§2). Returns the .npy's relative path, the pairs.csv map column
        (the exact map; readers given the PNG read the .npy beside it)."""
        density = to_density(saliency)
        save_map(self.path(pair_id, "map_npy", side), density)
        if png:
            save_map(self.path(pair_id, "map", side), density)
        return relative_path(pair_id, "map_npy", side)

    def fixations(self, pair_id: str, side: str, table: pd.DataFrame) -> str:
        """The fixations behind a map: columns participant_id, x, y, t_ms (image pixels)."""
        missing = [c for c in ("participant_id", "x", "y", "t_ms") if c not in table.columns]
        if missing:
            raise ValueError(f"pair {pair_id} {side} fixations lack columns {missing}")
        atomic_write_text(self.path(pair_id, "fixations", side),
                          table[["participant_id", "x", "y", "t_ms"]].to_csv(index=False, lineterminator="\n"))
        return relative_path(pair_id, "fixations", side)

    def scene(self, pair_id: str, record: dict[str, Any]) -> str:
        """The scene file ({"x": scene, "y": scene, "edit": …}); it marks a rendered pair complete."""
        write_json(self.path(pair_id, "scene"), record)
        return relative_path(pair_id, "scene")

    def write(self, pair_id: str, *, split: str, source: str, edit_type: str = "none", n_edited: int = 0,
              images: dict[str, np.ndarray] | None = None, masks: dict[str, np.ndarray] | None = None,
              maps: dict[str, Any] | None = None, scene: dict[str, Any] | None = None, **columns) -> dict[str, Any]:
        """Write every given file of one pair (images, masks and maps keyed by side), the scene last,
        and return its pairs.csv row; `columns` adds further columns (e.g. n_observers_x)."""
        row: dict[str, Any] = {"pair_id": pair_id, "split": split, "source": source, "edit_type": edit_type,
                               "n_edited": n_edited}
        for kind, given, write in (("image", images, self.image), ("mask", masks, self.mask),
                                   ("map", maps, self.map)):
            for side, value in (given or {}).items():
                if side not in SIDES:
                    raise ValueError(f"pair {pair_id}: side {side!r} is not one of {SIDES}")
                row[f"{side}_{kind}"] = write(pair_id, side, value)
        if scene is not None:
            row["scene"] = self.scene(pair_id, scene)
        return {**row, **columns}

    def row_for_files(self, pair_id: str, kinds: dict[str, tuple[str, ...]], **values) -> dict[str, Any]:
        """The pairs.csv row of files already in place (e.g. rendered by Blender): `kinds` maps each
        kind to the sides present, e.g. {"image": ("x", "y"), "mask": ("x", "y"), "scene": ()}."""
        row: dict[str, Any] = {"pair_id": pair_id, **values}
        for kind, sides in kinds.items():
            if kind == "scene":
                row["scene"] = relative_path(pair_id, "scene")
            for side in sides:
                row[f"{side}_{COLUMN_OF_KIND[kind]}"] = relative_path(pair_id, kind, side)
        return row
