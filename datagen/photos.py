"""Import real photographs into a dataset directory.

`import_pairs`: SGIT-R style pairs — two photos of the same view before and after an edit,
matched by file stem. `import_singles`: SGIT-C style — one image and optionally a target
saliency map, no ground-truth Y.

Imports are exact: a photo's pair id depends only on its file stem (`photo_pair_id`, never the
same for two stems), each row records the file names it came from (pairs.csv `x_source_file`,
`y_source_file`), and a re-import skips the stems recorded there. An import writes its files,
then commits its rows in one rewrite of pairs.csv; if anything fails first, the files it wrote
are deleted, so no file is left that pairs.csv does not list.
"""
from __future__ import annotations

import hashlib
import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from datadir.maps import load_map, save_map, to_density
from datagen.dataset import _PAIR_ID, Dataset
from datagen.splits import assign_split, parse_splits

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
MAP_SUFFIXES = IMAGE_SUFFIXES + (".npy",)
# A derived id ends in '-h' and 10 hex digits of the stem's SHA-256; a stem that itself ends so is
# derived too, so no stem kept as it is can equal another stem's derived id.
_DERIVED_SUFFIX = re.compile(r"-h[0-9a-f]{10}$")
MAX_KEPT_STEM = 100  # characters; longer stems are cut (and hashed) to keep file names short


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
    todo, skipped = new_pair_ids(dataset, list(x_files))
    rows, written = [], []
    try:
        for stem, pair_id in todo.items():
            x_image, y_image = read_rgb(x_files[stem]), read_rgb(y_files[stem])
            if x_image.shape != y_image.shape:
                raise ValueError(
                    f"pair {stem}: X {x_files[stem].name} is {x_image.shape[1]}x{x_image.shape[0]} but"
                    f" Y {y_files[stem].name} is {y_image.shape[1]}x{y_image.shape[0]}; a pair needs one size"
                )
            for side, image in (("x", x_image), ("y", y_image)):
                written.append((pair_id, dataset.path_of(pair_id, "image", side)))
                _write_png(written[-1][1], image)
            rows.append({
                "pair_id": pair_id, "split": assign_split(seed, stem, fractions), "source": "photo",
                "edit_type": "none", "x_image": f"images/{pair_id}_x.png", "y_image": f"images/{pair_id}_y.png",
                "x_source_file": x_files[stem].name, "y_source_file": y_files[stem].name,
            })
        dataset.add_pairs(rows)
    except BaseException:
        _remove_uncommitted(dataset.path, written)
        raise
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
    todo, skipped = new_pair_ids(dataset, list(image_files))
    rows, written = [], []
    try:
        for stem, pair_id in todo.items():
            image = read_rgb(image_files[stem])
            row = {
                "pair_id": pair_id, "split": assign_split(seed, stem, fractions), "source": "single",
                "edit_type": "none", "x_image": f"images/{pair_id}_x.png", "x_source_file": image_files[stem].name,
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
                for kind in ("map_npy", "map"):
                    written.append((pair_id, dataset.path_of(pair_id, kind, "y")))
                    save_map(written[-1][1], density)
                row.update(y_map=f"maps/{pair_id}_y.npy", y_source_file=map_files[stem].name)
            written.append((pair_id, dataset.path_of(pair_id, "image", "x")))
            _write_png(written[-1][1], image)
            rows.append(row)
        dataset.add_pairs(rows)
    except BaseException:
        _remove_uncommitted(dataset.path, written)
        raise
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


def photo_pair_id(stem: str) -> str:
    """The pair id of the photo with file stem `stem`, the same in every import.

    The stem itself where it is file-name safe (letters, digits, _ . -, first a letter or digit,
    at most MAX_KEPT_STEM characters); otherwise the stem cleaned to those characters, then '-h'
    and 10 hex digits of the stem's SHA-256. Kept stems never end in '-h' + 10 hex digits (such a
    stem is derived too), so two stems share an id only if their hashes do, which
    `new_pair_ids` refuses rather than merge.
    """
    if _PAIR_ID.match(stem) and len(stem) <= MAX_KEPT_STEM and not _DERIVED_SUFFIX.search(stem):
        return stem
    base = _clean(stem)[:MAX_KEPT_STEM] or "photo"
    digest = hashlib.sha256(stem.encode("utf-8", "surrogateescape")).hexdigest()
    return f"{base}-h{digest[:10]}"


def new_pair_ids(dataset: Dataset, stems: list[str]) -> tuple[dict[str, str], int]:
    """{stem: pair id} of the stems `dataset` does not hold yet, and how many it holds.

    A stem is held when a row's `x_source_file` has that stem. Rows imported before sources
    were recorded (no `x_source_file`) hold the stem equal to their pair id; a stem that such a
    row might hold under the old id scheme (cleaned, then `_2`, `_3`, … on a clash) is refused
    with a ValueError rather than guessed. So is an id that two stems would share.
    """
    table = dataset.pairs
    recorded = table["x_source_file"] if "x_source_file" in table.columns else pd.Series("", index=table.index)
    held = {Path(name).stem: pid for name, pid in zip(recorded, table["pair_id"]) if name}
    legacy = set(table["pair_id"][recorded == ""])
    by_old_base: dict[str, list[str]] = {}  # legacy ids no stem claims, by the cleaned stem they may come from
    for pid in legacy - set(stems):
        for base in {pid, re.sub(r"_([2-9]|[1-9]\d+)$", "", pid)}:  # the old scheme's clash suffixes _2, _3, …
            by_old_base.setdefault(base, []).append(pid)
    owner = {pid: stem for stem, pid in held.items()} | {pid: None for pid in legacy}
    todo: dict[str, str] = {}
    for stem in stems:
        if stem in held or stem in legacy:
            continue
        suspects = sorted(by_old_base.get(_clean(stem) or "pair", []))
        if suspects:
            raise ValueError(
                f"photo {stem!r} may already be pair {', '.join(suspects)} of {dataset.path}, which was imported"
                " before source file names were recorded; import into a new dataset instead"
            )
        pair_id = photo_pair_id(stem)
        if pair_id in owner:
            other = owner[pair_id]
            holder = f"photo {other!r}" if other is not None else "a row imported before source files were recorded"
            raise ValueError(f"photo {stem!r} would get pair id {pair_id}, which {holder} has; rename the photo")
        owner[pair_id] = stem
        todo[stem] = pair_id
    return todo, len(stems) - len(todo)


def read_rgb(path: Path) -> np.ndarray:
    """An image file as 8-bit BGR (cv2 order), alpha dropped, grey expanded; ValueError if unreadable."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path} is not a readable image")
    return image


def _clean(stem: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", stem).lstrip("._-")


def _write_png(path: Path, image: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.tmp.png")
    try:
        if not cv2.imwrite(str(tmp), image):
            raise ValueError(f"could not write {path}")
        shutil.move(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _remove_uncommitted(root: Path, written: list[tuple[str, Path]]) -> None:
    """Delete the files (and their temporary files) an import wrote for pairs that pairs.csv on
    disk does not list: the rows commit with the rename of pairs.csv, so files of a failure
    before it go, and files of one after it (e.g. writing dataset.json) stay with their rows."""
    try:
        listed = set(Dataset.open(root).pairs["pair_id"])
    except ValueError as exc:  # cannot tell what is listed: keep the files, `dataset validate` names them
        log.warning("could not read %s back (%s); files of the failed import are left in place", root, exc)
        return
    for pair_id, path in written:
        if pair_id not in listed:
            for leftover in [path, *path.parent.glob(f".{path.name}.tmp*")]:  # ids hold no glob characters
                leftover.unlink(missing_ok=True)


def _open_or_create(path: Path, name: str, **settings) -> Dataset:
    if (path / "dataset.json").exists():
        dataset = Dataset.open(path)
        if dataset.settings.get("source") != settings["source"]:
            raise ValueError(
                f"{path} holds a {dataset.settings.get('source')!r} dataset; refusing to add {settings['source']!r} pairs"
            )
        return dataset
    return Dataset.create(path, name, **settings)
