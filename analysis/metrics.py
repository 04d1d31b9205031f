"""Saliency metrics of the MIT/Tübingen benchmark as pure functions on numpy arrays.

Each docstring names the variant (the MIT benchmark's MATLAB code, cvzoya/saliency
`code_forMetrics/`, or pysaliency) and where it departs from it. Conventions:
- `fixations`: an (N, 2) array of (x, y) pixel coordinates (x right = column, y down = row,
  sub-pixel allowed; pixel (floor(y), floor(x))) or a binary map of the reference shape
  (nonzero = fixated). A boolean array is always a map; another two-column array is read as
  points unless it has exactly the reference shape.
- Reference shape: the ground-truth or fixation map's; with points and no map, the
  prediction's own. Other sizes are resized to it bilinearly (cv2 INTER_LINEAR; the MIT
  code's MATLAB imresize is bicubic with antialiasing, so resized scores differ slightly).
- Every sum, product, quotient and logarithm runs in float64. A float32 map is read as it
  is, without a float64 copy: the passes over a map go through blocks of `_BLOCK` values,
  converted as they are read, so a result equals that of the float64 copy up to the order of
  summation (about 1e-15 relative); AUC-Judd only compares values, in the map's own dtype,
  which is exact. Bad input raises ValueError naming the argument, the problem and what was
  expected; degenerate inputs that MIT leaves as NaN get documented values (constant map:
  NSS 0, CC 0, AUCs 0.5).
"""
from __future__ import annotations

import cv2
import numpy as np

# MATLAB's eps as written in the MIT code (KLdiv.m, InfoGain.m).
EPS = 2.2204e-16
# Bucket count of AUC-Judd's one-pass counting (`_count_at_least`).
_BUCKETS = 1 << 16
# Values per block of the float64 passes over a map (numpy's own buffer size): 64 KB
# temporaries that malloc reuses, where whole-map float64 temporaries (2.4 MB at 640x480) come
# back from the kernel page by page on every call, which took most of the metrics' time.
_BLOCK = 8192


def nss(saliency_map, fixations) -> float:
    """Normalized Scanpath Saliency: mean of the z-scored map at the fixations.

    Variant: pysaliency's NSS (std with ddof=0; MIT's NSS.m uses MATLAB's std with N - 1,
    a negligible difference for images). Every point counts, repeats included; a binary map
    counts each fixated pixel once. A constant map carries no information: returns 0.0.
    Returns a z-score (standard deviations above the map's mean); any real-valued map.
    """
    values, shape = _prediction(saliency_map, "saliency_map", fixations, keep_float32=True)
    rows, cols = _fixation_indices(fixations, shape, "fixations")
    if values.max() == values.min():
        return 0.0
    values, mean = _centring(values)
    squares = 0.0
    for (block,) in _blocks(values):
        centred = np.subtract(block, mean, dtype=np.float64)
        squares += np.dot(centred, centred)
    at_fixations = np.subtract(values[rows, cols], mean, dtype=np.float64)
    return float(at_fixations.mean() / np.sqrt(squares / values.size))


def cc(map_a, map_b) -> float:
    """Pearson linear correlation coefficient of two maps, in [-1, 1].

    Variant: MIT CC.m; `map_a` is resized to `map_b`'s shape first, as there. Any real-valued
    maps. If either map is constant (no variance) returns 0.0. Clipped to [-1, 1] against
    rounding.
    """
    b = _as_map(map_b, "map_b", keep_float32=True)
    a = _resized(_as_map(map_a, "map_a", keep_float32=True), b.shape)
    if a.max() == a.min() or b.max() == b.min():
        return 0.0
    (a, mean_a), (b, mean_b) = _centring(a), _centring(b)
    aa = bb = ab = 0.0
    for block_a, block_b in _blocks(a, b):
        da = np.subtract(block_a, mean_a, dtype=np.float64)
        db = np.subtract(block_b, mean_b, dtype=np.float64)
        aa, bb, ab = aa + np.dot(da, da), bb + np.dot(db, db), ab + np.dot(da, db)
    # Square roots first: the product aa * bb underflows for maps of tiny values (1e-95² ·
    # 1e-95² = 0); each alone stays above 1e-201 as `_centring` keeps the range above 1e-100.
    r = ab / (np.sqrt(aa) * np.sqrt(bb))
    return float(np.clip(r, -1.0, 1.0))


