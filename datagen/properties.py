"""What objects can look like: shapes, colours, materials and sizes (DESIGN.md §3, CLEVR).

`Properties.clevr()` is CLEVR's set. A user's JSON or YAML file extends it:

```yaml
colors: {teal: [0, 128, 128]}          # sRGB, 0–255
shapes: {cone: {primitive: cone}, box: {primitive: cube, scale: 1.0}}
materials: {satin: {kind: rubber, roughness: 0.4, metallic: 0.0, clearcoat: 0.5}}
sizes: {medium: 0.5}                   # metres (CLEVR's r)
replace: false                         # true: start from nothing instead of CLEVR's set
```

An entry whose name already exists replaces the default of that name. Every scene file stores
`Properties.to_dict()`, so a scene re-renders without the file it was sampled from.

Geometry follows the renderer (`datagen.blender.catalog`) and CLEVR: an object of size r and a
shape of scale s is its primitive mesh (unit horizontal half-extent) scaled by r·s; the scale
defaults to 1/√2 for a cube (CLEVR's `r /= sqrt(2)`) and 1 otherwise, so by default every
shape fits inside the ground circle of radius r. The centre rests at `resting_z` above the ground.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PRIMITIVES = ("cube", "sphere", "cylinder", "cone", "torus", "icosphere")
MATERIAL_KINDS = ("rubber", "metal")  # what the renderer knows; other looks via the numbers

# Parameters a shape may set besides "primitive": name → (type, lowest, highest allowed).
# "scale" multiplies the size to give the mesh's horizontal half-extent.
SHAPE_PARAMS: dict[str, tuple[type, float, float]] = {"scale": (float, 0.01, 100.0)}
DEFAULT_SCALE: dict[str, float] = {"cube": 1.0 / math.sqrt(2.0)}  # others 1.0

# Per unit horizontal half-extent: the radius of the ground circle that holds the primitive at
# any rotation about z (a cube's corners reach √2), and the height of its centre above its
# lowest point (the torus is a ring of major radius 0.7 and tube radius 0.3, as the renderer builds it).
PRIMITIVE_FOOTPRINT: dict[str, float] = {
    "cube": math.sqrt(2.0),
    "sphere": 1.0,
    "cylinder": 1.0,
    "cone": 1.0,
    "torus": 1.0,
    "icosphere": 1.0,
}
PRIMITIVE_HALF_HEIGHT: dict[str, float] = {
    "cube": 1.0,
    "sphere": 1.0,
    "cylinder": 1.0,
    "cone": 1.0,
    "torus": 0.3,
    "icosphere": 1.0,
}

_MATERIAL_REQUIRED = ("kind", "roughness", "metallic")
_MATERIAL_OPTIONAL = ("specular", "clearcoat")
_TOP_LEVEL_KEYS = ("shapes", "colors", "materials", "sizes", "replace")
_CATEGORIES = ("shapes", "colors", "materials", "sizes")


@dataclass(frozen=True)
class Properties:
    """The vocabulary a scene is sampled from.

    shapes: name → {"primitive": one of PRIMITIVES, optional "scale" (default 1/√2 for a cube, else 1)}
    colors: name → [r, g, b] sRGB integers 0–255
    materials: name → {"kind": rubber|metal, "roughness" [0, 1], "metallic" [0, 1], optional
      "specular", "clearcoat" [0, 1]}
    sizes: name → r in metres (> 0): the mesh's horizontal half-extent is r · the shape's scale
    """

    shapes: dict[str, dict[str, Any]] = field(default_factory=dict)
    colors: dict[str, list[int]] = field(default_factory=dict)
    materials: dict[str, dict[str, Any]] = field(default_factory=dict)
    sizes: dict[str, float] = field(default_factory=dict)

    @classmethod
    def clevr(cls) -> "Properties":
        """CLEVR's shapes, colours, materials and sizes (DESIGN.md §3)."""
        return cls(
            shapes={
                "cube": {"primitive": "cube", "scale": DEFAULT_SCALE["cube"]},
                "sphere": {"primitive": "sphere"},
                "cylinder": {"primitive": "cylinder"},
            },
            colors={
                "gray": [87, 87, 87],
                "red": [173, 35, 35],
                "blue": [42, 75, 215],
                "green": [29, 105, 20],
                "brown": [129, 74, 25],
                "purple": [129, 38, 192],
                "cyan": [41, 208, 208],
                "yellow": [255, 238, 51],
            },
            materials={
                "rubber": {"kind": "rubber", "roughness": 0.7, "metallic": 0.0},
                "metal": {"kind": "metal", "roughness": 0.2, "metallic": 1.0},
            },
            sizes={"large": 0.7, "small": 0.35},
        )

    @classmethod
    def load(cls, path: str | Path) -> "Properties":
        """Read a JSON (.json) or YAML (.yaml/.yml) file that extends `Properties.clevr()`.

        Raises ValueError naming the file, the key, the value and what was expected.
        """
        path = Path(path)
        source = str(path)
        suffix = path.suffix.lower()
        if suffix not in (".json", ".yaml", ".yml"):
            raise ValueError(f"{source}: unknown properties file type {path.suffix!r}; expected .json, .yaml or .yml")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"{source}: cannot read the properties file: {exc}") from exc
        try:
            data = json.loads(text) if suffix == ".json" else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as exc:
            raise ValueError(f"{source}: not valid {'JSON' if suffix == '.json' else 'YAML'}: {exc}") from exc
        if data is None:
            data = {}
        return cls.extended(data, source=source)

    @classmethod
    def extended(cls, data: Any, source: str = "properties") -> "Properties":
        """CLEVR's properties extended by `data` (the content of a properties file), validated."""
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a mapping at the top level, got {type(data).__name__} {data!r}")
        _reject_unknown(data, _TOP_LEVEL_KEYS, source, "")
        replace = data.get("replace", False)
        if not isinstance(replace, bool):
            raise ValueError(f"{source}: key 'replace' = {replace!r}: expected true or false")
        base = {"shapes": {}, "colors": {}, "materials": {}, "sizes": {}} if replace else cls.clevr().to_dict()
        for category in _CATEGORIES:
            extra = data.get(category, {})
            if extra is None:
                extra = {}
            if not isinstance(extra, dict):
                raise ValueError(f"{source}: key '{category}' = {extra!r}: expected a mapping of name → value")
            base[category].update(extra)
        return cls.from_dict(base, source=source)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready deep copy (the snapshot stored in every scene file)."""
        return {
            "shapes": {name: dict(spec) for name, spec in self.shapes.items()},
            "colors": {name: list(rgb) for name, rgb in self.colors.items()},
            "materials": {name: dict(spec) for name, spec in self.materials.items()},
            "sizes": dict(self.sizes),
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "properties") -> "Properties":
        """Validate and build from `to_dict()`'s form; every category must be non-empty."""
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a mapping, got {type(data).__name__} {data!r}")
        _reject_unknown(data, _CATEGORIES, source, "")
        for category in _CATEGORIES:
            if not isinstance(data.get(category), dict) or not data[category]:
                raise ValueError(
                    f"{source}: key '{category}' = {data.get(category)!r}: expected a non-empty mapping of name → value"
                )
        return cls(
            shapes={_name(n, source, "shapes"): _shape(n, v, source) for n, v in data["shapes"].items()},
            colors={_name(n, source, "colors"): _color(n, v, source) for n, v in data["colors"].items()},
            materials={_name(n, source, "materials"): _material(n, v, source) for n, v in data["materials"].items()},
            sizes={_name(n, source, "sizes"): _size(n, v, source) for n, v in data["sizes"].items()},
        )

    def primitive(self, shape: str) -> str:
        """The mesh primitive a shape is built from."""
        try:
            return self.shapes[shape]["primitive"]
        except KeyError:
            raise KeyError(f"unknown shape {shape!r}; known: {sorted(self.shapes)}") from None

    def scale(self, shape: str) -> float:
        """Rendered horizontal half-extent per metre of size."""
        return float(self.shapes[shape].get("scale", DEFAULT_SCALE.get(self.primitive(shape), 1.0)))

    def footprint_radius(self, shape: str, radius: float) -> float:
        """Radius in metres of the ground circle that holds a `shape` of size `radius` at any rotation."""
        return footprint_radius(self.primitive(shape), radius, self.scale(shape))

    def resting_z(self, shape: str, radius: float) -> float:
        """Height in metres of the centre of a `shape` of size `radius` standing on the ground."""
        return resting_z(self.primitive(shape), radius, self.scale(shape))

    def rgb(self, color: str) -> tuple[int, int, int]:
        """sRGB 0–255 of a colour name."""
        try:
            r, g, b = self.colors[color]
        except KeyError:
            raise KeyError(f"unknown color {color!r}; known: {sorted(self.colors)}") from None
        return (r, g, b)


