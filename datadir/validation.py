"""`Dataset.validate`: every way a dataset directory can break the contract of DESIGN.md §2."""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from datadir.files import read_image
from datadir.layout import KINDS, SIDES, SUBDIRS, relative_path
from datadir.maps import DENSITY_TOLERANCE
from datadir.schema import EDIT_TYPES, PAIR_ID_PATTERN, SOURCES, SPLITS, Problem

if TYPE_CHECKING:
    from datadir.dataset import Dataset

# Which file columns each source requires (the rest may be empty).
REQUIRED_FILES = {
    "clevr": ("x_image", "y_image", "x_mask", "y_mask", "scene"),
    "photo": ("x_image", "y_image"),
    "single": ("x_image",),
}
FILE_COLUMNS = ("x_image", "y_image", "x_mask", "y_mask", "scene", "x_map", "y_map")
# Files no row lists get a line each up to this many, then one line with the count of the rest.
MAX_UNLISTED_SHOWN = 20


def validate_dataset(dataset: "Dataset", progress: bool = False) -> list[Problem]:
    """Check pairs.csv and every file it names; returns the problems found (empty = valid)."""
    table = dataset.pairs
    problems: list[Problem] = []
    for pair_id in sorted(set(table["pair_id"][table["pair_id"].duplicated()])):
        problems.append(Problem(pair_id, "duplicate", "pair id appears more than once in pairs.csv"))
    problems.extend(_duplicate_sources(table))
    rows = table.to_dict("records")
    for row in tqdm(rows, desc="validating", unit="pair", disable=not progress):
        problems.extend(_validate_row(dataset.path, row))
    problems.extend(_unlisted_files(dataset.path, rows))
    return problems


def _duplicate_sources(table: pd.DataFrame) -> list[Problem]:
    """Rows after the first that a photo import read from the same file stem (an import done twice)."""
    if "x_source_file" not in table.columns:
        return []
    first: dict[tuple[str, str], str] = {}
    problems = []
    for pair_id, source, name in zip(table["pair_id"], table["source"], table["x_source_file"]):
        if not name:
            continue
        key = (source, Path(name).stem)
        if key in first:
            problems.append(Problem(pair_id, "duplicate_source", f"imported from {name!r}, the same photo"
                                    f" (file stem {key[1]!r}) as pair {first[key]}"))
        else:
            first[key] = pair_id
    return problems


def _unlisted_files(root: Path, rows: list[dict]) -> list[Problem]:
    """Files under images/, masks/, maps/, scenes/, fixations/ that no row lists (e.g. left by an
    aborted import or render). A row lists the files its columns name, and every file of its pair
    id in the standard layout (a map's .png beside its .npy, the fixations behind a map).
    Hidden files count only when they are leftover temporary files (`.NAME.tmp…`)."""
    listed = set()
    for row in rows:
        listed.update(str(Path(row[c])) for c in FILE_COLUMNS if row[c])
        listed.update(relative_path(row["pair_id"], kind, side) for kind in KINDS for side in SIDES)
    unlisted = []
    for sub in SUBDIRS:
        for path in sorted((root / sub).rglob("*")):
            name = path.name
            if not path.is_file() or (name.startswith(".") and ".tmp" not in name):
                continue
            relative = str(path.relative_to(root))
            if relative not in listed:
                unlisted.append(relative)
    problems = [Problem("", "unlisted", f"{rel} is a file that no pairs.csv row lists")
                for rel in unlisted[:MAX_UNLISTED_SHOWN]]
    if len(unlisted) > MAX_UNLISTED_SHOWN:
        more = len(unlisted) - MAX_UNLISTED_SHOWN
        problems.append(Problem("", "unlisted", f"{more} more files that no pairs.csv row lists"))
    return problems


