"""Item arrays: reading image, mask and map files, resizing them, augmenting and batching items.

The conventions of `models.data`'s items: images float32 3×H×W RGB in [0, 1]; maps float32 1×H×W
densities; masks int64 H×W labels (0 background); fixations uint8 H×W binary maps. Resizing to
``size = (W, H)``: images bilinearly, masks nearest, maps by area and renormalised, fixation points
by scaling their coordinates.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from datadir.maps import load_map, to_density

DENSITY_TOLERANCE = 1e-3  # |sum − 1| allowed for a float32 .npy map

__all__ = ["JointAugment", "collate", "read_image", "read_mask", "read_density", "read_mask_and_map"]


class JointAugment:
    """One random horizontal flip and crop, applied alike to every image, map, mask and fixation map.

    The crop keeps the aspect ratio and covers a fraction of the area drawn from U(crop_scale);
    it is resized back to the item's size (images bilinear, maps bilinear then renormalised to a
    density, masks nearest). The draws come from a `torch.Generator`: datasets pass
    ``generator_for(index, epoch)``, so an item's augmentation depends only on (seed, epoch, index),
    never on worker count or order.
    """

    def __init__(self, hflip: float = 0.5, crop_scale=(0.8, 1.0), seed: int = 0):
        low, high = (float(v) for v in crop_scale)
        if not 0 <= hflip <= 1:
            raise ValueError(f"hflip must be a probability in [0, 1], got {hflip!r}")
        if not 0 < low <= high <= 1:
            raise ValueError(f"crop_scale must be (low, high) with 0 < low <= high <= 1, got {crop_scale!r}")
        self.hflip, self.crop_scale, self.seed = float(hflip), (low, high), int(seed)

    def generator_for(self, index: int, epoch: int = 0) -> torch.Generator:
        """A generator seeded from (seed, epoch, index)."""
        state = np.random.SeedSequence([self.seed, int(epoch), int(index)]).generate_state(2, np.uint32)
        return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))

    def __call__(self, item: dict[str, Any], generator: torch.Generator | None = None) -> dict[str, Any]:
        generator = generator if generator is not None else torch.Generator().manual_seed(self.seed)
        keys = [key for key, value in item.items() if isinstance(value, torch.Tensor) and _kind(key)]
        if not keys:
            return dict(item)
        sizes = {tuple(item[key].shape[-2:]) for key in keys}
        if len(sizes) != 1:
            raise ValueError(f"JointAugment needs one size for {keys}; got sizes {sorted(sizes)}")
        height, width = sizes.pop()
        # Always draw the same numbers, so later draws do not depend on earlier outcomes.
        flip = bool(torch.rand((), generator=generator) < self.hflip)
        low, high = self.crop_scale
        scale = low + (high - low) * float(torch.rand((), generator=generator))
        crop_h = min(height, max(1, round(height * math.sqrt(scale))))
        crop_w = min(width, max(1, round(width * math.sqrt(scale))))
        top = int(torch.randint(0, height - crop_h + 1, (), generator=generator))
        left = int(torch.randint(0, width - crop_w + 1, (), generator=generator))
        out = dict(item)
        for key in keys:
            value = item[key][..., top:top + crop_h, left:left + crop_w]
            if flip:
                value = value.flip(-1)
            out[key] = _resize_tensor(value, _kind(key), (height, width))
        return out


def collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensor fields of a list of items; everything else (and fields some items lack) as lists."""
    if not batch:
        raise ValueError("collate got an empty batch")
    keys = list(dict.fromkeys(key for item in batch for key in item))
    out: dict[str, Any] = {}
    for key in keys:
        values = [item.get(key) for item in batch]
        if all(isinstance(value, torch.Tensor) for value in values):
            shapes = {tuple(value.shape) for value in values}
            if len(shapes) != 1:
                raise ValueError(f"cannot stack {key!r}: shapes {sorted(shapes)} differ; pass size=(W, H)")
            out[key] = torch.stack(values)
        else:
            out[key] = values
    return out


