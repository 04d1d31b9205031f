"""SalG-GAN's saliency-based attention boxes B_a (Jiang et al. 2021, papers/000 §3.2), on arrays.

The attention module adjusts the source map S_x (of the input) and the target map S_y with
SAF(S) = Norm(sigmoid(θ_α·(S / max S − θ_β))) (eq. 1), takes the difference map
S_d = |SAF(S_y) − SAF(S_x)| and draws a box B_a around each salient change region. SalG-GAN's
local discriminator and local L1 crop these boxes, and its local diversity score (§5.2: "DS on
the image patches with attention difference, based on the saliency based bounding boxes B_a")
is measured inside them. `models.editors.salggan_parts` trains with the same rule (its SAF is
torch, for gradients; the boxes come from here), so evaluation and training draw one B_a.

Maps are (H, W) non-negative arrays of any scale (densities, max-normalised maps); boxes are
(x0, y0, x1, y1) pixels with x1, y1 exclusive, as `analysis.image_metrics.diversity_score` takes.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

Box = tuple[int, int, int, int]

# SalG-GAN's defaults (models.editors.salggan.SalGGANConfig); the fractions scale with the image.
SAF_ALPHA = 10.0
SAF_BETA = 0.5
ATTENTION_THRESHOLD = 0.1  # |SAF(S_y) − SAF(S_x)| below this is no change: S_d exactly 0 there
BOX_THRESHOLD = 0.5
BOX_MIN_DIFFERENCE = 0.1
BOX_LINK = 0.04  # fraction of the short side
BOX_MARGIN = 0.03  # fraction of the short side
BOX_MIN_AREA = 0.001  # fraction of the image
MAX_BOXES = 4


def saliency_adjustment(saliency, alpha: float = SAF_ALPHA, beta: float = SAF_BETA) -> np.ndarray:
    """SAF (eq. 1) of one (H, W) non-negative map → (H, W) float64 in [0, 1]: divided by its
    maximum (θ_β is a fraction of the peak), sigmoid(α·(S − β)), then min–max normalised. A
    constant map (nothing stands out) gives zeros."""
    s = _map(saliency, "saliency")
    peak = max(float(s.max()), np.finfo(np.float32).tiny)
    squashed = 1.0 / (1.0 + np.exp(-alpha * (s / peak - beta)))
    low, span = float(squashed.min()), float(squashed.max() - squashed.min())
    return np.zeros_like(squashed) if span <= 1e-6 else (squashed - low) / span


def difference_map(source, target, alpha: float = SAF_ALPHA, beta: float = SAF_BETA,
                   threshold: float = ATTENTION_THRESHOLD) -> np.ndarray:
    """S_d = |SAF(target) − SAF(source)|, (H, W) in [0, 1]: where attention should change; exactly 0
    where it is below `threshold` (the maps agree), as SalG-GAN's attention module computes it."""
    s, t = _map(source, "source"), _map(target, "target")
    if s.shape != t.shape:
        raise ValueError(f"source has shape {s.shape} but target {t.shape}; expected maps of one size")
    difference = np.abs(saliency_adjustment(t, alpha, beta) - saliency_adjustment(s, alpha, beta))
    return np.where(difference < threshold, 0.0, difference)


def attention_boxes(difference, *, threshold: float = BOX_THRESHOLD, min_difference: float = BOX_MIN_DIFFERENCE,
                    link_px: int = 1, min_pixels: int = 1, margin_px: int = 0, max_boxes: int = MAX_BOXES) -> list[Box]:
    """Density-based boxes B_a of the regions where attention changes, for one (H, W) S_d in [0, 1].

    1. core pixels: S_d ≥ max(threshold · max S_d, min_difference); a map that never reaches
       `min_difference` has no box (its attention does not change).
    2. clustering, DBSCAN-like with single linkage: core pixels at most `link_px` apart
       (Chebyshev distance, pixels) fall in one cluster — connected components (8-neighbourhood)
       of the core pixels dilated by ⌈(link_px − 1) / 2⌉ px; `link_px` = 1 is plain 8-connectivity.
    3. clusters of fewer than `min_pixels` core pixels are noise and dropped.
    4. each cluster's bounding box, grown by `margin_px` on every side and clipped to the image;
       the `max_boxes` clusters of largest S_d mass are kept, in that order.
    """
    d = _map(difference, "difference")
    height, width = d.shape
    peak = float(d.max())
    if peak < min_difference:
        return []
    core = d >= max(threshold * peak, min_difference)
    radius = max(0, math.ceil((int(link_px) - 1) / 2))
    linked = ndimage.binary_dilation(core, np.ones((2 * radius + 1,) * 2, bool)) if radius else core
    labels, _ = ndimage.label(linked, np.ones((3, 3), bool))
    labels = np.where(core, labels, 0)
    found = []
    for index, region in enumerate(ndimage.find_objects(labels), start=1):
        if region is None:
            continue
        members = labels[region] == index
        if int(members.sum()) < min_pixels:
            continue
        rows, cols = np.nonzero(members)
        y0, x0 = region[0].start + int(rows.min()), region[1].start + int(cols.min())
        y1, x1 = region[0].start + int(rows.max()) + 1, region[1].start + int(cols.max()) + 1
        box = (max(0, x0 - margin_px), max(0, y0 - margin_px), min(width, x1 + margin_px), min(height, y1 + margin_px))
        found.append((float(d[region][members].sum()), box))
    found.sort(key=lambda item: -item[0])
    return [box for _, box in found[:max_boxes]]


def scaled_box_options(shape: tuple[int, int], *, threshold: float = BOX_THRESHOLD,
                       min_difference: float = BOX_MIN_DIFFERENCE, link: float = BOX_LINK, margin: float = BOX_MARGIN,
                       min_area: float = BOX_MIN_AREA, max_boxes: int = MAX_BOXES) -> dict:
    """`attention_boxes`' keyword arguments for an image of `shape` (H, W), the clustering
    fractions (of the short side, of the area) turned into pixels as SalG-GAN's config does."""
    height, width = (int(v) for v in shape)
    short = min(height, width)
    return {"threshold": threshold, "min_difference": min_difference, "link_px": max(1, round(link * short)),
            "margin_px": round(margin * short), "min_pixels": max(1, round(min_area * height * width)),
            "max_boxes": max_boxes}


def salggan_boxes(source, target) -> list[Box]:
    """B_a of SalG-GAN with its default settings, from the source map S_x and the target map S_y
    (the boxes its local DS is measured in)."""
    difference = difference_map(source, target)
    return attention_boxes(difference, **scaled_box_options(difference.shape))


def _map(values, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2 or array.size == 0:
        raise ValueError(f"{name} has shape {array.shape}; expected an (H, W) map")
    if not np.isfinite(array).all() or (array < 0).any():
        raise ValueError(f"{name} has negative or non-finite values; expected a non-negative saliency map")
    return array
