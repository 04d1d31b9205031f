"""Distances of an edited image to a reference image (the pair's ground-truth Y, or the input X).

Images: uint8 RGB arrays (H, W, 3), values 0-255 as saved in an 8-bit PNG — the one convention of
every image-metric entry point (`analysis.image_metrics` too). A float array is refused with a
ValueError that says how to convert it (`np.round(image * 255).astype(np.uint8)` for [0, 1]),
never read by guessing its range from the dtype. Values are reported in [0, 1] intensity units
(differences divided by 255), as for the same images scaled to [0, 1]. No network weights are
needed, so these work offline for every method:
- `l1`: mean absolute difference over pixels and channels / 255, in [0, 1] (pix2pix / BicycleGAN's L1);
- `mse`: mean squared difference / 255², in [0, 1] (SaGIM's MSE);
- `psnr`: peak signal-to-noise ratio in dB, 10 log10(255² / mean squared difference) — scikit-image's
  `peak_signal_noise_ratio` with data range 255, the same as data range 1 on [0, 1] images; inf for
  identical images;
- `ssim`: structural similarity of Wang et al. 2004 as they define it — Gaussian window σ = 1.5
  (11 taps), K1 = 0.01, K2 = 0.03, population covariances, the mean over the pixels at least 5
  from the border (whose windows lie inside the image) — per channel, then the mean over
  channels, in [-1, 1], 1 = identical: scikit-image's `structural_similarity(..., gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=255)`, computed with OpenCV's filters (~4x faster;
  the tests hold it to scikit-image within 1e-9);
- `ssim_map`: the per-pixel SSIM (the mean over channels) that `ssim` averages, every pixel included:
  those within 5 px of the border use windows reflected at the edge, as scikit-image's `full=True`
  map does — `ssim` is its mean over the pixels at least 5 from the border. Averaged over a region's
  pixels it gives the SSIM of a region (`analysis.eval_pairs`' ssim_x_bg / ssim_x_fg).
"""
from __future__ import annotations

import cv2
import numpy as np

from analysis.image_metrics import require_uint8

__all__ = ["l1", "mse", "psnr", "ssim", "ssim_map", "as_rgb_uint8"]

# Wang et al. 2004 as scikit-image implements them: σ 1.5 cut at 3.5 σ (radius 5, 11 taps).
_SSIM_SIGMA, _SSIM_RADIUS = 1.5, 5
_SSIM_K1, _SSIM_K2 = 0.01, 0.03
# Values per strip of `ssim` (rows x 3 x width): 512 KB float64 temporaries.
_SSIM_STRIP_VALUES = 1 << 16


def l1(image, reference) -> float:
    """Mean absolute difference of two uint8 RGB images over pixels and channels, / 255: in [0, 1]."""
    a, b = _pair(image, reference)
    return float(cv2.absdiff(a, b).sum(dtype=np.int64)) / (a.size * 255.0)


def mse(image, reference) -> float:
    """Mean squared difference of two uint8 RGB images, / 255²: in [0, 1]."""
    a, b = _pair(image, reference)
    return _squared_difference_sum(a, b) / (a.size * 255.0**2)


def psnr(image, reference) -> float:
    """PSNR of `image` against `reference` (uint8 RGB) in dB, for data range 255; inf when identical."""
    a, b = _pair(image, reference)
    total = _squared_difference_sum(a, b)
    if total == 0:
        return float("inf")
    return float(10.0 * np.log10(255.0**2 * a.size / total))


def ssim(image, reference) -> float:
    """SSIM of Wang et al. 2004 (module docstring) of two uint8 RGB images, mean over the three
    channels, in [-1, 1]: the mean of `ssim_map` over the pixels at least 5 from the border (whose
    windows lie inside the image). Images smaller than the 11×11 Gaussian window raise ValueError."""
    similarity = ssim_map(image, reference)
    radius = _SSIM_RADIUS
    return float(similarity[radius:-radius, radius:-radius].mean(dtype=np.float64))


