"""The Blender renderer: one persistent bpy session per worker process (imports bpy).

    from datagen.blender.renderer import Renderer, RenderSettings
    with Renderer(RenderSettings(samples=64)) as renderer:
        result = renderer.render(scene_x, "images/p_x.png", "masks/p_x.png")
        result = renderer.render(scene_y, "images/p_y.png", "masks/p_y.png")  # diff-applied

Only worker processes import this module; `import datagen.blender` stays bpy-free.
Decisions (see also `catalog.py`):
- Colour management: Standard view transform, no look, no dither — CLEVR rendered with
  Blender's plain sRGB display transform; AgX desaturates its saturated primaries (cyan,
  yellow, blue) noticeably. Dither is off so that a pixel only changes when the render does.
- Exposure: per engine, calibrated with the stage in `builders.py` so that a rubber object's
  median colour is near its listed sRGB colour, the floor CLEVR's even mid grey and few pixels
  clip (figures: `benchmarks/bench_look.py`). Cycles and EEVEE share one; Workbench, which shades
  with its studio light instead of the scene's lights, has its own.
- Masks: Cycles' Object Index pass of the same render; EEVEE/Workbench, which lack that
  pass, get a second flat-colour Workbench render of the same objects (see `outputs.py`).
- Persistent data stays off: it measured no faster on CLEVR-sized scenes (CPU).
"""
from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import bpy

from datagen.blender import builders, outputs
from datagen.blender.catalog import material_spec, resting_z, shape_spec, srgb_to_linear
from datagen.blender.settings import DEVICES, RenderDeviceError, RenderResult, RenderSettings
from datagen.blender.visibility import visible_pixels
from datagen.scene import Camera, Light, Scene, SceneObject

__all__ = ["Renderer", "RenderSettings", "RenderResult", "RenderDeviceError", "SceneChanges", "select_device"]

logger = logging.getLogger(__name__)

_GPU_ORDER = ("optix", "cuda", "hip")
_generation = 0  # bumped by every Renderer(); bpy is one global session, so older Renderers expire


def select_device(requested: str = "auto") -> str:
    """Point Cycles at `requested` and return the device actually used.

    'auto' tries OptiX, then CUDA, then HIP, else the CPU; an explicit 'optix'/'cuda'/'hip'
    that Blender cannot find raises RenderDeviceError rather than falling back to the CPU.
    Sets the Cycles add-on preferences (process-wide); the scene's `cycles.device` is the caller's.
    """
    if requested not in DEVICES:
        raise ValueError(f"unknown render device {requested!r}; expected one of {DEVICES}")
    if requested == "cpu":
        return "cpu"
    prefs = bpy.context.preferences.addons["cycles"].preferences
    prefs.refresh_devices()
    for backend in _GPU_ORDER if requested == "auto" else (requested,):
        kind = backend.upper()
        if any(device.type == kind for device in prefs.devices):
            prefs.compute_device_type = kind
            for device in prefs.devices:
                device.use = device.type == kind
            return backend
    if requested == "auto":
        return "cpu"
    found = sorted({device.type for device in prefs.devices if device.type != "CPU"})
    raise RenderDeviceError(
        f"render device {requested!r} was requested but Blender found no {requested.upper()} device "
        f"(GPU devices found: {found or 'none'}); use device='auto' to fall back to the CPU, or 'cpu'"
    )


@dataclass
class SceneChanges:
    """What `Renderer.apply_scene` changed in the Blender scene (object ids)."""

    added: list[int] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    camera: bool = False
    lights: bool = False
    size: bool = False


@dataclass(frozen=True)
class _Placement:
    """The resolved state of one Blender object; compared to decide what to update."""

    primitive: str
    scale: float
    position: tuple[float, float, float]
    rotation: float
    material_key: tuple[Any, ...]
    mask_id: int


