"""Checkpoint files: atomic writes, compatibility checks, RNG states, loading a trained model.

A checkpoint is a `torch.save`d dict of plain types and tensors only (so it loads with
`weights_only=True`):

    format       1
    model_name   the registry name of the model (`model.name`)
    config       `config_to_dict(model.config)`
    model        the model's state_dict (DDP wrappers removed), less its frozen backbones
    frozen       {module path: {"weights_info", "keys", "sha256"}}: the frozen parameters of each
                 pretrained backbone (a `models.backbones` module) left out of `model`, the
                 weights they are rebuilt from, and a digest of their values (see `model_state`)
    precision    the trainer's {"mode": "bf16"|"fp16"|"fp32", "scaler": GradScaler state or None}
    optimizers   {name: optimizer.state_dict()}
    schedulers   {name: scheduler.state_dict()}
    step         optimisation steps done (train_step calls)
    hooks        {hook key: state} of the trainer's hooks that have state (`models/hooks.py`), e.g.
                 the losses since the last log row and the validation results; absent in older
                 checkpoints, whose hooks then start afresh
    rng          python / numpy / torch CPU / CUDA generator states
    weights_info the model's `weights_info` (pretrained-weights provenance, DESIGN.md §4) or None
    extra        anything the trainer adds (data position, world size)
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from models.backbones import WeightsUnavailable
from models.config import config_to_dict

logger = logging.getLogger(__name__)

__all__ = [
    "FORMAT", "save_checkpoint", "read_checkpoint", "check_compatible", "load_model",
    "model_state", "load_model_state", "frozen_backbones", "rng_states", "restore_rng_states",
]

FORMAT = 1
# Config fields that say how long a run is, not what it trains: a resumed run may extend them.
RUN_LENGTH_KEYS = ("max_steps", "max_epochs")


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
    # A field added after the checkpoint was written is absent from it: the checkpoint was trained
    # with that field's default behaviour, so a model at the default is the same model.
    defaults = config_to_dict(type(model.config)())
    for key in set(config) - set(saved):
        if config[key] == defaults.get(key, object()):
            saved[key] = config[key]
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
    load_model_state(model, ckpt, source=f"checkpoint {path}")
    return ckpt


def frozen_backbones(model: nn.Module) -> dict[str, nn.Module]:
    """{module path: module} of the pretrained backbones in `model` — modules of `models.backbones`,
    which record their weights in `weights_info` and rebuild them with `reload_weights` — that
    have parameters which do not train (requires_grad False)."""
    return {path: module for path, module in model.named_modules()
            if type(module).__module__ == "models.backbones" and callable(getattr(module, "reload_weights", None))
            and any(not p.requires_grad for p in module.parameters())}


def model_state(model: nn.Module) -> tuple[dict, dict]:
    """(`model.state_dict()` less the frozen parameters of its backbones, the record of them).

    A frozen pretrained feature extractor (a perceptual loss's VGG) is most of some models' weights
    but never changes: checkpoints record where it comes from instead (`weights_info`, e.g. the
    ImageNet file or "random") and a SHA-256 of its values, and `load_model_state` rebuilds it.
    """
    state = model.state_dict()
    record = {}
    for path, module in frozen_backbones(model).items():
        prefix = f"{path}." if path else ""
        keys = [prefix + name for name, p in module.named_parameters() if not p.requires_grad]
        record[path] = {"weights_info": dict(module.weights_info), "keys": keys,
                        "sha256": _digest({key: state[key] for key in keys})}
        for key in keys:
            del state[key]
    return state, record


def load_model_state(model: nn.Module, ckpt: dict, source: str = "checkpoint", lazy: bool = False) -> None:
    """Load `ckpt["model"]` into `model`, with the frozen backbones it left out rebuilt from their
    recorded weights (a backbone whose weights already match is kept as it is).

    `lazy`: rebuild a backbone that does not match only when it first runs (forward), so a model
    used for something that never runs it (an editor's loss network, at edit time) loads without
    those weights. Otherwise they are rebuilt now; `WeightsUnavailable` / `FileNotFoundError` if
    their source is missing. ValueError if a rebuilt backbone differs from the one trained with,
    or if the state's keys do not fit the model.
    """
    record = ckpt.get("frozen") or {}
    modules = dict(model.named_modules())
    left_out: set[str] = set()
    for path, entry in record.items():
        module = modules.get(path)
        if module is None or not callable(getattr(module, "reload_weights", None)):
            raise ValueError(f"{source} left out the frozen backbone {path!r} ({entry['weights_info']}), but "
                             f"{type(model).__name__} has no backbone there to rebuild it in")
        left_out.update(entry["keys"])
        if _digest(_params(module, path, entry["keys"])) == entry["sha256"]:
            continue
        if lazy:
            _rebuild_when_run(module, path, entry, source)
        else:
            _rebuild(module, path, entry, source)
    missing, unexpected = model.load_state_dict(ckpt["model"], strict=False)
    lacking = sorted(set(missing) - left_out)
    if lacking or unexpected:
        raise ValueError(f"{source} does not fit {type(model).__name__}: missing keys {lacking[:6]}, "
                         f"unexpected keys {sorted(unexpected)[:6]}")


def _rebuild(module: nn.Module, path: str, entry: dict, source: str) -> None:
    """Reload `module`'s recorded weights, keeping its trained parameters; check the frozen ones."""
    weights = entry["weights_info"]["source"]
    trained = {name: p.detach().clone() for name, p in module.named_parameters() if p.requires_grad}
    try:
        module.reload_weights(weights)
    except (WeightsUnavailable, FileNotFoundError) as exc:  # say why the weights are needed
        raise type(exc)(f"{source} leaves out the frozen backbone {path!r}, to be rebuilt from its weights "
                        f"{weights!r}: {exc}") from exc
    with torch.no_grad():
        for name, value in trained.items():
            module.get_parameter(name).copy_(value)
    found = _digest(_params(module, path, entry["keys"]))
    if found != entry["sha256"]:
        raise ValueError(f"{source}: the frozen backbone {path!r} rebuilt from {weights!r} is not the one it was "
                         f"trained with (SHA-256 {found[:12]}… vs {entry['sha256'][:12]}…): has the file "
                         f"{entry['weights_info'].get('file') or weights!r} changed, or (random weights) torch's "
                         "initialisation?")
    logger.info("%s: frozen backbone %r rebuilt from %s", source, path, weights)


def _rebuild_when_run(module: nn.Module, path: str, entry: dict, source: str) -> None:
    def rebuild(mod, args):
        _rebuild(mod, path, entry, source)
        handle.remove()

    handle = module.register_forward_pre_hook(rebuild)


def _params(module: nn.Module, path: str, keys: list[str]) -> dict[str, torch.Tensor]:
    prefix = f"{path}." if path else ""
    return {key: module.get_parameter(key[len(prefix):]) for key in keys}


def _digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the names, shapes, dtypes and bytes of `tensors` (on any device)."""
    digest = hashlib.sha256()
    for key in sorted(tensors):
        value = tensors[key].detach().cpu().contiguous()
        digest.update(f"{key}{tuple(value.shape)}{value.dtype}".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


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
