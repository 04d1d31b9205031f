"""Where each file of a dataset directory lives (DESIGN.md §2): the only place that spells it.

    DATASET/dataset.json, pairs.csv, images/, masks/, scenes/, maps/, fixations/

Also the one list of image suffixes gazelab reads, and the one finder of images by file stem.
"""
from __future__ import annotations

import os
from pathlib import Path

META_FILE = "dataset.json"
PAIRS_FILE = "pairs.csv"
SUBDIRS = ("images", "masks", "scenes", "maps", "fixations")
SIDES = ("x", "y")
# kind -> (folder, name pattern); a side-less kind (the scene) ignores the side.
_FILES = {
    "image": ("images", "{pair_id}_{side}.png"),
    "mask": ("masks", "{pair_id}_{side}.png"),
    "map": ("maps", "{pair_id}_{side}.png"),
    "map_npy": ("maps", "{pair_id}_{side}.npy"),
    "fixations": ("fixations", "{pair_id}_{side}.csv"),
    "scene": ("scenes", "{pair_id}.json"),
}
KINDS = tuple(_FILES)
# The pairs.csv column (after "x_" / "y_") that names each kind's file of a side, where one does.
COLUMN_OF_KIND = {"image": "image", "mask": "mask", "map": "map", "map_npy": "map"}

# Every image format gazelab reads (photos, predictions, maps given as images), and the order a
# stem's files are preferred in when a folder holds several files of one stem.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
MAP_SUFFIXES = (".npy",) + IMAGE_SUFFIXES  # a float32 density first: it is exact


def relative_path(pair_id: str, kind: str, side: str = "x") -> str:
    """A pair's file relative to the dataset folder, e.g. 'masks/000001_y.png'.

    kind: image | mask | map (8-bit PNG) | map_npy (float32 density) | fixations | scene;
    side: x | y (ignored for scene).
    """
    if kind not in _FILES:
        raise ValueError(f"kind {kind!r} is not one of {KINDS}")
    if side not in SIDES:
        raise ValueError(f"side {side!r} is not one of {SIDES}")
    folder, pattern = _FILES[kind]
    return f"{folder}/{pattern.format(pair_id=pair_id, side=side)}"


def folder_of(kind: str) -> str:
    """The sub-folder that holds files of `kind` (e.g. 'masks')."""
    if kind not in _FILES:
        raise ValueError(f"kind {kind!r} is not one of {KINDS}")
    return _FILES[kind][0]


def meta_path(root) -> Path:
    return Path(root) / META_FILE


def pairs_path(root) -> Path:
    return Path(root) / PAIRS_FILE


def is_dataset(path) -> bool:
    """Whether `path` is a dataset directory (it holds dataset.json and pairs.csv)."""
    return meta_path(path).is_file() and pairs_path(path).is_file()


def saliency_folders(root) -> tuple[Path, Path, Path | None] | None:
    """(images, maps, fixations or None) of a SALICON / MIT1003-style folder with images/ and
    maps/ (and optionally fixations/) sub-folders; None if `root` is not one."""
    root = Path(root)
    images, maps, fixations = (root / folder_of(kind) for kind in ("image", "map", "fixations"))
    if images.is_dir() and maps.is_dir():
        return images, maps, fixations if fixations.is_dir() else None
    return None


def find_images(folder, suffixes=IMAGE_SUFFIXES, *, name_suffix: str = "", what: str = "folder",
                duplicates: str = "prefer") -> dict[str, Path]:
    """{stem: path} of the files in `folder` (not recursive) whose suffix is in `suffixes` (any
    case) and whose stem ends in `name_suffix` (removed from the key: SALICON's `_fixMap`, say).
    Hidden files are left out. Where one stem has several files, `duplicates` "prefer" keeps the
    suffix earlier in `suffixes` and "refuse" raises a ValueError naming both. ValueError naming
    `what` if the folder does not exist."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{what} {folder} is not a folder")
    if duplicates not in ("prefer", "refuse"):
        raise ValueError(f"duplicates {duplicates!r}: expected 'prefer' or 'refuse'")
    rank = {suffix: i for i, suffix in enumerate(suffixes)}
    candidates = []
    for entry in os.scandir(folder):
        path = Path(entry.path)
        suffix = path.suffix.lower()
        if entry.name.startswith(".") or suffix not in rank or not path.stem.endswith(name_suffix):
            continue
        if entry.is_file():
            candidates.append(path)
    found: dict[str, Path] = {}
    for path in sorted(candidates, key=lambda p: (rank[p.suffix.lower()], p.name)):
        stem = path.stem[: len(path.stem) - len(name_suffix)]
        if stem in found and duplicates == "refuse":
            raise ValueError(f"{what} {folder} has two files for {stem}: {found[stem].name}, {path.name}")
        found.setdefault(stem, path)
    return found
