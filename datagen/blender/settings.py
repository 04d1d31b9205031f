"""Render settings, results and errors — bpy-free, so the pipeline can build and record them cheaply.

`Renderer` (in `datagen.blender.renderer`, the module that imports bpy) consumes these.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

ENGINES = ("CYCLES", "BLENDER_EEVEE", "BLENDER_WORKBENCH")
DEVICES = ("auto", "cpu", "cuda", "optix", "hip")
MAX_SAMPLES = 4096
# Preview mode stays on Cycles (same look, same single-render Object Index mask) but caps the
# sample count; with OIDN denoising 8 samples is a usable draft of a CLEVR image.
PREVIEW_SAMPLES = 8


class RenderDeviceError(RuntimeError):
    """The requested render device (e.g. 'cuda') does not exist on this machine."""


@dataclass(frozen=True)
class RenderSettings:
    """How to render; the image size comes from `Scene.image_size`.

    engine: 'CYCLES' (default, the engine for datasets: CLEVR's floor gradient, soft cast
        shadows and metal reflections; the mask comes from the same render's Object Index pass),
        'BLENDER_EEVEE' or 'BLENDER_WORKBENCH' (these have no Object Index pass, so the mask
        comes from a second flat-colour Workbench render of the same geometry). Workbench is a
        preview engine: it shades with its studio light instead of the scene's lights, so its
        floor has no gradient, objects cast no shadows from the scene's lights (only faint ones
        from the studio light) and metal reflects nothing of the scene; not for datasets meant
        to look like CLEVR (`benchmarks/bench_look.py` measures each engine).
    samples: samples per pixel, 1–4096 (Cycles samples, EEVEE TAA samples; Workbench ignores it).
    denoise: OpenImageDenoise on the Cycles result (runs on the CPU).
    device: 'auto' (OptiX, then CUDA, then HIP, else CPU), 'cpu', or an explicit GPU backend,
        which raises `RenderDeviceError` when absent — never a silent CPU fallback.
    preview: draft quality — Cycles with at most PREVIEW_SAMPLES samples (8).
    seed: Cycles' sampling seed, so a re-render of a scene file is reproducible.
    threads: CPU render threads; 0 lets Blender use every core.
    """

    engine: str = "CYCLES"
    samples: int = 64
    denoise: bool = True
    device: str = "auto"
    preview: bool = False
    seed: int = 0
    threads: int = 0

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"unknown render engine {self.engine!r}; expected one of {ENGINES}")
        if not _is_int(self.samples) or not 1 <= self.samples <= MAX_SAMPLES:
            raise ValueError(f"samples={self.samples!r}; expected an integer in 1–{MAX_SAMPLES}")
        if self.device not in DEVICES:
            raise ValueError(f"unknown render device {self.device!r}; expected one of {DEVICES}")
        if self.engine != "CYCLES" and self.device not in ("auto", "cpu"):
            raise ValueError(
                f"device {self.device!r} only applies to CYCLES; {self.engine} renders through "
                "OpenGL — use device='auto'"
            )
        if not _is_int(self.seed) or not 0 <= self.seed < 2**31:
            raise ValueError(f"seed={self.seed!r}; expected an integer in 0–{2**31 - 1}")
        if not _is_int(self.threads) or not 0 <= self.threads <= 1024:
            raise ValueError(f"threads={self.threads!r}; expected an integer ≥ 0 (0 = all cores)")
        if not isinstance(self.denoise, bool) or not isinstance(self.preview, bool):
            raise ValueError(f"denoise={self.denoise!r}, preview={self.preview!r}; expected booleans")

    @property
    def effective_samples(self) -> int:
        """The sample count actually rendered (capped in preview mode)."""
        return min(self.samples, PREVIEW_SAMPLES) if self.preview else self.samples

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RenderSettings":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown render setting(s) {unknown}; expected keys among {sorted(known)}")
        return cls(**data)


@dataclass(frozen=True)
class RenderResult:
    """What one `Renderer.render` call wrote.

    pixel_counts: mask_id → visible pixels in the mask, for every object of the scene
        (0 when hidden) and any label present that no object has; background (0) is not a key.
    seconds: wall time of the render call itself (Blender's render, not the file writing).
    device: the device actually used ('cpu', 'cuda', 'optix', 'hip', or 'opengl' for
        EEVEE/Workbench).
    """

    image_path: str
    mask_path: str
    pixel_counts: dict[int, int]
    seconds: float
    device: str
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
