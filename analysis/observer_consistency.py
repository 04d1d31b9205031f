"""Inter-observer consistency of one image's clicks or fixations: were enough people asked?

`split_half_consistency` measures how alike the maps of two disjoint halves of the observers are
(CC, and the NSS of one half's map at the other half's points) for growing halves, and projects
the CC to all the image's observers with the Spearman-Brown formula (`spearman_brown`);
`has_flattened` reads whether the curve still rises.
"""
from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd

from analysis.fixations import fixation_map
from analysis.metrics import cc, nss

log = logging.getLogger(__name__)


def split_half_consistency(points_by_participant: dict, shape: tuple[int, int], sigma_px: float,
                           n_splits: int = 20, seed: int = 0, counts=None) -> pd.DataFrame:
    """Inter-observer consistency of one image: for n observers per half (`counts`, default
    1 … half of those available), `n_splits` random pairs of disjoint halves; a fixation map of
    each half (analysis.fixations.fixation_map, `sigma_px` pixels, `shape` (height, width) of the
    image) and cc(map_a, map_b) and the NSS of one half's map at the other half's points (both
    ways, averaged). points_by_participant: {participant: (N, 2) (x, y) image pixels}; points
    outside the image are dropped and a participant left with none is not counted (logged).
    Columns n_per_half, n_observers (= 2 n), cc_mean, cc_std, nss_mean, nss_std, n_splits,
    n_total (participants with points) and cc_full: cc_mean projected to all n_total observers,
    spearman_brown(cc_mean, n_total / n)."""
    height, width = (int(v) for v in shape)
    points = {}
    for participant, value in points_by_participant.items():
        array = np.asarray(value, dtype=float).reshape(-1, 2) if np.size(value) else np.empty((0, 2))
        inside = (array[:, 0] >= 0) & (array[:, 0] < width) & (array[:, 1] >= 0) & (array[:, 1] < height)
        if inside.any():
            points[participant] = array[inside]
    if len(points) < len(points_by_participant):
        log.warning("%d participant(s) have no point in the %dx%d image and are not counted",
                    len(points_by_participant) - len(points), width, height)
    if len(points) < 2:
        raise ValueError(f"split-half consistency needs at least 2 participants with points in the image, got"
                         f" {len(points)}")
    ids = list(points)
    counts = list(range(1, len(ids) // 2 + 1)) if counts is None else [int(n) for n in counts]
    if not counts or min(counts) < 1 or max(counts) > len(ids) // 2:
        raise ValueError(f"counts must be observers per half in 1..{len(ids) // 2} ({len(ids)} participants), got"
                         f" {counts}")
    rng = np.random.default_rng(seed)
    out = []
    for n in counts:
        ccs, nsss = [], []
        for _ in range(n_splits):
            order = rng.permutation(len(ids))
            half_a = np.concatenate([points[ids[i]] for i in order[:n]])
            half_b = np.concatenate([points[ids[i]] for i in order[n:2 * n]])
            map_a, map_b = fixation_map(half_a, shape, sigma_px), fixation_map(half_b, shape, sigma_px)
            ccs.append(cc(map_a, map_b))
            nsss.append((nss(map_a, half_b) + nss(map_b, half_a)) / 2)
        out.append({"n_per_half": n, "n_observers": 2 * n, "cc_mean": np.mean(ccs), "cc_std": np.std(ccs),
                    "nss_mean": np.mean(nsss), "nss_std": np.std(nsss), "n_splits": n_splits, "n_total": len(ids),
                    "cc_full": spearman_brown(float(np.mean(ccs)), len(ids) / n)})
    return pd.DataFrame(out)


def spearman_brown(r: float, k: float) -> float:
    """The reliability of a measure k times as long as one with reliability r: k r / (1 + (k − 1) r)
    (k = full observer count / observers per half). NaN where r ≤ 0: a map no better than
    chance has no projection. ValueError for r > 1 or k ≤ 0."""
    if k <= 0 or r > 1 + 1e-12:
        raise ValueError(f"Spearman-Brown needs a correlation r <= 1 and a length ratio k > 0, got r={r}, k={k}")
    if math.isnan(r) or r <= 0:
        return math.nan
    return k * r / (1 + (k - 1) * r)


def has_flattened(curve: pd.DataFrame, min_gain: float = 0.01) -> tuple[bool, str]:
    """(whether the split-half CC curve has flattened, the reason in words): flattened when its
    last step (between the last two observer counts) adds less than `min_gain` CC."""
    if len(curve) < 2:
        return False, (f"only {len(curve)} observer count(s) on the curve: too few participants to tell whether"
                       " it has flattened; ask more people")
    (n0, cc0), (n1, cc1) = curve[["n_per_half", "cc_mean"]].iloc[-2:].itertuples(index=False)
    gain = cc1 - cc0
    step = f"going from {n0} to {n1} observers per half changed the split-half CC by {gain:+.3f}"
    if gain < min_gain:
        return True, f"flattened: {step} (< {min_gain}); more observers would change the map little"
    return False, f"still rising: {step} (>= {min_gain}); more observers would still change the map"
