"""CLEVR-style random scenes: camera and light jitter, object placement and its constraints.

The rules follow CLEVR's `render_images.py` (`add_random_objects`): centres x, y ~ U(−R, R);
between every pair of objects the distance between centres minus both bounding-circle radii
is at least `min_gap`; and for every pair and each of the camera's ground directions
(left, right, front, behind) the separation `margin = dx·dir_x + dy·dir_y` must not satisfy
`0 < margin < config.margin` (so objects never sit almost level in depth or almost in line
across the image, which would make "left of" / "behind" ambiguous and invite occlusion).

Bounding circles and resting heights come from `Properties.footprint_radius` / `resting_z`,
which follow the renderer's meshes: with CLEVR's defaults (cube scale 1/√2) every bounding
circle has the object's size r as radius, exactly as in CLEVR, and a cube of size r rests at
z = r/√2, a sphere or cylinder at z = r. All lengths are metres in Blender's world frame
(z up, ground at z = 0).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np

from datagen.properties import Properties, footprint_radius, resting_z
from datagen.scene import Camera, Light, Scene, SceneObject, Vec3

MAX_MASK_ID = 255

# CLEVR's three area lamps (base_scene.blend; positions as read by Kubric's CLEVR worker).
# Energies keep CLEVR's key:fill:back ratio 100:30:50, in Blender watts.
CLEVR_LIGHTS: tuple[Light, ...] = (
    Light(name="key", location=(6.44671, -2.90517, 4.2584), energy=1000.0, size=0.5),
    Light(name="fill", location=(-4.67112, -4.0136, 3.01122), energy=300.0, size=0.5),
    Light(name="back", location=(-1.1685, 2.64602, 5.81574), energy=500.0, size=1.0),
)


class PlacementError(ValueError):
    """The placement constraints could not be met (the message names the constraint values)."""


@dataclass(frozen=True)
class PlacementConfig:
    """How scenes are sampled. Lengths in metres, angles in degrees, image size in pixels."""

    min_objects: int = 3
    max_objects: int = 10
    xy_range: float = 3.0  # centres x, y ~ U(−xy_range, xy_range)
    min_gap: float = 0.25  # between bounding circles
    margin: float = 0.4  # CLEVR's directional margin
    # Candidate positions per object before the scene restarts. CLEVR tries 50 and restarts
    # without bound; with 20 restarts, 50 fails 19% of 10-object scenes and 200 none in 1,000
    # (candidates are drawn vectorised, so the extra tries cost little).
    max_retries: int = 200
    max_scene_retries: int = 20
    min_move_distance: float = 1.0  # a "move" edit carries an object at least this far
    camera_location: Vec3 = (7.48, -6.51, 5.34)
    camera_look_at: Vec3 = (0.0, 0.0, 0.0)
    camera_jitter: float = 0.5  # U(−j, j) added to each axis of the camera location
    lens_mm: float = 35.0
    sensor_width_mm: float = 32.0
    lights: tuple[Light, ...] = CLEVR_LIGHTS
    light_jitter: float = 1.0  # U(−j, j) added to each axis of every light location
    image_size: tuple[int, int] = (320, 240)  # (width, height)

    def __post_init__(self) -> None:
        checks = [
            (isinstance(self.min_objects, int) and self.min_objects >= 1, "min_objects", "an integer ≥ 1"),
            (
                isinstance(self.max_objects, int) and self.min_objects <= self.max_objects <= MAX_MASK_ID,
                "max_objects",
                f"an integer in [min_objects={self.min_objects}, {MAX_MASK_ID}]",
            ),
            (self.xy_range > 0, "xy_range", "> 0 metres"),
            (self.min_gap >= 0, "min_gap", "≥ 0 metres"),
            (self.margin >= 0, "margin", "≥ 0 metres"),
            (int(self.max_retries) >= 1, "max_retries", "≥ 1"),
            (int(self.max_scene_retries) >= 1, "max_scene_retries", "≥ 1"),
            (self.min_move_distance >= 0, "min_move_distance", "≥ 0 metres"),
            (self.camera_jitter >= 0, "camera_jitter", "≥ 0 metres"),
            (self.light_jitter >= 0, "light_jitter", "≥ 0 metres"),
            (self.lens_mm > 0 and self.sensor_width_mm > 0, "lens_mm/sensor_width_mm", "> 0 mm"),
            (len(self.image_size) == 2 and min(self.image_size) >= 1, "image_size", "(width, height) ≥ 1 px"),
        ]
        for ok, key, expected in checks:
            if not ok:
                raise ValueError(f"PlacementConfig.{key} = {getattr(self, key.split('/')[0])!r}: expected {expected}")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["lights"] = [light.to_dict() for light in self.lights]
        for key in ("camera_location", "camera_look_at", "image_size"):
            data[key] = list(data[key])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PlacementConfig":
        """Build from `to_dict()`'s form (or a subset of it); unknown keys raise ValueError."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown placement setting {unknown[0]!r} = {data[unknown[0]]!r}; expected one of {sorted(known)}")
        data = dict(data)
        if "lights" in data:
            data["lights"] = tuple(Light.from_dict(light) for light in data["lights"])
        for key in ("camera_location", "camera_look_at"):
            if key in data:
                data[key] = tuple(float(v) for v in data[key])
        if "image_size" in data:
            data["image_size"] = tuple(int(v) for v in data["image_size"])
        return cls(**data)


