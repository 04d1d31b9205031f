"""Target saliency maps for training editors, after the papers (numpy in, numpy out).

Every saliency argument is a *density*: a 2-D float map, >= 0, summing to 1 (the `.npy` maps of
the dataset directory, or a predictor's softmax). Every map returned is a float32 density too;
multiply by ``1 / max`` for a max-normalised map in [0, 1]. Masks are 2-D: a label image (int,
0 background, k = object with mask id k) or a binary object mask (bool or 0/1).

- `local_shift` / `sample_local_shift`: Gatys et al. (papers/002), ``log p_t = log p + k_sh · M``
  with M a Gaussian-blurred object mask, k_sh ∈ [−4, 4].
- `global_scale` / `sample_global_scale`: Gatys et al., ``log p_t = k_sc · log p``, k_sc ∈ [0.5, 2].
- `sagim_reorder`: SaGIM (papers/001 §4.1), the most and least salient objects trade places.
- `select_gazeshift_mask`: GazeShiftNet's mask curation (papers/004 §4, "CoCoClutter").
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from analysis.fixations import gaussian_blur
from datadir.maps import check_density

LOCAL_SHIFT_RANGE = (-4.0, 4.0)  # Gatys et al.: k_sh ∈ [−4, 4]
GLOBAL_SCALE_RANGE = (0.5, 2.0)  # Gatys et al.: k_sc ∈ [0.5, 2]


class Reordered(NamedTuple):
    """`sagim_reorder`'s result: the guiding density and the mask ids that traded places."""

    density: np.ndarray
    most_salient_id: int
    least_salient_id: int


def local_shift(saliency_density, object_mask, k_sh: float, blur_sigma_px: float = 0.0) -> np.ndarray:
    """Gatys' local shift: ``p_t ∝ exp(log p + k_sh · blur(M))`` — a density.

    `object_mask` is a binary H×W mask (values > 0 are the object); it is blurred with a Gaussian
    of `blur_sigma_px` pixels (0 = sharp, as the paper's test stimuli) and rescaled to max 1, so
    the object's core gets the full shift. k_sh > 0 raises the object's share of the mass,
    k_sh < 0 lowers it, k_sh = 0 returns the input. Zero-density pixels stay zero.
    """
    density = check_density(saliency_density, "saliency_density")
    mask = _check_mask(object_mask, density.shape, "object_mask") > 0
    k_sh = _finite(k_sh, "k_sh")
    if not (np.isfinite(blur_sigma_px) and blur_sigma_px >= 0):
        raise ValueError(f"blur_sigma_px must be a finite number >= 0, got {blur_sigma_px!r}")
    weight = gaussian_blur(mask.astype(np.float32), float(blur_sigma_px)).astype(np.float64)
    weight /= weight.max()
    return _from_log(_log(density) + k_sh * weight)


def sample_local_shift(rng: np.random.Generator, saliency_density, label_mask,
                       blur_sigma_px: float | None = None, k_range=LOCAL_SHIFT_RANGE):
    """Draw one object of `label_mask` and k_sh ~ U(k_range); return (target density, info).

    info = {"mask_id": int, "k_sh": float, "blur_sigma_px": float}. `blur_sigma_px` None means
    2 % of the longer image side (the paper blurs but gives no σ).
    """
    density = check_density(saliency_density, "saliency_density")
    labels = _check_mask(label_mask, density.shape, "label_mask")
    ids = _object_ids(labels)
    if ids.size == 0:
        raise ValueError("label_mask has no objects (all 0); expected at least one mask id > 0")
    mask_id = int(rng.choice(ids))
    k_sh = float(rng.uniform(*k_range))
    sigma = 0.02 * max(density.shape) if blur_sigma_px is None else float(blur_sigma_px)
    target = local_shift(density, labels == mask_id, k_sh, sigma)
    return target, {"mask_id": mask_id, "k_sh": k_sh, "blur_sigma_px": sigma}


def global_scale(saliency_density, k_sc: float) -> np.ndarray:
    """Gatys' global scaling: ``p_t ∝ exp(k_sc · log p) = p^k_sc`` — a density.

    k_sc > 1 sharpens (lower entropy), k_sc < 1 flattens, k_sc = 1 returns the input.
    """
    density = check_density(saliency_density, "saliency_density")
    k_sc = _finite(k_sc, "k_sc")
    if k_sc <= 0:
        raise ValueError(f"k_sc must be > 0 (the paper samples [0.5, 2]), got {k_sc!r}")
    return _from_log(k_sc * _log(density))


def sample_global_scale(rng: np.random.Generator, saliency_density, k_range=GLOBAL_SCALE_RANGE):
    """Draw k_sc ~ U(k_range) and return (target density, {"k_sc": float})."""
    k_sc = float(rng.uniform(*k_range))
    return global_scale(saliency_density, k_sc), {"k_sc": k_sc}


