"""Torch datasets over a gazelab dataset dir (DESIGN.md §2) and SALICON/MIT1003-style folders
(reading, resizing, augmenting and batching their arrays: `models.arrays`).

Item conventions, shared by every dataset here and by `JointAugment` and `collate`:

- images ``x``, ``y``: float32 3×H×W, RGB in [0, 1];
- maps ``*_map``: float32 1×H×W *densities* (≥ 0, sum 1 — not max-normalised);
- masks ``*_mask``: int64 H×W label images, 0 background, k = the object with ``mask_id`` k;
- fixations ``*_fixations``: uint8 H×W binary fixation map (1 where someone fixated);
- everything else (``pair_id``, ``x_objects`` …) stays Python; `collate` keeps it as lists.

Resizing to ``size = (W, H)``: images bilinearly, masks nearest, maps by area and renormalised,
fixation points by scaling their coordinates.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from datadir import IMAGE_SUFFIXES, MAP_SUFFIXES, SPLITS, Dataset, find_images, is_dataset, saliency_folders
from models.arrays import _check_size, _finish, _load, read_density, read_image, read_mask

logger = logging.getLogger(__name__)



class _ItemsDataset(torch.utils.data.Dataset):
    """Shared by the datasets here: `rows` (one per item) and the epoch that seeds augmentation."""

    rows: list
    epoch = 0

    def __len__(self) -> int:
        return len(self.rows)

    def set_epoch(self, epoch: int) -> None:
        """Vary the augmentation per epoch (it stays a function of seed, epoch and index)."""
        self.epoch = int(epoch)


class PairDataset(_ItemsDataset):
    """The X/Y pairs of one split (all sources but ``single``) as dicts of tensors.

    Keys per side s in `sides`: ``s`` (image; ``y`` only where the pair has a Y image),
    ``s_map`` (where the pair has one; every pair must when `require_maps`), ``s_mask`` (where
    the pair has one), ``s_objects`` (the scene's object dicts); plus ``pair_id``, ``source``,
    ``edit_type`` and ``edit`` (the scene's edit dict, or None). `size` = (W, H) or None to keep
    the files' size; `augment` is a `JointAugment` (or any ``f(item, generator) -> item``).
    """

    def __init__(self, dataset_dir, split: str | None = "train", size=None, sides=("x", "y"),
                 require_maps: bool = True, augment: Callable | None = None):
        self.dataset = Dataset.open(dataset_dir)
        self.size = _check_size(size)
        self.sides = tuple(sides)
        if not self.sides or any(side not in ("x", "y") for side in self.sides):
            raise ValueError(f"sides must be a non-empty subset of ('x', 'y'), got {sides!r}")
        self.augment = augment
        self.rows = _select_rows(self.dataset, split, single=False)
        # per row, {side: its map file or None}: which items have maps, for datasets built on this one
        self.map_paths = [{side: self._map_path(row, side, require_maps) for side in self.sides} for row in self.rows]

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = self.rows[index]
        pair_id = row["pair_id"]
        scene = _read_scene(self.dataset.path, row)
        arrays: dict[str, Any] = {}
        extras: dict[str, Any] = {
            "pair_id": pair_id, "source": row["source"], "edit_type": row["edit_type"],
            "edit": scene.get("edit") if scene else None,
        }
        for side in self.sides:
            if not row[f"{side}_image"]:
                continue
            image_path = self.dataset.path / row[f"{side}_image"]
            arrays[side] = read_image(image_path)
            if row[f"{side}_mask"]:
                mask_path = self.dataset.path / row[f"{side}_mask"]
                arrays[f"{side}_mask"] = _load(read_mask, mask_path, arrays[side], pair_id, image_path)
            if self.map_paths[index][side] is not None:
                arrays[f"{side}_map"] = _load(read_density, self.map_paths[index][side], arrays[side], pair_id, image_path)
            if scene and isinstance(scene.get(side), dict):
                extras[f"{side}_objects"] = list(scene[side].get("objects", []))
        return _finish(arrays, extras, self.size, self.augment, index, self.epoch)

    def _map_path(self, row, side: str, required: bool) -> Path | None:
        pair_id = row["pair_id"]
        if side == "y" and not row["y_image"]:
            return None
        if row[f"{side}_map"]:
            path = self.dataset.path / row[f"{side}_map"]
        else:  # the column may lag behind the files
            path = self.dataset.path_of(pair_id, "map_npy", side)
            if not path.is_file():
                if required:
                    raise ValueError(
                        f"pair {pair_id}: no {side} map (pairs.csv column {side}_map is empty and {path} is missing);"
                        " collect one with a study, or pass require_maps=False")
                return None
        if not path.is_file():
            if required:
                raise ValueError(f"pair {pair_id}: {side} map file {path} is missing")
            return None
        return path


class SingleImageDataset(_ItemsDataset):
    """The ``source = single`` rows (an image and a target map, no ground-truth Y).

    Keys: ``x``, ``target_map`` (the row's ``y_map``, a density), ``x_map`` and ``x_mask``
    where present, ``x_objects`` where the scene has them, ``pair_id``.
    """

    def __init__(self, dataset_dir, split: str | None = "train", size=None, augment: Callable | None = None):
        self.dataset = Dataset.open(dataset_dir)
        self.size = _check_size(size)
        self.augment = augment
        self.rows = _select_rows(self.dataset, split, single=True)
        for row in self.rows:
            if not row["y_map"]:
                raise ValueError(f"pair {row['pair_id']}: a single row needs its target map in y_map, which is empty")
            if not (self.dataset.path / row["y_map"]).is_file():
                path = self.dataset.path / row["y_map"]
                raise ValueError(f"pair {row['pair_id']}: target map file {path} is missing")

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = self.rows[index]
        root, pair_id = self.dataset.path, row["pair_id"]
        image_path = root / row["x_image"]
        arrays = {"x": read_image(image_path)}
        arrays["target_map"] = _load(read_density, root / row["y_map"], arrays["x"], pair_id, image_path)
        for key in ("x_map", "x_mask"):
            if row[key] and (root / row[key]).is_file():
                reader = read_density if key == "x_map" else read_mask
                arrays[key] = _load(reader, root / row[key], arrays["x"], pair_id, image_path)
        extras: dict[str, Any] = {"pair_id": pair_id}
        scene = _read_scene(root, row)
        if scene and isinstance(scene.get("x"), dict):
            extras["x_objects"] = list(scene["x"].get("objects", []))
        return _finish(arrays, extras, self.size, self.augment, index, self.epoch)


class TrainingItems(_ItemsDataset):
    """What a model trains on from one split of a gazelab dataset dir — the one training-data class
    every model builds on (through `prepare`, its own per-item step).

    unit "pair": one item per pair (keys as `PairDataset`'s); with `singles`, also one per
    ``single`` row (``x``, its target as ``y_map``, ``x_map`` / ``x_mask`` where present, no
    ``y``). unit "image": one item per X and per Y image: ``image``, ``map``, ``mask`` (where
    present), ``objects``, ``side``, ``pair_id`` ("<pair>/<side>").
    `require`: fields every item must have — pair unit: y, x_map, y_map, x_mask, y_mask; image
    unit: map, mask — decided from pairs.csv and the map files' existence: construction reads no
    image, map or mask (a 60,000-pair dataset is 120,000 masks), so it is as cheap on every DDP
    rank as one pass over pairs.csv. Rows lacking a required field are left out (logged, counted).
    `prepare(item, index)` returns the model's item, or None when the item is unusable for a
    reason only its files show (too few objects, no qualifying object): the next usable item in
    order takes its place, so every index still yields an item, deterministically. `size` = (W, H);
    `augment` a `JointAugment`; `owner` names the model in messages.
    """

    PAIR_FIELDS = ("y", "x_map", "y_map", "x_mask", "y_mask")
    IMAGE_FIELDS = ("map", "mask")

    def __init__(self, dataset_dir, split: str | None = "train", *, unit: str = "pair", size=None, require=(),
                 singles: bool = False, augment: Callable | None = None, owner: str = "the model"):
        root = Path(dataset_dir)
        if not is_dataset(root):
            raise ValueError(f"{root} is not a gazelab dataset dir (no dataset.json and pairs.csv); {owner} trains "
                             "on one")
        if unit not in ("pair", "image"):
            raise ValueError(f"unit must be 'pair' or 'image', got {unit!r}")
        fields = self.PAIR_FIELDS if unit == "pair" else self.IMAGE_FIELDS
        unknown = sorted(set(require) - set(fields))
        if unknown:
            raise ValueError(f"require has {unknown}; {'a pair' if unit == 'pair' else 'an image'} item can require "
                             f"{', '.join(fields)}")
        self.root, self.unit, self.split, self.owner, self.require = root, unit, split, owner, tuple(require)
        self.refused: set[int] = set()
        problems: list[str] = []
        sides = ("x", "y") if unit == "pair" else ("x",)
        self.readers: dict[str, _ItemsDataset] = {}
        try:
            if unit == "pair":
                self.readers["pair"] = PairDataset(root, split, size, sides=sides, require_maps=False, augment=augment)
            else:  # one reader per side, so that an item reads only its own image, map and mask
                for side in ("x", "y"):
                    self.readers[side] = PairDataset(root, split, size, sides=(side,), require_maps=False,
                                                     augment=augment)
        except ValueError as exc:
            problems.append(str(exc))
        if singles:
            try:
                self.readers["single"] = SingleImageDataset(root, split, size, augment=augment)
            except ValueError as exc:
                problems.append(str(exc))
        left_out: dict[str, int] = {}
        self.rows: list[tuple[str, int]] = []
        for kind, reader in self.readers.items():
            for index, (row, maps) in enumerate(zip(reader.rows, getattr(reader, "map_paths", [{}] * len(reader)))):
                side = kind if kind in ("x", "y") else None
                if side and not row[f"{side}_image"]:
                    continue  # a pair without a Y image has no Y item
                have = _fields_present(kind, row, maps)
                lacking = [field for field in self.require if not have[field]]
                if lacking:
                    reason = f"no {' or '.join(lacking)}" + (f" ({kind} rows)" if kind == "single" else "")
                    left_out[reason] = left_out.get(reason, 0) + 1
                else:
                    self.rows.append((kind, index))
        summary = ", ".join(f"{count} with {reason}" for reason, count in left_out.items())
        if summary:
            logger.info("%s split %s: left out %s (%s needs %s)", root, split or "all", summary, owner,
                        ", ".join(self.require))
        if not self.rows:
            if problems:  # they name the split and the folder themselves
                raise ValueError(f"nothing {owner} can train on: " + "; ".join(dict.fromkeys(problems)))
            raise ValueError(f"split {split or 'all'} of {root} has nothing {owner} can train on: {summary}")

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        for reader in self.readers.values():
            reader.set_epoch(epoch)

    def kind_of(self, index: int) -> str:
        """"pair", "single", "x" or "y": where item `index` comes from."""
        return self.rows[index][0]

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self.rows) <= index < len(self.rows):
            raise IndexError(f"item {index} of {len(self.rows)}")  # ends iteration over the dataset
        index %= len(self.rows)
        for offset in range(len(self.rows)):
            at = (index + offset) % len(self.rows)
            item = self.prepare(self.read(at), at)
            if item is not None:
                return item
            if at not in self.refused:
                self.refused.add(at)
                logger.info("%s: item %d is unusable for %s; the next usable one takes its place",
                            self.root, at, self.owner)
        raise ValueError(f"split {self.split or 'all'} of {self.root} has no item {self.owner} can train on: every one "
                         f"of the {len(self.rows)} was refused ({self.refusal_reason()})")

    def read(self, index: int) -> dict[str, Any]:
        """Item `index` as read from its files, before `prepare`."""
        kind, row = self.rows[index]
        item = self.readers[kind][row]
        if kind == "single":
            item["y_map"] = item.pop("target_map")
        elif kind in ("x", "y"):
            found = {"image": item[kind], "side": kind, "pair_id": f"{item['pair_id']}/{kind}",
                     "objects": item.get(f"{kind}_objects", [])}
            for field in ("map", "mask"):
                if f"{kind}_{field}" in item:
                    found[field] = item[f"{kind}_{field}"]
            item = found
        return item

    def prepare(self, item: dict[str, Any], index: int) -> dict[str, Any] | None:
        """A model's own per-item step; the base class passes items through."""
        return item

    def refusal_reason(self) -> str:
        """Why `prepare` refuses items, for the error when it refuses all (subclasses say)."""
        return "prepare returned None"


def _fields_present(kind: str, row, maps: dict) -> dict[str, bool]:
    if kind in ("x", "y"):
        return {"map": maps.get(kind) is not None, "mask": bool(row[f"{kind}_mask"])}
    if kind == "single":
        return {"y": False, "x_map": bool(row["x_map"]), "y_map": True, "x_mask": bool(row["x_mask"]),
                "y_mask": False}
    return {"y": bool(row["y_image"]), "x_map": maps.get("x") is not None, "y_map": maps.get("y") is not None,
            "x_mask": bool(row["x_mask"]), "y_mask": bool(row["y_mask"])}


class SaliencyItems(TrainingItems):
    """A saliency predictor's items from a gazelab dataset dir: every X and Y image with a fixation
    map (the maps a study built). Items: ``x`` (3, H, W), ``x_map`` (1, H, W) density, ``pair_id``."""

    def __init__(self, dataset_dir, split: str | None = "train", size=None, augment: Callable | None = None):
        try:
            super().__init__(dataset_dir, split, unit="image", size=size, require=("map",), augment=augment,
                             owner="the saliency predictor")
        except ValueError as exc:
            raise ValueError(f"{exc}; collect fixation maps with a study (`gazelab study build-maps` then "
                             "`gazelab study export`)") from exc

    def prepare(self, item: dict[str, Any], index: int) -> dict[str, Any]:
        return {"x": item["image"], "x_map": item["map"], "pair_id": item["pair_id"]}


def saliency_samples(data_dir, split: str | None = "train", size=None, augment: Callable | None = None):
    """A predictor's training data from a gazelab dataset dir (`SaliencyItems`) or a SALICON /
    MIT1003-style folder with ``images/`` and ``maps/`` (and optionally ``fixations/``:
    `FolderSaliencyDataset`)."""
    root = Path(data_dir)
    if not root.is_dir():
        raise ValueError(f"data dir {root} does not exist or is not a directory")
    if is_dataset(root):
        return SaliencyItems(root, split, size, augment)
    folders = saliency_folders(root)
    if folders is not None:
        return FolderSaliencyDataset(*folders, size=size, augment=augment)
    raise ValueError(f"{root} is neither a gazelab dataset dir (no pairs.csv) nor a folder with images/ and maps/ "
                     "subfolders (SALICON/MIT1003 layout)")


TargetFn = Callable[[np.random.Generator, np.ndarray, np.ndarray | None], tuple[np.ndarray, dict[str, float]]]


class TargetMapSamples(TrainingItems):
    """The target-map editors' items: every X and Y image (with its object mask when the targets
    need objects), and its target.

    `make_target(rng, density, labels)` returns (target density H×W, {name: number}); `labels` is
    the int label mask (None when `min_objects` is 0). `source` "human": the target is built here
    from the image's fixation map (images without one are left out); "predictor": items carry no
    map and no target — the editor builds the target from its predictor's map of the image in its
    training step (`targets_from_predictor`), as the papers do. An image whose mask has fewer than
    `min_objects` objects at the training size is unusable (found when read; the next usable image
    takes its place). `size` = (W, H). Items: ``image`` (3, H, W) in [0, 1], ``pair_id``
    ("<pair>/<side>"); with "predictor" ``mask`` (H, W) labels when `min_objects` > 0; with "human" ``saliency_map``
    (1, H, W) the fixation density, ``target_map`` (1, H, W) and one 0-d float tensor per number
    `make_target` reports. Targets draw from the global torch RNG (`global_rng`): resume is exact.
    """

    def __init__(self, data_dir, split: str | None, size: tuple[int, int], make_target: TargetFn,
                 min_objects: int = 1, source: str = "human"):
        if source not in ("human", "predictor"):
            raise ValueError(f"target source must be 'human' or 'predictor', got {source!r}")
        self.make_target, self.min_objects, self.source = make_target, int(min_objects), source
        require = (("map",) if source == "human" else ()) + (("mask",) if self.min_objects > 0 else ())
        super().__init__(data_dir, split, unit="image", size=size, require=require, owner="the target-map editor")

    def prepare(self, item: dict[str, Any], index: int) -> dict[str, Any] | None:
        labels = item["mask"].numpy() if self.min_objects > 0 else None
        if self.min_objects > 0 and np.count_nonzero(np.unique(labels)) < self.min_objects:
            return None
        out = {"image": item["image"], "pair_id": item["pair_id"]}
        if self.source == "predictor":  # the editor's step builds the target, from the objects too
            return {**out, "mask": item["mask"]} if self.min_objects > 0 else out
        density = item["map"]
        target, info = self.make_target(global_rng(), density[0].double().numpy(), labels)
        out.update({"saliency_map": density, "target_map": torch.from_numpy(np.asarray(target, np.float32))[None]})
        out.update({key: torch.tensor(float(value)) for key, value in info.items()})
        return out

    def refusal_reason(self) -> str:
        return f"each image's mask has fewer than {self.min_objects} object(s) at the training size"


def targets_from_predictor(predictor, batch: dict[str, Any], make_target: TargetFn) -> dict[str, Any]:
    """`batch` with ``saliency_map`` (the predictor's density of ``image``), ``target_map`` built from
    it by `make_target` per image (with ``mask`` labels where the batch has them) and the numbers
    `make_target` reports; a batch that already has ``target_map`` is returned as it is."""
    if "target_map" in batch:
        return batch
    image = batch["image"]
    with torch.no_grad():
        density = predictor.density(image).float()
    labels = batch.get("mask")
    found, infos = [], []
    for b in range(image.shape[0]):
        values = density[b, 0].double().cpu().numpy()
        target, info = make_target(global_rng(), values / values.sum(), None if labels is None else
                                   labels[b].cpu().numpy())
        found.append(torch.from_numpy(np.asarray(target, np.float32))[None])
        infos.append(info)
    out = {**batch, "saliency_map": density, "target_map": torch.stack(found).to(image.device)}
    for key in infos[0]:
        out[key] = torch.tensor([float(info[key]) for info in infos], device=image.device)
    return out


def global_rng() -> np.random.Generator:
    """A numpy generator seeded from the global torch RNG, so checkpointed RNG states make resume exact."""
    return np.random.default_rng(int(torch.randint(2**62, ())))


class FolderSaliencyDataset(_ItemsDataset):
    """Images and saliency maps in two folders, matched by file stem (SALICON, MIT1003, CAT2000).

    A map of image ``NAME.jpg`` is ``maps_dir/NAME{map_suffix}.{npy,png,jpg}`` (MIT1003's are
    ``NAME_fixMap.jpg``); PNG/JPEG maps are converted to densities. With `fixations_dir`, binary
    fixation images ``NAME{fixations_suffix}.*`` (pixel > 127 = fixation, which survives JPEG
    noise) give ``x_fixations``. Keys: ``x``, ``x_map``, ``x_fixations``, ``pair_id`` (the stem).
    Unmatched names are in `unmatched` and logged; `strict` makes them a ValueError. `rows` holds
    (name, image path, map path, fixations path or None) per item.
    """

    def __init__(self, images_dir, maps_dir, fixations_dir=None, size=None, augment: Callable | None = None,
                 map_suffix: str = "", fixations_suffix: str = "", strict: bool = False):
        self.size = _check_size(size)
        self.augment = augment
        images = find_images(images_dir, IMAGE_SUFFIXES, what="images_dir")
        maps = find_images(maps_dir, MAP_SUFFIXES, name_suffix=map_suffix, what="maps_dir")
        fixations = None
        if fixations_dir is not None:
            fixations = find_images(fixations_dir, MAP_SUFFIXES, name_suffix=fixations_suffix, what="fixations_dir")
        names = sorted(set(images) & set(maps) & (set(fixations) if fixations is not None else set(images)))
        self.unmatched = {
            "images": sorted(set(images) - set(names)),
            "maps": sorted(set(maps) - set(names)),
            "fixations": sorted(set(fixations) - set(names)) if fixations is not None else [],
        }
        message = "; ".join(f"{len(v)} {k} without a match (e.g. {v[:5]})" for k, v in self.unmatched.items() if v)
        if not names:
            raise ValueError(f"no images in {images_dir} have a map NAME{map_suffix}.* in {maps_dir}: {message}")
        if message and strict:
            raise ValueError(f"{images_dir} and {maps_dir}: {message}")
        if message:
            logger.warning("%s and %s: %s; using the %d matched", images_dir, maps_dir, message, len(names))
        self.rows = [(name, images[name], maps[name], fixations[name] if fixations else None) for name in names]

    def __getitem__(self, index: int) -> dict[str, Any]:
        name, image_path, map_path, fixations_path = self.rows[index]
        arrays = {"x": read_image(image_path)}
        arrays["x_map"] = _load(read_density, map_path, arrays["x"], name, image_path)
        if fixations_path is not None:
            points = _load(read_mask, fixations_path, arrays["x"], name, image_path)
            arrays["x_fixations"] = (points > 127).astype(np.uint8)
        return _finish(arrays, {"pair_id": name}, self.size, self.augment, index, self.epoch)


def _select_rows(dataset: Dataset, split: str | None, single: bool) -> list[dict[str, Any]]:
    if split is not None and split not in SPLITS:
        raise ValueError(f"split {split!r} is not one of {SPLITS} (or None for all)")
    table = dataset.pairs
    in_split = table if split is None else table[table["split"] == split]
    rows = in_split[(in_split["source"] == "single") == single]
    if rows.empty:
        what = "single-image rows (source = single)" if single else "pairs (source clevr or photo)"
        others = len(in_split) - len(rows)
        hint = f"; it has {others} {'pair' if single else 'single'} rows" if others else ""
        raise ValueError(f"split {split or 'all'} of {dataset.path} has no {what}{hint}")
    return rows.to_dict("records")


def _read_scene(root: Path, row) -> dict | None:
    if not row["scene"]:
        return None
    path = root / row["scene"]
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"pair {row['pair_id']}: scene file {path} is not readable JSON: {exc}") from exc


