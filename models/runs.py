"""Training, prediction and editing runs as functions: what `gazelab train|predict|edit` and the demo call.

    train("predictor", "salgan", "data/clevr", "runs/salgan", preset="tiny", steps=200)
    train("editor", "gazeshiftnet", "data/clevr", "runs/gsn", predictor_ckpt="runs/salgan/checkpoints/last.pt")
    predict_images("runs/salgan/checkpoints/last.pt", "photos/", "predictions/")
    edit_image("runs/gsn/checkpoints/last.pt", "in.png", "out.png", mask="mask.png", strength=0.5)

Every run writes what its outputs were made with (weights provenance, DESIGN.md §4) next to them,
and says so when a backbone was random.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import logging
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import yaml

from datadir import IMAGE_SUFFIXES, find_images
from datadir.maps import save_map
from models.arrays import read_density, read_image, read_mask
from models.base import build_model, import_models, load_predictor, load_trained, predictor_provenance, registry_of
from models.checkpoint import read_checkpoint
from models.data import PairDataset
from models.hooks import HookBase, ValidationHook
from models.registry import EDITORS
from models.saliency.center_bias import CenterBias
from models.targets import select_gazeshift_mask
from models.trainer import Trainer, resolve_device

logger = logging.getLogger(__name__)

__all__ = ["train", "predict_images", "edit_image", "edit_dataset", "load_editor_for_editing", "iter_pair_edits",
           "iter_pair_parameters", "discover_editor_runs",
           "load_saliency_function",
           "describe_weights"]

DEFAULT_STEPS = 10_000  # for configs that name no step count of their own


def train(kind: str, name: str, data_dir: str | os.PathLike, out_dir: str | os.PathLike, *, preset: str = "paper",
          config: str | os.PathLike | dict | None = None, overrides: dict | None = None,
          predictor_ckpt: str | os.PathLike | None = None, steps: int | None = None, batch_size: int | None = None,
          device: str = "auto", resume: bool = False, seed: int = 0, val_every: int | None = None,
          ckpt_every: int | None = None, keep_checkpoints: int = 3, log_every: int = 10, progress: bool = True,
          num_workers: int = 0, bf16: bool = True, echo: Callable[[str], Any] = logger.info) -> dict[str, Any]:
    """Train the `kind` ("predictor" / "editor") `name` on the dataset at `data_dir` into `out_dir`.

    Config: the paper defaults → `preset` → `config` (YAML path or dict) → `overrides`; when
    resuming without `config`, the run's own checkpoints/config.yaml. Steps and batch size default
    to the config's `max_steps` / `batch_size` where it has them. An out_dir that already holds a
    checkpoint is continued only with `resume` (else ValueError: nothing is overwritten). A
    checkpoint every `ckpt_every` steps (default: a tenth of the run, at most 1000); the newest
    `keep_checkpoints` step files are kept (0: all) besides last.pt. Editors
    need `predictor_ckpt`, a trained saliency predictor. Returns {"out_dir", "checkpoint", "step",
    "losses", "validation", "weights_info"}.
    """
    if int(os.environ.get("RANK", "0")) != 0:
        echo = logger.debug  # under torchrun only rank 0 talks
    out = Path(out_dir)
    last = out / "checkpoints" / "last.pt"
    if last.is_file() and not resume:
        raise ValueError(f"{out} already holds a training run ({last}); pass --resume to continue it "
                         "or choose another --out")
    cls = registry_of(kind).get(name)
    if kind == "editor" and predictor_ckpt is None:
        raise ValueError(f"training the editor {name!r} needs a saliency predictor: pass --predictor CKPT "
                         "(train one with `gazelab train predictor salgan --data DIR`)")
    overrides = dict(overrides or {})
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    if "backbone_weights" in overrides and "backbone_weights" not in fields:
        echo(f"{name} has no pretrained backbone: the backbone weights option does not apply to it")
        del overrides["backbone_weights"]
    if steps is not None and "max_steps" in fields:
        overrides["max_steps"] = steps  # learning-rate schedules follow the run's real length
    saved = out / "checkpoints" / "config.yaml"
    if resume and config is None and saved.is_file():
        config, preset = saved, "paper"  # the saved config is complete: no preset on top of it
    torch.manual_seed(seed)  # the same initial weights on every run and on every DDP rank
    model = build_model(kind, name, preset, _merged_config(config, overrides))
    if kind == "editor":
        predictor = load_predictor(predictor_ckpt)
        model.attach_predictor(predictor, predictor_provenance(predictor))
    for line in describe_weights(model.weights_info):
        echo(line)
    data = model.make_dataset(data_dir, "train")
    val_data = None
    if callable(getattr(model, "validation_step", None)):
        try:
            val_data = model.make_dataset(data_dir, "val")
        except ValueError as exc:
            logger.info("no validation during training: %s", exc)
    cfg = model.config
    batch_size = batch_size or int(getattr(cfg, "batch_size", 1))
    steps = run_length(cfg, len(data), batch_size, steps, echo)
    every = max(steps // 10, 1)  # a loss line every tenth of the run, on a logged step
    log_every = min(log_every, every)
    every = -(-every // log_every) * log_every
    trainer = Trainer(model, data, out_dir=out, max_steps=steps, batch_size=batch_size, device=device, bf16=bf16,
                      seed=seed, resume=resume, val_data=val_data, val_every=val_every or max(steps // 10, 1),
                      ckpt_every=ckpt_every or max(min(steps // 10, 1000), 1), keep_checkpoints=keep_checkpoints,
                      log_every=log_every, progress=progress, num_workers=num_workers,
                      hooks=[LossLines(echo, every=every)])
    echo(f"training {kind} {name} ({len(data)} training items, batch {batch_size}) on {trainer.device} "
         f"from step {trainer.step} to {steps}; run folder {out}")
    losses = trainer.train()
    validator = trainer.hook(ValidationHook)
    validation = validator.history[-1] if validator is not None and validator.history else {}
    return {"out_dir": str(out), "checkpoint": str(last), "step": trainer.step, "losses": losses,
            "validation": validation, "weights_info": model.weights_info}


def run_length(config, n_items: int, batch_size: int, steps: int | None = None,
               echo: Callable[[str], Any] = logger.info) -> int:
    """Training steps: `steps` if given; else the config's `max_steps`; else its `max_epochs` (a
    paper that counts epochs, e.g. SaGIM's 100) × ceil(n_items / batch_size), said in a line; else
    DEFAULT_STEPS."""
    if steps:
        return int(steps)
    if getattr(config, "max_steps", None):
        return int(config.max_steps)
    if getattr(config, "max_epochs", None):
        found = int(config.max_epochs) * math.ceil(n_items / batch_size)
        echo(f"{config.max_epochs} epochs of {n_items} items at batch {batch_size}: {found} steps")
        return found
    return DEFAULT_STEPS


class LossLines(HookBase):
    """Echo a line of the latest logged losses every `every` steps (the bar shows them live)."""

    def __init__(self, echo: Callable[[str], Any], every: int):
        self.echo, self.every = echo, every

    def after_step(self) -> None:
        t = self.trainer
        if t.rank == 0 and (t.step % self.every == 0 or t.step == t.max_steps) and t.loss_history:
            row = t.loss_history[-1]
            values = ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k not in ("step", "seconds"))
            self.echo(f"step {t.step}/{t.max_steps}: {values}")


def predict_images(ckpt: str | os.PathLike, images: str | os.PathLike, out_dir: str | os.PathLike, *,
                   device: str = "auto") -> dict[str, Any]:
    """Saliency densities for an image file or every image in a folder: `<stem>.npy` (float32
    density) and `<stem>.png` (max-scaled view) in `out_dir`, plus `predictions.json`."""
    paths = _image_paths(images)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    predict, model_name, weights_info = load_saliency_function(ckpt, device)
    written = []
    for path in paths:
        density = predict(read_image(path))
        density = density / density.sum()
        save_map(out / f"{path.stem}.npy", density)
        save_map(out / f"{path.stem}.png", density)
        written.append(path.stem)
    info = {"model": model_name, "checkpoint": str(ckpt), "images": [str(p) for p in paths],
            "weights_info": weights_info}
    _write_json(out / "predictions.json", info)
    return {"out_dir": str(out), "count": len(written), "weights_info": weights_info}


def load_saliency_function(ckpt: str | os.PathLike, device: str = "auto"):
    """(predict, model name, weights_info) for a predictor checkpoint or a fitted centre bias (.json):
    predict(image) takes an (H, W, 3) float32 RGB array in [0, 1] and gives an (H, W) float64 map."""
    if Path(ckpt).suffix == ".json":  # a fitted centre bias (models/saliency/center_bias.py)

        bias = CenterBias.load(ckpt)
        return (lambda image: np.asarray(bias.predict(image.shape[:2]), np.float64)), "center_bias", {"fit": str(ckpt)}
    model = load_predictor(ckpt, resolve_device(device))
    dev = next(model.parameters()).device

    def predict(image: np.ndarray) -> np.ndarray:
        with torch.no_grad(), _too_small_for(model, image):
            tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32))[None].to(dev)
            return model.density(tensor)[0, 0].double().cpu().numpy()

    return predict, model.name, model.weights_info


def edit_image(ckpt: str | os.PathLike, image: str | os.PathLike, out: str | os.PathLike, *, name: str | None = None,
               mask: str | os.PathLike | None = None, target_map: str | os.PathLike | None = None,
               object_id: int | None = None, device: str = "auto", predictor_ckpt: str | os.PathLike | None = None,
               **options) -> dict[str, Any]:
    """Edit one image with the trained editor in `ckpt`; writes `out` (or `<out stem>_k.png` for K
    samples) and `<out stem>.json` (inputs, options, weights provenance). Returns the paths.

    Guidance: `mask` (a label or binary image; `object_id` picks one label) for mask editors,
    `target_map` (.npy density or an image) for target-map editors. `options` (strength, samples,
    direction, seed, sx, …) go to the editor's `edit`; one it does not take → ValueError. A lone
    image has no measured saliency map, so sx="measured" → ValueError (use `edit_dataset`).
    """
    suffix = Path(out).suffix.lower()
    if suffix and suffix not in IMAGE_SUFFIXES:  # refused before the editor runs, not after
        raise ValueError(f"--out {out}: unknown image format {suffix!r}; expected one of {', '.join(IMAGE_SUFFIXES)}")
    editor = load_editor_for_editing(ckpt, name, device, predictor_ckpt)
    picture = read_image(image)
    guidance = _guidance(editor, picture, mask, target_map, object_id, source=str(image))
    edited = _run_edit(editor, picture, guidance, options, where=f"the image {image}")
    paths = _write_edits(edited, Path(out))
    info = {"editor": editor.name, "checkpoint": str(ckpt), "image": str(image), "mask": _str(mask),
            "target_map": _str(target_map), "object_id": object_id, "options": options, "outputs": paths,
            "weights_info": editor.weights_info}
    _write_json(Path(out).with_suffix(".json"), info)
    return {"outputs": paths, "weights_info": editor.weights_info}


def edit_dataset(ckpt: str | os.PathLike, data_dir: str | os.PathLike, out_dir: str | os.PathLike, *,
                 split: str | None = "test", name: str | None = None, device: str = "auto",
                 predictor_ckpt: str | os.PathLike | None = None, **options) -> dict[str, Any]:
    """Edit the X image of every pair of `split` (None: all) into `out_dir/<pair_id>.png` (+ `edits.csv`, `edits.json`).

    Mask editors get the pair's edited objects (the scene's edit) or, failing that, the object
    `select_gazeshift_mask` picks; target-map editors get the pair's Y fixation map as the target
    (X should draw attention the way Y does). With the option sx="measured" (SalG-GAN) the
    editor's S_x is the pair's X fixation map (ValueError naming a pair that has none).
    """
    editor = load_editor_for_editing(ckpt, name, device, predictor_ckpt)
    pairs = PairDataset(data_dir, split=split, sides=("x", "y"), require_maps=False)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for index in range(len(pairs)):
        item = pairs[index]
        picture = item["x"].numpy().transpose(1, 2, 0)
        guidance = _pair_guidance(editor, item, index)
        if guidance is None:
            logger.warning("pair %s: no guidance (%s) for %s; skipped", item["pair_id"], editor.guidance, editor.name)
            continue
        edited = _run_edit(editor, picture, guidance, options, measured=_measured_map(item),
                           where=f"pair {item['pair_id']}")
        paths = _write_edits(edited, out / f"{item['pair_id']}.png")
        rows.append({"pair_id": item["pair_id"], "outputs": ";".join(paths)})
    if not rows:
        raise ValueError(f"no pair of split {split!r} in {data_dir} had the guidance {editor.name} needs ({editor.guidance})")
    import pandas as pd

    pd.DataFrame(rows).to_csv(out / "edits.csv", index=False)
    _write_json(out / "edits.json", {"editor": editor.name, "checkpoint": str(ckpt), "data": str(data_dir),
                                     "split": split, "options": options, "weights_info": editor.weights_info})
    return {"out_dir": str(out), "count": len(rows), "weights_info": editor.weights_info}


def iter_pair_edits(editor, data_dir: str | os.PathLike, split: str | None, *, skip=(), options: dict | None = None):
    """Edit the X image of each pair of `split` (None: all) with a loaded `editor`, timed the same
    way for every editor; yields (pair_id, outputs, seconds_or_reason).

    outputs: (K, H, W, 3) float32 RGB in [0, 1] (K = 1 unless `options` asks for samples), or None
    when the pair lacks the guidance the editor needs (then the third item says why). seconds: wall
    time of the editor's `edit` call alone (tensor in, tensor back on the CPU, so a GPU's work is
    included), after one untimed warm-up edit; file reads and writes are not included. Pairs whose
    ids are in `skip` are not edited.
    """
    import time

    pairs = PairDataset(data_dir, split=split, sides=("x", "y"), require_maps=False)
    options = dict(options or {})
    warmed = False
    for index in range(len(pairs)):
        if pairs.rows[index]["pair_id"] in skip:
            continue
        item = pairs[index]
        picture = item["x"].numpy().transpose(1, 2, 0)
        guidance = _pair_guidance(editor, item, index)
        if guidance is None:
            need = "an object mask of the edited objects" if editor.guidance == "mask" else "a target map (the Y map)"
            yield item["pair_id"], None, f"no guidance: {editor.name} needs {need}"
            continue
        measured, where = _measured_map(item), f"pair {item['pair_id']}"
        if not warmed:  # lazy initialisation (cuDNN autotuning, allocator) is not the method's cost
            _run_edit(editor, picture, guidance, options, measured=measured, where=where)
            warmed = True
        start = time.perf_counter()
        edited = _run_edit(editor, picture, guidance, options, measured=measured, where=where)
        seconds = time.perf_counter() - start
        images = edited[0] if edited.ndim == 5 else edited
        yield item["pair_id"], images.clamp(0, 1).numpy().transpose(0, 2, 3, 1).astype(np.float32), seconds


def iter_pair_parameters(editor, data_dir: str | os.PathLike, split: str | None, *, options: dict | None = None):
    """For an editor with scalar edit parameters (`edit_parameters`, `parameter_limits`: GazeShiftNet),
    the parameters it applies to the X image of each pair of `split` with the same guidance and
    options as `iter_pair_edits`: yields (pair_id, {name: value}); pairs without guidance are left out."""
    pairs = PairDataset(data_dir, split=split, sides=("x", "y"), require_maps=False)
    accepted = inspect.signature(editor.edit_parameters).parameters
    given = {k: v for k, v in (options or {}).items() if k in accepted and v is not None}
    device = next(editor.parameters()).device
    for index in range(len(pairs)):
        item = pairs[index]
        guidance = _pair_guidance(editor, item, index)
        if guidance is None:
            continue
        image = item["x"][None].float().to(device)
        guide = torch.from_numpy(np.ascontiguousarray(guidance))[None, None].float().to(device)
        values = editor.edit_parameters(image, guide, **given)
        yield item["pair_id"], {name: float(value[0]) for name, value in values.items()}


def discover_editor_runs(runs_dir: str | os.PathLike) -> list[str]:
    """`NAME=CHECKPOINT` for every editor run under `runs_dir` (`*/checkpoints/last.pt`, recursively),
    named by its run folder relative to `runs_dir` ('/' → '.'), as `gazelab evaluate --methods` takes
    them; predictor runs are left out. ValueError when there is none."""

    root = Path(runs_dir)
    if not root.is_dir():
        raise ValueError(f"--runs {root} is not a folder")
    import_models()
    found = []
    for last in sorted(root.glob("**/checkpoints/last.pt")):
        if read_checkpoint(last)["model_name"] in EDITORS:
            run = last.parent.parent.relative_to(root)
            found.append(f"{str(run).replace(os.sep, '.') if str(run) != '.' else root.name}={last}")
    if not found:
        raise ValueError(f"--runs {root} holds no editor checkpoints (*/checkpoints/last.pt)")
    return found


def describe_weights(info: Any, prefix: str = "") -> list[str]:
    """Lines saying which weights a model (and its predictor) were built with; loud about random ones."""
    if not isinstance(info, dict):
        return []
    lines = []
    if info.get("random_backbone"):
        lines.append(f"{prefix}WARNING: random backbone weights (backbone_weights=random, asked for explicitly): "
                     "outputs are not comparable with pretrained runs")
    backbone = info.get("backbone")
    if isinstance(backbone, dict) and backbone.get("source") not in (None, "random"):
        lines.append(f"{prefix}backbone {backbone.get('arch', '')}: {backbone.get('source')} weights")
    predictor = info.get("predictor")
    if isinstance(predictor, dict):
        lines.append(f"{prefix}saliency predictor: {predictor.get('name')} {predictor.get('path', '')}".rstrip())
        lines += describe_weights(predictor.get("weights_info"), prefix=f"{prefix}predictor: ")
    return lines


# -- helpers ---------------------------------------------------------------------------------------


def _merged_config(config, overrides: dict | None) -> dict | str | os.PathLike | None:
    if not overrides:
        return config
    values: dict = {}
    if isinstance(config, dict):
        values = dict(config)
    elif config is not None:
        path = Path(config)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} does not exist")
        values = yaml.safe_load(path.read_text()) or {}
        if not isinstance(values, dict):
            raise ValueError(f"config file {path} must hold a mapping of field: value")
    return {**values, **overrides}


def load_editor_for_editing(ckpt, name: str | None = None, device: str = "auto",
                             predictor_ckpt: str | os.PathLike | None = None):
    """The editor in `ckpt`, ready to `edit`. An editor that needs its saliency predictor at edit
    time (`needs_predictor_at_edit`, e.g. to predict S_x or to optimise against it) gets
    `predictor_ckpt`, or else the predictor checkpoint it was trained with (its provenance)."""
    editor = load_trained(ckpt, "editor", resolve_device(device))
    if name is not None and editor.name != name:
        raise ValueError(f"checkpoint {ckpt} holds the editor {editor.name!r}, not {name!r}")
    if getattr(editor, "needs_predictor_at_edit", False):
        recorded = (editor.weights_info.get("predictor") or {}).get("path")
        path = predictor_ckpt or recorded
        if path is None or not Path(path).is_file():
            where = (f"--predictor {predictor_ckpt} does not exist" if predictor_ckpt else
                     f"the recorded {recorded} does not exist" if recorded else "none is recorded in the checkpoint")
            raise ValueError(f"the editor {editor.name} needs its saliency predictor to edit and {where}; "
                             "pass the predictor checkpoint (--predictor CKPT)")
        predictor = load_predictor(path, next(editor.parameters(), torch.empty(0)).device)
        provenance = editor.weights_info.get("predictor")
        editor.attach_predictor(predictor, provenance if path == recorded else predictor_provenance(predictor))
    return editor



def _image_paths(images) -> list[Path]:
    path = Path(images)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ValueError(f"--images {path} is neither an image file nor a folder")
    paths = sorted(find_images(path, what="--images folder").values())
    if not paths:
        raise ValueError(f"folder {path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return paths


def _guidance(editor, picture: np.ndarray, mask, target_map, object_id, source: str) -> np.ndarray:
    height, width = picture.shape[:2]
    if editor.guidance == "mask":
        if mask is None:
            raise ValueError(f"the editor {editor.name} is guided by an object mask: pass --mask MASK.png")
        labels = read_mask(mask)
        values = labels == object_id if object_id is not None else labels > 0
        what = f"object id {object_id}" if object_id is not None else "foreground (non-zero pixels)"
        guidance = values.astype(np.float32)
        kind = "mask"
        path = mask
    else:
        if target_map is None:
            raise ValueError(f"the editor {editor.name} is guided by a target saliency map: pass --target-map MAP")
        guidance = read_density(target_map)
        what, kind, path = "mass", "target map", target_map
    if guidance.shape != (height, width):
        raise ValueError(f"{kind} {path} is {guidance.shape[1]}×{guidance.shape[0]} (W×H) but the image {source} "
                         f"is {width}×{height}; expected the same size")
    if not guidance.any():
        raise ValueError(f"{kind} {path} has no {what}; expected at least one pixel of it")
    return guidance


def _pair_guidance(editor, item: dict, index: int) -> np.ndarray | None:
    if editor.guidance != "mask":
        target = item.get("y_map")
        return None if target is None else target[0].numpy()
    labels = item.get("x_mask")
    if labels is None:
        return None
    labels = labels.numpy()
    edited = set((item.get("edit") or {}).get("object_ids", []))  # objects of X the edit changed
    ids = [o["mask_id"] for o in item.get("x_objects") or [] if o.get("id") in edited and o.get("mask_id")]
    chosen = np.isin(labels, ids) if ids else None
    if chosen is None or not chosen.any():
        saliency = item.get("x_map")
        density = saliency[0].numpy() if saliency is not None else np.full(labels.shape, 1.0 / labels.size)
        try:
            chosen = select_gazeshift_mask(density, labels, np.random.default_rng(index))
        except ValueError:
            return None
        if chosen is None:
            return None
    return np.asarray(chosen, np.float32)


def _measured_map(item: dict) -> np.ndarray | None:
    """The pair's human fixation map of X, (H, W) density, or None."""
    saliency = item.get("x_map")
    return None if saliency is None else saliency[0].numpy()