def sagim_reorder(saliency_density, label_mask, rng: np.random.Generator | None = None,
                  extra_factor=(1.0, 1.0), blur_sigma_px: float = 0.0) -> Reordered:
    """SaGIM's guiding map: the most and least salient objects (by mean density) trade places.

    The paper multiplies the least salient object's saliency up and the most salient one's down
    "by random factors which can lead to re-ordering", then smooths. Here the factors are chosen
    so each object takes the other's mean density exactly (so the order really flips), times an
    optional extra boost/damping drawn from U(extra_factor) with `rng` (≥ 1; (1, 1) = exact
    swap). An object with no mass is filled uniformly. `blur_sigma_px` > 0 smooths the result,
    as the paper does (a strong blur can undo the swap of small objects). Returns a density.
    """
    density = check_density(saliency_density, "saliency_density").astype(np.float64)
    labels = _check_mask(label_mask, density.shape, "label_mask")
    ids = _object_ids(labels)
    if ids.size < 2:
        raise ValueError(f"label_mask has {ids.size} object(s); SaGIM's re-ordering needs at least 2")
    low, high = float(min(extra_factor)), float(max(extra_factor))
    if low < 1:
        raise ValueError(f"extra_factor must be a range within [1, inf), got {extra_factor!r}")
    means = _object_means(density, labels, ids)
    # The last minimum, so equal means still name two different objects.
    most, least = int(ids[np.argmax(means)]), int(ids[len(ids) - 1 - np.argmin(means[::-1])])
    mean_most, mean_least = means.max(), means.min()
    boost = rng.uniform(low, high) if rng is not None and high > low else low
    damp = rng.uniform(low, high) if rng is not None and high > low else low
    guide = density.copy()
    in_most, in_least = labels == most, labels == least
    guide[in_most] *= mean_least / mean_most / damp if mean_most > 0 else 1.0
    if mean_least > 0:
        guide[in_least] *= mean_most / mean_least * boost
    else:
        guide[in_least] = mean_most * boost
    if blur_sigma_px > 0:
        guide = gaussian_blur(guide.astype(np.float32), float(blur_sigma_px)).astype(np.float64)
    return Reordered(_normalise(guide, "the re-ordered map"), most, least)


def select_gazeshift_mask(saliency_density, label_mask, rng: np.random.Generator,
                          min_area: float = 0.01, max_area: float = 0.5) -> np.ndarray | None:
    """GazeShiftNet's mask selection: a bool H×W mask of one qualifying object, or None.

    Rules (papers/004 §4): the scene has ≥ 2 objects; the object covers a fraction of the image
    within [min_area, max_area]; its mean density is below the most salient object's (it is not
    already the most salient). Among the qualifying objects one is drawn uniformly with `rng`.
    """
    density = check_density(saliency_density, "saliency_density")
    labels = _check_mask(label_mask, density.shape, "label_mask", allow_empty=True)
    if not 0 <= min_area <= max_area <= 1:
        raise ValueError(f"need 0 <= min_area <= max_area <= 1, got min_area={min_area}, max_area={max_area}")
    ids = _object_ids(labels)
    if ids.size < 2:
        return None
    areas = np.array([(labels == i).mean() for i in ids])
    means = _object_means(density.astype(np.float64), labels, ids)
    ok = (areas >= min_area) & (areas <= max_area) & (means < means.max())
    if not ok.any():
        return None
    return labels == int(rng.choice(ids[ok]))


def _check_mask(mask, shape: tuple[int, int], name: str, allow_empty: bool = False) -> np.ndarray:
    array = np.asarray(mask)
    if array.shape != tuple(shape):
        raise ValueError(f"{name} has shape {array.shape}; expected {tuple(shape)} like the saliency map")
    if array.dtype == bool:
        array = array.astype(np.int64)
    if not np.issubdtype(array.dtype, np.integer):
        if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
            raise ValueError(f"{name} must hold integer labels (or bools), got dtype {array.dtype}")
        array = array.astype(np.int64)
    if array.min() < 0:
        raise ValueError(f"{name} has negative labels (min {array.min()}); expected 0 background, k > 0 objects")
    if not allow_empty and not array.any():
        raise ValueError(f"{name} is empty (no pixel > 0); expected an object")
    return array


def _object_ids(labels: np.ndarray) -> np.ndarray:
    ids = np.unique(labels)
    return ids[ids > 0]


def _object_means(density: np.ndarray, labels: np.ndarray, ids: np.ndarray) -> np.ndarray:
    return np.array([density[labels == i].mean() for i in ids])


def _finite(value, name: str) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a number, got {value!r}") from exc
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return value


def _log(density: np.ndarray) -> np.ndarray:
    # log 0 = -inf on purpose: zero-density pixels stay zero after exp.
    with np.errstate(divide="ignore"):
        return np.log(density)


def _from_log(log_values: np.ndarray) -> np.ndarray:
    """exp then normalise, shifted by the max so large k neither overflows nor underflows to 0."""
    shifted = np.exp(log_values - log_values[np.isfinite(log_values)].max())
    return _normalise(shifted, "the target map")


def _normalise(values: np.ndarray, what: str) -> np.ndarray:
    total = values.sum()
    if not (np.isfinite(total) and total > 0):
        raise ValueError(f"{what} has no mass left (sum {total!r}); check the input density")
    return (values / total).astype(np.float32)
