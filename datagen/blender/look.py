"""How a render looks, measured on its 8-bit image and instance mask — bpy-free (numpy, OpenCV).

Used by the look tests and `benchmarks/bench_look.py` to compare renders with CLEVR's renders,
its listed colours and its floor:

    colors = object_colors(rgb, mask)                  # mask_id → median sRGB of its interior
    error = delta_e_2000(srgb_to_lab(colors[3]), srgb_to_lab((42, 75, 215)))
    floor = floor_brightness(rgb, mask)                # top band, bottom band, whole floor
    share = clipped_share(rgb)                         # pixels with a channel at 255

`chart_scene` builds the scene these figures are taken on: one large rubber or metal object per
colour, spread over CLEVR's ground, camera and lights at CLEVR's defaults (no jitter).
`CLEVR_RENDERS` holds what CLEVR's own generator renders for the same charts, the target:

    reference = clevr_reference("metal", "red", [chart_position(o) for o in red_objects])

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

# CLEVR's renders of the charts: material → colour → the median sRGB colour (`object_colors`) of
# the `chart_scene` object of that colour at each CHART_LAYOUT position (radius 0.7, rotation 35°).
# Source: CLEVR's own generator files (facebookresearch/clevr-dataset-gen, image_generation/data:
# base_scene.blend for ground, camera, lamps and colour management; materials/Rubber.blend and
# MyMetal.blend, whose node groups take "Color" = rgb / 255 as render_images.py feeds them;
# shapes/SmoothCube_v2, Sphere, SmoothCylinder.blend) opened in bpy 5.0.1, Cycles set as
# render_images.py sets it (blur_glossy 2, no denoising) but 128 samples (CLEVR: 512), 320×240,
# 8 chart shifts (each colour once at each position), masks from the Object Index pass. The
# rubber listed colours are not what CLEVR renders: its rubber is darker and greyer (yellow
# (255, 238, 51) renders as (120–162, 115–155, 53–73)). Reliability: the same files give CLEVR's
# floor (104 / 139 / 121 against its example images' 102–106 / 134–147); on the large spheres
# of CLEVR's example images (images/img1-8.png, no masks: the median of a disc of 0.8 radius
# placed by eye, on 6 metal and 6 rubber spheres) they differ from the rendered spheres of the
# same colour by ΔE00 1.2–6.4 (mean 3.4) for metal and 0.9–5.1 (mean 2.1) for rubber (their lamps
# are jittered; one colour's 8 positions above already span ΔE00 7–15). So compare like with like,
# position by position (`clevr_reference`), and read a chart's ΔE00 below ~3 as "as close as the
# reference can tell". `python -m datagen.blender.clevr_references` re-derives the table from a checkout.
CLEVR_RENDERS: dict[str, dict[str, tuple[tuple[int, int, int], ...]]] = {
    "rubber": {
        "gray": ((83, 81, 80), (72, 70, 69), (92, 90, 88), (99, 97, 93), (77, 74, 74), (83, 81, 81), (89, 87, 86), (82, 82, 80)),
        "red": ((112, 52, 52), (100, 45, 45), (125, 59, 57), (136, 63, 60), (105, 47, 48), (115, 54, 52), (122, 56, 55), (115, 52, 50)),
        "blue": ((57, 76, 122), (50, 66, 107), (65, 84, 133), (70, 90, 142), (52, 71, 115), (59, 78, 122), (63, 82, 130), (57, 75, 123)),
        "green": ((48, 89, 39), (42, 78, 33), (55, 98, 44), (58, 106, 46), (44, 83, 35), (49, 89, 38), (52, 95, 41), (48, 88, 38)),
        "brown": ((100, 75, 44), (87, 65, 38), (110, 84, 49), (118, 90, 51), (92, 69, 40), (100, 75, 43), (108, 80, 45), (98, 74, 43)),
        "purple": ((98, 55, 119), (87, 48, 103), (110, 61, 127), (119, 65, 135), (92, 50, 110), (99, 54, 116), (106, 58, 125), (98, 53, 115)),
        "cyan": ((58, 124, 121), (50, 110, 106), (65, 135, 131), (69, 145, 141), (53, 116, 113), (57, 123, 119), (61, 131, 127), (56, 122, 121)),
        "yellow": ((135, 130, 62), (120, 115, 53), (150, 143, 68), (162, 155, 73), (126, 121, 57), (137, 130, 61), (147, 140, 65), (136, 131, 62)),
    },
    "metal": {
        "gray": ((53, 51, 51), (65, 65, 64), (73, 72, 71), (61, 60, 57), (60, 58, 58), (63, 63, 63), (52, 51, 51), (73, 75, 74)),
        "red": ((72, 31, 33), (92, 40, 40), (102, 44, 44), (83, 35, 35), (82, 35, 38), (89, 39, 39), (73, 31, 31), (107, 47, 44)),
        "blue": ((35, 49, 80), (44, 61, 103), (50, 67, 111), (41, 53, 89), (39, 56, 94), (43, 59, 98), (36, 48, 79), (51, 68, 113)),
        "green": ((28, 57, 21), (36, 72, 28), (40, 79, 32), (31, 63, 26), (33, 67, 25), (35, 70, 27), (27, 56, 21), (42, 80, 33)),
        "brown": ((65, 47, 26), (80, 60, 33), (89, 66, 36), (71, 53, 28), (74, 55, 30), (77, 57, 31), (64, 46, 24), (89, 67, 38)),
        "purple": ((63, 34, 81), (80, 42, 97), (89, 47, 105), (72, 36, 84), (72, 39, 90), (77, 40, 93), (63, 32, 77), (88, 48, 105)),
        "cyan": ((36, 83, 79), (44, 101, 101), (49, 112, 109), (39, 88, 91), (41, 94, 92), (42, 97, 96), (33, 79, 79), (51, 111, 109)),
        "yellow": ((89, 85, 38), (112, 108, 49), (124, 119, 54), (99, 99, 45), (99, 96, 44), (108, 103, 47), (88, 86, 38), (124, 118, 57)),
    },
}

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


def chart_position(obj: SceneObject) -> int:
    """Index into CHART_LAYOUT of a `chart_scene` object, found by its (x, y) position."""
    for index, (_, x, y) in enumerate(CHART_LAYOUT):
        if abs(obj.position[0] - x) < 1e-6 and abs(obj.position[1] - y) < 1e-6:
            return index
    raise ValueError(f"object {obj.id} at {obj.position[:2]} stands at no CHART_LAYOUT position; expected a chart_scene object")


def clevr_reference(material: str, color: str, positions: Sequence[int]) -> np.ndarray:
    """CLEVR's rendered sRGB colour (0–255, (3,)) of a `material` chart object of colour `color`:
    the per-channel median of `CLEVR_RENDERS` over the CHART_LAYOUT `positions` (repeats count)."""
    if material not in CLEVR_RENDERS or color not in CLEVR_RENDERS[material]:
        known = {m: sorted(c) for m, c in CLEVR_RENDERS.items()}
        raise ValueError(f"no CLEVR render of {material!r} {color!r}; expected a material and colour among {known}")
    if not positions or not all(0 <= p < len(CHART_LAYOUT) for p in positions):
        raise ValueError(f"positions {list(positions)}; expected one or more indices in 0–{len(CHART_LAYOUT) - 1}")
    return np.median(np.array([CLEVR_RENDERS[material][color][p] for p in positions], np.float64), axis=0)


def _checked(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    image, mask = np.asarray(image), np.asarray(mask)
    if image.ndim != 3 or image.shape[2] != 3 or mask.shape != image.shape[:2]:
        raise ValueError(f"image {image.shape} and mask {mask.shape}: expected (H, W, 3) and (H, W)")
    return image, mask