def read_image(path) -> np.ndarray:
    """An image file as float32 H×W×3 RGB in [0, 1] (8- or 16-bit, grey or colour)."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    if image is None:
        raise ValueError(f"image file {path} is missing or not a readable image")
    scale = 65535.0 if image.dtype == np.uint16 else 255.0
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB).astype(np.float32) / scale


def read_mask(path) -> np.ndarray:
    """A label image as an integer H×W array (0 background)."""
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise ValueError(f"mask file {path} is missing or not a readable image")
    if mask.ndim == 3:
        raise ValueError(f"mask file {path} has {mask.shape[2]} channels; expected a 1-channel label image")
    return mask


def read_density(path) -> np.ndarray:
    """A saliency map file as a float32 H×W density.

    ``.npy`` maps must already be densities (sum 1); PNG/JPEG maps (max-normalised 8-bit) are
    divided by their sum. A ``.png`` with a ``.npy`` beside it reads the exact ``.npy``.
    """
    path = Path(path)
    exact = path.with_suffix(".npy")
    if path.suffix.lower() != ".npy" and exact.is_file():
        path = exact
    values = load_map(path)
    if path.suffix.lower() == ".npy":
        total = float(values.sum(dtype=np.float64))
        if not np.all(np.isfinite(values)) or values.min() < 0 or abs(total - 1) > DENSITY_TOLERANCE:
            raise ValueError(f"map file {path} is not a density (min {np.nanmin(values):.4g}, sum {total:.6g});"
                             " expected finite values >= 0 summing to 1")
        return values.astype(np.float32)
    try:
        return to_density(values)
    except ValueError as exc:
        raise ValueError(f"map file {path}: {exc}") from exc


def _check_size(size) -> tuple[int, int] | None:
    if size is None:
        return None
    try:
        width, height = (int(v) for v in size)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"size must be (width, height) or None, got {size!r}") from exc
    if width <= 0 or height <= 0:
        raise ValueError(f"size must be positive (width, height), got {size!r}")
    return width, height


def read_mask_and_map(mask_path, map_path, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A label mask and its image's fixation density, both resized to `size` = (W, H) as the
    datasets resize them, without reading the image (ValueError if the two differ in size)."""
    labels, density = read_mask(mask_path), read_density(map_path)
    if labels.shape != density.shape:
        raise ValueError(f"mask {mask_path} is {labels.shape[1]}×{labels.shape[0]} (W×H) but map {map_path} is "
                         f"{density.shape[1]}×{density.shape[0]}; expected the size of their image")
    return _resize_array(labels, "mask", size), _resize_array(density, "map", size)


def _load(reader, path, image: np.ndarray, pair_id: str, image_path) -> np.ndarray:
    """`reader(path)`, which must have the size of `image` (read from `image_path`)."""
    array = reader(path)
    if array.shape[:2] != image.shape[:2]:
        raise ValueError(
            f"pair {pair_id}: {path} is {array.shape[1]}×{array.shape[0]} (W×H) but its image"
            f" {image_path} is {image.shape[1]}×{image.shape[0]}; expected the same size")
    return array


def _kind(key: str) -> str | None:
    """What a field holds, from its name: image, map, mask, fixations, or None (not spatial)."""
    if key in ("x", "y"):
        return "image"
    for suffix in ("map", "mask", "fixations"):
        if key.endswith(f"_{suffix}") or key == suffix:
            return suffix
    return None


def _resize_array(array: np.ndarray, kind: str, size: tuple[int, int]) -> np.ndarray:
    width, height = size
    if array.shape[:2] == (height, width):
        return array
    if kind == "image":
        return np.clip(cv2.resize(array, size, interpolation=cv2.INTER_LINEAR), 0.0, 1.0)
    if kind == "mask":
        source = array if array.dtype in (np.uint8, np.uint16) else array.astype(np.int32)
        return cv2.resize(source, size, interpolation=cv2.INTER_NEAREST)
    if kind == "map":
        resized = np.maximum(cv2.resize(array.astype(np.float32), size, interpolation=cv2.INTER_AREA), 0.0)
        return (resized / resized.sum(dtype=np.float64)).astype(np.float32)
    return _resize_points(array, (height, width))


def _resize_points(binary: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Move each fixation pixel to its scaled position (no point lost or smeared)."""
    rows, cols = np.nonzero(binary)
    out = np.zeros(shape, np.uint8)
    out[((rows + 0.5) * shape[0] / binary.shape[0]).astype(np.int64),
        ((cols + 0.5) * shape[1] / binary.shape[1]).astype(np.int64)] = 1
    return out


def _to_tensor(array: np.ndarray, kind: str) -> torch.Tensor:
    if kind == "image":
        return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1), dtype=np.float32))
    if kind == "map":
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None]
    if kind == "mask":
        return torch.from_numpy(array.astype(np.int64))
    return torch.from_numpy(array.astype(np.uint8))


def _resize_tensor(value: torch.Tensor, kind: str, shape: tuple[int, int]) -> torch.Tensor:
    if tuple(value.shape[-2:]) == shape:
        return value.contiguous()
    if kind == "image":
        return F.interpolate(value[None], size=shape, mode="bilinear", align_corners=False)[0].clamp(0, 1)
    if kind == "map":
        resized = F.interpolate(value[None], size=shape, mode="bilinear", align_corners=False)[0].clamp_min(0)
        total = resized.sum()
        # A crop can miss all of a sparse map's mass; uniform is the least-informed density then.
        return resized / total if total > 0 else torch.full_like(resized, 1.0 / resized.numel())
    if kind == "mask":
        return F.interpolate(value[None, None].double(), size=shape, mode="nearest")[0, 0].to(value.dtype)
    return torch.from_numpy(_resize_points(value.numpy(), shape))


def _finish(arrays: dict[str, np.ndarray], extras: dict[str, Any], size, augment, index: int, epoch: int) -> dict:
    item: dict[str, Any] = {}
    for key, array in arrays.items():
        kind = _kind(key)
        item[key] = _to_tensor(array if size is None else _resize_array(array, kind, size), kind)
    item.update(extras)
    if augment is not None:
        generator = augment.generator_for(index, epoch) if hasattr(augment, "generator_for") else None
        item = augment(item, generator)
    return item
