"""Shape → mesh primitive and material → BSDF parameters, with CLEVR's defaults — bpy-free.

Shapes: a scene object's `shape` names an entry `{"primitive": ..., "scale": ...}`; the mesh
is the primitive with unit horizontal half-extent, scaled by `radius * scale`. CLEVR's cube
uses scale 1/√2 (CLEVR's render_images.py does `r /= sqrt(2)` for the cube), so every shape's
footprint fits inside the circle of radius `radius` that placement keeps apart; a scene
generator should put an object's centre at `resting_z(shape, radius)` above the ground.

Materials: `{"kind": "rubber"|"metal", "roughness", "metallic", optional "specular",
"clearcoat"}` (numbers in [0, 1]); the base
colour comes from the object's sRGB `rgb`, converted to linear (see `srgb_to_linear`).
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

# Defaults per kind, the same numbers as `datagen.properties.Properties.clevr()`;
# "specular" is Principled's Specular IOR Level, "clearcoat" its Coat Weight.
MATERIAL_KINDS: dict[str, dict[str, float]] = {
    "rubber": {"roughness": 0.7, "metallic": 0.0, "specular": 0.5, "clearcoat": 0.0},
    "metal": {"roughness": 0.2, "metallic": 1.0, "specular": 0.5, "clearcoat": 0.0},
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
    """{"roughness", "metallic", "specular", "clearcoat"} (each in [0, 1]) for a material name;
    `materials` overrides/extends the defaults, missing numbers come from the entry's kind."""
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

    CLEVR fed rgb/255 straight into the shader; converting instead makes a lit rubber object
    show roughly its listed sRGB colour under the Standard view transform.
    """
    out = []
    for channel in rgb:
        c = channel / 255.0
        out.append(c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4)
    return (out[0], out[1], out[2])
