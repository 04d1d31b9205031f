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
# The pairs.csv column that names each kind's file of side s ("{side}" filled in), where one does.
COLUMN_OF_KIND = {"image": "{side}_image", "mask": "{side}_mask", "map": "{side}_map", "scene": "scene"}

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


def find_images(folder, suffixes=IMAGE_SUFFIXES, *, what: str = "folder") -> dict[str, Path]:
    """{file stem: path} of the files in `folder` (not recursive) whose suffix is in `suffixes`
    (any case). Where one stem has several files, the suffix earlier in `suffixes` wins. Hidden
    files are left out. ValueError naming `what` if the folder does not exist."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{what} {folder} is not a folder")
    rank = {suffix: i for i, suffix in enumerate(suffixes)}
    found: dict[str, Path] = {}
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        path = Path(entry.path)
        suffix = path.suffix.lower()
        if entry.name.startswith(".") or suffix not in rank or not entry.is_file():
            continue
        best = found.get(path.stem)
        if best is None or rank[suffix] < rank[best.suffix.lower()]:
            found[path.stem] = path
    return found