def footprint_radius(primitive: str, radius: float, scale: float | None = None) -> float:
    """Bounding-circle radius in metres of a primitive of size `radius` (metres) and `scale`
    (default DEFAULT_SCALE). A name that is not a primitive gets the widest factor, to stay safe."""
    scale = DEFAULT_SCALE.get(primitive, 1.0) if scale is None else scale
    return radius * scale * PRIMITIVE_FOOTPRINT.get(primitive, max(PRIMITIVE_FOOTPRINT.values()))


def resting_z(primitive: str, radius: float, scale: float | None = None) -> float:
    """Centre height in metres of a primitive of size `radius` and `scale` standing on the ground."""
    scale = DEFAULT_SCALE.get(primitive, 1.0) if scale is None else scale
    return radius * scale * PRIMITIVE_HALF_HEIGHT.get(primitive, 1.0)


def _reject_unknown(data: dict, allowed: tuple[str, ...], source: str, where: str) -> None:
    unknown = [k for k in data if k not in allowed]
    if unknown:
        raise ValueError(
            f"{source}: unknown key {where}{unknown[0]!r} = {data[unknown[0]]!r}; expected one of {list(allowed)}"
        )


def _name(name: Any, source: str, category: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{source}: key '{category}' has a name {name!r}; expected a non-empty string")
    return name


def _shape(name: str, spec: Any, source: str) -> dict[str, Any]:
    key = f"shapes.{name}"
    if not isinstance(spec, dict) or "primitive" not in spec:
        raise ValueError(f"{source}: key '{key}' = {spec!r}: expected a mapping with 'primitive' (one of {list(PRIMITIVES)})")
    primitive = spec["primitive"]
    if primitive not in PRIMITIVES:
        raise ValueError(f"{source}: key '{key}.primitive' = {primitive!r}: expected one of {list(PRIMITIVES)}")
    out: dict[str, Any] = {"primitive": primitive}
    for param, value in spec.items():
        if param == "primitive":
            continue
        if param not in SHAPE_PARAMS:
            raise ValueError(
                f"{source}: unknown key '{key}.{param}' = {value!r}; a shape takes {['primitive', *SHAPE_PARAMS]}"
            )
        kind, low, high = SHAPE_PARAMS[param]
        out[param] = _number(value, kind, low, high, source, f"{key}.{param}")
    return out


def _color(name: str, value: Any, source: str) -> list[int]:
    key = f"colors.{name}"
    expected = "expected [r, g, b], three integers in 0–255 (sRGB)"
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise ValueError(f"{source}: key '{key}' = {value!r}: {expected}")
    for channel in value:
        if isinstance(channel, bool) or not isinstance(channel, (int, float)) or channel != int(channel):
            raise ValueError(f"{source}: key '{key}' = {value!r}: {expected}")
        if not 0 <= channel <= 255:
            raise ValueError(f"{source}: key '{key}' = {value!r}: {expected}")
    return [int(c) for c in value]


def _material(name: str, spec: Any, source: str) -> dict[str, Any]:
    key = f"materials.{name}"
    if not isinstance(spec, dict):
        raise ValueError(f"{source}: key '{key}' = {spec!r}: expected a mapping with {list(_MATERIAL_REQUIRED)}")
    _reject_unknown(spec, _MATERIAL_REQUIRED + _MATERIAL_OPTIONAL, source, f"'{key}.' ")
    missing = [k for k in _MATERIAL_REQUIRED if k not in spec]
    if missing:
        raise ValueError(f"{source}: key '{key}' = {spec!r}: missing {missing}; expected {list(_MATERIAL_REQUIRED)}")
    if spec["kind"] not in MATERIAL_KINDS:
        raise ValueError(f"{source}: key '{key}.kind' = {spec['kind']!r}: expected one of {list(MATERIAL_KINDS)}")
    out: dict[str, Any] = {"kind": spec["kind"]}
    for param in ("roughness", "metallic", *_MATERIAL_OPTIONAL):
        if param in spec:
            out[param] = _number(spec[param], float, 0.0, 1.0, source, f"{key}.{param}")
    return out


def _size(name: str, value: Any, source: str) -> float:
    key = f"sizes.{name}"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{source}: key '{key}' = {value!r}: expected a positive size in metres")
    return float(value)


def _number(value: Any, kind: type, low: float, high: float, source: str, key: str) -> Any:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if ok and kind is int:
        ok = value == int(value)
    if not ok or not low <= value <= high:
        raise ValueError(f"{source}: key '{key}' = {value!r}: expected {kind.__name__} in [{low:g}, {high:g}]")
    return kind(value)
