"""The benchmark's baseline: a minimal bpy script that renders a Scene with nothing else.

It builds the same stage and render settings as `Renderer` but rebuilds every object for every
image and writes only the RGB PNG: no masks, no visibility check, no diffing. Used by
`benchmarks/bench_render.py` to measure what the renderer's bookkeeping costs; it lives here
because only `datagen/blender/` imports bpy.
"""
from __future__ import annotations

import math
from pathlib import Path

import bpy
import bmesh  # noqa: I001 — bmesh and mathutils exist only once bpy is imported
from mathutils import Matrix, Vector

from datagen.blender.builders import (
    EXPOSURE_LIT, GROUND_LINEAR_GREY, SUN_ANGLE, SUN_DIRECTION, SUN_STRENGTH, WORLD_LINEAR_GREY,
)

BLENDER_VERSION = bpy.app.version_string


class BareScript:
    """A minimal bpy script: the same stage and render settings, objects rebuilt for every image."""

    def __init__(self, settings) -> None:
        bpy.ops.wm.read_factory_settings(use_empty=True)
        scene = bpy.context.scene
        scene.render.engine = "CYCLES"
        scene.cycles.device = "CPU"
        scene.cycles.samples = settings.samples
        scene.cycles.seed = settings.seed
        scene.cycles.use_denoising = settings.denoise
        scene.view_settings.view_transform = "Standard"
        scene.view_settings.exposure = EXPOSURE_LIT
        scene.render.dither_intensity = 0.0
        scene.render.image_settings.file_format = "PNG"
        scene.render.image_settings.color_mode = "RGB"
        ground = bpy.data.meshes.new("ground")
        ground.from_pydata([(-100, -100, 0), (100, -100, 0), (100, 100, 0), (-100, 100, 0)], [], [(0, 1, 2, 3)])
        ground.materials.append(_material("ground", (GROUND_LINEAR_GREY,) * 3, 0.6, 0.0))
        scene.collection.objects.link(bpy.data.objects.new("ground", ground))
        world = bpy.data.worlds.new("world")
        world.node_tree.nodes["Background"].inputs["Color"].default_value = (WORLD_LINEAR_GREY,) * 3 + (1.0,)
        scene.world = world
        sun = bpy.data.objects.new("sun", bpy.data.lights.new("sun", "SUN"))
        sun.data.energy, sun.data.angle = SUN_STRENGTH, SUN_ANGLE
        sun.rotation_euler = Vector(SUN_DIRECTION).to_track_quat("-Z", "Y").to_euler()
        scene.collection.objects.link(sun)
        camera = bpy.data.objects.new("camera", bpy.data.cameras.new("camera"))
        scene.collection.objects.link(camera)
        scene.camera = camera
        self._scene, self._camera, self._objects = scene, camera, []

    def render(self, spec, path: Path) -> None:
        scene = self._scene
        scene.render.resolution_x, scene.render.resolution_y = spec.image_size
        self._camera.matrix_world = Matrix(spec.camera.matrix_world())
        self._camera.data.lens, self._camera.data.sensor_width = spec.camera.lens_mm, spec.camera.sensor_width_mm
        for old in self._objects:
            bpy.data.objects.remove(old, do_unlink=True)
        self._objects = []
        for light in spec.lights:
            data = bpy.data.lights.new(light.name, "AREA")
            data.energy, data.size = light.energy, light.size
            blender_light = bpy.data.objects.new(light.name, data)
            blender_light.location = light.location
            blender_light.rotation_euler = (-Vector(light.location)).to_track_quat("-Z", "Y").to_euler()
            scene.collection.objects.link(blender_light)
            self._objects.append(blender_light)
        for obj in spec.objects:
            bm = bmesh.new()
            if obj.shape == "cube":
                bmesh.ops.create_cube(bm, size=2.0)
            elif obj.shape == "sphere":
                bmesh.ops.create_uvsphere(bm, u_segments=48, v_segments=24, radius=1.0)
            else:
                bmesh.ops.create_cone(bm, cap_ends=True, segments=48, radius1=1.0, radius2=1.0, depth=2.0)
            mesh = bpy.data.meshes.new(obj.shape)
            bm.to_mesh(mesh)
            bm.free()
            if obj.shape != "cube":
                mesh.shade_smooth()
            linear = tuple(((c / 255 + 0.055) / 1.055) ** 2.4 for c in obj.rgb)
            metal = obj.material == "metal"
            mesh.materials.append(_material(obj.color, linear, 0.2 if metal else 0.7, 1.0 if metal else 0.0))
            blender_object = bpy.data.objects.new(obj.shape, mesh)
            blender_object.location = obj.position
            blender_object.rotation_euler = (0.0, 0.0, math.radians(obj.rotation))
            blender_object.scale = (obj.radius / math.sqrt(2) if obj.shape == "cube" else obj.radius,) * 3
            scene.collection.objects.link(blender_object)
            self._objects.append(blender_object)
        bpy.ops.render.render()
        bpy.data.images["Render Result"].save_render(str(path))


def _material(name, linear_rgb, roughness, metallic):
    material = bpy.data.materials.new(name)
    bsdf = material.node_tree.nodes["Principled BSDF"]
    bsdf.inputs["Base Color"].default_value = (*linear_rgb, 1.0)
    bsdf.inputs["Roughness"].default_value = roughness
    bsdf.inputs["Metallic"].default_value = metallic
    return material
