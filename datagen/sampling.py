"""One (X, Y) scene pair per dataset index, reproducible from (seed, index) alone.

Pair i draws from `np.random.default_rng([seed, i, attempt])`, so it does not depend on any
other pair, the order pairs are made in, or the number of workers. `attempt` counts resamples
asked for by the renderer (e.g. an object left with too few visible pixels): attempt k of pair
i is again a function of (seed, i, k) only.

The scene file (`scenes/PAIRID.json`, DESIGN.md §2) is `PairSpec.to_json_dict(render_settings)`:

    {"x": scene, "y": scene, "edit": {"type", "object_ids", "before", "after"},
     "camera": camera, "lights": [light, ...], "seed": int, "index": int, "attempt": int,
     "properties": {"shapes", "colors", "materials", "sizes"}, "render": {...}}

where a scene is `Scene.to_dict()` (its own copy of the shared camera and lights included).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from datagen.edits import DEFAULT_EDIT_MIX, EditError, EditMix, EditRecord, apply_edit
from datagen.placement import PlacementConfig, PlacementError, feasibility_problems, sample_scene
from datagen.properties import Properties
from datagen.scene import Camera, Light, Scene

DEFAULT_MAX_TRIES = 20


@dataclass(frozen=True)
class PairSpec:
    """A sampled pair: X, the edited Y (same camera and lights), the edit, and where it came from."""

    index: int
    seed: int
    scene_x: Scene
    scene_y: Scene
    edit: EditRecord
    attempt: int
    properties: Properties

    @property
    def camera(self) -> Camera:
        return self.scene_x.camera

    @property
    def lights(self) -> tuple[Light, ...]:
        return self.scene_x.lights

    def to_json_dict(self, render_settings: dict[str, Any] | None = None) -> dict[str, Any]:
        """The scene-file content (module docstring); `render_settings` is stored under "render"."""
        return {
            "x": self.scene_x.to_dict(),
            "y": self.scene_y.to_dict(),
            "edit": self.edit.to_dict(),
            "camera": self.camera.to_dict(),
            "lights": [light.to_dict() for light in self.lights],
            "seed": self.seed,
            "index": self.index,
            "attempt": self.attempt,
            "properties": self.properties.to_dict(),
            "render": dict(render_settings or {}),
        }

    @classmethod
    def from_json_dict(cls, data: dict[str, Any]) -> "PairSpec":
        """Inverse of `to_json_dict` (the "render" entry is left to the caller). Raises ValueError."""
        try:
            spec = cls(
                index=int(data["index"]),
                seed=int(data["seed"]),
                scene_x=Scene.from_dict(data["x"]),
                scene_y=Scene.from_dict(data["y"]),
                edit=EditRecord.from_dict(data["edit"]),
                attempt=int(data.get("attempt", 0)),
                properties=Properties.from_dict(data["properties"], source="scene file properties"),
            )
            camera = Camera.from_dict(data["camera"])
            lights = tuple(Light.from_dict(light) for light in data["lights"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"scene file is missing or has a malformed field: {exc!r}") from exc
        for name, scene in (("x", spec.scene_x), ("y", spec.scene_y)):
            if scene.camera != camera or scene.lights != lights:
                raise ValueError(f"scene file: scene {name!r} does not share the file's camera and lights")
        return spec


def sample_pair(
    seed: int,
    index: int,
    properties: Properties,
    placement_config: PlacementConfig,
    edit_mix: EditMix = DEFAULT_EDIT_MIX,
    image_size: tuple[int, int] | None = None,
    attempt: int = 0,
    max_tries: int = DEFAULT_MAX_TRIES,
) -> PairSpec:
    """Pair `index` of the dataset made with `seed` (resample number `attempt`).

    Draws the edit (type and object count) first, then an X whose object count leaves room for
    it (add: ≤ max_objects − n; remove: ≥ n + 1), then Y. A scene the edit cannot be applied to
    is redrawn, at most `max_tries` times. Raises PlacementError at once for a configuration that
    cannot be placed, and PlacementError or EditError when every try failed.
    """
    for name, value in (("seed", seed), ("index", index), ("attempt", attempt)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name} = {value!r}: expected an integer ≥ 0")
    problems = feasibility_problems(placement_config, properties, placement_config.min_objects)
    if problems:
        raise PlacementError("; ".join(problems))
    rng = np.random.default_rng([int(seed), int(index), int(attempt)])
    last_error: Exception | None = None
    for _ in range(max_tries):
        edit_type, n_edited = edit_mix.sample(rng)
        low, high = _object_count_range(edit_type, n_edited, placement_config)
        if low > high:
            last_error = EditError(
                f"{edit_type} of {n_edited} needs an X of {low}..{high} objects, outside "
                f"min_objects={placement_config.min_objects}, max_objects={placement_config.max_objects}"
            )
            continue
        try:
            scene_x = sample_scene(rng, properties, placement_config, image_size, int(rng.integers(low, high + 1)))
            scene_y, record = apply_edit(rng, scene_x, edit_type, n_edited, properties, placement_config)
        except (EditError, PlacementError) as exc:
            last_error = exc
            continue
        return PairSpec(int(index), int(seed), scene_x, scene_y, record, int(attempt), properties)
    error_type = PlacementError if isinstance(last_error, PlacementError) else EditError
    raise error_type(f"pair {index} (seed {seed}, attempt {attempt}) failed {max_tries} tries; last: {last_error}")


def _object_count_range(edit_type: str, n_edited: int, config: PlacementConfig) -> tuple[int, int]:
    """Inclusive range of X's object count that leaves room for the edit."""
    if edit_type == "add":
        return config.min_objects, config.max_objects - n_edited
    if edit_type == "remove":
        return max(config.min_objects, n_edited + 1), config.max_objects
    return max(config.min_objects, n_edited), config.max_objects