def sim(map_a, map_b) -> float:
    """Similarity (histogram intersection): sum of the element-wise minima of the two
    sum-normalised maps, in [0, 1] (1 = identical densities).

    Variant: pysaliency's SIM. `map_a` is resized to `map_b`'s shape as in MIT similarity.m,
    which also min-max rescales each map before sum-normalising (a different value when a
    map's minimum is above 0); we do not. Both maps must be >= 0 with a positive sum.
    """
    b = _as_map(map_b, "map_b", keep_float32=True)
    a = _resized(_as_map(map_a, "map_a", keep_float32=True), b.shape)
    mass_a, mass_b = _mass(a, "map_a"), _mass(b, "map_b")
    total = 0.0
    for block_a, block_b in _blocks(a, b):
        da = np.divide(block_a, mass_a, dtype=np.float64)
        total += np.minimum(da, np.divide(block_b, mass_b, dtype=np.float64), out=da).sum()
    return float(total)


def kld(pred, gt) -> float:
    """KL divergence of the prediction from the ground-truth density, in nats (>= 0 up to the
    epsilon: KLD(a, a) is about -(n_pixels - 1) * EPS, not exactly 0).

    Variant: MIT KLdiv.m: sum(g * log(EPS + g / (p + EPS))), EPS = 2.2204e-16, both maps
    sum-normalised; `pred` is resized to `gt`'s shape. Both must be >= 0 with a positive sum.
    """
    g = _as_map(gt, "gt", keep_float32=True)
    p = _resized(_as_map(pred, "pred", keep_float32=True), g.shape)
    g_mass, p_mass = _mass(g, "gt"), _mass(p, "pred")
    total = 0.0
    for block_g, block_p in _blocks(g, p):
        g_density = np.divide(block_g, g_mass, dtype=np.float64)
        term = np.divide(block_p, p_mass, dtype=np.float64)
        # In place: log(EPS + g / (p + EPS)) in one temporary.
        term += EPS
        np.divide(g_density, term, out=term)
        term += EPS
        total += np.dot(g_density, np.log(term, out=term))
    return float(total)


def auc_judd(saliency_map, fixations) -> float:
    """AUC-Judd: area under the ROC curve with thresholds at the fixated map values, in [0, 1].

    Variant: MIT AUC_Judd.m without its random jitter. Positives are the fixated pixels (a
    pixel fixated several times counts once, as in MIT's binary fixation map), negatives the
    other pixels; curve points (0, 0), one per threshold, (1, 1), trapezoid rule. At threshold
    t: tp = #(fixated >= t) / N, fp = (#(pixels >= t) - #(fixated >= t)) / (n_pixels - N).
    With distinct fixated values this is MIT's loop exactly. Ties: MIT jitters the map by
    U(0, 1e-7) to break them at random; we instead take one point per distinct threshold
    (deterministic; a constant map gives 0.5). Needs one non-fixated pixel; any real map.
    """
    # Only the order of values matters, so a float32 map stays float32 (exact, and lighter).
    values, shape = _prediction(saliency_map, "saliency_map", fixations, keep_float32=True)
    positives = np.sort(values.ravel()[_fixated_pixels(fixations, shape, "fixations")])
    n_pos, n_pix = positives.size, values.size
    if n_pos == n_pix:
        raise ValueError(f"fixations cover all {n_pix} pixels; AUC-Judd needs a non-fixated pixel")
    thresholds = np.unique(positives)
    pos_above = n_pos - np.searchsorted(positives, thresholds, side="left")
    all_above = _count_at_least(values.ravel(), thresholds)
    tp = np.concatenate([[0.0], pos_above[::-1] / n_pos, [1.0]])
    fp = np.concatenate([[0.0], (all_above - pos_above)[::-1] / (n_pix - n_pos), [1.0]])
    return float(_trapezoid(fp, tp))


def auc_borji(saliency_map, fixations, n_splits: int = 100, step: float = 0.1, rng=None) -> float:
    """AUC-Borji: mean over `n_splits` splits of the ROC area against random pixels, in [0, 1].

    Variant: MIT AUC_Borji.m. The map is min-max normalised to [0, 1] (a constant map becomes
    0 and scores 0.5); positives are the fixated pixels (each once); each split draws as many
    pixels as positives uniformly with replacement from the whole map as negatives; thresholds
    run from 0 to the maximum in steps of `step`. Invariant to positive affine transforms of
    the map but not to every increasing one (the thresholds are fixed on the [0, 1] scale).
    rng: numpy Generator, int seed or None (fresh entropy).
    """
    values, shape = _prediction(saliency_map, "saliency_map", fixations, keep_float32=True)
    values = values.ravel()
    positives = values[_fixated_pixels(fixations, shape, "fixations")]
    n_splits, step, generator = _split_args(n_splits, step, rng)
    negatives = values[generator.integers(0, values.size, size=(n_splits, positives.size))]
    return _split_auc(positives, negatives, step, values.min(), values.max())


