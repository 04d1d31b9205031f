"""Blender data built in code: primitive meshes, Principled materials, the CLEVR-like stage.

Imports bpy; used only by `datagen.blender.renderer`. Everything goes through the data API
(bpy.data, bmesh), not operators, so it needs no UI context and is cheap to repeat.
"""
from __future__ import annotations

import math

import bmesh
import bpy
from mathutils import Matrix, Vector

from datagen.blender.catalog import base_color
from datagen.scene import Camera, Light

SHARP_ANGLE = math.radians(30.0)  # edges sharper than this stay crisp under smooth shading
GROUND_SIZE = 200.0  # metres; the horizon of a camera ~10 m away at 5 m height lies inside it
# CLEVR's base_scene.blend camera range. A wider one (0.05–1000 m) costs Workbench's shadow
# volumes their depth precision: the 200 m ground then shadows itself in a diamond mid-frame.
CLIP_START, CLIP_END = 0.1, 100.0

# The look (see tests' look checks and benchmarks/bench_look.py). The stage is lit like CLEVR's
# base_scene.blend: the scene's three area lights (`placement.CLEVR_LIGHTS`, 1000/300/500 W, 12.7×
# the 78.5/23.6/39.3 W bpy 5.0 reads from that file) plus a fixed sun that lights the floor evenly.
# Exposure then scales the light so that a rubber object's median colour is about its listed sRGB
# colour under the Standard view; the floor's albedo makes it CLEVR's mid grey (≈ sRGB 105 at the
# top of the frame, 140 at the bottom, as CLEVR's own images measure).
GROUND_LINEAR_GREY = 0.17  # albedo ≈ sRGB 115
WORLD_LINEAR_GREY = 0.3  # a grey sky: fill in the shadows, something for metal to reflect
SUN_DIRECTION = (-0.414, 0.195, -0.889)  # the way CLEVR's sun ("Area") shines: from high front-right
SUN_ANGLE = 0.199  # radians, CLEVR's: soft-edged shadows
# CLEVR's sun is 0.45 W/m² beside a 78.5 W key, 5.7 W/m² at our key's scale. With 9 and the grey
# world the floor's top band is 0.72 of its bottom band in sRGB (CLEVR's 0.74; 0.60 with 5.7 and a
# black world) and the objects keep their shading.
SUN_STRENGTH = 9.0  # W/m²
EXPOSURE_LIT = -1.9  # stops, for the physically lit engines (Cycles, EEVEE); the world 0.3 shows as 0.08
EXPOSURE_WORKBENCH = 1.7  # stops; Workbench ignores the lights and shades with its studio light


def primitive_mesh(primitive: str) -> bpy.types.Mesh:
    """A new mesh of `primitive` with unit horizontal half-extent, centred at the origin.

    Smooth shaded with sharp edges above 30°, so cubes look flat and spheres round; one empty
    material slot, filled per object (the mesh is shared by every object of that primitive).
    """
    bm = bmesh.new()
    try:
        if primitive == "cube":
            bmesh.ops.create_cube(bm, size=2.0)
        elif primitive == "sphere":
            bmesh.ops.create_uvsphere(bm, u_segments=48, v_segments=24, radius=1.0)
        elif primitive == "icosphere":
            bmesh.ops.create_icosphere(bm, subdivisions=3, radius=1.0)
        elif primitive in ("cylinder", "cone"):
            top = 1.0 if primitive == "cylinder" else 0.0
            bmesh.ops.create_cone(bm, cap_ends=True, segments=48, radius1=1.0, radius2=top, depth=2.0)
        elif primitive == "torus":
            _build_torus(bm, major=0.7, minor=0.3, rings=48, sides=16)
        else:
            raise ValueError(f"unknown primitive {primitive!r}")
        bm.normal_update()
        for face in bm.faces:
            face.smooth = True
        for edge in bm.edges:
            if edge.is_manifold and edge.calc_face_angle(0.0) > SHARP_ANGLE:
                edge.smooth = False
        mesh = bpy.data.meshes.new(f"gazelab_{primitive}")
        bm.to_mesh(mesh)
    finally:
        bm.free()
    mesh.materials.append(None)
    return mesh