def sample_camera_and_lights(rng: np.random.Generator, config: PlacementConfig) -> tuple[Camera, tuple[Light, ...]]:
    """The camera and lights after CLEVR's jitter: each axis of each location + U(−jitter, jitter)."""
    location = np.asarray(config.camera_location, float) + rng.uniform(-1, 1, 3) * config.camera_jitter
    camera = Camera(
        location=_vec3(location),
        look_at=tuple(float(v) for v in config.camera_look_at),
        lens_mm=float(config.lens_mm),
        sensor_width_mm=float(config.sensor_width_mm),
    )
    lights = tuple(
        replace(light, location=_vec3(np.asarray(light.location, float) + rng.uniform(-1, 1, 3) * config.light_jitter))
        for light in config.lights
    )
    return camera, lights


def sample_scene(
    rng: np.random.Generator,
    properties: Properties,
    config: PlacementConfig,
    image_size: tuple[int, int] | None = None,
    n_objects: int | None = None,
) -> Scene:
    """A random scene: jittered camera and lights, then `n_objects` objects (default U{min..max}).

    Objects get ids 1..n in creation order and mask_id = id; they rest on the ground
    (z = `properties.resting_z`) with a rotation ~ U[0, 360) degrees. As in CLEVR, an object that finds no valid position in
    `max_retries` candidates restarts the scene; after `max_scene_retries` scenes → PlacementError.
    """
    if n_objects is None:
        n_objects = int(rng.integers(config.min_objects, config.max_objects + 1))
    problems = feasibility_problems(config, properties, n_objects)
    if problems:
        raise PlacementError(f"cannot place {n_objects} objects: " + "; ".join(problems))
    camera, lights = sample_camera_and_lights(rng, config)
    empty = Scene(objects=(), camera=camera, lights=lights, image_size=tuple(image_size or config.image_size))
    for _ in range(config.max_scene_retries):
        scene = empty
        try:
            for object_id in range(1, n_objects + 1):
                template = sample_object(rng, properties, object_id)
                position = place_object(rng, scene, template, config, properties)
                scene = replace(scene, objects=scene.objects + (replace(template, position=position),))
        except PlacementError:
            continue
        return replace(scene.with_pixel_coords(), metadata={"max_id_used": n_objects})
    raise PlacementError(
        f"could not place {n_objects} objects in {config.max_scene_retries} scenes × {config.max_retries} tries "
        f"per object with xy_range={config.xy_range}, min_gap={config.min_gap}, margin={config.margin}, "
        f"sizes={properties.sizes}"
    )


