"""Import real photographs into a dataset directory.

`import_pairs`: SGIT-R style pairs — two photos of the same view before and after an edit,
matched by file stem. `import_singles`: SGIT-C style — one image and optionally a target
saliency map, no ground-truth Y.
"""
from __future__ import annotations

import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from analysis.fixations import load_map, save_map, to_density
from datagen.dataset import Dataset
from datagen.splits import assign_split, parse_splits

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
MAP_SUFFIXES = IMAGE_SUFFIXES + (".npy",)


@dataclass
class ImportSummary:
    imported: int
    skipped: int  # already in the dataset
    path: Path


def import_pairs(x_dir, y_dir, out, splits="0.94,0.03,0.03", seed: int = 0, name: str | None = None) -> ImportSummary:
    """Copy photo pairs (X in x_dir, Y in y_dir, same stem, same size) into dataset `out` as PNGs."""
    x_files = images_by_stem(Path(x_dir), "--x-dir")
    y_files = images_by_stem(Path(y_dir), "--y-dir")
    unmatched = sorted(set(x_files) ^ set(y_files))
    if unmatched:
        raise ValueError(f"photos without a counterpart (matched by file stem): {', '.join(unmatched[:10])}")
    fractions = parse_splits(splits)
    dataset = _open_or_create(Path(out), name or Path(out).name, source="photo", seed=seed, splits=list(fractions))
    ids = pair_ids(x_files)
    existing = set(dataset.pairs["pair_id"])
    rows, skipped = [], 0
    for stem, pair_id in ids.items():
        if pair_id in existing:
            skipped += 1
            continue
        x_image, y_image = read_rgb(x_files[stem]), read_rgb(y_files[stem])
        if x_image.shape != y_image.shape:
            raise ValueError(
                f"pair {stem}: X {x_files[stem].name} is {x_image.shape[1]}x{x_image.shape[0]} but"
                f" Y {y_files[stem].name} is {y_image.shape[1]}x{y_image.shape[0]}; a pair needs one size"
            )
        for side, image in (("x", x_image), ("y", y_image)):
            _write_png(dataset.path_of(pair_id, "image", side), image)
        rows.append({
            "pair_id": pair_id, "split": assign_split(seed, stem, fractions), "source": "photo",
            "edit_type": "none", "x_image": f"images/{pair_id}_x.png", "y_image": f"images/{pair_id}_y.png",
        })
    dataset.add_pairs(rows)
    return ImportSummary(len(rows), skipped, dataset.path)


def import_singles(images, out, target_maps=None, splits="0,0,1", seed: int = 0, name: str | None = None) -> ImportSummary:
    """Copy single images (and target maps, matched by stem, stored as densities) into dataset `out`."""
    image_files = images_by_stem(Path(images), "--images")
    map_files = images_by_stem(Path(target_maps), "--target-maps", MAP_SUFFIXES) if target_maps else {}
    if target_maps:
        lacking = sorted(set(image_files) - set(map_files))
        if lacking:
            raise ValueError(f"no target map for images {', '.join(lacking[:10])} in {target_maps}")
    fractions = parse_splits(splits)
    dataset = _open_or_create(Path(out), name or Path(out).name, source="single", seed=seed, splits=list(fractions))
    existing = set(dataset.pairs["pair_id"])
    rows, skipped = [], 0
    for stem, pair_id in pair_ids(image_files).items():
        if pair_id in existing:
            skipped += 1
            continue
        image = read_rgb(image_files[stem])
        row = {
            "pair_id": pair_id, "split": assign_split(seed, stem, fractions), "source": "single",
            "edit_type": "none", "x_image": f"images/{pair_id}_x.png",
        }
        if stem in map_files:
            target = load_map(map_files[stem])
            if target.shape != image.shape[:2]:
                raise ValueError(
                    f"target map {map_files[stem].name} is {target.shape[1]}x{target.shape[0]} but image"
                    f" {image_files[stem].name} is {image.shape[1]}x{image.shape[0]}"
                )
            try:
                density = to_density(target)
            except ValueError as exc:
                raise ValueError(f"target map {map_files[stem]}: {exc}") from exc
            save_map(dataset.path_of(pair_id, "map_npy", "y"), density)
            save_map(dataset.path_of(pair_id, "map", "y"), density)
            row["y_map"] = f"maps/{pair_id}_y.npy"
        _write_png(dataset.path_of(pair_id, "image", "x"), image)
        rows.append(row)
    dataset.add_pairs(rows)
    return ImportSummary(len(rows), skipped, dataset.path)


def images_by_stem(folder: Path, option: str, suffixes=IMAGE_SUFFIXES) -> dict[str, Path]:
    """{stem: path} of the image files in `folder`; other files are skipped with a warning."""
    if not folder.is_dir():
        raise ValueError(f"{option} {folder} is not a directory")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        if path.suffix.lower() not in suffixes:
            log.warning("skipping %s: not an image (%s)", path, ", ".join(suffixes))
            continue
        if path.stem in found:
            raise ValueError(f"{option} has two files with stem {path.stem!r}: {found[path.stem].name}, {path.name}")
        found[path.stem] = path
    if not found:
        raise ValueError(f"{option} {folder} holds no images ({', '.join(suffixes)})")
    return found


def pair_ids(files: dict[str, Path]) -> dict[str, str]:
    """A file-name-safe, unique pair id for each stem (the stem itself where it is safe)."""
    ids: dict[str, str] = {}
    used: set[str] = set()
    for stem in files:
        base = re.sub(r"[^A-Za-z0-9_.-]", "_", stem).lstrip("._-") or "pair"
        candidate, n = base, 1
        while candidate in used:
            n += 1
            candidate = f"{base}_{n}"
        ids[stem] = candidate
        used.add(candidate)
    return ids


def read_rgb(path: Path) -> np.ndarray:
    """An image file as 8-bit BGR (cv2 order), alpha dropped, grey expanded; ValueError if unreadable."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path} is not a readable image")
    return image


def _write_png(path: Path, image: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.tmp.png")
    if not cv2.imwrite(str(tmp), image):
        raise ValueError(f"could not write {path}")
    shutil.move(tmp, path)


def _open_or_create(path: Path, name: str, **settings) -> Dataset:
    if (path / "dataset.json").exists():
        dataset = Dataset.open(path)
        if dataset.settings.get("source") != settings["source"]:
            raise ValueError(
                f"{path} holds a {dataset.settings.get('source')!r} dataset; refusing to add {settings['source']!r} pairs"
            )
        return dataset
    return Dataset.create(path, name, **settings)