def _validate_row(root: Path, row: dict) -> list[Problem]:
    pid = row["pair_id"]
    problems: list[Problem] = []

    def report(kind: str, message: str) -> None:
        problems.append(Problem(pid, kind, message))

    if not PAIR_ID_PATTERN.match(pid):
        report("pair_id", f"{pid!r} is not a file-name-safe id")
    if row["split"] not in SPLITS:
        report("split", f"unknown split {row['split']!r}; expected one of {SPLITS}")
    if row["source"] not in SOURCES:
        report("source", f"unknown source {row['source']!r}; expected one of {SOURCES}")
    if row["edit_type"] not in EDIT_TYPES:
        report("edit_type", f"unknown edit type {row['edit_type']!r}; expected one of {EDIT_TYPES}")
    for column in ("n_observers_x", "n_observers_y", "n_edited"):
        value = row[column]
        if not pd.isna(value) and value < 0:
            report(column, f"{value} is negative")

    for column in REQUIRED_FILES.get(row["source"], ()):
        if not row[column]:
            report("missing", f"column {column} is empty but a {row['source']} pair needs it")

    images = {}
    for side in ("x", "y"):
        path = _existing(root, row[f"{side}_image"], f"{side}_image", report)
        if path is not None:
            image = read_image(path, cv2.IMREAD_UNCHANGED)
            if image is None:
                report("unreadable", f"{side}_image {row[f'{side}_image']} is not a readable image")
            else:
                images[side] = image
    if "x" in images and "y" in images and images["x"].shape[:2] != images["y"].shape[:2]:
        report("size", f"x image is {_wh(images['x'])} but y image is {_wh(images['y'])}")

    scene = _load_scene(root, row, report)
    for side in ("x", "y"):
        _validate_mask(root, row, side, images.get(side), scene, report)
        _validate_map(root, row, side, images.get(side), report)
    return problems


def _validate_mask(root, row, side, image, scene, report) -> None:
    path = _existing(root, row[f"{side}_mask"], f"{side}_mask", report)
    if path is None:
        return
    mask = read_image(path, cv2.IMREAD_UNCHANGED)
    if mask is None:
        report("unreadable", f"{side}_mask {row[f'{side}_mask']} is not a readable image")
        return
    if mask.ndim != 2 or mask.dtype != np.uint8:
        report("mask", f"{side}_mask has shape {mask.shape} and dtype {mask.dtype}; expected an 8-bit label image")
        return
    if image is not None and mask.shape != image.shape[:2]:
        report("size", f"{side}_mask is {_wh(mask)} but its image is {_wh(image)}")
    if scene is not None and side in scene:
        known = {int(obj["mask_id"]) for obj in scene[side].get("objects", [])}
        stray = sorted(set(np.unique(mask).tolist()) - known - {0})
        if stray:
            report("mask_ids", f"{side}_mask holds ids {stray} that no object in scene {side} has (ids {sorted(known)})")


def _validate_map(root, row, side, image, report) -> None:
    relative = row[f"{side}_map"]
    path = _existing(root, relative, f"{side}_map", report)
    if path is None:
        return
    paths = [path] + [p for p in (path.with_suffix(".npy"), path.with_suffix(".png")) if p != path and p.exists()]
    for map_path in paths:
        name = map_path.relative_to(root.resolve())
        if map_path.suffix == ".npy":
            try:
                values = np.load(map_path, allow_pickle=False)
            except (OSError, ValueError) as exc:
                report("unreadable", f"{side}_map {name} is not a readable .npy: {exc}")
                continue
            if values.ndim != 2 or not np.all(np.isfinite(values)) or values.min() < 0:
                report("density", f"{side}_map {name} must be a finite, non-negative 2-D array")
                continue
            if abs(float(values.sum(dtype=np.float64)) - 1.0) > DENSITY_TOLERANCE:
                report("density", f"{side}_map {name} sums to {values.sum():.6g}; a density sums to 1")
        else:
            values = read_image(map_path, cv2.IMREAD_UNCHANGED)
            if values is None or values.ndim != 2 or values.dtype != np.uint8:
                report("unreadable", f"{side}_map {name} must be an 8-bit grey PNG")
                continue
            if values.max() != 255:
                report("density", f"{side}_map {name} has max {values.max()}; PNG maps are scaled so max = 255")
        if image is not None and values.shape != image.shape[:2]:
            report("size", f"{side}_map {name} is {_wh(values)} but its image is {_wh(image)}")


def _load_scene(root, row, report) -> dict | None:
    path = _existing(root, row["scene"], "scene", report)
    if path is None:
        return None
    try:
        scene = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        report("unreadable", f"scene {row['scene']} is not valid JSON: {exc}")
        return None
    if not isinstance(scene, dict) or not all(key in scene for key in ("x", "y", "edit")):
        report("scene", f"scene {row['scene']} lacks the keys x, y and edit")
        return None
    return scene


def _existing(root: Path, relative: str, column: str, report) -> Path | None:
    if not relative:
        return None
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()):
        report("path", f"{column} {relative} points outside the dataset")
        return None
    if not path.is_file():
        report("missing", f"{column} {relative} does not exist")
        return None
    return path


def _wh(array: np.ndarray) -> str:
    return f"{array.shape[1]}x{array.shape[0]}"
