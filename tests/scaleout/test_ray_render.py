"""`gazelab datagen render --ray-address local` (a local Ray instance, two render tasks at once)
against the same command without Ray: the same dataset, file for file.

Pair i depends only on (seed, i), so the two datasets hold the same pairs.csv and byte-identical
scene files and masks. The images' pixels are equal up to float rounding: Cycles' results can
differ by one 8-bit level in a rare pixel between two processes (seen: 1 value of 9,216), so an
image may differ by at most 1 level in at most 0.1% of its values. The image files' bytes differ
anyway: Blender stamps each PNG with text chunks of the wall-clock date and the render's timings,
which the test leaves out (every other chunk but the pixel data must be equal).
"""
from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from datadir import Dataset

pytestmark = [pytest.mark.blender, pytest.mark.ray, pytest.mark.slow]

PAIRS = 2
# Blender's render stamp: when the image was rendered and how long it took.
TIMING_KEYS = {b"Date", b"RenderTime", b"cycles.ViewLayer.total_time", b"cycles.ViewLayer.render_time",
               b"cycles.ViewLayer.synchronization_time"}


def test_a_ray_render_equals_the_same_render_without_ray(tmp_path):
    pytest.importorskip("bpy")
    pytest.importorskip("ray")
    # Both datasets are named "ds" (the folder's name), so dataset.json may differ only in its date.
    with_ray = _render(tmp_path / "ray" / "ds", "--ray-address", "local")
    without = _render(tmp_path / "local" / "ds")
    assert f"rendered {PAIRS}, skipped 0" in with_ray.stdout and f"rendered {PAIRS}, skipped 0" in without.stdout
    ray_root, local_root = tmp_path / "ray" / "ds", tmp_path / "local" / "ds"
    assert Dataset.open(ray_root).validate() == []

    files = sorted(p.relative_to(local_root) for p in local_root.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(ray_root) for p in ray_root.rglob("*") if p.is_file())
    assert len([f for f in files if f.parts[0] == "images"]) == 2 * PAIRS

    meta = [json.loads((root / "dataset.json").read_text()) for root in (ray_root, local_root)]
    assert _without_created(meta[0]) == _without_created(meta[1])
    for relative in files:
        ours, theirs = (ray_root / relative), (local_root / relative)
        if relative.parts[0] == "images":
            difference = np.abs(_pixels(ours).astype(int) - _pixels(theirs).astype(int))
            assert difference.max() <= 1 and np.count_nonzero(difference) <= difference.size // 1000, \
                f"{relative}: pixels differ (max {difference.max()}, {np.count_nonzero(difference)} values)"
            chunks = [[c for c in _png_chunks(path) if c[0] != b"IDAT"] for path in (ours, theirs)]
            assert chunks[0] == chunks[1], f"{relative}: PNG chunks besides the pixels and the timing stamp differ"
        elif relative.name != "dataset.json":  # pairs.csv, scenes/*.json, masks/*.png
            assert ours.read_bytes() == theirs.read_bytes(), f"{relative} differs"


def _render(out: Path, *extra: str) -> subprocess.CompletedProcess:
    """The CLI in a process of its own (Ray and Blender stay out of the test process): 2 pairs
    at 64x48, 4 Cycles samples on the CPU, 2 workers (one thread each: two Ray tasks fit 2 CPUs)."""
    command = [sys.executable, "-c", "from gazelab.cli import main; main()", "datagen", "render", "--out", str(out),
               "--pairs", str(PAIRS), "--width", "64", "--height", "48", "--samples", "4", "--objects", "3-4",
               "--seed", "3", "--workers", "2", "--device", "cpu", "--quiet", *extra]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(command[3:])}\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return result


def _without_created(meta: dict) -> dict:
    return {key: value for key, value in meta.items() if key != "created"}


def _pixels(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None and image.dtype == np.uint8, path
    return image


def _png_chunks(path: Path) -> list[tuple[bytes, bytes]]:
    """The PNG's (type, data) chunks, text chunks of Blender's timing stamp left out."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    chunks, at = [], 8
    while at < len(data):
        (length,), kind = struct.unpack(">I", data[at:at + 4]), data[at + 4:at + 8]
        body = data[at + 8:at + 8 + length]
        at += 12 + length
        if kind == b"tEXt" and body.split(b"\0", 1)[0] in TIMING_KEYS:
            continue
        chunks.append((kind, body))
    return chunks
