"""The renderer-free scene model: objects, camera, lights, and their JSON form (DESIGN.md §2).

Coordinates are Blender's: metres, z up, the ground plane at z = 0. An object's `position`
is its centre (CLEVR's "3d_coords"); `radius` is its half-extent. Pixel coordinates are
(x right, y down) with pixel column j covering x ∈ [j, j + 1), the same convention as
`analysis.fixations`.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

Vec3 = tuple[float, float, float]


@dataclass(frozen=True)
class SceneObject:
    """One object. `id` is stable across an edit; `mask_id` is its label in the mask PNG (1–255)."""

    id: int
    mask_id: int
    shape: str
    color: str
    material: str
    size: str
    radius: float  # half-extent in metres
    rgb: tuple[int, int, int]  # sRGB 0–255, stored so a scene re-renders without the properties file
    position: Vec3  # centre, metres
    rotation: float  # degrees about z
    pixel_coords: Vec3 | None = None  # (x px, y px, depth m) of the centre in the camera

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "mask_id": self.mask_id,
            "shape": self.shape,
            "color": self.color,
            "material": self.material,
            "size": self.size,
            "radius": self.radius,
            "rgb": list(self.rgb),
            "3d_coords": list(self.position),
            "rotation": self.rotation,
            "pixel_coords": None if self.pixel_coords is None else list(self.pixel_coords),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SceneObject":
        pixel = data.get("pixel_coords")
        return cls(
            id=int(data["id"]),
            mask_id=int(data["mask_id"]),
            shape=str(data["shape"]),
            color=str(data["color"]),
            material=str(data["material"]),
            size=str(data["size"]),
            radius=float(data["radius"]),
            rgb=tuple(int(c) for c in data["rgb"]),
            position=tuple(float(c) for c in data["3d_coords"]),
            rotation=float(data["rotation"]),
            pixel_coords=None if pixel is None else tuple(float(c) for c in pixel),
        )


@dataclass(frozen=True)
class Camera:
    """A pinhole camera at `location` looking at `look_at` with world +z up (Blender conventions).

    `sensor_fit` is Blender's AUTO: the sensor width spans the larger image dimension.
    """

    location: Vec3
    look_at: Vec3 = (0.0, 0.0, 0.0)
    lens_mm: float = 35.0
    sensor_width_mm: float = 32.0

    def rotation_matrix(self) -> np.ndarray:
        """3×3 world-from-camera rotation; columns are the camera's x (right), y (up), z (backward)."""
        forward = np.asarray(self.look_at, float) - np.asarray(self.location, float)
        forward /= np.linalg.norm(forward)
        right = np.cross(forward, [0.0, 0.0, 1.0])
        if np.linalg.norm(right) < 1e-9:
            raise ValueError(f"camera looks straight down or up from {self.location}; expected an oblique view")
        right /= np.linalg.norm(right)
        up = np.cross(right, forward)
        return np.stack([right, up, -forward], axis=1)

    def matrix_world(self) -> list[list[float]]:
        """4×4 camera-to-world matrix as nested lists (what the renderer assigns to Blender)."""
        matrix = np.eye(4)
        matrix[:3, :3] = self.rotation_matrix()
        matrix[:3, 3] = self.location
        return matrix.tolist()

    def project(self, points: np.ndarray, width: int, height: int) -> np.ndarray:
        """World points (N, 3) → (N, 3) of (x px, y px, depth m) in a width×height image."""
        points = np.atleast_2d(np.asarray(points, float))
        cam = (points - np.asarray(self.location, float)) @ self.rotation_matrix()
        depth = -cam[:, 2]
        focal_px = self.lens_mm / self.sensor_width_mm * max(width, height)
        with np.errstate(divide="ignore", invalid="ignore"):
            x = width / 2 + focal_px * cam[:, 0] / depth
            y = height / 2 - focal_px * cam[:, 1] / depth
        return np.stack([x, y, depth], axis=1)

    def ground_directions(self) -> dict[str, tuple[float, float]]:
        """CLEVR's unit directions on the ground plane as seen from this camera."""
        rotation = self.rotation_matrix()
        behind = _unit_xy(-rotation[:, 2])
        right = _unit_xy(rotation[:, 0])
        return {
            "behind": behind,
            "front": (-behind[0], -behind[1]),
            "right": right,
            "left": (-right[0], -right[1]),
        }

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["location"] = list(self.location)
        data["look_at"] = list(self.look_at)
        data["matrix_world"] = self.matrix_world()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Camera":
        return cls(
            location=tuple(float(c) for c in data["location"]),
            look_at=tuple(float(c) for c in data.get("look_at", (0.0, 0.0, 0.0))),
            lens_mm=float(data.get("lens_mm", 35.0)),
            sensor_width_mm=float(data.get("sensor_width_mm", 32.0)),
        )


@dataclass(frozen=True)
class Light:
    """An area light at `location` aimed at the scene origin. `energy` in watts, `size` in metres."""

    name: str
    location: Vec3
    energy: float
    size: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "location": list(self.location), "energy": self.energy, "size": self.size}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Light":
        return cls(
            name=str(data["name"]),
            location=tuple(float(c) for c in data["location"]),
            energy=float(data["energy"]),
            size=float(data.get("size", 1.0)),
        )


@dataclass(frozen=True)
class Scene:
    """Objects seen by one camera under a set of lights, at one image size (width, height px)."""

    objects: tuple[SceneObject, ...]
    camera: Camera
    lights: tuple[Light, ...]
    image_size: tuple[int, int]
    metadata: dict[str, Any] = field(default_factory=dict, compare=False)

    def object_by_id(self, object_id: int) -> SceneObject:
        for obj in self.objects:
            if obj.id == object_id:
                return obj
        raise KeyError(f"object id {object_id} not in scene (ids: {[o.id for o in self.objects]})")

    @property
    def ids(self) -> list[int]:
        return [obj.id for obj in self.objects]

    def with_objects(self, objects: list[SceneObject] | tuple[SceneObject, ...]) -> "Scene":
        """The same camera and lights with other objects; pixel coordinates recomputed."""
        return replace(self, objects=tuple(objects)).with_pixel_coords()

    def with_pixel_coords(self) -> "Scene":
        if not self.objects:
            return self
        width, height = self.image_size
        pixels = self.camera.project(np.array([o.position for o in self.objects]), width, height)
        objects = tuple(
            replace(obj, pixel_coords=tuple(round(float(v), 4) for v in pixel))
            for obj, pixel in zip(self.objects, pixels)
        )
        return replace(self, objects=objects)

    def to_dict(self) -> dict[str, Any]:
        return {
            "image_size": list(self.image_size),
            "objects": [obj.to_dict() for obj in self.objects],
            "camera": self.camera.to_dict(),
            "lights": [light.to_dict() for light in self.lights],
            "directions": {k: list(v) for k, v in self.camera.ground_directions().items()},
            **({"metadata": self.metadata} if self.metadata else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Scene":
        try:
            return cls(
                objects=tuple(SceneObject.from_dict(o) for o in data["objects"]),
                camera=Camera.from_dict(data["camera"]),
                lights=tuple(Light.from_dict(light) for light in data["lights"]),
                image_size=(int(data["image_size"][0]), int(data["image_size"][1])),
                metadata=dict(data.get("metadata", {})),
            )
        except (KeyError, TypeError, IndexError) as exc:
            raise ValueError(f"scene JSON is missing or has a malformed field: {exc!r}") from exc


def _unit_xy(vector: np.ndarray) -> tuple[float, float]:
    norm = math.hypot(vector[0], vector[1])
    return (float(vector[0] / norm), float(vector[1] / norm))