class Renderer:
    """A persistent Blender scene for one worker process; `render` applies a Scene and renders it.

    shapes: shape name → {"primitive", "scale"}; materials: material name → {"kind",
    "roughness", "metallic"} (CLEVR defaults from `catalog` where absent); both may also be
    given per `render`/`apply_scene` call. Creating a Renderer resets Blender to an empty
    factory scene, so only the newest Renderer of a process is usable.
    """

    def __init__(
        self,
        settings: RenderSettings | None = None,
        *,
        shapes: Mapping[str, Mapping[str, Any]] | None = None,
        materials: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        global _generation
        self.settings = settings or RenderSettings()
        self.shapes = dict(shapes or {})
        self.materials = dict(materials or {})
        bpy.ops.wm.read_factory_settings(use_empty=True)
        _generation += 1
        self._generation = _generation
        self._scene = bpy.context.scene
        self.device = self._configure_engine()
        builders.build_stage(self._scene)
        self._collection = bpy.data.collections.new("gazelab_objects")
        self._scene.collection.children.link(self._collection)
        self._camera = builders.new_camera(self._scene)
        self._scene.view_layers[0].use_pass_object_index = True
        self._objects: dict[int, tuple[bpy.types.Object, _Placement]] = {}
        self._meshes: dict[str, bpy.types.Mesh] = {}
        self._material_cache: dict[tuple[Any, ...], bpy.types.Material] = {}
        self._lights: list[bpy.types.Object] = []
        self._camera_spec: Camera | None = None
        self._light_specs: tuple[Light, ...] | None = None
        self._id_pass: outputs.WorkbenchIdPass | None = None
        self._warned_shapes: set[str] = set()

    def __enter__(self) -> "Renderer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def render(
        self,
        scene: Scene,
        image_path: str | os.PathLike[str],
        mask_path: str | os.PathLike[str],
        *,
        shapes: Mapping[str, Mapping[str, Any]] | None = None,
        materials: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> RenderResult:
        """Render `scene` once; write the RGB PNG and the 8-bit label mask PNG atomically.

        Each file is written to a temporary name in its folder and renamed into place, so a
        crash leaves no partial file. Returns paths, mask_id → visible pixels, render seconds
        and the device used.
        """
        self.apply_scene(scene, shapes=shapes, materials=materials)
        image_path, mask_path = Path(image_path), Path(mask_path)
        image_tmp = outputs.temp_beside(image_path)
        mask_tmp = outputs.temp_beside(mask_path)
        try:
            started = time.perf_counter()
            bpy.ops.render.render()
            seconds = time.perf_counter() - started
            outputs.save_render(image_tmp, "IMAGE", self._scene)
            if self.settings.engine == "CYCLES":
                mask = outputs.object_index_mask(self._scene)
            else:
                if self._id_pass is None:
                    self._id_pass = outputs.WorkbenchIdPass(self._collection, self._camera)
                mask = self._id_pass.render(scene.image_size, [(o, p.mask_id) for o, p in self._objects.values()])
            outputs.write_png(mask_tmp, mask)
            os.replace(image_tmp, image_path)
            os.replace(mask_tmp, mask_path)
        finally:
            for leftover in (image_tmp, mask_tmp):
                leftover.unlink(missing_ok=True)
        seen = visible_pixels(mask)
        # Every object's count (0 when hidden), plus any label no object has, which
        # check_visibility reports.
        counts = {obj.mask_id: seen.get(obj.mask_id, 0) for obj in scene.objects} | seen
        return RenderResult(
            image_path=str(image_path),
            mask_path=str(mask_path),
            pixel_counts=counts,
            seconds=seconds,
            device=self.device,
            settings=self.settings.to_dict(),
        )

    def apply_scene(
        self,
        scene: Scene,
        *,
        shapes: Mapping[str, Mapping[str, Any]] | None = None,
        materials: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> SceneChanges:
        """Make the Blender scene show `scene`, touching only what differs from the last one.

        Objects are keyed by their stable `id`: new ids are added, missing ids removed, and an
        existing object is moved, reshaped or re-materialed in place. Camera, lights and image
        size are set only when they changed.
        """
        self._check_alive()
        _validate_objects(scene)
        shapes = self.shapes if shapes is None else shapes
        materials = self.materials if materials is None else materials
        # Resolve every object first, so a bad shape or material name changes nothing.
        placements = {obj.id: self._placement(obj, shapes, materials) for obj in scene.objects}
        changes = SceneChanges()
        width, height = scene.image_size
        render = self._scene.render
        if (render.resolution_x, render.resolution_y) != (width, height):
            render.resolution_x, render.resolution_y = width, height
            changes.size = True
        if scene.camera != self._camera_spec:
            builders.set_camera(self._camera, scene.camera)
            self._camera_spec = scene.camera
            changes.camera = True
        if scene.lights != self._light_specs:
            self._set_lights(scene.lights)
            changes.lights = True

        for object_id in [i for i in self._objects if i not in placements]:
            bpy.data.objects.remove(self._objects.pop(object_id)[0], do_unlink=True)
            changes.removed.append(object_id)
        for obj in scene.objects:
            placement = placements[obj.id]
            current = self._objects.get(obj.id)
            if current is None:
                blender_object = bpy.data.objects.new(f"gazelab_object_{obj.id}", self._mesh(placement.primitive))
                self._collection.objects.link(blender_object)
                blender_object.material_slots[0].link = "OBJECT"  # the mesh is shared; colour is per object
                self._update_object(blender_object, None, placement, obj)
                changes.added.append(obj.id)
            elif current[1] != placement:
                self._update_object(current[0], current[1], placement, obj)
                changes.updated.append(obj.id)
            else:
                continue
            self._objects[obj.id] = (blender_object if current is None else current[0], placement)
        return changes

    def close(self) -> None:
        """Free the Blender session's data (the pipeline recycles worker processes for leaks)."""
        if self._generation != _generation:
            return
        bpy.ops.wm.read_factory_settings(use_empty=True)
        self._objects.clear()
        self._meshes.clear()
        self._material_cache.clear()
        self._lights.clear()
        self._id_pass = None
        self._generation = -1

    # -- engine ------------------------------------------------------------------------------

    def _configure_engine(self) -> str:
        settings, scene = self.settings, self._scene
        scene.render.engine = settings.engine
        scene.render.resolution_percentage = 100
        scene.render.film_transparent = False
        scene.render.dither_intensity = 0.0
        scene.render.threads_mode = "FIXED" if settings.threads else "AUTO"
        if settings.threads:
            scene.render.threads = settings.threads
        scene.view_settings.view_transform = "Standard"
        scene.view_settings.look = "None"
        lit = settings.engine != "BLENDER_WORKBENCH"
        scene.view_settings.exposure = builders.EXPOSURE_LIT if lit else builders.EXPOSURE_WORKBENCH
        scene.view_settings.gamma = 1.0
        samples = settings.effective_samples
        if settings.engine == "CYCLES":
            device = select_device(settings.device)
            scene.cycles.device = "CPU" if device == "cpu" else "GPU"
            scene.cycles.samples = samples
            scene.cycles.seed = settings.seed
            scene.cycles.use_denoising = settings.denoise
            scene.cycles.denoiser = "OPENIMAGEDENOISE"
            # Persistent data (keep Cycles' synced scene between renders) measured no faster for
            # CLEVR-sized scenes on the CPU and is a known source of leaks, so it stays off.
            scene.render.use_persistent_data = False
            return device
        if settings.engine == "BLENDER_EEVEE":
            scene.eevee.taa_render_samples = samples
        else:
            shading = scene.display.shading
            shading.light, shading.color_type, shading.show_shadows = "STUDIO", "MATERIAL", True
            scene.display.render_aa = "8"
        return "opengl"

    # -- scene contents ----------------------------------------------------------------------

    def _placement(self, obj: SceneObject, shapes: Mapping, materials: Mapping) -> _Placement:
        primitive, scale = shape_spec(obj.shape, shapes)
        material = material_spec(obj.material, materials)
        rest = resting_z(obj.shape, obj.radius, shapes)
        if abs(obj.position[2] - rest) > 0.01 * obj.radius and obj.shape not in self._warned_shapes:
            self._warned_shapes.add(obj.shape)
            logger.warning(
                "object id %s (%s, radius %.3f) has centre z=%.3f but rests on the ground at z=%.3f; "
                "rendering it where the scene puts it (see datagen.blender.catalog.resting_z)",
                obj.id, obj.shape, obj.radius, obj.position[2], rest,
            )
        return _Placement(
            primitive=primitive,
            scale=obj.radius * scale,
            position=tuple(obj.position),
            rotation=obj.rotation,
            material_key=(tuple(sorted(material.items())), tuple(obj.rgb)),
            mask_id=obj.mask_id,
        )

    def _update_object(self, blender_object, old: _Placement | None, new: _Placement, obj: SceneObject) -> None:
        if old is None or old.primitive != new.primitive:
            blender_object.data = self._mesh(new.primitive)
            blender_object.material_slots[0].link = "OBJECT"
        if old is None or old.scale != new.scale:
            blender_object.scale = (new.scale,) * 3
        if old is None or old.position != new.position:
            blender_object.location = new.position
        if old is None or old.rotation != new.rotation:
            blender_object.rotation_euler = (0.0, 0.0, math.radians(new.rotation))
        if old is None or old.material_key != new.material_key or old.primitive != new.primitive:
            blender_object.material_slots[0].material = self._material(new.material_key, obj)
        if old is None or old.mask_id != new.mask_id:
            blender_object.pass_index = new.mask_id

    def _mesh(self, primitive: str) -> bpy.types.Mesh:
        if primitive not in self._meshes:
            self._meshes[primitive] = builders.primitive_mesh(primitive)
        return self._meshes[primitive]

    def _material(self, key: tuple[Any, ...], obj: SceneObject) -> bpy.types.Material:
        if key not in self._material_cache:
            if len(self._material_cache) >= 256:  # unbounded custom colours: drop unused ones
                for stale in [k for k, m in self._material_cache.items() if m.users == 0]:
                    bpy.data.materials.remove(self._material_cache.pop(stale))
            params, rgb = key
            name = f"gazelab_{obj.material}_{obj.color}"
            self._material_cache[key] = builders.principled_material(name, srgb_to_linear(rgb), **dict(params))
        return self._material_cache[key]

    def _set_lights(self, lights: tuple[Light, ...]) -> None:
        while len(self._lights) > len(lights):
            bpy.data.objects.remove(self._lights.pop(), do_unlink=True)
        while len(self._lights) < len(lights):
            self._lights.append(builders.new_light(self._scene, len(self._lights)))
        for blender_light, spec in zip(self._lights, lights):
            builders.set_light(blender_light, spec)
        self._light_specs = lights

    def _check_alive(self) -> None:
        if self._generation != _generation:
            raise RuntimeError("this Renderer was closed or replaced by a newer Renderer in this process")


def _validate_objects(scene: Scene) -> None:
    ids = [obj.id for obj in scene.objects]
    mask_ids = [obj.mask_id for obj in scene.objects]
    if len(set(ids)) != len(ids):
        raise ValueError(f"scene has duplicate object ids {ids}; expected unique ids")
    if len(set(mask_ids)) != len(mask_ids) or not all(1 <= m <= 255 for m in mask_ids):
        raise ValueError(f"scene has mask ids {mask_ids}; expected unique values in 1–255")


def device_facts() -> dict:
    """What `gazelab doctor` reports of Blender: its version, the device `select_device("auto")`
    picks (OptiX, then CUDA, then HIP, else the CPU) and the Cycles devices it sees."""
    chosen = select_device("auto")
    prefs = bpy.context.preferences.addons["cycles"].preferences  # refreshed by select_device
    devices = list(dict.fromkeys((device.type, device.name) for device in prefs.devices))
    return {"version": bpy.app.version_string, "auto": chosen, "devices": devices}
