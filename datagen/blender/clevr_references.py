"""Derive `datagen.blender.look.CLEVR_RENDERS`: CLEVR's own generator files rendered at our colour chart.

    python -m datagen.blender.clevr_references --clevr PATH/TO/clevr-dataset-gen   # ~16 renders

Needs a checkout of facebookresearch/clevr-dataset-gen (its .blend files are not shipped here)
and bpy. For each material (CLEVR's Rubber and MyMetal node groups) and each of the 8 chart
shifts (`look.chart_scene`: each colour at each CHART_LAYOUT position once), it opens
image_generation/data/base_scene.blend (CLEVR's ground, camera, lamps and colour management),
adds CLEVR's shape meshes (data/shapes/*.blend) where the chart puts its objects, colours each
one as render_images.py does (a new material holding the node group, "Color" = rgb / 255), sets
Cycles as render_images.py does (blur_glossy 2, no denoising; `--samples` instead of its 512),
renders, and takes each object's median colour with `look.object_colors` on the Object Index
pass. It prints the table to paste into look.py, then a cross-check against CLEVR's example
images (images/img1-8.png, no masks): the median of a disc (0.8 of the radius, placed by eye)
on each large metal or rubber sphere there, beside the same disc on the rendered spheres of that
colour. It lives in datagen/blender/, the only place that imports bpy; nothing else under
datagen/ loads CLEVR's assets.
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

import bpy
import cv2
import numpy as np

from datagen.blender.look import (CHART_LAYOUT, chart_position, chart_scene, delta_e_2000, object_colors,
                                  srgb_to_lab)
from datagen.blender.outputs import object_index_mask, save_render
from datagen.placement import CLEVR_LIGHTS
from datagen.properties import Properties

MATERIALS = {"rubber": "Rubber", "metal": "MyMetal"}
SHAPES = {"cube": "SmoothCube_v2", "sphere": "Sphere", "cylinder": "SmoothCylinder"}
# Large spheres in CLEVR's example images: (image number, material, colour, centre x, y, radius px).
EXAMPLE_SPHERES = (
    (2, "metal", "cyan", 74, 132, 25), (3, "metal", "brown", 80, 95, 23), (4, "metal", "green", 66, 125, 20),
    (5, "metal", "yellow", 165, 120, 25), (6, "metal", "yellow", 50, 100, 23), (8, "metal", "brown", 153, 153, 28),
    (1, "rubber", "cyan", 158, 158, 29), (2, "rubber", "blue", 146, 70, 19), (3, "rubber", "yellow", 104, 146, 28),
    (7, "rubber", "purple", 236, 137, 27), (7, "rubber", "red", 137, 92, 21), (8, "rubber", "brown", 233, 80, 20),
)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clevr", type=Path, required=True, help="a checkout of clevr-dataset-gen")
    parser.add_argument("--samples", type=int, default=128)
    args = parser.parse_args(argv)
    data = args.clevr / "image_generation" / "data"
    if not (data / "base_scene.blend").is_file():
        parser.error(f"{data / 'base_scene.blend'} does not exist; expected a clevr-dataset-gen checkout")
    with tempfile.TemporaryDirectory(prefix="clevr_look_") as folder:
        renders = {material: render_chart(data, material, args.samples, Path(folder)) for material in MATERIALS}
        print_table(renders)
        cross_check(args.clevr / "images", Path(folder))
    return 0


def render_chart(data: Path, material: str, samples: int, folder: Path) -> dict[str, list]:
    """colour → [median sRGB at CHART_LAYOUT position 0..7] for CLEVR's `material`."""

    bpy.ops.wm.open_mainfile(filepath=str(data / "base_scene.blend"))
    scene = bpy.context.scene
    with bpy.data.libraries.load(str(data / "materials" / f"{MATERIALS[material]}.blend")) as (_, loaded):
        loaded.node_groups = [MATERIALS[material]]
    meshes = {}
    for shape, name in SHAPES.items():
        with bpy.data.libraries.load(str(data / "shapes" / f"{name}.blend")) as (_, loaded):
            loaded.objects = [name]
        meshes[shape] = loaded.objects[0]
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 320, 240, 100
    scene.render.dither_intensity = 0.0
    scene.cycles.samples, scene.cycles.use_denoising, scene.cycles.blur_glossy, scene.cycles.seed = samples, False, 2.0, 0
    scene.cycles.device = "CPU"
    scene.view_layers[0].use_pass_object_index = True
    table: dict[str, list] = {}
    for shift in range(len(CHART_LAYOUT)):
        chart = chart_scene(Properties.clevr().colors, CLEVR_LIGHTS, (320, 240), shift=shift, material=material)
        added = [_add_object(scene, meshes[o.shape], o, MATERIALS[material]) for o in chart.objects]
        bpy.ops.render.render()
        image = folder / f"{material}_{shift}.png"
        save_render(image, "IMAGE", scene)
        mask = object_index_mask(scene)
        cv2.imwrite(str(folder / f"{material}_{shift}_mask.png"), mask)
        medians = object_colors(cv2.cvtColor(cv2.imread(str(image)), cv2.COLOR_BGR2RGB), mask)
        for o in chart.objects:
            table.setdefault(o.color, [None] * len(CHART_LAYOUT))[chart_position(o)] = tuple(round(v) for v in medians[o.mask_id])
        for obj in added:
            bpy.data.objects.remove(obj, do_unlink=True)
        print(f"{material} shift {shift} rendered", file=sys.stderr, flush=True)
    return table


