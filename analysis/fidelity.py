"""Distances of an edited image to a reference image (the pair's ground-truth Y, or the input X).

Pure functions on RGB arrays of one shape, (H, W, 3), float in [0, 1] (uint8 is divided by 255).
They need no network weights, so they work offline for every method:
- `l1`: mean absolute difference over pixels and channels, in [0, 1] (pix2pix / BicycleGAN's L1);
- `mse`: mean squared difference, in [0, 1] (SaGIM's MSE);
- `psnr`: peak signal-to-noise ratio in dB for data range 1 (scikit-image); inf for identical images;
- `ssim`: structural similarity of Wang et al. 2004 as they define it — Gaussian window σ = 1.5,
  K1 = 0.01, K2 = 0.03, population covariances — per channel, then the mean over channels
  (scikit-image's `structural_similarity` with those settings), in [-1, 1], 1 = identical.
"""
from __future__ import annotations

import numpy as np

__all__ = ["l1", "mse", "psnr", "ssim", "as_unit_rgb"]


def l1(image, reference) -> float:
    """Mean absolute difference of two RGB images in [0, 1]: a fraction of the intensity range."""
    a, b = _pair(image, reference)
    return float(np.abs(a - b).mean())


def mse(image, reference) -> float:
    """Mean squared difference of two RGB images in [0, 1]."""
    a, b = _pair(image, reference)
    return float(np.square(a - b).mean())


def psnr(image, reference) -> float:
    """PSNR of `image` against `reference` in dB (data range 1); inf when they are identical."""
    from skimage.metrics import peak_signal_noise_ratio

    a, b = _pair(image, reference)
    if np.array_equal(a, b):
        return float("inf")
    return float(peak_signal_noise_ratio(b, a, data_range=1.0))


def ssim(image, reference) -> float:
    """SSIM of Wang et al. 2004 (module docstring), mean over the three channels, in [-1, 1].
    Images smaller than the 7×7 window of the Gaussian filter's support raise ValueError."""
    from skimage.metrics import structural_similarity

    a, b = _pair(image, reference)
    if min(a.shape[:2]) < 7:
        raise ValueError(f"SSIM needs images of at least 7×7 pixels, got {a.shape[1]}×{a.shape[0]} (W×H)")
    return float(structural_similarity(b, a, channel_axis=2, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False))


def as_unit_rgb(image, name: str = "image") -> np.ndarray:
    """An (H, W, 3) float64 array in [0, 1] from uint8 (÷ 255) or float input; ValueError otherwise."""
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"{name} must be an RGB image of shape (H, W, 3), got shape {array.shape}")
    if array.dtype == np.uint8:
        return array.astype(np.float64) / 255.0
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{name} must be uint8 or float in [0, 1], got dtype {array.dtype}")
    values = array.astype(np.float64)
    if not np.isfinite(values).all() or values.min() < 0 or values.max() > 1:
        raise ValueError(f"{name} must hold finite values in [0, 1], got range "
                         f"[{np.nanmin(values):.4g}, {np.nanmax(values):.4g}]")
    return values


def _pair(image, reference) -> tuple[np.ndarray, np.ndarray]:
    a, b = as_unit_rgb(image, "image"), as_unit_rgb(reference, "reference")
    if a.shape != b.shape:
        raise ValueError(f"image has shape {a.shape} but reference {b.shape}; expected images of one size")
    return a, b
