"""Training sweeps: a list of runs of one model (ablations, seeds, settings) from one YAML file.

    kind: editor                  # or predictor
    name: salggan                 # the registered model
    preset: paper                 # every run's preset unless it names its own
    steps: 200000                 # optional, every run's (else the config's max_steps)
    overrides: {}                 # config overrides shared by every run
    runs:
      - {name: full}
      - {name: no_dl, ablation: no_dl}           # the model's ABLATIONS[no_dl] on top
      - {name: lr_half, overrides: {lr: 1.0e-4}}

Each run trains into OUT/<run name>/ (its config and checkpoints there, as `gazelab train` does);
a run that already reached its step count is skipped, one cut short is resumed, so rerunning a
sweep finishes it. `gazelab evaluate --runs OUT` then scores every run of the sweep.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from models.base import import_models, registry_of
from models.checkpoint import read_checkpoint
from models.runs import train

logger = logging.getLogger(__name__)

__all__ = ["load_sweep", "run_sweep"]

_RUN_KEYS = {"name", "ablation", "preset", "overrides", "steps", "seed"}
_TOP_KEYS = {"kind", "name", "preset", "steps", "overrides", "runs", "seed"}
_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def load_sweep(path) -> dict:
    """The sweep file at `path`, checked: ValueError naming the key or run that is wrong."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"sweep file {path} does not exist")
    spec = yaml.safe_load(path.read_text()) or {}
    if not isinstance(spec, dict):
        raise ValueError(f"sweep file {path} must hold a mapping with kind, name and runs")
    unknown = sorted(set(spec) - _TOP_KEYS)
    if unknown:
        raise ValueError(f"sweep file {path}: unknown key(s) {unknown}; expected some of {sorted(_TOP_KEYS)}")
    if spec.get("kind") not in ("editor", "predictor"):
        raise ValueError(f"sweep file {path}: kind must be 'editor' or 'predictor', got {spec.get('kind')!r}")

    import_models()
    cls = registry_of(spec["kind"]).get(spec.get("name"))
    runs = spec.get("runs")
    if not isinstance(runs, list) or not runs:
        raise ValueError(f"sweep file {path}: runs must be a non-empty list of {{name: ..., ...}}")
    seen = set()
    for index, run in enumerate(runs):
        if not isinstance(run, dict) or not _RUN_NAME.match(str(run.get("name", ""))):
            raise ValueError(f"sweep file {path}: runs[{index}] needs a name of letters, digits, '_', '.', '-'; "
                             f"got {run!r}")
        bad = sorted(set(run) - _RUN_KEYS)
        if bad:
            raise ValueError(f"sweep file {path}: run {run['name']!r} has unknown key(s) {bad}; expected some of "
                             f"{sorted(_RUN_KEYS)}")
        if run["name"] in seen:
            raise ValueError(f"sweep file {path}: run name {run['name']!r} appears twice")
        seen.add(run["name"])
        if run.get("ablation") is not None:
            ablation_overrides(cls, run["ablation"])  # unknown ablations fail before anything trains
    return spec


def ablation_overrides(cls, ablation: str) -> dict:
    """The config overrides of the model class's ablation `ablation` (its ABLATIONS table)."""
    import sys

    table = getattr(cls, "ABLATIONS", None) or getattr(sys.modules[cls.__module__], "ABLATIONS", None) or {}
    if ablation not in table:
        known = ", ".join(sorted(table)) or "none"
        raise ValueError(f"{getattr(cls, 'name', cls.__name__)} has no ablation {ablation!r}; its ablations: {known}")
    return dict(table[ablation])


def run_sweep(spec: dict, data_dir, out_dir, *, predictor_ckpt=None, preset: str | None = None,
              steps: int | None = None, device: str = "auto", extra_overrides: dict | None = None,
              progress: bool = True, echo: Callable[[str], Any] = logger.info) -> list[dict]:
    """Train every run of `spec` (from `load_sweep`) into `out_dir`/<run name>; `preset`, `steps` and
    `extra_overrides` (e.g. a random backbone) apply to every run on top of the file. Returns one
    {"name", "status" (trained | resumed | done), "checkpoint", "step"} per run."""

    out = Path(out_dir)
    results = []
    for run in spec["runs"]:
        folder = out / run["name"]
        run_steps = steps or run.get("steps") or spec.get("steps")
        last = folder / "checkpoints" / "last.pt"
        status = "trained"
        if last.is_file():
            reached = int(read_checkpoint(last).get("step", 0))
            if run_steps is not None and reached >= int(run_steps):
                echo(f"run {run['name']}: done (step {reached}), skipped")
                results.append({"name": run["name"], "status": "done", "checkpoint": str(last), "step": reached})
                continue
            status = "resumed"
        overrides = {**(spec.get("overrides") or {}), **(run.get("overrides") or {}), **(extra_overrides or {})}
        if run.get("ablation"):
            overrides = {**ablation_overrides(registry_of(spec["kind"]).get(spec["name"]), run["ablation"]),
                         **overrides}
        echo(f"run {run['name']}: {spec['name']}" + (f", ablation {run['ablation']}" if run.get("ablation") else "")
             + f" → {folder}")
        result = train(spec["kind"], spec["name"], data_dir, folder, preset=preset or run.get("preset") or
                       spec.get("preset", "paper"), overrides=overrides or None, predictor_ckpt=predictor_ckpt,
                       steps=run_steps, device=device, resume=status == "resumed",
                       seed=int(run.get("seed", spec.get("seed", 0))), progress=progress, echo=echo)
        results.append({"name": run["name"], "status": status, "checkpoint": result["checkpoint"],
                        "step": result["step"]})
    return results
