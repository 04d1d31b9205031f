"""From Blender's Render Result to files: the RGB PNG, the 8-bit label mask, atomic writes (imports bpy).

Cycles: the mask is the Object Index pass of the same render (every object's `pass_index`
is its mask_id; the pass is not anti-aliased), read from a temporary multilayer EXR that is
deleted at once. EEVEE and Workbench have no Object Index pass, so `WorkbenchIdPass` renders
the same objects and camera a second time in flat colours that encode each mask_id.
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

import bpy
import numpy as np
import OpenEXR

ID_LEVELS = 16  # the id render splits a mask_id into two base-16 digits, one per colour channel


def save_render(path: Path, media_type: str, scene: bpy.types.Scene) -> None:
    """Save the current Render Result: 'IMAGE' → colour-managed 8-bit RGB PNG,
    'MULTI_LAYER_IMAGE' → linear float EXR with every pass (Blender 5.0's `media_type`)."""
    image_settings = scene.render.image_settings
    image_settings.media_type = media_type
    if media_type == "IMAGE":
        image_settings.file_format = "PNG"
        image_settings.color_mode = "RGB"
        image_settings.color_depth = "8"
    else:
        image_settings.color_depth = "32"
        image_settings.exr_codec = "NONE"  # written and read back at once: speed over size
    bpy.data.images["Render Result"].save_render(str(path), scene=scene)


def object_index_mask(scene: bpy.types.Scene) -> np.ndarray:
    """(H, W) uint8 labels from the Object Index pass of the last render of `scene`."""
    with _temporary_exr("gazelab_index_") as exr:
        save_render(exr, "MULTI_LAYER_IMAGE", scene)
        index = exr_channel(exr, "Object Index.X")
    labels = np.rint(index)
    if labels.min() < 0 or labels.max() > 255 or np.abs(index - labels).max() > 1e-3:
        raise RuntimeError(f"Object Index pass holds values outside integers 0–255 (range {index.min()}–{index.max()})")
    return labels.astype(np.uint8)


class WorkbenchIdPass:
    """A second scene sharing the objects' collection and the camera, rendered flat in Workbench.

    Each object's viewport colour encodes its mask_id as (low digit, high digit) in base 16,
    at bin centres, so the colour pipeline's small float errors cannot change an id.
    Anti-aliasing is off, like Cycles' Object Index pass; the background is transparent (0).
    """

    def __init__(self, collection: bpy.types.Collection, camera: bpy.types.Object) -> None:
        scene = bpy.data.scenes.new("gazelab_ids")
        scene.collection.children.link(collection)
        scene.collection.objects.link(camera)
        scene.camera = camera
        scene.render.engine = "BLENDER_WORKBENCH"
        scene.render.resolution_percentage = 100
        scene.render.film_transparent = True
        scene.render.dither_intensity = 0.0
        scene.view_settings.view_transform = "Raw"
        scene.display.render_aa = "OFF"
        shading = scene.display.shading
        shading.light, shading.color_type = "FLAT", "OBJECT"
        shading.show_shadows = shading.show_cavity = False
        shading.show_object_outline = shading.show_specular_highlight = False
        self.scene = scene

    def render(self, size: tuple[int, int], objects: Iterable[tuple[bpy.types.Object, int]]) -> np.ndarray:
        """(H, W) uint8 labels for `objects` = (Blender object, mask_id) pairs at size (W, H)."""
        self.scene.render.resolution_x, self.scene.render.resolution_y = size
        for blender_object, mask_id in objects:
            low, high = mask_id % ID_LEVELS, mask_id // ID_LEVELS
            blender_object.color = ((low + 0.5) / ID_LEVELS, (high + 0.5) / ID_LEVELS, 0.0, 1.0)
        bpy.ops.render.render(scene=self.scene.name)
        with _temporary_exr("gazelab_ids_") as exr:
            save_render(exr, "MULTI_LAYER_IMAGE", self.scene)
            red, green, alpha = (exr_channel(exr, f"Combined.{c}") for c in "RGA")
        digit = lambda channel: np.clip(np.floor(channel * ID_LEVELS), 0, ID_LEVELS - 1)  # noqa: E731
        return np.where(alpha > 0.5, digit(red) + ID_LEVELS * digit(green), 0).astype(np.uint8)


def exr_channel(path: Path, suffix: str) -> np.ndarray:
    """The first channel whose name ends with `suffix`, searching every part of the EXR."""
    exr = OpenEXR.File(str(path), separate_channels=True)
    for part in exr.parts:  # Blender 5.0 writes multilayer EXRs as one part per pass
        for name, channel in part.channels.items():
            if name.endswith(suffix):
                return np.asarray(channel.pixels, dtype=np.float32)
    names = [name for part in exr.parts for name in part.channels]
    raise RuntimeError(f"render EXR {path} has no channel ending in {suffix!r}; channels: {names}")


def temp_beside(path: Path) -> Path:
    """A new empty hidden file in `path`'s folder (created if needed), for write-then-rename,
    with the dataset's usual mode (0666 & ~umask; mkstemp's would be 0600)."""
    import secrets

    path.parent.mkdir(parents=True, exist_ok=True)
    name = path.with_name(f".{path.stem}.{secrets.token_hex(6)}.tmp.png")  # .png: cv2 picks the format by it
    os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    return name


def write_png(path: Path, array: np.ndarray) -> None:
    import cv2

    if not cv2.imwrite(str(path), array):
        raise OSError(f"could not write PNG {path}")


@contextmanager
def _temporary_exr(prefix: str) -> Iterator[Path]:
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=".exr")
    os.close(fd)
    try:
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)
