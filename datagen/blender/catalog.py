"""Shape → mesh primitive and material → BSDF parameters, with CLEVR's defaults — bpy-free.

Shapes: a scene object's `shape` names an entry `{"primitive": ..., "scale": ...}`; the mesh
is the primitive with unit horizontal half-extent, scaled by `radius * scale`. CLEVR's cube
uses scale 1/√2 (CLEVR's render_images.py does `r /= sqrt(2)` for the cube), so every shape's
footprint fits inside the circle of radius `radius` that placement keeps apart; a scene
generator should put an object's centre at `resting_z(shape, radius)` above the ground.

Materials: `{"kind": "rubber"|"metal", "roughness", "metallic", optional "specular",
"clearcoat", "clevr_color", "color_scale"}` (numbers in [0, 1]). The base colour comes from the
object's sRGB `rgb` (`base_color`), read as linear the way CLEVR's generator does (rgb / 255)
and scaled so that our stage reproduces CLEVR's renders (`datagen.blender.look.CLEVR_RENDERS`,
`benchmarks/bench_look.py`): rubber by 0.2125, metal by 0.8.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

PRIMITIVES = ("cube", "sphere", "icosphere", "cylinder", "cone", "torus")

# Half-height of each unit primitive (horizontal half-extent 1): how far its centre sits above
# its lowest point. The torus is a ring of major radius 0.7 and tube radius 0.3.
PRIMITIVE_HALF_HEIGHT = {
    "cube": 1.0,
    "sphere": 1.0,
    "icosphere": 1.0,
    "cylinder": 1.0,
    "cone": 1.0,
    "torus": 0.3,
}

DEFAULT_SHAPES: dict[str, dict[str, Any]] = {
    "cube": {"primitive": "cube", "scale": 1.0 / math.sqrt(2.0)},
    "sphere": {"primitive": "sphere", "scale": 1.0},
    "cylinder": {"primitive": "cylinder", "scale": 1.0},
}

# Defaults per kind, the same numbers as `datagen.properties.Properties.clevr()` (which names
# neither "clevr_color" nor "color_scale": they come from here); "specular" is Principled's
# Specular IOR Level, "clearcoat" its Coat Weight; "clevr_color" and "color_scale" make the base
# colour from the sRGB colour (`base_color`). CLEVR's MyMetal.blend is two glossy BSDFs coloured
# rgb/255, so its metal reflects the sRGB numbers as linear reflectance (red 0.68, 0.14, 0.14
# where converting gives 0.42, 0.017, 0.017: darker and more saturated than CLEVR's renders).
# Our stage reflects a little more light than CLEVR's (a grey sky where CLEVR's is black, a
# stronger key light seen in the highlights), hence 0.8: chart ΔE00 to CLEVR's metal renders
# mean 0.8, worst 1.4 (bench_look, Cycles, 4 shifts; converted as before: 6.7 / 8.1; scale 1
# instead of 0.8: 3.5 / 6.0 on 2 shifts, every colour too light).
# CLEVR's Rubber.blend (diffuse and velvet under a white glossy coat) is coloured rgb/255 too;
# our lights and exposure make our ground (albedo 0.17) look like CLEVR's (0.8, Cycles' default
# surface), so a diffuse albedo scales by 0.17 / 0.8 = 0.2125: chart ΔE00 to CLEVR's rubber
# renders mean 3.4, worst 5.8 on 2 shifts (converted, scale 1, as before: 13.0 / 26.4 on 4).
MATERIAL_KINDS: dict[str, dict[str, float]] = {
    "rubber": {"roughness": 0.7, "metallic": 0.0, "specular": 0.5, "clearcoat": 0.0, "clevr_color": 1.0, "color_scale": 0.2125},
    "metal": {"roughness": 0.2, "metallic": 1.0, "specular": 0.5, "clearcoat": 0.0, "clevr_color": 1.0, "color_scale": 0.8},
}

DEFAULT_MATERIALS: dict[str, dict[str, Any]] = {
    "rubber": {"kind": "rubber", **MATERIAL_KINDS["rubber"]},
    "metal": {"kind": "metal", **MATERIAL_KINDS["metal"]},
}


def shape_spec(shape: str, shapes: Mapping[str, Mapping[str, Any]] | None = None) -> tuple[str, float]:
    """(primitive, scale) for a shape name; `shapes` overrides/extends DEFAULT_SHAPES.

    A shape missing from both whose name is itself a primitive maps to that primitive at scale 1.
    """
    table = {**DEFAULT_SHAPES, **(shapes or {})}
    entry = table.get(shape)
    if entry is None:
        if shape in PRIMITIVES:
            return shape, 1.0
        raise ValueError(f"unknown shape {shape!r}; expected one of {sorted(table)} or a primitive {PRIMITIVES}")
    primitive = str(entry.get("primitive", shape))
    if primitive not in PRIMITIVES:
        raise ValueError(f"shape {shape!r} maps to unknown primitive {primitive!r}; expected one of {PRIMITIVES}")
    scale = float(entry.get("scale", DEFAULT_SHAPES.get(primitive, {}).get("scale", 1.0)))
    if not scale > 0:
        raise ValueError(f"shape {shape!r} has scale {scale!r}; expected > 0")
    return primitive, scale


def half_extent(shape: str, radius: float, shapes: Mapping[str, Mapping[str, Any]] | None = None) -> float:
    """Horizontal half-extent in metres of a rendered shape (the mesh's scale factor)."""
    return radius * shape_spec(shape, shapes)[1]


def resting_z(shape: str, radius: float, shapes: Mapping[str, Mapping[str, Any]] | None = None) -> float:
    """Height of the centre above the ground at which the shape rests on it, metres."""
    primitive, scale = shape_spec(shape, shapes)
    return radius * scale * PRIMITIVE_HALF_HEIGHT[primitive]


def material_spec(material: str, materials: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, float]:
    """{"roughness", "metallic", "specular", "clearcoat", "clevr_color", "color_scale"} (each in
    [0, 1]) for a material name; `materials` overrides/extends the defaults, missing numbers come
    from the entry's kind (a properties file names neither "clevr_color" nor "color_scale")."""
    table = {**DEFAULT_MATERIALS, **(materials or {})}
    entry = table.get(material)
    if entry is None:
        if material in MATERIAL_KINDS:
            return dict(MATERIAL_KINDS[material])
        raise ValueError(f"unknown material {material!r}; expected one of {sorted(table)}")
    kind = str(entry.get("kind", material))
    if kind not in MATERIAL_KINDS:
        raise ValueError(f"material {material!r} has unknown kind {kind!r}; expected one of {sorted(MATERIAL_KINDS)}")
    spec = {key: float(entry.get(key, default)) for key, default in MATERIAL_KINDS[kind].items()}
    bad = {key: value for key, value in spec.items() if not 0.0 <= value <= 1.0}
    if bad:
        raise ValueError(f"material {material!r} has {bad}; expected values in [0, 1]")
    return spec


def srgb_to_linear(rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    """sRGB 0–255 → linear [0, 1] (IEC 61966-2-1), what Blender's base colour expects.

    CLEVR fed rgb/255 straight into the shader (see `base_color`); Workbench previews show the
    listed colour through this conversion.
    """
    out = []
    for channel in rgb:
        c = channel / 255.0
        out.append(c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4)
    return (out[0], out[1], out[2])


def base_color(linear_rgb: tuple[float, float, float], clevr_color: float, color_scale: float = 1.0) -> tuple[float, float, float]:
    """The Principled base colour (linear, [0, 1]) of an object whose colour is `linear_rgb`
    (`srgb_to_linear` of its sRGB colour), for a material's "clevr_color" and "color_scale".

    clevr_color 0 keeps `linear_rgb`; 1 takes CLEVR's convention, the sRGB numbers read as linear
    (rgb / 255: red (173, 35, 35) → (0.678, 0.137, 0.137) instead of (0.418, 0.017, 0.017));
    values between mix the two linearly. The result is multiplied by `color_scale`.
    """
    for name, value in (("clevr_color", clevr_color), ("color_scale", color_scale)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name}={value!r}; expected a number in [0, 1]")
    srgb = [_linear_to_srgb_unit(c) for c in linear_rgb]
    mixed = [color_scale * ((1.0 - clevr_color) * c + clevr_color * s) for c, s in zip(linear_rgb, srgb)]
    return (mixed[0], mixed[1], mixed[2])


def _linear_to_srgb_unit(c: float) -> float:
    """Linear [0, 1] → sRGB-encoded [0, 1], the inverse of `srgb_to_linear` per channel."""
    if not 0.0 <= c <= 1.0:
        raise ValueError(f"linear channel {c!r}; expected a number in [0, 1]")
    return c * 12.92 if c <= 0.0031308 else min(1.0, 1.055 * c ** (1 / 2.4) - 0.055)