def sample_object(rng: np.random.Generator, properties: Properties, object_id: int) -> SceneObject:
    """An object with random size, shape, colour, material and rotation, at (0, 0, resting z) until placed.

    Names are drawn from the sorted names of each category, so a properties snapshot that went
    through `json.dumps(sort_keys=True)` samples the same scenes.
    """
    size = _choice(rng, properties.sizes)
    shape = _choice(rng, properties.shapes)
    color = _choice(rng, properties.colors)
    material = _choice(rng, properties.materials)
    radius = properties.sizes[size]
    return SceneObject(
        id=object_id,
        mask_id=object_id,
        shape=shape,
        color=color,
        material=material,
        size=size,
        radius=radius,
        rgb=properties.rgb(color),
        position=(0.0, 0.0, properties.resting_z(shape, radius)),
        rotation=float(rng.uniform(0.0, 360.0)),
    )


def place_object(
    rng: np.random.Generator,
    scene: Scene,
    obj: SceneObject,
    config: PlacementConfig,
    properties: Properties | None = None,
    *,
    away_from: tuple[float, float] | None = None,
    min_distance: float = 0.0,
    tries: int | None = None,
) -> Vec3:
    """A valid centre (x, y, obj's own z) for `obj` among the scene's other objects (ids ≠ obj.id).

    Draws `tries` (default `config.max_retries`) uniform candidates in the xy range and returns
    the first that meets the gap and margin rules and, with `away_from`, lies at least
    `min_distance` metres from that (x, y). Raises PlacementError when none does.
    """
    tries = int(tries or config.max_retries)
    others = [o for o in scene.objects if o.id != obj.id]
    candidates = rng.uniform(-config.xy_range, config.xy_range, size=(tries, 2))
    ok = _candidates_ok(
        candidates,
        _footprint(obj, properties),
        np.array([o.position[:2] for o in others], float).reshape(-1, 2),
        np.array([_footprint(o, properties) for o in others], float),
        _directions(scene.camera),
        config,
    )
    if away_from is not None:
        ok &= np.hypot(*(candidates - np.asarray(away_from, float)).T) >= min_distance
    hits = np.flatnonzero(ok)
    if hits.size == 0:
        raise PlacementError(
            f"no valid position for object {obj.id} ({obj.size} {obj.shape}) among {len(others)} others in "
            f"{tries} tries (xy_range={config.xy_range}, min_gap={config.min_gap}, margin={config.margin}"
            + (f", min_distance={min_distance}" if away_from is not None else "")
            + ")"
        )
    x, y = candidates[hits[0]]
    return (float(x), float(y), float(obj.position[2]))


def check_placement(scene: Scene, config: PlacementConfig, properties: Properties | None = None) -> list[str]:
    """Every violated rule, one line each; empty when the scene is valid.

    Rules: at most `max_objects` objects; unique ids; unique mask ids in 1..255; centres
    inside the xy range; resting on the ground (z = resting z); pairwise gap between bounding
    circles ≥ min_gap; CLEVR's directional margin. Pass `properties` for shapes that are not
    named after their primitive or set a scale (without it a shape is taken to be the primitive
    of its name at the default scale, and an unknown name as the widest footprint).
    """
    problems: list[str] = []
    objects = scene.objects
    if len(objects) > config.max_objects:
        problems.append(f"{len(objects)} objects > max_objects={config.max_objects}")
    ids = [o.id for o in objects]
    if len(set(ids)) != len(ids):
        problems.append(f"duplicate object ids {ids}")
    mask_ids = [o.mask_id for o in objects]
    if len(set(mask_ids)) != len(mask_ids) or any(not 1 <= m <= MAX_MASK_ID for m in mask_ids):
        problems.append(f"mask ids {mask_ids} must be unique and in 1..{MAX_MASK_ID}")
    for o in objects:
        x, y, z = o.position
        if abs(x) > config.xy_range or abs(y) > config.xy_range:
            problems.append(f"object {o.id} at ({x:.3f}, {y:.3f}) is outside xy_range={config.xy_range}")
        rest = _resting_z(o, properties)
        if abs(z - rest) > 1e-9:
            problems.append(f"object {o.id} has z={z} but should rest on the ground at z={rest}")
    directions = _directions(scene.camera)
    for i, a in enumerate(objects):
        for b in objects[i + 1 :]:
            d = np.asarray(a.position[:2], float) - np.asarray(b.position[:2], float)
            gap = float(np.hypot(d[0], d[1])) - (_footprint(a, properties) + _footprint(b, properties))
            if gap < config.min_gap:
                problems.append(f"objects {a.id} and {b.id} are {gap:.3f} m apart < min_gap={config.min_gap}")
            margins = directions @ d
            if np.any((margins > 0) & (margins < config.margin)):
                problems.append(
                    f"objects {a.id} and {b.id} break the directional margin {config.margin}: "
                    f"separations {np.round(margins[[1, 2]], 3).tolist()} along right/front"
                )
    return problems


