"""Fixation maps from points (reading and writing maps is `datadir.maps`).

Pixel convention (shared with `analysis.metrics` and `datagen.scene`): a point is (x, y) in
image pixels, x right and y down, sub-pixel allowed; pixel column j covers x ∈ [j, j + 1),
so a point falls in pixel (row, col) = (floor(y), floor(x)).
"""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

# Gaussian kernels are cut at this many standard deviations (scipy.ndimage's default).
KERNEL_TRUNCATE = 4.0


def fixation_map(points, shape: tuple[int, int], sigma_px: float, weights=None) -> np.ndarray:
    """Counts of `points` per pixel blurred by a Gaussian, as a density.

    points: (N, 2) array of (x, y) pixel coordinates; every point counts, repeats included.
    Points outside the image are dropped. shape: (height, width). sigma_px: the Gaussian's
    standard deviation in pixels (0 = no blur). weights: optional (N,) non-negative weights.

    Borders: the image is zero-padded before blurring (a kernel is truncated at 4 σ), so the
    part of a Gaussian that falls outside the image is discarded and the map is then
    renormalised. This matches pysaliency's and the MIT benchmark's maps, which blur the
    fixation image with zero padding; near-border fixations keep their peak where they were.

    Returns float32 (height, width) that sums to 1.
    """
    height, width = _check_shape(shape)
    points = _as_points(points, "points")
    if not (np.isfinite(sigma_px) and sigma_px >= 0):
        raise ValueError(f"sigma_px must be a finite number >= 0 pixels, got {sigma_px!r}")
    if weights is None:
        weights = np.ones(len(points), np.float64)
    else:
        weights = np.asarray(weights, np.float64).reshape(-1)
        if len(weights) != len(points):
            raise ValueError(f"weights has {len(weights)} values, expected one per point ({len(points)})")
        if not np.all(np.isfinite(weights)) or np.any(weights < 0):
            raise ValueError("weights must be finite and >= 0")
    cols = np.floor(points[:, 0])
    rows = np.floor(points[:, 1])
    inside = (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
    if not np.any(inside & (weights > 0)):
        raise ValueError(f"points: none of the {len(points)} points lies inside the {width}x{height} image")
    counts = np.bincount(
        rows[inside].astype(np.int64) * width + cols[inside].astype(np.int64),
        weights=weights[inside],
        minlength=height * width,
    ).astype(np.float32).reshape(height, width)
    blurred = gaussian_blur(counts, sigma_px)
    total = float(blurred.sum(dtype=np.float64))
    return (blurred / total).astype(np.float32)


def gaussian_blur(image: np.ndarray, sigma_px: float) -> np.ndarray:
    """Separable Gaussian blur with zero padding, kernel truncated at 4 σ (float32 in and out)."""
    if sigma_px == 0:
        return image.astype(np.float32, copy=True)
    radius = int(math.ceil(KERNEL_TRUNCATE * sigma_px))
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    with np.errstate(over="ignore"):  # a tiny sigma overflows to inf, and exp(-inf) = 0
        kernel = np.exp(-0.5 * (offsets / sigma_px) ** 2)
    kernel = (kernel / kernel.sum()).astype(np.float32)
    # cv2 treats a kernel wider than the image fine with BORDER_CONSTANT.
    return cv2.sepFilter2D(
        image.astype(np.float32, copy=False), cv2.CV_32F, kernel, kernel, borderType=cv2.BORDER_CONSTANT
    )


def sigma_from_visual_angle(degrees: float, px_per_degree: float) -> float:
    """Gaussian σ in pixels for a visual angle (e.g. 1°) at a display's pixels per degree."""
    for name, value in (("degrees", degrees), ("px_per_degree", px_per_degree)):
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(degrees * px_per_degree)


def fixation_points_from_csv(path) -> dict[str, np.ndarray]:
    """Read fixations from a CSV with columns `image, x, y` (optional `participant, t_ms`).

    Returns {image name: (N, 2) float64 array of (x, y) pixels}, in file order per image.
    """
    path = Path(path)
    try:
        table = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"fixations CSV {path} could not be read: {exc}") from exc
    missing = [c for c in ("image", "x", "y") if c not in table.columns]
    if missing:
        raise ValueError(f"fixations CSV {path} lacks columns {missing}; expected image, x, y")
    coords = table[["x", "y"]].apply(pd.to_numeric, errors="coerce")
    bad = ~np.isfinite(coords.to_numpy(np.float64)).all(axis=1)
    if bad.any():
        line = int(np.argmax(bad)) + 2  # header is line 1
        raise ValueError(f"fixations CSV {path} line {line}: x, y must be finite numbers")
    table = table.assign(x=coords["x"], y=coords["y"], image=table["image"].astype(str))
    return {
        name: group[["x", "y"]].to_numpy(np.float64)
        for name, group in table.groupby("image", sort=False)
    }


def _check_shape(shape) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in shape)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"shape must be (height, width), got {shape!r}") from exc
    if height <= 0 or width <= 0:
        raise ValueError(f"shape must be positive (height, width), got {shape!r}")
    return height, width


def _as_points(points, name: str) -> np.ndarray:
    array = np.asarray(points, dtype=np.float64)
    if array.size == 0:
        raise ValueError(f"{name} is empty; expected at least one (x, y) point")
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(f"{name} has shape {array.shape}; expected (N, 2) of (x, y)")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains {int((~np.isfinite(array)).sum())} NaN or infinite values")
    return array
