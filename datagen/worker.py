"""The worker function that renders one pair, run in local worker processes or as a Ray task.

Each worker process keeps one Blender session (`Renderer`) for every pair it renders; Y is
rendered by applying the edit as a diff to X's Blender scene, not by rebuilding it.
"""
from __future__ import annotations

import json
import logging
import os
import secrets
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datadir.files import temp_file_beside
from datadir.layout import relative_path
from datagen.blender.settings import RenderDeviceError
from datagen.blender.visibility import check_visibility
from datagen.generator_config import GeneratorConfig
from datagen.run_ownership import RunGone, RunToken, die_with_parent
from datagen.sampling import sample_pair
from datagen.splits import assign_split

log = logging.getLogger(__name__)

# The files of a complete pair, by pairs.csv column: (kind, side) in the dataset's layout. The
# rendered images come first; the scene file is written last and marks completion.
PAIR_FILES = {"x_image": ("image", "x"), "y_image": ("image", "y"), "x_mask": ("mask", "x"),
              "y_mask": ("mask", "y"), "scene": ("scene", "x")}
RENDERED = ("x_image", "y_image", "x_mask", "y_mask")


def pair_files(pair_id: str) -> dict[str, str]:
    """{pairs.csv column: path relative to the dataset} of a rendered pair's files."""
    return {column: relative_path(pair_id, kind, side) for column, (kind, side) in PAIR_FILES.items()}

_RENDERERS: dict[Any, Any] = {}  # one Blender session per worker process, keyed by settings


@dataclass
class PairOutcome:
    """What a worker sends back: a pairs.csv row, or an error."""

    pair_id: str
    row: dict[str, Any] | None = None
    error: str | None = None
    fatal: bool = False  # e.g. the requested GPU does not exist: no point in going on
    resampled: int = 0
    resample_reasons: list[str] = field(default_factory=list)
    device: str = ""
    seconds: float = 0.0


def prepare_worker_process(parent_pid: int | None = None) -> None:
    """Initializer of spawned workers: end with the parent `parent_pid` (if given), and drop
    Blender's script folders from the inherited sys.path.

    A parent that imported bpy (a notebook, a test session) has Blender's bundled
    `scripts/modules` on sys.path, and its `bpy` folder would shadow the real module here.
    """
    if parent_pid is not None:
        die_with_parent(parent_pid)
    if "bpy" not in sys.modules:
        sys.path[:] = [p for p in sys.path if not _is_blender_script_folder(p)]


def _is_blender_script_folder(path: str) -> bool:
    parts = Path(path).parts
    return "scripts" in parts and ("bpy" in parts or "blender" in parts)


def pair_id_of(index: int) -> str:
    return f"{index:06d}"


def render_pair(config: GeneratorConfig, out: str, index: int, run: RunToken | None = None) -> PairOutcome:
    """Sample pair `index`, render X and Y with masks, check visibility, resample if needed.

    Never raises for a failed pair: the error comes back in the outcome so the caller can
    retry it or record it. Images are rendered to temporary names and renamed into place only
    once the pair passes, then the scene file marks it complete; with `run`, each rename
    happens only while that run still holds the dataset (else nothing is written). The pair's
    files are removed when it fails.
    """
    pair_id = pair_id_of(index)
    root = Path(out)
    paths = {column: root / rel for column, rel in pair_files(pair_id).items()}
    staged = {column: _staging_name(paths[column]) for column in RENDERED}
    start = time.perf_counter()
    try:
        renderer = _renderer(config)
        reasons: list[str] = []
        for attempt in range(config.max_attempts):
            spec = sample_pair(
                config.seed, index, config.properties, config.placement, config.edit_mix,
                config.image_size, attempt=attempt,
            )
            result_x = renderer.render(spec.scene_x, staged["x_image"], staged["x_mask"])
            result_y = renderer.render(spec.scene_y, staged["y_image"], staged["y_mask"])
            edit = spec.edit.to_dict()
            problems = check_visibility(
                spec.scene_x, spec.scene_y, edit, result_x.pixel_counts, result_y.pixel_counts,
                min_pixels_at_320x240=config.min_visible_pixels,
            )
            if not problems:
                break
            reasons.append(problems[0])
        else:
            raise RuntimeError(f"no sample passed the visibility check in {config.max_attempts} attempts: {reasons[-1]}")
        record = spec.to_json_dict(config.render.to_dict())
        record.update(
            pair_id=pair_id,
            visibility={
                "x": {str(k): int(v) for k, v in result_x.pixel_counts.items()},
                "y": {str(k): int(v) for k, v in result_y.pixel_counts.items()},
            },
            device=result_x.device,
        )
        for column, tmp in staged.items():
            _check(run)
            os.replace(tmp, paths[column])
        _write_json(paths["scene"], record, run)
        return PairOutcome(
            pair_id, row=_row(config, index, edit), resampled=len(reasons), resample_reasons=reasons,
            device=result_x.device, seconds=time.perf_counter() - start,
        )
    except RunGone as exc:  # the files may now be another run's: touch none of them
        return PairOutcome(pair_id, error=str(exc))
    except RenderDeviceError as exc:
        _remove_if_current(paths.values(), run)
        return PairOutcome(pair_id, error=str(exc), fatal=True)
    except Exception as exc:  # noqa: BLE001 — one bad pair must not end a 60,000-pair run
        log.exception("pair %s failed", pair_id)
        _remove_if_current(paths.values(), run)
        return PairOutcome(pair_id, error=f"{type(exc).__name__}: {exc}", seconds=time.perf_counter() - start)
    finally:
        _remove(staged.values())


def pair_row(root: Path, config: GeneratorConfig, index: int) -> dict[str, Any]:
    """The pairs.csv row of a pair whose files are complete on disk (read from its scene file)."""
    scene_path = root / pair_files(pair_id_of(index))["scene"]
    try:
        edit = json.loads(scene_path.read_text(encoding="utf-8"))["edit"]
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"scene file {scene_path} is unreadable ({exc}); delete it to re-render the pair") from exc
    return _row(config, index, edit)


def _row(config: GeneratorConfig, index: int, edit: dict[str, Any]) -> dict[str, Any]:
    pair_id = pair_id_of(index)
    return {
        "pair_id": pair_id,
        "split": assign_split(config.seed, index, config.splits),
        "source": "clevr",
        "edit_type": edit["type"],
        "n_edited": len(edit["object_ids"]),
        **pair_files(pair_id),
    }


def _renderer(config: GeneratorConfig):
    key = config.render
    if key not in _RENDERERS:
        from datagen.blender.renderer import Renderer  # imports bpy: only in workers

        for old in _RENDERERS.values():
            old.close()
        _RENDERERS.clear()
        _RENDERERS[key] = Renderer(
            config.render, shapes=config.properties.shapes, materials=config.properties.materials
        )
    return _RENDERERS[key]


def _staging_name(path: Path) -> Path:
    """A hidden name beside `path` for a render not yet committed: `.NAME.….tmp`, the pattern of
    leftovers that resume deletes and `dataset validate` reports."""
    return path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")


def _write_json(path: Path, data: dict[str, Any], run: RunToken | None) -> None:
    fd, tmp = temp_file_beside(path)  # the dataset's usual mode (mkstemp's would be 0600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        _check(run)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _check(run: RunToken | None) -> None:
    if run is not None:
        run.check()


def _remove_if_current(paths, run: RunToken | None) -> None:
    """Remove a failed pair's files, unless its run is gone (they may be another run's now)."""
    if run is None or run.is_current():
        _remove(paths)


def _remove(paths) -> None:
    for path in paths:
        Path(path).unlink(missing_ok=True)