def sauc(saliency_map, fixations, other_fixations, n_splits: int = 100, step: float = 0.1, rng=None) -> float:
    """Shuffled AUC: like AUC-Borji but the negatives are other images' fixations, in [0, 1].

    Variant: MIT AUC_shuffled.m (fixed thresholds with step 0.1, random splits, not pysaliency's
    rank-based exact AUC). `other_fixations` (points or a binary map in this image's reference
    shape; MIT passes the union of 10 other images' fixation maps) gives a set of pixels, each
    once; every split draws min(N, that many) of them without replacement. Map normalised to
    [0, 1] as in `auc_borji` (a constant map scores 0.5).
    """
    values, shape = _prediction(saliency_map, "saliency_map", fixations, keep_float32=True)
    values = values.ravel()
    positives = values[_fixated_pixels(fixations, shape, "fixations")]
    others = _fixated_pixels(other_fixations, shape, "other_fixations")
    n_splits, step, generator = _split_args(n_splits, step, rng)
    n_neg = min(positives.size, others.size)
    picks = np.stack([generator.choice(others.size, n_neg, replace=False) for _ in range(n_splits)])
    return _split_auc(positives, values[others[picks]], step, values.min(), values.max())


def info_gain(pred_density, baseline_density, fixations) -> float:
    """Information gain over a baseline, in bits per fixation (Kümmerer et al. 2015).

    mean over fixations of log2(EPS + p) - log2(EPS + b), p and b the two maps divided by their
    sums (densities per pixel; both must be >= 0 with a positive sum). Every point counts,
    repeats included. Variant: MIT InfoGain.m, except that it min-max rescales both maps before
    sum-normalising and we do not (that would zero each map's least likely pixel). The baseline
    is resized to the reference shape like the prediction.
    """
    p, shape = _prediction(pred_density, "pred_density", fixations, keep_float32=True)
    b = _resized(_as_map(baseline_density, "baseline_density", keep_float32=True), shape)
    p_total, b_total = _mass(p, "pred_density"), _mass(b, "baseline_density")
    rows, cols = _fixation_indices(fixations, shape, "fixations")
    p_at = np.divide(p[rows, cols], p_total, dtype=np.float64)
    b_at = np.divide(b[rows, cols], b_total, dtype=np.float64)
    return float(np.mean(np.log2(EPS + p_at) - np.log2(EPS + b_at)))


METRICS = {
    "nss": nss, "cc": cc, "sim": sim, "kld": kld, "auc_judd": auc_judd,
    "auc_borji": auc_borji, "sauc": sauc, "info_gain": info_gain,
}


# ---------------------------------------------------------------- helpers


def _as_map(value, name: str, keep_float32: bool = False) -> np.ndarray:
    """A finite real 2-D array as float64 (float32 kept if asked: then every computation on it
    must ask for float64 itself), or ValueError naming `name`."""
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{name} has dtype {array.dtype}; expected a real-valued 2-D map")
    if array.ndim != 2 or array.size == 0:
        raise ValueError(f"{name} has shape {array.shape}; expected a non-empty 2-D map (height, width)")
    if not (keep_float32 and array.dtype == np.float32):
        array = array.astype(np.float64, copy=False)
    with np.errstate(over="ignore", invalid="ignore"):
        total = array.sum()
    # A finite sum proves every value finite without an image-sized temporary.
    if not np.isfinite(total) and not np.isfinite(array).all():
        counts = ((int(np.isnan(array).sum()), "NaN"), (int(np.isinf(array).sum()), "infinite"))
        found = " and ".join(f"{n} {kind}" for n, kind in counts if n)
        raise ValueError(f"{name} contains {found} values; expected finite values")
    return array


