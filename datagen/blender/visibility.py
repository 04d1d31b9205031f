"""Visibility checks on rendered masks — bpy-free (numpy only), so the pipeline imports it cheaply.

A mask is the 8-bit label image of DESIGN.md §2: 0 background, k = the object with mask_id k.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from datagen.scene import Scene

REFERENCE_AREA = 320 * 240  # CLEVR's image size, at which the minimum is stated


def visible_pixels(mask: np.ndarray) -> dict[int, int]:
    """mask (H, W) integer labels → {mask_id: pixel count} for every non-zero label present."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask has shape {mask.shape}; expected a 2-D label image (H, W)")
    counts = np.bincount(mask.ravel().astype(np.int64), minlength=1)
    return {int(k): int(counts[k]) for k in np.flatnonzero(counts) if k != 0}


def min_visible_pixels(image_size: tuple[int, int], min_pixels_at_320x240: int = 200) -> int:
    """The per-object minimum scaled by image area relative to 320×240 (at least 1 pixel)."""
    width, height = image_size
    return max(1, math.ceil(min_pixels_at_320x240 * width * height / REFERENCE_AREA))


def check_visibility(
    scene_x: Scene,
    scene_y: Scene | None,
    edit: Mapping[str, Any] | None,
    counts_x: Mapping[int, int],
    counts_y: Mapping[int, int] | None,
    min_pixels_at_320x240: int = 200,
) -> list[str]:
    """Problems with a rendered pair, as readable lines; an empty list means the pair is usable.

    counts_*: mask_id → visible pixels (from `visible_pixels` or `RenderResult.pixel_counts`).
    Checks: every object of each image shows ≥ the area-scaled minimum; no label in a mask
    lacks an object; an added or moved object (edit "type" add/move, ids in edit["object_ids"])
    exists and shows in Y (and is absent from X); a removed one exists and shows in X (and is
    absent from Y). `scene_y`/`counts_y` may be None
    for a single image.
    """
    problems: list[str] = []
    images = [("x", scene_x, counts_x)]
    if scene_y is not None:
        images.append(("y", scene_y, counts_y or {}))
    for name, scene, counts in images:
        minimum = min_visible_pixels(scene.image_size, min_pixels_at_320x240)
        for obj in scene.objects:
            seen = int(counts.get(obj.mask_id, 0))
            if seen < minimum:
                problems.append(
                    f"{name}: object id {obj.id} (mask {obj.mask_id}, {obj.size} {obj.color} {obj.material} "
                    f"{obj.shape}) shows {seen} pixels; expected ≥ {minimum}"
                )
        stray = sorted(set(k for k, v in counts.items() if v > 0) - {o.mask_id for o in scene.objects})
        if stray:
            problems.append(f"{name}: mask labels {stray} belong to no object of the scene")

    # An edited object must exist where it should be seen; its pixel count was checked above.
    edit_type = (edit or {}).get("type", "none")
    where = {"add": ("y", scene_y), "move": ("y", scene_y), "remove": ("x", scene_x)}.get(edit_type)
    if where is not None:
        name, scene = where
        for object_id in (edit or {}).get("object_ids", []):
            if scene is None or object_id not in scene.ids:
                problems.append(f"{name}: {edit_type} edit names object id {object_id}, which is not in the scene")
    gone_from = {"add": ("x", scene_x), "remove": ("y", scene_y)}.get(edit_type)
    if gone_from is not None and gone_from[1] is not None:
        name, scene = gone_from
        for object_id in (edit or {}).get("object_ids", []):
            if object_id in scene.ids:
                problems.append(f"{name}: {edit_type} edit's object id {object_id} should not be in this scene")
    return problems