def _add_object(scene, source, spec, group: str):
    """A copy of CLEVR's shape `source` where `spec` stands, coloured like render_images.py does."""

    obj = source.copy()
    obj.data = source.data.copy()
    scene.collection.objects.link(obj)
    size = spec.radius / math.sqrt(2) if spec.shape == "cube" else spec.radius  # render_images.py: r /= sqrt(2)
    obj.scale = (size, size, size)
    obj.location = (spec.position[0], spec.position[1], size)
    obj.rotation_euler = (0.0, 0.0, math.radians(spec.rotation))
    obj.pass_index = spec.mask_id
    material = bpy.data.materials.new(f"clevr_{spec.mask_id}")
    nodes = material.node_tree.nodes
    output = next(n for n in nodes if n.bl_idname == "ShaderNodeOutputMaterial")
    group_node = nodes.new("ShaderNodeGroup")
    group_node.node_tree = bpy.data.node_groups[group]
    group_node.inputs["Color"].default_value = [c / 255.0 for c in spec.rgb] + [1.0]
    material.node_tree.links.new(group_node.outputs["Shader"], output.inputs["Surface"])
    obj.data.materials.clear()
    obj.data.materials.append(material)
    return obj


def print_table(renders: dict[str, dict[str, list]]) -> None:
    print("CLEVR_RENDERS: dict[str, dict[str, tuple[tuple[int, int, int], ...]]] = {")
    for material, table in renders.items():
        print(f'    "{material}": {{')
        for color, rows in table.items():
            print(f'        "{color}": ({", ".join(f"({r}, {g}, {b})" for r, g, b in rows)}),')
        print("    },")
    print("}")


def cross_check(images: Path, folder: Path) -> None:
    """Example-image spheres beside the rendered spheres of the same material and colour (disc medians)."""

    names = list(Properties.clevr().colors)
    for number, material, color, x, y, radius in EXAMPLE_SPHERES:
        example = _disc_median(cv2.cvtColor(cv2.imread(str(images / f"img{number}.png")), cv2.COLOR_BGR2RGB), x, y, 0.8 * radius)
        rendered = []
        for shift in range(len(CHART_LAYOUT)):
            position = (names.index(color) + shift) % len(CHART_LAYOUT)
            if CHART_LAYOUT[position][0] != "sphere":
                continue
            image = cv2.cvtColor(cv2.imread(str(folder / f"{material}_{shift}.png")), cv2.COLOR_BGR2RGB)
            rows, cols = np.nonzero(cv2.imread(str(folder / f"{material}_{shift}_mask.png"), cv2.IMREAD_UNCHANGED) == names.index(color) + 1)
            rendered.append(_disc_median(image, cols.mean(), rows.mean(), 0.8 * (cols.max() - cols.min() + 1) / 2))
        reference = np.median(rendered, axis=0)
        error = delta_e_2000(srgb_to_lab(example), srgb_to_lab(reference))
        print(f"img{number} {material:6s} {color:7s} example {tuple(int(v) for v in example)}"
              f"  rendered {tuple(int(v) for v in reference)}  ΔE00 {error:4.1f}")


def _disc_median(image: np.ndarray, x: float, y: float, radius: float) -> np.ndarray:
    rows, cols = np.mgrid[: image.shape[0], : image.shape[1]]
    return np.median(image[(cols - x) ** 2 + (rows - y) ** 2 <= radius**2], axis=0)


if __name__ == "__main__":
    sys.exit(main())