def _mass(values: np.ndarray, name: str) -> float:
    """The sum of a density map; ValueError if it has negative values or is all zero."""
    low = values.min()
    if low < 0:
        raise ValueError(f"{name} has negative values (min {low:.4g}); expected a density >= 0")
    total = values.sum(dtype=np.float64)
    if total <= 0:
        raise ValueError(f"{name} is all zeros (shape {values.shape}); expected a density with a positive sum")
    return float(total)


def _resized(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """`values` if of `shape`, else resized to it bilinearly in float64."""
    if values.shape == tuple(shape):
        return values
    return cv2.resize(values.astype(np.float64, copy=False), (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def _prediction(saliency_map, name: str, fixations, keep_float32=False) -> tuple[np.ndarray, tuple[int, int]]:
    """The validated map resized to the reference shape (a fixation map's, else its own)."""
    values = _as_map(saliency_map, name, keep_float32)
    shape = _reference_shape(fixations, values.shape)
    return _resized(values, shape), shape


def _reference_shape(fixations, map_shape) -> tuple[int, int]:
    """A fixation map's shape; for points (or anything not a 2-D map) `map_shape`."""
    array = np.asarray(fixations)
    return tuple(map_shape) if array.ndim != 2 or _is_points(array, map_shape) else array.shape


def _is_points(array: np.ndarray, shape) -> bool:
    return array.ndim == 2 and array.shape[1] == 2 and array.dtype != bool and array.shape != tuple(shape)


def _fixation_indices(fixations, shape, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) pixel indices of `fixations` (points or a binary map) in an image of
    `shape`; points are floored, repeats kept. ValueError if empty, outside or malformed."""
    array = np.asarray(fixations)
    height, width = shape
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{name} has dtype {array.dtype}; expected (N, 2) points or a binary map")
    if array.ndim != 2:
        raise ValueError(f"{name} has shape {array.shape}; expected (N, 2) (x, y) points or a {height}x{width} map")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains {int((~np.isfinite(array)).sum())} NaN or infinite values")
    if _is_points(array, shape):
        if len(array) == 0:
            raise ValueError(f"{name} is empty; expected at least one (x, y) point")
        x, y = array[:, 0].astype(np.float64), array[:, 1].astype(np.float64)
        outside = (x < 0) | (x >= width) | (y < 0) | (y >= height)
        if outside.any():
            i = int(np.argmax(outside))
            raise ValueError(f"{name}[{i}] = (x={x[i]:g}, y={y[i]:g}) lies outside the image; "
                             f"expected 0 <= x < {width} and 0 <= y < {height}")
        return np.floor(y).astype(np.intp), np.floor(x).astype(np.intp)
    if array.shape != tuple(shape):
        raise ValueError(f"{name} is a map of shape {array.shape}; expected shape {tuple(shape)} "
                         "or (N, 2) (x, y) points")
    if array.min() < 0:
        raise ValueError(f"{name} has negative values; expected a binary map (nonzero = fixated)")
    rows, cols = np.nonzero(array)
    if rows.size == 0:
        raise ValueError(f"{name} has no fixated pixel; expected at least one nonzero value")
    return rows, cols


def _fixated_pixels(fixations, shape, name: str) -> np.ndarray:
    """Flat indices of the distinct fixated pixels, ascending."""
    rows, cols = _fixation_indices(fixations, shape, name)
    flat, n_pixels = rows * shape[1] + cols, shape[0] * shape[1]
    if 16 * flat.size < n_pixels:
        return np.unique(flat)
    # Many points (sAUC's pool of other images): marking pixels beats sorting the points.
    fixated = np.zeros(n_pixels, bool)
    fixated[flat] = True
    return np.flatnonzero(fixated)


def _blocks(*maps: np.ndarray):
    """Aligned flat slices of `_BLOCK` values of maps of one shape, one tuple per block."""
    flat = [m.ravel() for m in maps]
    return (tuple(f[start:start + _BLOCK] for f in flat) for start in range(0, flat[0].size, _BLOCK))


def _centring(values: np.ndarray) -> tuple[np.ndarray, float]:
    """(values, their float64 mean), the values first divided by their range when that is
    tiny or huge (float64 maps only), so squares of centred values neither underflow nor
    overflow."""
    with np.errstate(over="ignore"):
        spread = float(values.max()) - float(values.min())
    if not 1e-100 < spread < 1e100:
        values = np.divide(values, spread if np.isfinite(spread) else float(np.abs(values).max()), dtype=np.float64)
    return values, float(values.mean(dtype=np.float64))


def _split_args(n_splits, step, rng) -> tuple[int, float, np.random.Generator]:
    if isinstance(n_splits, bool) or not isinstance(n_splits, (int, np.integer)) or n_splits < 1:
        raise ValueError(f"n_splits must be an integer >= 1, got {n_splits!r}")
    if not (isinstance(step, (int, float, np.number)) and 0 < step <= 1):
        raise ValueError(f"step must be a number in (0, 1], got {step!r}")
    return int(n_splits), float(step), _generator(rng)


def _generator(rng) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    try:
        return np.random.default_rng(rng)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"rng must be a numpy Generator, an int seed or None, got {rng!r}") from exc


def _count_at_least(values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """#(values >= t) for each of the sorted distinct `thresholds`, exactly, in one pass.

    Values go into 2**16 equal-width buckets by a monotone float formula, so a value in a
    bucket above (below) a threshold's is above (below) it; only the values that share a bucket
    with some threshold are sorted and compared. About twice as fast as sorting every pixel.
    """
    low, high = values.min(), values.max()
    with np.errstate(over="ignore", divide="ignore"):
        spread = high - low
        # All arithmetic in the values' own dtype, so thresholds land exactly like values.
        scale = values.dtype.type((_BUCKETS - 1) / float(spread) if spread > 0 else 0.0)
    if not (np.isfinite(scale) and np.isfinite(spread)):
        return values.size - np.searchsorted(np.sort(values), thresholds, side="left")
    buckets = values - low
    buckets *= scale
    buckets = buckets.astype(np.intp)
    t_buckets = ((thresholds - low) * scale).astype(np.intp)
    at_least = np.cumsum(np.bincount(buckets, minlength=_BUCKETS + 1)[::-1])[::-1]
    shared = np.zeros(at_least.size, bool)
    shared[t_buckets] = True
    near = np.sort(values[shared[buckets]])
    near_buckets = ((near - low) * scale).astype(np.intp)
    # Above the threshold's bucket, plus those in it at or above the threshold itself.
    return (at_least[t_buckets + 1] + np.searchsorted(near_buckets, t_buckets, side="right")
            - np.searchsorted(near, thresholds, side="left"))


def _split_auc(positives, negatives, step: float, low: float, high: float) -> float:
    """MIT's fixed-step ROC area averaged over splits; negatives is (n_splits, M). Values are
    min-max normalised by the map's range (low, high); a constant map becomes all zeros.
    Thresholds above a split's maximum (which MIT omits) only add points at (0, 0)."""
    low, high = float(low), float(high)
    if high > low:  # as MIT: (S - min) / (max - min), in float64 whatever the map's dtype
        positives = np.subtract(positives, low, dtype=np.float64) / (high - low)
        negatives = np.subtract(negatives, low, dtype=np.float64) / (high - low)
    else:
        positives, negatives = np.zeros(positives.shape), np.zeros(negatives.shape)
    thresholds = step * np.arange(int(np.floor(1.0 / step + 1e-9)) + 1)
    # The curve runs from the highest threshold down: reversed columns.
    tp = _fraction_at_least(positives[None, :], thresholds)[0, ::-1]
    fp = _fraction_at_least(negatives, thresholds)[:, ::-1]
    tp = np.concatenate([[0.0], tp, [1.0]])
    fp = np.pad(fp, ((0, 0), (1, 0)), constant_values=0.0)
    fp = np.pad(fp, ((0, 0), (0, 1)), constant_values=1.0)
    return float(_trapezoid(fp, tp).mean())


def _fraction_at_least(values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """(rows, thresholds) fractions of each row of `values` that are >= each of the ascending
    `thresholds`: one binary search per value rather than a comparison per value and threshold."""
    n_rows, n_values = values.shape
    width = thresholds.size + 1
    # thresholds[:k] <= v < thresholds[k:]: v is >= exactly the first k thresholds.
    k = np.searchsorted(thresholds, values, side="right")
    counts = np.bincount((k + width * np.arange(n_rows)[:, None]).ravel(), minlength=n_rows * width)
    below = np.cumsum(counts.reshape(n_rows, width), axis=1)[:, :-1]
    return (n_values - below) / n_values


def _trapezoid(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Trapezoid rule along the last axis (np.trapz is renamed across numpy versions)."""
    return np.sum(np.diff(x, axis=-1) * (y[..., 1:] + y[..., :-1]) / 2.0, axis=-1)
