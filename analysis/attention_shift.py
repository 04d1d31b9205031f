"""Attention-shift metrics: how far an edit moved saliency towards (or away from) a region.

Pure functions on numpy arrays, one paper's definition each (the docstring says which and
quotes it where the wording matters). They take a predictor's maps and human maps alike:
- maps: 2-D, finite, >= 0. Each function normalises as its definition needs and says how:
  to a density (divided by its sum: fraction of fixation mass per pixel) or max-normalised
  (divided by its maximum: [0, 1], 1 at the peak). Maps that a function compares with each
  other must share one shape; nothing is resized.
- mask: a boolean or 0/1 array of the maps' shape, True/1 = inside the region, never empty.
- labels: an integer object-id map of the maps' shape as gazelab stores masks (0 background,
  k > 0 object k).
Bad input raises ValueError naming the argument, the problem and what was expected.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from analysis.metrics import EPS, _as_map, _mass, cc, kld

# Margolin et al. 2014 (WFb.m): fspecial('gaussian', 7, 5) error-dependency window, and
# alpha = ln(0.5) / 5 so that a false positive 5 px from the region weighs 1.5.
_WFB_WINDOW, _WFB_SIGMA = 7, 5.0
_WFB_ALPHA = np.log(0.5) / 5.0
# Object means closer than this (relative) are equal for SaGIM's C1 and C2: the same values
# averaged over objects of different pixel counts differ in the last bits.
_TIE_RTOL = 1e-9


# ---------------------------------------------------------------- GazeShiftNet (Mejjati et al. 2020)


def saliency_increase(before, after, mask) -> float:
    """Absolute saliency increase: mean over the mask's pixels of after - before.

    GazeShiftNet §4.2: "the mean increase of attention inside the mask area" between the
    saliency maps of the original (`before`) and edited (`after`) image. Both maps (>= 0, any
    scale) are max-normalised first (each divided by its own maximum): the paper does not say
    how its evaluation maps are scaled, but its Table 1 values (0.038 on average, x100 in the
    table) are only possible on a [0, 1] per-pixel scale, not on densities (whose pixels are
    about 1 / n_pixels). Returns a fraction of the map's maximum, in [-1, 1].
    """
    b, a, inside = _pair(before, after, mask)
    return float(_mean_of_max_normalised(a, inside, "after") - _mean_of_max_normalised(b, inside, "before"))


def relative_saliency_increase(before, after, mask) -> float:
    """Relative saliency increase: the absolute increase divided by before's mean in the mask.

    GazeShiftNet §4.2 measures "the relative increase of attention by normalizing by the
    initial saliency map"; footnote 5: "Relative saliency increases can grow large when the
    corresponding instance has an average initial saliency value near zero", so the divisor is
    the instance's average initial saliency: (mean_m(after) - mean_m(before)) / mean_m(before),
    on max-normalised maps as in `saliency_increase`. A ratio (0.5 = +50%; the paper's table
    shows x100). If `before` is 0 at every pixel of the mask the ratio is undefined and this
    returns nan (so one such image does not stop a batch; average with nan-aware means).
    """
    b, a, inside = _pair(before, after, mask)
    initial = _mean_of_max_normalised(b, inside, "before")
    final = _mean_of_max_normalised(a, inside, "after")
    return float((final - initial) / initial) if initial > 0 else float("nan")


def weighted_fbeta(saliency_map, mask, beta2: float = 1.0) -> float:
    """Weighted F-beta of a saliency map against a binary mask (Margolin, Zelnik-Manor & Tal,
    "How to evaluate foreground maps?", CVPR 2014), in [0, 1]; GazeShiftNet's "WFB" between
    the final saliency map and the mask.

    Steps of the authors' reference code WFb.m, with FG the map, GT the mask:
    1. E = |FG - GT|, the absolute error per pixel.
    2. Pixel dependency: [Dst, IDXT] = bwdist(GT) (distance of each pixel to the nearest mask
       pixel, and that pixel); Et = E with every outside pixel given the error of its nearest
       mask pixel; EA = imfilter(Et, fspecial('gaussian', 7, 5)) (7x7 window, sigma 5 px,
       zero padding; applied here as two 1-D passes, the window being separable); inside the
       mask E is replaced by EA where EA < E.
    3. Pixel importance: B = 1 inside, 2 - exp(alpha * Dst) outside, alpha = ln(0.5) / 5;
       Ew = min(E, EA) * B.
    4. TPw = |GT| - sum(Ew inside), FPw = sum(Ew outside); recall R = 1 - mean(Ew inside),
       precision P = TPw / (eps + TPw + FPw), eps = 2.2204e-16.
    5. Q = (1 + beta2) * R * P / (eps + R + beta2 * P); beta2 = 1 by default as in WFb.m
       (GazeShiftNet does not say; salient-object benchmarks often pass 0.3).
    The map (>= 0, any scale) is max-normalised to [0, 1] first (WFb.m requires FG already in
    [0, 1]); an all-zero map detects nothing and scores 0.0. Ties in the nearest mask pixel may
    resolve differently from MATLAB's bwdist (rare, and only at equal distances).
    """
    values = _map(saliency_map, "saliency_map")
    gt = _mask(mask, "mask", values.shape)
    if not (isinstance(beta2, (int, float, np.number)) and np.isfinite(beta2) and beta2 > 0):
        raise ValueError(f"beta2 must be a finite number > 0, got {beta2!r}")
    top = values.max()
    if top == 0:
        return 0.0
    error = np.abs(values / top - gt)
    # Mask pixels are zeros of ~gt: their nearest mask pixel is themselves, at distance 0.
    distance, (rows, cols) = ndimage.distance_transform_edt(~gt, return_indices=True)
    blurred = error[rows, cols]
    window = _gaussian_window()
    for axis in (0, 1):
        blurred = ndimage.correlate1d(blurred, window, axis=axis, mode="constant", cval=0.0)
    weighted = np.where(gt & (blurred < error), blurred, error)
    weighted *= 2.0 - np.exp(_WFB_ALPHA * distance)  # B, which is 1 on the mask (distance 0)
    n_inside = gt.sum()
    inside_error = weighted.sum(where=gt)
    true_positive = n_inside - inside_error
    false_positive = weighted.sum() - inside_error
    recall = 1.0 - inside_error / n_inside
    precision = true_positive / (EPS + true_positive + false_positive)
    return float((1 + beta2) * recall * precision / (EPS + recall + beta2 * precision))


def cc_to_mask(saliency_map, mask) -> float:
    """Pearson CC between a saliency map and the binary mask (as 0/1 values), in [-1, 1].

    GazeShiftNet's "CC" similarity to mask, after Mechrez et al. 2019. Computed by
    `analysis.metrics.cc` (MIT CC.m); CC is invariant to the map's scale and offset, so any
    real map >= 0 will do. A constant map, or a mask covering every pixel, gives 0.0.
    """
    values = _map(saliency_map, "saliency_map")
    return cc(values, _mask(mask, "mask", values.shape).astype(np.float64))


# ---------------------------------------------------------------- SaGIM (Chen et al. 2019)


def object_saliency(saliency_map, labels) -> dict[int, float]:
    """Mean map value over each object's pixels: {object id: mean}, ids ascending.

    SaGIM §4.1 computes "the average saliency of each object" over its mask. The map is used
    as given (no normalisation); labels: 0 background, k > 0 object k; at least one object.
    """
    values = _map(saliency_map, "saliency_map")
    ids, means = _object_means(values, _labels(labels, values.shape))
    return {int(k): float(m) for k, m in zip(ids, means)}


def sagim_c1(before, after, labels) -> bool:
    """SaGIM guidance consistency C1 for one image: True if the edit succeeded.

    SaGIM §4.3: with O_high the most and O_low the least salient object of the original image
    (by mean saliency over the object's mask in `before`), "(C1) a manipulation is effective
    when the average saliency of O_low is higher than the one of O_high in the manipulated
    output" (strictly higher). SaGIM's Tables 1-2 give C1 (%): the share of images where
    this is True.
    Maps used as given, on one scale (C1 only compares objects within `after`). labels: one
    object-id map for both images (the edit keeps objects in place), at least 2 objects.
    Means within a relative 1e-9 of each other count as equal (summation rounding differs with
    an object's pixel count): equal is not higher; ties for O_high / O_low go to the smaller
    id; ValueError if every object ties in `before`.
    """
    b, a, label_map = _pair_with_labels(before, after, labels)
    ids, before_means = _object_means(b, label_map)
    high, low = _high_and_low(ids, before_means)
    after_means = dict(zip(*_object_means(a, label_map)))
    return _higher(after_means[low], after_means[high])


def sagim_c2(before, after, labels) -> bool:
    """SaGIM guidance consistency C2 for one image: True if the edit succeeded.

    SaGIM §4.3: "(C2) a manipulation is effective when the average saliency of O_low/O_high in
    the manipulated output is higher/lower than the one of O_low/O_high in original input
    image" -- both must hold (strictly, up to the 1e-9 of `sagim_c1`), with O_high / O_low
    chosen in `before` as in `sagim_c1`; "C1 is a stricter criterion than C2". C2 compares
    `before` with `after`, so the maps are used as given and must be on one scale: two
    densities (human maps) or two raw outputs of one predictor (SaGIM used SalGAN's [0, 1]
    output), not maps normalised each on its own.
    """
    b, a, label_map = _pair_with_labels(before, after, labels)
    ids, before_means = _object_means(b, label_map)
    high, low = _high_and_low(ids, before_means)
    before_of, after_of = dict(zip(ids, before_means)), dict(zip(*_object_means(a, label_map)))
    return _higher(after_of[low], before_of[low]) and _higher(before_of[high], after_of[high])


# ---------------------------------------------------------------- Gatys et al. 2017


def fixation_probability(density, mask) -> float:
    """Probability to fixate the region: p_obj = sum over pixels of M(x, y) p(x, y).

    Gatys et al. §5.3, with p the fixation density (`density` >= 0, any scale, divided by its
    sum here) and M the mask. Returns a fraction of the fixation mass, in [0, 1].
    """
    values = _map(density, "density")
    inside = _mask(mask, "mask", values.shape)
    return float(values[inside].sum() / _mass(values, "density"))


def delta_p_object(before, after, mask) -> tuple[float, float]:
    """Change in the probability to fixate the target object: (absolute, relative).

    Gatys et al. §5.3: absolute = p_obj(after) - p_obj(before), a fraction of the fixation
    mass in [-1, 1] (their "increase ... of 0.09"); relative = absolute / p_obj(before), a
    ratio ("Relative to the probability of looking at the corresponding object in the original
    image ... an increase of 43%" is 0.43). Both maps are densities (divided by their sums).
    If p_obj(before) is 0 the relative change is undefined: nan (absolute still returned).
    """
    b, a, inside = _pair(before, after, mask)
    p_before = b[inside].sum() / _mass(b, "before")
    change = a[inside].sum() / _mass(a, "after") - p_before
    return float(change), float(change / p_before) if p_before > 0 else float("nan")


def fixation_entropy(density) -> float:
    """Entropy of the fixation density in bits: H = -sum p(x, y) log2 p(x, y), 0 log 0 = 0.

    Gatys et al. §5.3 compute "the entropy of the empirical fixation densities" (a smoothed
    density, not the histogram of raw fixations) and report bits, hence log2. `density` >= 0,
    any scale, divided by its sum. The value depends on the resolution: a uniform density over
    2^k pixels has k bits, so compare maps of one shape only.
    """
    return _entropy_bits(_map(density, "density"), "density")


def entropy_change(before, after) -> float:
    """Change of the fixation entropy, H(after) - H(before), in bits (Gatys et al. §5.3: "an
    average in-/decrease in entropy by 0.19/0.48 bits"). Densities as in `fixation_entropy`,
    of one shape (per-pixel entropy grows with the pixel count)."""
    b, a = _same_shape(before, after, "before", "after")
    return _entropy_bits(a, "after") - _entropy_bits(b, "before")


# ---------------------------------------------------------------- SalG-GAN (Jiang et al. 2021)


def saliency_kld(target, achieved) -> float:
    """Saliency KLD between the target map and the map the edited image achieved, in nats.

    KL(target || achieved) = sum t * log(EPS + t / (a + EPS)), EPS = 2.2204e-16, both maps
    sum-normalised: `analysis.metrics.kld(pred=achieved, gt=target)`, the MIT KLdiv.m variant,
    with the target in the ground-truth role (SalG-GAN §5.2: "the distribution difference
    between the target saliency and the saliency map of the translated image"). Lower is
    better; 0 when the achieved map equals the target. Maps >= 0, same shape. (SalG-GAN's
    training loss, eq. 7, takes the other order, KL(achieved || target).)
    """
    t, a = _same_shape(target, achieved, "target", "achieved")
    _mass(t, "target")  # checked here so that errors name these arguments, not kld's
    _mass(a, "achieved")
    return kld(a, t)


# ---------------------------------------------------------------- helpers


def _map(value, name: str) -> np.ndarray:
    """A finite 2-D float64 map >= 0, or ValueError naming `name`."""
    values = _as_map(value, name)
    low = values.min()
    if low < 0:
        raise ValueError(f"{name} has negative values (min {low:.4g}); expected a saliency map >= 0")
    return values


def _same_shape(first, second, first_name: str, second_name: str) -> tuple[np.ndarray, np.ndarray]:
    a, b = _map(first, first_name), _map(second, second_name)
    if a.shape != b.shape:
        raise ValueError(f"{second_name} has shape {b.shape}; expected {first_name}'s shape {a.shape}")
    return a, b


def _pair(before, after, mask):
    """(before, after, boolean mask), validated to share one shape."""
    b, a = _same_shape(before, after, "before", "after")
    return b, a, _mask(mask, "mask", b.shape)


def _pair_with_labels(before, after, labels):
    b, a = _same_shape(before, after, "before", "after")
    return b, a, _labels(labels, b.shape)


def _mask(mask, name: str, shape) -> np.ndarray:
    """A boolean mask of `shape` from a boolean or 0/1 array with at least one pixel inside."""
    array = np.asarray(mask)
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{name} has dtype {array.dtype}; expected a boolean or 0/1 mask")
    if array.shape != tuple(shape):
        raise ValueError(f"{name} has shape {array.shape}; expected the maps' shape {tuple(shape)}")
    if array.dtype != bool:
        if array.dtype.kind == "f" and np.isnan(array).any():
            raise ValueError(f"{name} contains {int(np.isnan(array).sum())} NaN values; expected 0 or 1")
        bad = (array != 0) & (array != 1)
        if bad.any():
            raise ValueError(f"{name} has values other than 0 and 1 (e.g. {array[bad].flat[0]!r}); "
                             "expected a boolean or 0/1 mask (an object-id map needs `== id`)")
        array = array == 1
    if not array.any():
        raise ValueError(f"{name}: the mask is empty: no pixel is inside")
    return array


def _labels(labels, shape) -> np.ndarray:
    """An int64 object-id map of `shape`: integers >= 0 (0 background), one object at least."""
    array = np.asarray(labels)
    if array.dtype.kind not in "biuf":
        raise ValueError(f"labels has dtype {array.dtype}; expected integer object ids (0 = background)")
    if array.shape != tuple(shape):
        raise ValueError(f"labels has shape {array.shape}; expected the maps' shape {tuple(shape)}")
    if array.dtype.kind == "f" and not (np.isfinite(array).all() and (array == np.round(array)).all()):
        raise ValueError("labels has NaN, infinite or non-integer values; expected integer object ids")
    if array.min() < 0:
        raise ValueError(f"labels has negative ids (min {array.min()!r}); expected 0 (background) or k > 0")
    array = array.astype(np.int64)
    if not array.any():
        raise ValueError("labels has no object: every pixel is 0 (background)")
    return array


def _object_means(values: np.ndarray, labels: np.ndarray) -> tuple[list[int], list[float]]:
    """(object ids ascending, mean of `values` over each object's pixels)."""
    sums = np.bincount(labels.ravel(), weights=values.ravel())
    counts = np.bincount(labels.ravel())
    ids = np.flatnonzero(counts[1:]) + 1
    return [int(k) for k in ids], [float(m) for m in sums[ids] / counts[ids]]


def _high_and_low(ids: list[int], means: list[float]) -> tuple[int, int]:
    """SaGIM's (O_high, O_low): the most and least salient object ids; ties to the smaller id."""
    if len(ids) < 2:
        raise ValueError(f"labels has {len(ids)} object (ids {ids}); SaGIM's C1 and C2 need at least 2")
    top, bottom = max(means), min(means)
    if not _higher(top, bottom):
        raise ValueError(f"every object has the same mean saliency in before ({means[0]:.4g}); "
                         "O_high and O_low are undefined")
    high = next(k for k, m in zip(ids, means) if not _higher(top, m))
    low = next(k for k, m in zip(ids, means) if not _higher(m, bottom))
    return high, low


def _higher(x: float, y: float) -> bool:
    """x > y by more than summation rounding (a relative 1e-9)."""
    return bool(x - y > _TIE_RTOL * max(abs(x), abs(y)))


def _mean_of_max_normalised(values: np.ndarray, inside: np.ndarray, name: str) -> float:
    """The mean over `inside` of values / max(values), without dividing the whole map."""
    top = values.max()
    if top <= 0:
        raise ValueError(f"{name} is all zeros (shape {values.shape}); expected a map with a positive maximum")
    return float(values.sum(where=inside) / inside.sum() / top)


def _entropy_bits(values: np.ndarray, name: str) -> float:
    """-sum p log2 p of p = values / their sum, with 0 log 0 = 0."""
    p = values / _mass(values, name)
    log_p = np.log2(p, out=np.zeros_like(p), where=p > 0)
    return float(-np.vdot(p, log_p))


def _gaussian_window() -> np.ndarray:
    """The 1-D factor of MATLAB's fspecial('gaussian', 7, 5) = outer(w, w): w proportional to
    exp(-x^2 / (2 sigma^2)) for x = -3..3, sum 1 (so the 7x7 window sums to 1 too)."""
    offsets = np.arange(_WFB_WINDOW) - (_WFB_WINDOW - 1) / 2
    window = np.exp(-(offsets**2) / (2 * _WFB_SIGMA**2))
    return window / window.sum()