def _run_edit(editor, picture: np.ndarray, guidance: np.ndarray, options: dict, *, measured: np.ndarray | None = None,
              where: str = "the image") -> torch.Tensor:
    """editor.edit on one (H, W, 3) picture → (1, 3, H, W) or (1, K, 3, H, W) float32 on the CPU.
    With the option sx="measured", `measured` (the (H, W) density S_x of `where`) goes to the
    editor as its source_map."""
    accepted = inspect.signature(editor.edit).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    given = {k: v for k, v in options.items() if v is not None}
    unknown = [k for k in given if k not in accepted and not takes_any]
    if unknown:
        raise ValueError(f"the editor {editor.name} takes no option {', '.join(unknown)}; its edit() takes "
                         f"{', '.join(k for k in accepted if k not in ('image', 'guidance')) or 'no options'}")
    device = next(editor.parameters()).device
    image_t = torch.from_numpy(np.ascontiguousarray(picture.transpose(2, 0, 1)))[None].float().to(device)
    guide_t = torch.from_numpy(np.ascontiguousarray(guidance))[None, None].float().to(device)
    if given.get("sx") == "measured":
        if measured is None:
            raise ValueError(f"--sx measured: {where} has no measured saliency map of X (a dataset pair's x_map); "
                             "edit pairs that have one, or use --sx predicted")
        given["source_map"] = torch.from_numpy(np.ascontiguousarray(measured))[None, None].float().to(device)
    with torch.no_grad(), _too_small_for(editor, picture):
        return editor.edit(image_t, guide_t, **given).float().cpu()


