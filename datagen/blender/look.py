"""How a render looks, measured on its 8-bit image and instance mask — bpy-free (numpy, OpenCV).

Used by the look tests and `benchmarks/bench_look.py` to compare renders with CLEVR's listed
colours and floor:

    colors = object_colors(rgb, mask)                  # mask_id → median sRGB of its interior
    error = delta_e_2000(srgb_to_lab(colors[3]), srgb_to_lab((42, 75, 215)))
    floor = floor_brightness(rgb, mask)                # top band, bottom band, whole floor
    share = clipped_share(rgb)                         # pixels with a channel at 255

`chart_scene` builds the scene these figures are taken on: one large rubber object per colour,
spread over CLEVR's ground, camera and lights at CLEVR's defaults (no jitter).
Images are RGB (H, W, 3) uint8 (OpenCV reads BGR: convert first); masks are DESIGN.md §2's
label images (0 floor, k = the object with mask_id k).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import cv2
import numpy as np

from datagen.blender.catalog import resting_z
from datagen.scene import Camera, Light, Scene, SceneObject

EDGE_PX = 2  # object pixels this close to the mask's border mix with the floor in the image
BAND = 0.1  # the floor's top and bottom bands, as a share of the image height

# One position per chart object (x, y in metres; shape), spread over CLEVR's U(−3, 3) ground
# and far enough apart that none hides another from the default camera at (7.48, −6.51, 5.34).
CHART_LAYOUT: tuple[tuple[str, float, float], ...] = (
    ("sphere", -2.5, -1.7), ("cube", -0.6, -2.6), ("cylinder", 1.6, -2.4), ("sphere", 2.6, -0.4),
    ("cylinder", -2.6, 0.9), ("cube", -0.4, 0.1), ("sphere", 1.8, 1.6), ("cube", -1.0, 2.6),
)

# D65 white and the sRGB (linear) → XYZ matrix of IEC 61966-2-1.
_WHITE = np.array([0.95047, 1.0, 1.08883])
_RGB_TO_XYZ = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])


@dataclass(frozen=True)
class FloorBrightness:
    """Mean grey level (0–255, the mean of R, G, B) of floor pixels: the top and bottom bands
    of rows (BAND of the height each) and the whole image."""

    top: float
    bottom: float
    mean: float


def object_colors(image: np.ndarray, mask: np.ndarray, edge_px: int = EDGE_PX) -> dict[int, tuple[float, float, float]]:
    """mask_id → per-channel median sRGB (0–255) of the object's interior pixels.

    The interior is the object's mask eroded by `edge_px` pixels (a (2·edge_px+1)² square),
    which drops anti-aliased edge pixels that mix object and floor; specular highlights cover
    a few per cent of a rubber object and the median ignores them. An object with no interior
    pixel left is omitted.
    """
    image, mask = _checked(image, mask)
    kernel = np.ones((2 * edge_px + 1, 2 * edge_px + 1), np.uint8)
    colors = {}
    for mask_id in np.unique(mask):
        if mask_id == 0:
            continue
        inside = cv2.erode((mask == mask_id).astype(np.uint8), kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
        if inside.any():
            r, g, b = np.median(image[inside.astype(bool)], axis=0)
            colors[int(mask_id)] = (float(r), float(g), float(b))
    return colors


def floor_brightness(image: np.ndarray, mask: np.ndarray, band: float = BAND) -> FloorBrightness:
    """Mean grey level of floor pixels (label 0) in the top and bottom `band` of rows and overall.

    Shadows count: they are part of how the floor looks. Raises ValueError when a band holds no floor.
    """
    image, mask = _checked(image, mask)
    grey = image.astype(np.float64).mean(axis=2)
    floor = mask == 0
    rows = max(1, round(band * mask.shape[0]))
    parts = {"top": np.s_[:rows], "bottom": np.s_[-rows:], "mean": np.s_[:]}
    values = {}
    for name, part in parts.items():
        pixels = grey[part][floor[part]]
        if pixels.size == 0:
            raise ValueError(f"the {name} band ({rows} rows) of a {mask.shape} mask holds no floor pixel (label 0)")
        values[name] = float(pixels.mean())
    return FloorBrightness(**values)


def clipped_share(image: np.ndarray) -> float:
    """Share of pixels (0–1) with at least one channel at 255."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image has shape {image.shape} and dtype {image.dtype}; expected (H, W, 3) uint8")
    return float((image == 255).any(axis=2).mean())


