"""Subsets of a dataset: SGIT-S's filter keeps the pairs whose edit changed where people look.

`filter_by_kl` copies the pairs with kl_xy ≥ min_kl (KLD between the X and Y fixation maps,
nats, as `gazelab study export` writes it) into a new, valid dataset: their rows and every file
a row names (images, masks, scene, maps with their .png views, fixations). Pairs without kl_xy
(no maps on one side yet) are not kept, and counted as such.
"""
from __future__ import annotations

import logging
import math
import shutil
from pathlib import Path

from datadir import Dataset

log = logging.getLogger(__name__)
FILE_COLUMNS = ("x_image", "y_image", "x_mask", "y_mask", "scene", "x_map", "y_map")


def filter_by_kl(source_dir, out_dir, min_kl: float) -> dict:
    """Write the pairs of the dataset at `source_dir` with kl_xy ≥ `min_kl` as a new dataset at
    `out_dir` (which must not exist or be empty). Returns {"kept", "below", "without_kl",
    "splits": kept per split, "out"}. ValueError for a bad threshold, an occupied out_dir, or a
    filter that keeps nothing (then nothing is written)."""
    if isinstance(min_kl, bool) or not isinstance(min_kl, (int, float)) or not math.isfinite(min_kl) or min_kl < 0:
        raise ValueError(f"min_kl must be a number >= 0 (nats), got {min_kl!r}")
    source = Dataset.open(source_dir)
    out = Path(out_dir)
    if out.resolve() == source.path.resolve():
        raise ValueError(f"the filtered dataset must go to a new folder, not {out}")
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} is not empty; give a new folder for the filtered dataset")
    pairs = source.pairs
    kl = pairs["kl_xy"]
    without = int(kl.isna().sum())
    keep = pairs[kl.notna() & (kl >= min_kl)]
    below = len(pairs) - without - len(keep)
    if keep.empty:
        raise ValueError(f"no pair of {source.path} has kl_xy >= {min_kl:g} ({below} below it, {without} without"
                         " kl_xy: export a study's maps first); nothing written")
    target = Dataset.create(out, f"{source.name}-kl{min_kl:g}",
                            **{**source.settings, "filtered_from": str(source.path), "min_kl": float(min_kl)})
    rows = []
    for row in keep.to_dict("records"):
        for column in FILE_COLUMNS:
            if isinstance(row.get(column), str) and row[column]:
                _copy(source.path, target.path, row[column])
        for side in ("x", "y"):
            for kind in ("map", "fixations"):  # the .png view of each map, and the clicks behind it
                path = source.path_of(row["pair_id"], kind, side)
                if path.is_file():
                    _copy(source.path, target.path, path.relative_to(source.path))
        rows.append({k: v for k, v in row.items() if not _missing(v)})
    target.add_pairs(rows)
    splits = {str(k): int(v) for k, v in keep["split"].value_counts().sort_index().items()}
    log.info("filtered %s: %d of %d pairs with kl_xy >= %g into %s", source.path, len(keep), len(pairs), min_kl, out)
    return {"kept": len(keep), "below": below, "without_kl": without, "total": len(pairs), "splits": splits,
            "out": str(target.path)}


def _copy(source_root: Path, target_root: Path, relative) -> None:
    """Copy one file of the dataset, keeping its relative path (content and mode bits of a new file)."""
    target = target_root / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source_root / relative, target)


def _missing(value) -> bool:
    try:
        return value is None or bool(value != value)  # NaN / pandas NA
    except TypeError:  # pandas.NA compares to NA
        return True