@contextlib.contextmanager
def _too_small_for(model, picture: np.ndarray):
    """Turn torch's "output size is too small" errors into one clear line about the image's size."""
    height, width = picture.shape[:2]
    minimum = getattr(model, "min_image_side", None)
    if minimum and min(height, width) < minimum:
        raise ValueError(f"the image is {width}×{height} (W×H); {model.name} needs at least {minimum} px on each side")
    try:
        yield
    except RuntimeError as exc:
        text = str(exc)
        if any(k in text for k in ("too small", "Kernel size can't be greater", "Padding size should be less")):
            raise ValueError(f"the image is {width}×{height} (W×H), too small for {model.name}: "
                             f"{text.splitlines()[0]}") from exc
        raise


def _write_edits(edited: torch.Tensor, out: Path) -> list[str]:
    """(1, 3, H, W) → out; (1, K, 3, H, W) → out_1 … out_K (PNG unless `out` says otherwise)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    images = edited[0] if edited.ndim == 5 else edited
    if images.shape[0] == 1:
        targets = [out]
    else:
        targets = [out.with_name(f"{out.stem}_{k + 1}{out.suffix or '.png'}") for k in range(images.shape[0])]
    for tensor, target in zip(images, targets):
        array = (tensor.clamp(0, 1).numpy().transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8)
        tmp = target.with_name(f".{target.stem}.tmp{target.suffix or '.png'}")
        try:
            written = cv2.imwrite(str(tmp), cv2.cvtColor(array, cv2.COLOR_RGB2BGR))
        except cv2.error as exc:
            raise ValueError(f"cannot write image {target}: {str(exc).strip().splitlines()[-1]}") from exc
        if not written:
            raise ValueError(f"cannot write image {target}: unknown image format {target.suffix!r}")
        os.replace(tmp, target)
    return [str(t) for t in targets]


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, path)


def _str(value) -> str | None:
    return None if value is None else str(value)