def feasibility_problems(config: PlacementConfig, properties: Properties, n_objects: int | None = None) -> list[str]:
    """Reasons `n_objects` (default max_objects) cannot possibly be placed; empty if not obviously impossible.

    Uses the smallest object there is, so a non-empty answer means no scene of that many
    objects exists; an empty answer does not promise that sampling will succeed.
    """
    n = config.max_objects if n_objects is None else n_objects
    factors = [properties.footprint_radius(shape, 1.0) for shape in properties.shapes]
    radius = min(properties.sizes.values()) * min(factors)
    problems = []
    # Disjoint circles of radius r + gap/2 whose centres lie in the square fit inside the square
    # grown by that radius, so their total area cannot exceed its area.
    grown = radius + config.min_gap / 2
    needed = n * math.pi * grown**2
    available = (2 * config.xy_range + 2 * grown) ** 2
    if needed > available:
        problems.append(
            f"{n} objects of bounding radius ≥ {radius:.3f} m with min_gap={config.min_gap} need "
            f"{needed:.2f} m² > {available:.2f} m² available in xy_range={config.xy_range}"
        )
    # Along the camera's right axis every pair must be ≥ margin apart, so n centres span
    # (n − 1)·margin, at most the square's diagonal.
    span = (n - 1) * config.margin
    if span > 2 * math.sqrt(2) * config.xy_range:
        problems.append(
            f"{n} objects with directional margin={config.margin} span {span:.2f} m > "
            f"{2 * math.sqrt(2) * config.xy_range:.2f} m (diagonal of xy_range={config.xy_range})"
        )
    return problems


def feasible(config: PlacementConfig, properties: Properties) -> bool:
    """False when `max_objects` objects obviously cannot be placed (see `feasibility_problems`)."""
    return not feasibility_problems(config, properties)


def _candidates_ok(
    candidates: np.ndarray,
    radius: float,
    others_xy: np.ndarray,
    others_radius: np.ndarray,
    directions: np.ndarray,
    config: PlacementConfig,
) -> np.ndarray:
    """(K,) mask: candidate centres (K, 2) of bounding radius `radius` that meet gap and margin rules."""
    if len(others_xy) == 0:
        return np.ones(len(candidates), bool)
    d = candidates[:, None, :] - others_xy[None, :, :]  # (K, M, 2), new minus old as in CLEVR
    gap = np.hypot(d[..., 0], d[..., 1]) - (radius + others_radius)[None, :]
    margins = d @ directions.T  # (K, M, 4)
    bad_margin = (margins > 0) & (margins < config.margin)
    return (gap >= config.min_gap).all(axis=1) & ~bad_margin.any(axis=(1, 2))


def _directions(camera: Camera) -> np.ndarray:
    """(4, 2) unit ground directions of the camera, rows: behind, right, front, left."""
    dirs = camera.ground_directions()
    return np.array([dirs["behind"], dirs["right"], dirs["front"], dirs["left"]], float)


def _footprint(obj: SceneObject, properties: Properties | None) -> float:
    if properties is not None and obj.shape in properties.shapes:
        return properties.footprint_radius(obj.shape, obj.radius)
    return footprint_radius(obj.shape, obj.radius)


def _resting_z(obj: SceneObject, properties: Properties | None) -> float:
    if properties is not None and obj.shape in properties.shapes:
        return properties.resting_z(obj.shape, obj.radius)
    return resting_z(obj.shape, obj.radius)


def _choice(rng: np.random.Generator, options: dict[str, Any]) -> str:
    names = sorted(options)
    return names[int(rng.integers(len(names)))]


def _vec3(values: np.ndarray) -> Vec3:
    return (float(values[0]), float(values[1]), float(values[2]))
