"""Rendering with Blender's OpenGL engines (Workbench, EEVEE) in a spawned process, for tests.

An OpenGL render loads Mesa's llvmpipe, and with it an LLVM, into the process; importing
torch's triton (another LLVM) afterwards segfaults the process, and later test modules import
torch. Cycles loads no OpenGL and may render in the test process itself.
"""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from datagen.worker import prepare_worker_process


def render_in_fresh_process(settings, jobs: list[tuple]) -> list:
    """Render `jobs` = [(Scene, image path, mask path)] with one new `Renderer(settings)` in a
    spawned process; returns their `RenderResult`s in order."""
    context = multiprocessing.get_context("spawn")  # bpy must not be forked
    # initargs: the render process dies with the test session, however that ends
    with ProcessPoolExecutor(max_workers=1, mp_context=context, initializer=prepare_worker_process,
                             initargs=(os.getpid(),)) as pool:
        return pool.submit(_render, settings, [(scene, str(image), str(mask)) for scene, image, mask in jobs]).result()


def _render(settings, jobs: list[tuple]) -> list:
    from datagen.blender.renderer import Renderer

    with Renderer(settings) as renderer:
        return [renderer.render(scene, Path(image), Path(mask)) for scene, image, mask in jobs]
