"""Everything that defines a rendered dataset, validated, picklable for worker processes."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from datagen.blender.settings import RenderSettings
from datagen.edits import EditMix, parse_edit_mix
from datagen.placement import PlacementConfig, feasibility_problems
from datagen.properties import Properties
from datagen.splits import parse_splits

MIN_SIDE, MAX_SIDE = 16, 8192
# Render settings that change where or how fast a pair renders, not what it shows.
NOT_IDENTITY = ("device", "threads")


@dataclass(frozen=True)
class GeneratorConfig:
    """n_pairs pairs of CLEVR-style scenes; the rest of the fields define the dataset's content."""

    n_pairs: int
    seed: int
    properties: Properties
    placement: PlacementConfig
    edit_mix: EditMix
    render: RenderSettings
    splits: tuple[float, float, float] = (0.94, 0.03, 0.03)
    max_attempts: int = 10  # samples per pair before it counts as failed (visibility checks)
    min_visible_pixels: int = 200  # per object at 320×240, scaled with the image area

    @classmethod
    def from_options(
        cls,
        n_pairs: int,
        width: int = 320,
        height: int = 240,
        samples: int = 64,
        seed: int = 0,
        edit_mix: str = "add=1,remove=1,move=1,attribute=1",
        objects: str | tuple[int, int] = "3-10",
        splits: str = "0.94,0.03,0.03",
        properties_file: str | None = None,
        device: str = "auto",
        preview: bool = False,
        engine: str = "CYCLES",
        denoise: bool = True,
        max_attempts: int = 10,
    ) -> "GeneratorConfig":
        """Build and check a config from CLI-style values; a ValueError names any bad value."""
        if not isinstance(n_pairs, int) or n_pairs < 1:
            raise ValueError(f"--pairs {n_pairs!r}: expected an integer >= 1")
        for name, value in (("--width", width), ("--height", height)):
            if not isinstance(value, int) or not MIN_SIDE <= value <= MAX_SIDE:
                raise ValueError(f"{name} {value!r}: expected an integer in {MIN_SIDE}-{MAX_SIDE} pixels")
        if not isinstance(seed, int) or not 0 <= seed < 2**31:
            raise ValueError(f"--seed {seed!r}: expected an integer in 0-{2**31 - 1}")
        if not isinstance(max_attempts, int) or max_attempts < 1:
            raise ValueError(f"max_attempts {max_attempts!r}: expected an integer >= 1")
        low, high = parse_objects(objects)
        properties = Properties.load(properties_file) if properties_file else Properties.clevr()
        placement = PlacementConfig(min_objects=low, max_objects=high, image_size=(width, height))
        problems = feasibility_problems(placement, properties)
        if problems:
            raise ValueError(f"impossible placement: {problems[0]}")
        render = RenderSettings(engine=engine, samples=samples, denoise=denoise, device=device, preview=preview, seed=seed)
        return cls(
            n_pairs=n_pairs, seed=seed, properties=properties, placement=placement,
            edit_mix=parse_edit_mix(edit_mix), render=render, splits=parse_splits(splits), max_attempts=max_attempts,
        )

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.placement.image_size)  # type: ignore[return-value]

    def identity(self) -> dict[str, Any]:
        """The settings stored in dataset.json; a resume must match them exactly."""
        render = {k: v for k, v in self.render.to_dict().items() if k not in NOT_IDENTITY}
        return {
            "seed": self.seed,
            "image_size": list(self.image_size),
            "properties": self.properties.to_dict(),
            "placement": self.placement.to_dict(),
            "edit_mix": self.edit_mix.to_dict(),
            "render": render,
            "splits": list(self.splits),
            "max_attempts": self.max_attempts,
            "min_visible_pixels": self.min_visible_pixels,
        }

    def with_threads(self, threads: int) -> "GeneratorConfig":
        return replace(self, render=replace(self.render, threads=int(threads)))


def parse_objects(objects: str | tuple[int, int]) -> tuple[int, int]:
    """'3-10' (or '5') → (3, 10): the range of objects per scene."""
    if isinstance(objects, tuple):
        low, high = objects
    else:
        parts = str(objects).split("-")
        try:
            low, high = (int(parts[0]), int(parts[-1])) if len(parts) <= 2 else (None, None)
        except ValueError:
            low = high = None
        if low is None:
            raise ValueError(f"--objects {objects!r}: expected a range like 3-10")
    if not 1 <= low <= high <= 255:
        raise ValueError(f"--objects {objects!r}: expected 1 <= min <= max <= 255")
    return low, high
