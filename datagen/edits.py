"""Edits that turn a scene X into its pair Y (SGIT-S: add, remove, move, change an attribute).

`apply_edit(rng, scene, edit_type, n_objects, properties, config)` edits 1 or 2 objects:

- add: new objects with random attributes at valid positions; ids continue from the largest id
  the scene has ever used (`scene.metadata["max_id_used"]`, else its largest id), mask_id = id.
  Y may hold at most `config.max_objects` objects (so Y stays inside the sampling range).
- remove: Y keeps at least one object; it may fall below `config.min_objects`, as in SGIT-S,
  where removing two of three objects is allowed.
- move: the object keeps every attribute but x, y; it travels at least `config.min_move_distance`
  metres and lands where all placement rules hold against every other object.
- recolor / rematerial / resize / reshape: one attribute changes to a different value (a
  different colour name and RGB; material; size name and radius; shape). The object keeps its
  x, y; z follows the new size or shape so that it still rests on the ground. A value that
  breaks the placement rules there is not used.

Objects are tried in random order and the first n that can take the edit are edited (so a
crowded object that cannot grow does not sink a resize). Untouched objects are carried over
unchanged (the same dataclass values), ids are stable, and every Y passes `check_placement`.
An edit that cannot be done on this scene raises EditError so the caller can draw another scene.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from datagen.placement import (
    MAX_MASK_ID,
    PlacementConfig,
    PlacementError,
    check_placement,
    place_object,
    sample_object,
)
from datagen.properties import Properties
from datagen.scene import Scene, SceneObject

EDIT_TYPES = ("add", "remove", "move", "recolor", "rematerial", "resize", "reshape")
ATTRIBUTE_EDITS = ("recolor", "rematerial", "resize", "reshape")
EDIT_FAMILIES = {"attribute": ATTRIBUTE_EDITS}
# Candidate positions an edit tries for one object: more than a scene's first placement,
# since the scene is fixed and there is no restart.
_EDIT_TRIES_FACTOR = 4


class EditError(ValueError):
    """This edit cannot be applied to this scene; sample another scene."""


@dataclass(frozen=True)
class EditRecord:
    """What an edit did. `before`/`after` hold one dict per object with the attributes it changed
    (CLEVR keys); for `add` before is empty and after holds the whole new objects, for `remove`
    the reverse."""

    type: str
    object_ids: tuple[int, ...]
    before: tuple[dict[str, Any], ...]
    after: tuple[dict[str, Any], ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "object_ids": list(self.object_ids),
            "before": [dict(d) for d in self.before],
            "after": [dict(d) for d in self.after],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EditRecord":
        if data.get("type") not in EDIT_TYPES:
            raise ValueError(f"edit type {data.get('type')!r}: expected one of {list(EDIT_TYPES)}")
        try:
            return cls(
                type=data["type"],
                object_ids=tuple(int(i) for i in data["object_ids"]),
                before=tuple(dict(d) for d in data["before"]),
                after=tuple(dict(d) for d in data["after"]),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"edit JSON is missing or has a malformed field: {exc!r}") from exc


@dataclass(frozen=True)
class EditMix:
    """Relative weights over EDIT_TYPES (≥ 0, not all 0) and the edited-object counts to draw from uniformly."""

    weights: tuple[tuple[str, float], ...]
    n_objects: tuple[int, ...] = (1, 2)

    def __post_init__(self) -> None:
        names = [name for name, _ in self.weights]
        if sorted(names) != sorted(EDIT_TYPES) or len(names) != len(EDIT_TYPES):
            raise ValueError(f"EditMix weights name {names}; expected each of {list(EDIT_TYPES)} once")
        if any(w < 0 or not math.isfinite(w) for _, w in self.weights) or sum(w for _, w in self.weights) <= 0:
            raise ValueError(f"EditMix weights {dict(self.weights)}: expected finite values ≥ 0, not all 0")
        if not self.n_objects or any(int(n) != n or n < 1 for n in self.n_objects):
            raise ValueError(f"EditMix.n_objects = {self.n_objects!r}: expected positive integers")

    def probabilities(self) -> dict[str, float]:
        total = sum(w for _, w in self.weights)
        return {name: w / total for name, w in self.weights}

    def sample(self, rng: np.random.Generator) -> tuple[str, int]:
        """An (edit_type, n_objects) pair: the type by weight, the count uniformly."""
        probabilities = self.probabilities()
        edit_type = EDIT_TYPES[int(rng.choice(len(EDIT_TYPES), p=[probabilities[t] for t in EDIT_TYPES]))]
        return edit_type, int(self.n_objects[int(rng.integers(len(self.n_objects)))])

    def to_dict(self) -> dict[str, Any]:
        return {"weights": dict(self.weights), "n_objects": list(self.n_objects)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EditMix":
        weights = data["weights"]
        return cls(tuple((t, float(weights.get(t, 0.0))) for t in EDIT_TYPES), tuple(data.get("n_objects", (1, 2))))

    def __str__(self) -> str:
        return ",".join(f"{name}={w:g}" for name, w in self.weights)


def parse_edit_mix(text: str, n_objects: tuple[int, ...] = (1, 2)) -> EditMix:
    """Parse "add=1,remove=1,move=1,attribute=1" into an EditMix.

    Names are the concrete EDIT_TYPES or the family `attribute`, whose weight is split equally
    over recolor, rematerial, resize and reshape; unnamed types get weight 0. Raises ValueError
    naming the offending token.
    """
    weights = dict.fromkeys(EDIT_TYPES, 0.0)
    seen: set[str] = set()
    for token in text.split(","):
        name, sep, value = (part.strip() for part in token.partition("="))
        if not sep or not name:
            raise ValueError(f"edit mix {text!r}: token {token.strip()!r} is not NAME=WEIGHT")
        if name not in EDIT_TYPES and name not in EDIT_FAMILIES:
            raise ValueError(
                f"edit mix {text!r}: token {token.strip()!r} names unknown edit {name!r}; "
                f"expected one of {[*EDIT_TYPES, *EDIT_FAMILIES]}"
            )
        if name in seen:
            raise ValueError(f"edit mix {text!r}: token {token.strip()!r} repeats {name!r}")
        seen.add(name)
        try:
            weight = float(value)
        except ValueError:
            weight = float("nan")
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"edit mix {text!r}: token {token.strip()!r} has weight {value!r}; expected a number ≥ 0")
        for member in EDIT_FAMILIES.get(name, (name,)):
            weights[member] += weight / len(EDIT_FAMILIES.get(name, (name,)))
    if sum(weights.values()) <= 0:
        raise ValueError(f"edit mix {text!r}: all weights are 0; expected at least one positive weight")
    return EditMix(tuple(weights.items()), tuple(n_objects))


DEFAULT_EDIT_MIX = parse_edit_mix("add=1,remove=1,move=1,attribute=1")


def apply_edit(
    rng: np.random.Generator,
    scene: Scene,
    edit_type: str,
    n_objects: int,
    properties: Properties,
    config: PlacementConfig,
) -> tuple[Scene, EditRecord]:
    """Y and the record of the edit; X (`scene`) is not modified. Raises EditError when impossible."""
    if edit_type not in EDIT_TYPES:
        raise ValueError(f"edit type {edit_type!r}: expected one of {list(EDIT_TYPES)}")
    if n_objects < 1:
        raise ValueError(f"n_objects = {n_objects}: expected ≥ 1")
    if edit_type == "add":
        new_scene, record = _add(rng, scene, n_objects, properties, config)
    else:
        if len(scene.objects) < n_objects + (edit_type == "remove"):
            raise EditError(
                f"cannot {edit_type} {n_objects} of {len(scene.objects)} objects"
                + (" (Y must keep at least one object)" if edit_type == "remove" else "")
            )
        # Objects are tried in random order; the first n that can take the edit are edited.
        order = [int(i) for i in rng.permutation(scene.ids)]
        new_scene, record = _EDITORS[edit_type](rng, scene, order, n_objects, properties, config)
    problems = check_placement(new_scene, config, properties)
    if problems:  # each step checks its own object, so this only fires on an invalid X
        raise EditError(f"{edit_type} gives an invalid scene: {'; '.join(problems)}")
    return new_scene, record


def _add(rng, scene: Scene, n: int, properties: Properties, config: PlacementConfig):
    if len(scene.objects) + n > config.max_objects:
        raise EditError(f"cannot add {n} to {len(scene.objects)} objects: max_objects={config.max_objects}")
    first_id = max([scene.metadata.get("max_id_used", 0), *scene.ids]) + 1
    if first_id + n - 1 > MAX_MASK_ID:
        raise EditError(f"cannot add {n} objects: ids from {first_id} would pass the largest mask id {MAX_MASK_ID}")
    for object_id in range(first_id, first_id + n):
        template = sample_object(rng, properties, object_id)
        try:
            position = place_object(rng, scene, template, config, properties, tries=_tries(config))
        except PlacementError as exc:
            raise EditError(f"add: {exc}") from exc
        scene = _put(scene, replace(template, position=position))
    added = scene.objects[-n:]
    record = EditRecord("add", tuple(o.id for o in added), (), tuple(o.to_dict() for o in added))
    return scene, record


def _remove(rng, scene: Scene, order: list[int], n: int, properties: Properties, config: PlacementConfig):
    targets = order[:n]
    removed = [scene.object_by_id(i) for i in targets]
    kept = tuple(o for o in scene.objects if o.id not in targets)
    new_scene = replace(scene, objects=kept, metadata=_metadata(scene, scene.ids))
    return new_scene, EditRecord("remove", tuple(targets), tuple(o.to_dict() for o in removed), ())


def _move(rng, scene: Scene, order: list[int], n: int, properties: Properties, config: PlacementConfig):
    moved, before, after = [], [], []
    last_error: PlacementError | None = None
    for object_id in order:
        obj = scene.object_by_id(object_id)
        try:
            position = place_object(
                rng, scene, obj, config, properties,
                away_from=obj.position[:2], min_distance=config.min_move_distance, tries=_tries(config),
            )
        except PlacementError as exc:
            last_error = exc
            continue
        scene = _put(scene, replace(obj, position=position))
        moved.append(object_id)
        before.append({"3d_coords": list(obj.position)})
        after.append({"3d_coords": list(position)})
        if len(moved) == n:
            return scene, EditRecord("move", tuple(moved), tuple(before), tuple(after))
    raise EditError(f"move: only {len(moved)} of {n} objects could move; last: {last_error}")


def _recolor(rng, scene, order, n, properties: Properties, config):
    def options(obj: SceneObject):
        for color in _shuffled(rng, properties.colors):
            if color != obj.color and tuple(properties.colors[color]) != obj.rgb:
                yield replace(obj, color=color, rgb=properties.rgb(color))

    return _change(scene, order, n, options, ("color", "rgb"), "recolor", config, properties)


def _rematerial(rng, scene, order, n, properties: Properties, config):
    def options(obj: SceneObject):
        for material in _shuffled(rng, properties.materials):
            if material != obj.material:
                yield replace(obj, material=material)

    return _change(scene, order, n, options, ("material",), "rematerial", config, properties)


def _resize(rng, scene, order, n, properties: Properties, config):
    def options(obj: SceneObject):
        for size in _shuffled(rng, properties.sizes):
            radius = properties.sizes[size]
            if size != obj.size and radius != obj.radius:
                x, y, _ = obj.position
                yield replace(obj, size=size, radius=radius, position=(x, y, properties.resting_z(obj.shape, radius)))

    return _change(scene, order, n, options, ("size", "radius", "3d_coords"), "resize", config, properties)


def _reshape(rng, scene, order, n, properties: Properties, config):
    def options(obj: SceneObject):
        for shape in _shuffled(rng, properties.shapes):
            if shape != obj.shape:
                x, y, _ = obj.position
                yield replace(obj, shape=shape, position=(x, y, properties.resting_z(shape, obj.radius)))

    return _change(scene, order, n, options, ("shape", "3d_coords"), "reshape", config, properties)


_EDITORS = {
    "remove": _remove,
    "move": _move,
    "recolor": _recolor,
    "rematerial": _rematerial,
    "resize": _resize,
    "reshape": _reshape,
}


def _change(scene: Scene, order, n, options, keys, edit_type, config, properties):
    """Give the first n objects of `order` that can take it their first option (a changed copy)
    that keeps the scene valid."""
    edited, before, after, reasons = [], [], [], []
    for object_id in order:
        obj = scene.object_by_id(object_id)
        tried = 0
        for candidate in options(obj):
            tried += 1
            trial = _put(scene, candidate)
            if not check_placement(trial, config, properties):
                scene = trial
                break
        else:
            why = "no other value in the properties" if tried == 0 else f"none of {tried} other values fits"
            reasons.append(f"object {object_id}: {why}")
            continue
        old_dict, new_dict = obj.to_dict(), scene.object_by_id(object_id).to_dict()
        edited.append(object_id)
        before.append({k: old_dict[k] for k in keys})
        after.append({k: new_dict[k] for k in keys})
        if len(edited) == n:
            return scene, EditRecord(edit_type, tuple(edited), tuple(before), tuple(after))
    raise EditError(f"{edit_type}: only {len(edited)} of {n} objects could change ({'; '.join(reasons)})")


def _put(scene: Scene, obj: SceneObject) -> Scene:
    """The scene with `obj` replacing the object of its id (or appended); only a moved object's
    pixel coords are recomputed, so everything else stays bit-identical."""
    ids = scene.ids
    if obj.id not in ids or scene.object_by_id(obj.id).position != obj.position:
        obj = replace(scene, objects=(obj,)).with_pixel_coords().objects[0]
    if obj.id in ids:
        objects = tuple(obj if o.id == obj.id else o for o in scene.objects)
    else:
        objects = scene.objects + (obj,)
    return replace(scene, objects=objects, metadata=_metadata(scene, [o.id for o in objects]))


def _metadata(scene: Scene, ids: list[int]) -> dict[str, Any]:
    return {**scene.metadata, "max_id_used": max([scene.metadata.get("max_id_used", 0), *ids])}


def _shuffled(rng: np.random.Generator, options: dict[str, Any]) -> list[str]:
    names = sorted(options)
    return [names[i] for i in rng.permutation(len(names))]


def _tries(config: PlacementConfig) -> int:
    return config.max_retries * _EDIT_TRIES_FACTOR
