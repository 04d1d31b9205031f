"""Checkpoint files: atomic writes, compatibility checks, RNG states, loading a trained model.

A checkpoint is a `torch.save`d dict of plain types and tensors only (so it loads with
`weights_only=True`):

    format       1
    model_name   the registry name of the model (`model.name`)
    config       `config_to_dict(model.config)`
    model        the model's state_dict (DDP wrappers removed)
    optimizers   {name: optimizer.state_dict()}
    schedulers   {name: scheduler.state_dict()}
    step         optimisation steps done (train_step calls)
    rng          python / numpy / torch CPU / CUDA generator states
    weights_info the model's `weights_info` (pretrained-weights provenance, DESIGN.md §4) or None
    extra        anything the trainer adds (data position, world size)
"""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.config import config_to_dict

logger = logging.getLogger(__name__)

__all__ = [
    "FORMAT", "save_checkpoint", "read_checkpoint", "check_compatible", "load_model",
    "rng_states", "restore_rng_states",
]

FORMAT = 1
# Config fields that say how long a run is, not what it trains: a resumed run may extend them.
RUN_LENGTH_KEYS = ("max_steps",)


def save_checkpoint(payload: dict, path: str | os.PathLike) -> Path:
    """Write `payload` to `path` atomically: a temporary file in the same folder, then os.replace.

    A crash mid-write leaves the previous file at `path` intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The checkpoint dict at `path`, tensors on the CPU; FileNotFoundError / ValueError if unusable."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError) as exc:  # truncated, damaged or not a torch file
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"checkpoint {path} ({path.stat().st_size} bytes) cannot be read: {first}; is it "
                         "truncated (a copy cut short, a full disk) or not a torch checkpoint?") from exc
    except Exception as exc:  # weights_only refuses pickled objects: not one of ours
        if type(exc).__name__ != "UnpicklingError":
            raise
        raise ValueError(f"{path} is not a gazelab checkpoint: {str(exc).splitlines()[0]}") from exc
    if not isinstance(ckpt, dict) or "model_name" not in ckpt or "model" not in ckpt:
        raise ValueError(f"{path} is not a gazelab checkpoint (expected a dict with model_name, config, model)")
    return ckpt


def check_compatible(ckpt: dict, model: Any, source: str = "checkpoint") -> None:
    """ValueError naming both sides if `ckpt` was written by another model name or config.

    Fields in RUN_LENGTH_KEYS (`max_steps`) may differ: resuming a run to train it longer is allowed.
    """
    name = getattr(model, "name", type(model).__name__)
    if ckpt["model_name"] != name:
        raise ValueError(f"{source} holds model {ckpt['model_name']!r}, but the model to load into is {name!r}")
    config = {k: v for k, v in config_to_dict(model.config).items() if k not in RUN_LENGTH_KEYS}
    saved = {k: v for k, v in (ckpt.get("config") or {}).items() if k not in RUN_LENGTH_KEYS}
    if saved != config:
        keys = sorted(set(config) | set(saved or {}))
        diffs = [f"{k}: checkpoint {(saved or {}).get(k, '<missing>')!r} vs model {config.get(k, '<missing>')!r}"
                 for k in keys if (saved or {}).get(k, "<missing>") != config.get(k, "<missing>")]
        raise ValueError(f"{source} of {name!r} was trained with another config: " + "; ".join(diffs))


def load_model(path: str | os.PathLike, model: Any) -> dict:
    """Load the weights of checkpoint `path` into `model` (after checking name and config).

    Returns the checkpoint dict (for its step, weights_info, ...). Optimisers are not touched.
    """
    ckpt = read_checkpoint(path)
    check_compatible(ckpt, model, source=f"checkpoint {path}")
    model.load_state_dict(ckpt["model"])
    return ckpt


def rng_states() -> dict:
    """The states of every random generator training may draw from, as plain types and tensors."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": keys.tolist(), "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng_states(states: dict) -> None:
    """Set every generator from `rng_states()` output."""
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    n = states["numpy"]
    np.random.set_state((n["kind"], np.asarray(n["keys"], dtype=np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        if len(states["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states["cuda"])
        else:
            logger.warning("checkpoint holds %d CUDA RNG states but %d devices are visible; CUDA RNG not restored",
                           len(states["cuda"]), torch.cuda.device_count())
