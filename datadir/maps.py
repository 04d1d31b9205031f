"""Saliency maps on disk: `.npy` float32 densities (sum 1) and 8-bit `.png` images (max = 255),
and the checks a map must pass (DESIGN.md §2)."""
from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np

from datadir.files import atomic_write_bytes, read_image

# How far a stored float32 density may drift from summing to 1.
DENSITY_TOLERANCE = 1e-3


def to_density(saliency_map) -> np.ndarray:
    """A non-negative saliency map divided by its sum: float32 that sums to 1."""
    values = np.asarray(saliency_map, dtype=np.float64)
    check_map(values, "saliency_map")
    return (values / values.sum()).astype(np.float32)


def save_map(path, density) -> Path:
    """Save a map: `.npy` as float32 density (sums to 1), `.png` as 8-bit scaled so max = 255.

    Written to a temporary file first and renamed, so a crash never leaves half a map.
    """
    path = Path(path)
    values = np.asarray(density, dtype=np.float64)
    check_map(values, "density")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        buffer = io.BytesIO()
        np.save(buffer, (values / values.sum()).astype(np.float32))
        data = buffer.getvalue()
    elif suffix == ".png":
        ok, encoded = cv2.imencode(".png", np.round(values / values.max() * 255.0).astype(np.uint8))
        if not ok:
            raise ValueError(f"could not encode the PNG map for {path}")
        data = encoded.tobytes()
    else:
        raise ValueError(f"map path {path} has suffix {path.suffix!r}; expected .png or .npy")
    atomic_write_bytes(path, data, sync=False)
    return path


def load_map(path) -> np.ndarray:
    """Load a map saved as `.npy` (returned as is, float32) or an image (grey, float32 in [0, 255])."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"map file {path} does not exist")
    if path.suffix.lower() == ".npy":
        try:
            values = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ValueError(f"map file {path} is not a readable .npy array: {exc}") from exc
    else:
        values = read_image(path, cv2.IMREAD_GRAYSCALE | cv2.IMREAD_ANYDEPTH)
        if values is None:
            raise ValueError(f"map file {path} is not a readable image")
    if values.ndim != 2:
        raise ValueError(f"map file {path} holds an array of shape {values.shape}; expected 2-D")
    return values.astype(np.float32)


def check_density(values, name: str = "density", tolerance: float = DENSITY_TOLERANCE) -> np.ndarray:
    """`values` as float64 if it is a finite, non-negative 2-D map summing to 1 (± tolerance);
    else a ValueError naming `name`."""
    array = np.asarray(values, dtype=np.float64)
    check_map(array, name)
    total = float(array.sum())
    if abs(total - 1.0) > tolerance:
        raise ValueError(f"{name} sums to {total:.6g}; expected a density summing to 1")
    return array


def check_map(values: np.ndarray, name: str) -> None:
    """ValueError naming `name` unless `values` is a finite, non-negative 2-D map with some mass."""
    if values.ndim != 2:
        raise ValueError(f"{name} has shape {values.shape}; expected a 2-D map")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} contains {int((~np.isfinite(values)).sum())} NaN or infinite values")
    if values.min() < 0:
        raise ValueError(f"{name} has negative values (min {values.min():.4g}); expected a map >= 0")
    if values.sum() <= 0:
        raise ValueError(f"{name} is all zeros; expected some positive mass")