def srgb_to_lab(rgb: Sequence[float] | np.ndarray) -> np.ndarray:
    """sRGB 0–255 (…, 3) → CIE L*a*b* (…, 3) under D65 (L* in 0–100)."""
    c = np.asarray(rgb, np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = linear @ _RGB_TO_XYZ.T / _WHITE
    delta = 6.0 / 29.0
    f = np.where(xyz > delta**3, np.cbrt(xyz), xyz / (3 * delta**2) + 4.0 / 29.0)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def delta_e_2000(lab_a: Sequence[float] | np.ndarray, lab_b: Sequence[float] | np.ndarray) -> np.ndarray | float:
    """CIEDE2000 colour difference (kL = kC = kH = 1) between L*a*b* colours (…, 3).

    Follows Sharma, Wu & Dalal (2005), whose test pairs the tests check. About 1 is a just
    noticeable difference; 2–10 is visible at a glance as "close"; above ~20 reads as another colour.
    """
    lab_a, lab_b = np.asarray(lab_a, np.float64), np.asarray(lab_b, np.float64)
    l1, a1, b1 = np.moveaxis(lab_a, -1, 0)
    l2, a2, b2 = np.moveaxis(lab_b, -1, 0)
    c_mean = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(c_mean**7 / (c_mean**7 + 25.0**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360
    dl = l2 - l1
    dc = c2p - c1p
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(c1p * c2p == 0, 0.0, dh)
    dhh = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh / 2))
    l_mean = (l1 + l2) / 2
    cp_mean = (c1p + c2p) / 2
    h_sum = h1p + h2p
    h_mean = np.where(np.abs(h1p - h2p) > 180, np.where(h_sum < 360, h_sum + 360, h_sum - 360), h_sum) / 2
    h_mean = np.where(c1p * c2p == 0, h_sum, h_mean)
    t = (
        1 - 0.17 * np.cos(np.radians(h_mean - 30)) + 0.24 * np.cos(np.radians(2 * h_mean))
        + 0.32 * np.cos(np.radians(3 * h_mean + 6)) - 0.20 * np.cos(np.radians(4 * h_mean - 63))
    )
    s_l = 1 + 0.015 * (l_mean - 50) ** 2 / np.sqrt(20 + (l_mean - 50) ** 2)
    s_c = 1 + 0.045 * cp_mean
    s_h = 1 + 0.015 * cp_mean * t
    r_t = -2 * np.sqrt(cp_mean**7 / (cp_mean**7 + 25.0**7)) * np.sin(np.radians(60 * np.exp(-(((h_mean - 275) / 25) ** 2))))
    result = np.sqrt((dl / s_l) ** 2 + (dc / s_c) ** 2 + (dhh / s_h) ** 2 + r_t * (dc / s_c) * (dhh / s_h))
    return float(result) if result.ndim == 0 else result


def chart_scene(
    colors: Mapping[str, Sequence[int]],
    lights: Sequence[Light],
    image_size: tuple[int, int] = (320, 240),
    shift: int = 0,
    material: str = "rubber",
    radius: float = 0.7,
) -> Scene:
    """One `material` object of size `radius` per colour (name → sRGB), at most len(CHART_LAYOUT).

    Colour k stands at CHART_LAYOUT[(k + shift) % 8] with that position's shape, so renders with
    shifts 0..7 show every colour at every position; object k has id and mask_id k + 1. The
    camera is CLEVR's default; pass `placement.CLEVR_LIGHTS` for the pipeline's lights.
    """
    if not 1 <= len(colors) <= len(CHART_LAYOUT):
        raise ValueError(f"chart_scene takes 1–{len(CHART_LAYOUT)} colours, got {len(colors)}: {list(colors)}")
    objects = []
    for k, (name, rgb) in enumerate(colors.items()):
        shape, x, y = CHART_LAYOUT[(k + shift) % len(CHART_LAYOUT)]
        objects.append(SceneObject(
            id=k + 1, mask_id=k + 1, shape=shape, color=name, material=material, size=f"{radius:g}",
            radius=radius, rgb=(int(rgb[0]), int(rgb[1]), int(rgb[2])), position=(x, y, resting_z(shape, radius)),
            rotation=35.0,
        ))
    scene = Scene(objects=(), camera=Camera(location=(7.48, -6.51, 5.34)), lights=tuple(lights), image_size=image_size)
    return scene.with_objects(objects)


def _checked(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    image, mask = np.asarray(image), np.asarray(mask)
    if image.ndim != 3 or image.shape[2] != 3 or mask.shape != image.shape[:2]:
        raise ValueError(f"image {image.shape} and mask {mask.shape}: expected (H, W, 3) and (H, W)")
    return image, mask