def ssim_map(image, reference) -> np.ndarray:
    """The per-pixel SSIM (module docstring) of two uint8 RGB images: (H, W) float64 in [-1, 1],
    the mean over the three channels at each pixel; pixels within 5 of the border use windows
    reflected at the edge (scipy's 'reflect'), as scikit-image's full map. Images smaller than the
    11×11 Gaussian window raise ValueError."""
    a, b = _pair(image, reference)
    height, width = a.shape[:2]
    radius = _SSIM_RADIUS
    if min(height, width) < 2 * radius + 1:
        raise ValueError(f"SSIM needs images of at least {2 * radius + 1}×{2 * radius + 1} pixels (its Gaussian "
                         f"window), got {width}×{height} (W×H)")
    # Strips of rows (with `radius` rows above and below, cropped after) give the same values with
    # float64 temporaries small enough for malloc to reuse: whole-image ones come back from the
    # kernel page by page, which took half the time. A strip that starts or ends at the image's
    # edge keeps its edge rows, which the blur reflects there as it does on the whole image.
    rows = max(1, _SSIM_STRIP_VALUES // (3 * width))
    similarity = np.empty((height, width), np.float64)
    for top in range(0, height, rows):
        bottom = min(top + rows, height)
        start, stop = max(top - radius, 0), min(bottom + radius, height)
        channels = _ssim_channels(a[start:stop], b[start:stop])[top - start:bottom - start]
        mean = similarity[top:bottom]  # the channels' mean by two adds: np.mean over 3 values is 15x slower
        np.add(channels[..., 0], channels[..., 1], out=mean)
        mean += channels[..., 2]
        mean /= 3
    return similarity


def as_rgb_uint8(image, name: str = "image") -> np.ndarray:
    """`image` as an (H, W, 3) uint8 RGB array (not copied); ValueError naming `name` for another
    shape, and for another dtype with its range and how to convert (a float array is never guessed)."""
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or 0 in array.shape:
        raise ValueError(f"{name} must be an RGB image of shape (H, W, 3), got shape {array.shape}")
    return require_uint8(array, name)


# ---------------------------------------------------------------- helpers


def _pair(image, reference) -> tuple[np.ndarray, np.ndarray]:
    a, b = as_rgb_uint8(image, "image"), as_rgb_uint8(reference, "reference")
    if a.shape != b.shape:
        raise ValueError(f"image has shape {a.shape} but reference {b.shape}; expected images of one size")
    return a, b


def _squared_difference_sum(a: np.ndarray, b: np.ndarray) -> int:
    """Σ (a - b)² over every value, exactly: 255² fits uint16, the sum int64."""
    difference = cv2.absdiff(a, b).astype(np.uint16)
    return int(np.square(difference, out=difference).sum(dtype=np.int64))


def _ssim_channels(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The SSIM map (H, W, 3) of two uint8 RGB images per channel, by scikit-image's formula on 0-255
    values with C = (K · 255)², the border reflected. var_x and var_y only ever appear as their
    sum, so x² + y² is blurred once (the filter is linear)."""
    # float32 holds 0-255, their products and sums of two squares exactly; the blurs return float64.
    x, y = a.astype(np.float32), b.astype(np.float32)
    mu_x, mu_y = _ssim_blur(x), _ssim_blur(y)
    mu_xy = mu_x * mu_y
    mu_squares = mu_x * mu_x
    mu_squares += mu_y * mu_y
    covariance = _ssim_blur(x * y)
    covariance -= mu_xy
    variances = _ssim_blur(x * x + y * y)
    variances -= mu_squares
    c1, c2 = (_SSIM_K1 * 255.0) ** 2, (_SSIM_K2 * 255.0) ** 2
    return (2 * mu_xy + c1) * (2 * covariance + c2) / ((mu_squares + c1) * (variances + c2))


def _ssim_blur(values: np.ndarray) -> np.ndarray:
    """scipy.ndimage.gaussian_filter(σ 1.5, truncate 3.5, mode 'reflect') of each channel, as
    float64: the same kernel, and scipy's 'reflect' (d c b a | a b c d) is OpenCV's BORDER_REFLECT."""
    return cv2.sepFilter2D(values, cv2.CV_64F, _SSIM_KERNEL, _SSIM_KERNEL, borderType=cv2.BORDER_REFLECT)


def _gaussian_kernel() -> np.ndarray:
    """scipy.ndimage's 1-D Gaussian: exp(-x² / 2σ²) for x = -radius..radius, divided by its sum."""
    offsets = np.arange(-_SSIM_RADIUS, _SSIM_RADIUS + 1, dtype=np.float64)
    kernel = np.exp(-0.5 / _SSIM_SIGMA**2 * offsets**2)  # scipy's order of operations
    return kernel / kernel.sum()


_SSIM_KERNEL = _gaussian_kernel()