def principled_material(
    name: str,
    linear_rgb: tuple[float, float, float],
    roughness: float,
    metallic: float,
    specular: float = 0.5,
    clearcoat: float = 0.0,
    clevr_color: float = 0.0,
    color_scale: float = 1.0,
) -> bpy.types.Material:
    """A Principled BSDF material; `linear_rgb` is the object's colour as scene-linear [0, 1]
    (`catalog.srgb_to_linear` of its sRGB colour), made into the base colour by
    `catalog.base_color(linear_rgb, clevr_color, color_scale)`; the rest as in `catalog.material_spec`."""
    material = bpy.data.materials.new(name)
    linear = (*linear_rgb, 1.0)
    bsdf = material.node_tree.nodes["Principled BSDF"]  # 5.0: new materials come with nodes
    bsdf.inputs["Base Color"].default_value = (*base_color(linear_rgb, clevr_color, color_scale), 1.0)
    bsdf.inputs["Roughness"].default_value = roughness
    bsdf.inputs["Metallic"].default_value = metallic
    bsdf.inputs["Specular IOR Level"].default_value = specular
    bsdf.inputs["Coat Weight"].default_value = clearcoat
    # Workbench and the viewport read these instead of the node tree. Workbench, a preview lit by
    # its studio light with its own exposure, shows the listed colour: `linear_rgb`, not the base
    # colour that reproduces CLEVR's renders under the scene's lights.
    material.diffuse_color = linear
    material.roughness = roughness
    material.metallic = metallic
    return material


def build_stage(scene: bpy.types.Scene) -> bpy.types.Object:
    """A large mid-grey, rough ground plane at z = 0, a grey world and CLEVR's sun; returns the plane."""
    mesh = bpy.data.meshes.new("gazelab_ground")
    half = GROUND_SIZE / 2
    mesh.from_pydata([(-half, -half, 0), (half, -half, 0), (half, half, 0), (-half, half, 0)], [], [(0, 1, 2, 3)])
    ground_material = principled_material("gazelab_ground", (GROUND_LINEAR_GREY,) * 3, roughness=0.6, metallic=0.0)
    mesh.materials.append(ground_material)
    ground = bpy.data.objects.new("gazelab_ground", mesh)
    ground.pass_index = 0
    scene.collection.objects.link(ground)

    world = bpy.data.worlds.new("gazelab_world")
    background = world.node_tree.nodes["Background"]
    background.inputs["Color"].default_value = (WORLD_LINEAR_GREY, WORLD_LINEAR_GREY, WORLD_LINEAR_GREY, 1.0)
    background.inputs["Strength"].default_value = 1.0
    world.color = (WORLD_LINEAR_GREY,) * 3
    scene.world = world

    sun = bpy.data.objects.new("gazelab_sun", bpy.data.lights.new("gazelab_sun", "SUN"))
    sun.data.energy = SUN_STRENGTH
    sun.data.angle = SUN_ANGLE
    sun.rotation_mode = "QUATERNION"
    sun.rotation_quaternion = Vector(SUN_DIRECTION).to_track_quat("-Z", "Y")  # a sun shines along its −Z
    scene.collection.objects.link(sun)
    return ground


def new_camera(scene: bpy.types.Scene) -> bpy.types.Object:
    camera = bpy.data.objects.new("gazelab_camera", bpy.data.cameras.new("gazelab_camera"))
    camera.data.sensor_fit = "AUTO"  # sensor width spans the larger image side, as Camera.project assumes
    camera.data.clip_start, camera.data.clip_end = CLIP_START, CLIP_END
    scene.collection.objects.link(camera)
    scene.camera = camera
    return camera


def set_camera(camera: bpy.types.Object, spec: Camera) -> None:
    camera.matrix_world = Matrix(spec.matrix_world())
    camera.data.lens = spec.lens_mm
    camera.data.sensor_width = spec.sensor_width_mm


def new_light(scene: bpy.types.Scene, index: int) -> bpy.types.Object:
    light = bpy.data.objects.new(f"gazelab_light_{index}", bpy.data.lights.new(f"gazelab_light_{index}", "AREA"))
    light.data.shape = "SQUARE"
    scene.collection.objects.link(light)
    return light


def set_light(light: bpy.types.Object, spec: Light, target: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> None:
    """Place an area light at spec.location with its emitting −Z axis aimed at `target`."""
    location = Vector(spec.location)
    light.location = location
    light.rotation_mode = "QUATERNION"
    light.rotation_quaternion = (Vector(target) - location).to_track_quat("-Z", "Y")
    light.data.energy = spec.energy
    light.data.size = spec.size


def _build_torus(bm: bmesh.types.BMesh, major: float, minor: float, rings: int, sides: int) -> None:
    grid = []
    for i in range(rings):
        theta = 2 * math.pi * i / rings
        row = []
        for j in range(sides):
            phi = 2 * math.pi * j / sides
            r = major + minor * math.cos(phi)
            row.append(bm.verts.new((r * math.cos(theta), r * math.sin(theta), minor * math.sin(phi))))
        grid.append(row)
    for i in range(rings):
        for j in range(sides):
            a, b = grid[i][j], grid[(i + 1) % rings][j]
            c, d = grid[(i + 1) % rings][(j + 1) % sides], grid[i][(j + 1) % sides]
            bm.faces.new((a, b, c, d))
