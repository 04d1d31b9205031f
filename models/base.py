"""What every trainable saliency predictor and editor offers, and building/loading them by name.

A **predictor** (`models/saliency/<name>.py`, a `SaliencyPredictor`) maps (B, 3, H, W) images in
[0, 1] to a (B, 1, H, W) natural-log density over pixels (`log_density`). An **editor**
(`models/editors/<name>.py`, an `Editor`) maps an image and its guidance (an object mask, or a
target saliency density) to an edited image in [0, 1] (`edit`). Both follow the trainer's
protocol (`models/trainer.py`: `name`, `config`, `weights_info`, `train_step`, `optimizers`,
`networks`, optional `schedulers` and `validation_step`) and add:

    Config                        the config dataclass (paper defaults + PRESETS incl. "tiny")
    __init__(config, *, load_pretrained=True)
                                  build from a config; load_pretrained=False builds every
                                  backbone with random weights (the checkpoint's weights follow)
    make_dataset(dataset_dir, split) -> torch Dataset of dict items for train_step

An editor's saliency predictor (frozen, used by its losses) is attached with
`attach_predictor` and is *not* part of the editor's state_dict: an editor checkpoint holds the
editor only, and records the predictor's provenance in `weights_info["predictor"]`. Inference
(`edit`) needs no predictor.
"""

from __future__ import annotations

import importlib
import logging
import os
import pkgutil
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from analysis import metrics
from models.checkpoint import check_compatible, load_model_state, read_checkpoint
from models.config import load_config
from models.data import saliency_samples
from models.registry import EDITORS, PREDICTORS, Registry

logger = logging.getLogger(__name__)

__all__ = [
    "SaliencyPredictor", "Editor", "build_model", "load_trained", "load_predictor", "load_editor",
    "import_models", "resize_log_density", "check_images", "check_saliency_batch",
]


class SaliencyPredictor(nn.Module):
    """Base of the torch saliency predictors: subclasses implement `forward`.

    `forward(images)` takes (B, 3, h, w) images in [0, 1] at the model's working size and returns
    (B, 1, h', w') *log-densities* (log_softmax over the pixels; h', w' may be smaller).
    `log_density(images)` runs it at `config.input_size` (height, width) when the config has one
    and returns the log-density at the images' own size.
    """

    kind = "predictor"
    name: str
    Config: type

    def _apply(self, fn, *args, **kwargs):  # .to() / .cuda(): eager optimizer state moves too
        super()._apply(fn, *args, **kwargs)
        optimizer_state_follows_parameters(self)
        return self

    def log_density(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) images in [0, 1] → (B, 1, H, W) natural-log densities (each exp-sums to 1)."""
        check_images(images)
        height, width = images.shape[-2:]
        size = getattr(self.config, "input_size", None)
        inputs = images
        if size is not None and tuple(size) != (height, width):
            inputs = F.interpolate(images, size=tuple(size), mode="bilinear", align_corners=False)
        return resize_log_density(self(inputs), (height, width))

    def density(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) images in [0, 1] → (B, 1, H, W) densities."""
        return self.log_density(images).exp()

    def make_dataset(self, data_dir: str | os.PathLike, split: str | None = "train", augment: Any = None):
        """(image, fixation density) samples at `config.input_size`: every X and Y image with a map of a
        gazelab dataset dir, or a SALICON/MIT1003-style folder with `images/` and `maps/` (see
        `models.data.saliency_samples`). Items: ``x`` (3, H, W) in [0, 1], ``x_map`` (1, H, W) density."""
        height, width = self.config.input_size
        return saliency_samples(data_dir, split=split, size=(width, height), augment=augment)

    def validation_step(self, batch: dict[str, Any]) -> dict[str, float]:
        """Mean CC, KLD and SIM (analysis.metrics, the benchmark's definitions) of the predicted
        densities against the batch's ``x_map``; NSS too where the batch has ``x_fixations``."""
        predicted = self.density(batch["x"]).float().cpu().numpy()[:, 0]
        truth = batch["x_map"].float().cpu().numpy()[:, 0]
        rows = []
        for index, (pred, gt) in enumerate(zip(predicted, truth)):
            row = {"cc": metrics.cc(pred, gt), "kld": metrics.kld(pred, gt), "sim": metrics.sim(pred, gt)}
            if "x_fixations" in batch and batch["x_fixations"][index].any():
                row["nss"] = metrics.nss(pred, batch["x_fixations"][index].cpu().numpy())
            rows.append(row)
        keys = set.intersection(*(set(row) for row in rows))
        return {key: sum(row[key] for row in rows) / len(rows) for key in sorted(keys)}


class Editor(nn.Module):
    """Base of the editors: subclasses implement `edit`, `train_step`, `optimizers`, `make_dataset`.

    `guidance` says what `edit` takes besides the image: "mask" ((B, 1, H, W) in [0, 1], 1 on the
    region to edit) or "target_map" ((B, 1, H, W) density the edited image should draw).
    """

    kind = "editor"
    name: str
    Config: type
    guidance: str = "mask"

    def __init__(self) -> None:
        super().__init__()
        self._predictor: list[nn.Module] = []  # a list, so nn.Module does not register (or save) it
        self.weights_info: dict[str, Any] = {}

    def attach_predictor(self, predictor: nn.Module, provenance: dict | None = None) -> None:
        """Use `predictor` (frozen, eval mode, moved with the editor) in the training losses."""
        if not callable(getattr(predictor, "log_density", None)):
            raise ValueError(f"{type(predictor).__name__} is not a saliency predictor (it has no log_density)")
        predictor.eval()
        for parameter in predictor.parameters():
            parameter.requires_grad_(False)
        device = next((p.device for p in self.parameters()), None)
        self._predictor = [predictor.to(device) if device is not None else predictor]
        self.weights_info = {**self.weights_info, "predictor": provenance or {
            "name": getattr(predictor, "name", type(predictor).__name__),
            "weights_info": getattr(predictor, "weights_info", None)}}

    @property
    def predictor(self) -> nn.Module:
        """The attached saliency predictor; ValueError if there is none."""
        if not self._predictor:
            raise ValueError(f"{self.name} needs a saliency predictor to train: train one with "
                             "`gazelab train predictor` and pass its checkpoint with --predictor CKPT")
        return self._predictor[0]

    def _apply(self, fn, *args, **kwargs):  # .to() / .cuda() / .float() reach the predictor too
        super()._apply(fn, *args, **kwargs)
        optimizer_state_follows_parameters(self)
        for predictor in self._predictor:
            predictor._apply(fn, *args, **kwargs)
        return self

    def train(self, mode: bool = True):
        super().train(mode)
        for predictor in self._predictor:
            predictor.eval()  # frozen: its dropout / batch-norm never switch to training
        return self

    def edit(self, image: torch.Tensor, guidance: torch.Tensor, **options) -> torch.Tensor:
        raise NotImplementedError


def optimizer_state_follows_parameters(module: nn.Module) -> None:
    """Move the state of `module`'s optimizers (its attributes) onto their parameters' devices.

    Models build their optimizers in `__init__`, on the CPU. Adam's state is made at the first
    step, where the parameters then are; AdaGrad's sums are made at once, so without this a model
    moved to CUDA after construction fails at its first step. "step" counters stay where torch
    keeps them (on the CPU unless the optimizer is fused or capturable), as in load_state_dict.
    """
    for optimizer in vars(module).values():
        if not isinstance(optimizer, torch.optim.Optimizer):
            continue
        for parameter, state in optimizer.state.items():
            for key, value in state.items():
                if key != "step" and torch.is_tensor(value) and value.device != parameter.device:
                    state[key] = value.to(parameter.device)


def import_models() -> None:
    """Import every predictor and editor module so that the registries are filled: the model
    packages are plug-ins, found by name (their modules import this one to register)."""
    for name in ("models.saliency", "models.editors"):
        package = importlib.import_module(name)
        for info in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{name}.{info.name}")


def registry_of(kind: str) -> Registry:
    """PREDICTORS for "predictor", EDITORS for "editor"."""
    if kind not in ("predictor", "editor"):
        raise ValueError(f"kind must be 'predictor' or 'editor', got {kind!r}")
    import_models()
    return PREDICTORS if kind == "predictor" else EDITORS


def build_model(kind: str, name: str, preset: str = "paper", config: str | os.PathLike | dict | None = None,
                load_pretrained: bool = True) -> nn.Module:
    """A fresh model `name` of `kind`, its config = paper defaults → `preset` → `config` (YAML or dict)."""
    cls = registry_of(kind).get(name)
    if not isinstance(cls, type) or not issubclass(cls, nn.Module):
        raise ValueError(f"{kind} {name!r} is not a trainable torch model")
    return cls(load_config(cls.Config, config, preset), load_pretrained=load_pretrained)


def load_trained(path: str | os.PathLike, kind: str | None = None, device: str | torch.device = "cpu") -> nn.Module:
    """The model saved in checkpoint `path`, in eval mode on `device`.

    A frozen backbone the checkpoint left out (a loss network's VGG, `models.checkpoint.model_state`)
    is rebuilt from its recorded weights when it first runs: editing with a model whose `edit`
    never runs it needs no pretrained weights; otherwise they come from the torch hub cache (or a
    download, or the recorded file), as when training. `kind` ("predictor" / "editor") checks what
    the checkpoint holds; a checkpoint of the other kind, of an unknown model, or of a config the
    code cannot read raises ValueError saying so.
    """
    ckpt = read_checkpoint(path)
    import_models()
    name = ckpt["model_name"]
    found = "predictor" if name in PREDICTORS else "editor" if name in EDITORS else None
    if found is None:
        raise ValueError(f"checkpoint {path} holds {name!r}, which is neither a known predictor "
                         f"({', '.join(PREDICTORS.names())}) nor editor ({', '.join(EDITORS.names())})")
    if kind is not None and found != kind:
        raise ValueError(f"checkpoint {path} holds the {found} {name!r}; expected a {kind} checkpoint")
    cls = registry_of(found).get(name)
    config = load_config(cls.Config, ckpt.get("config") or {})
    model = cls(config, load_pretrained=False)
    check_compatible(ckpt, model, source=f"checkpoint {path}")
    load_model_state(model, ckpt, source=f"checkpoint {path}", lazy=True)
    model.weights_info = ckpt.get("weights_info") or {}
    model.checkpoint_info = {"path": str(Path(path).resolve()), "step": int(ckpt.get("step", 0))}
    return model.to(device).eval()


def load_predictor(path: str | os.PathLike, device: str | torch.device = "cpu") -> SaliencyPredictor:
    """A trained saliency predictor from its checkpoint (see `load_trained`)."""
    return load_trained(path, "predictor", device)


def load_editor(path: str | os.PathLike, device: str | torch.device = "cpu") -> Editor:
    """A trained editor from its checkpoint (see `load_trained`); no predictor is attached."""
    return load_trained(path, "editor", device)


def predictor_provenance(predictor: nn.Module) -> dict:
    """What an editor records of the predictor it trained with (name, checkpoint, step, weights)."""
    return {"name": getattr(predictor, "name", type(predictor).__name__),
            **getattr(predictor, "checkpoint_info", {}),
            "weights_info": getattr(predictor, "weights_info", None)}


def resize_log_density(log_density: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, 1, h, w) log-densities resampled to `size` = (H, W): bilinear on the density, renormalised."""
    if tuple(log_density.shape[-2:]) == tuple(size):
        return log_density
    density = F.interpolate(log_density.exp(), size=tuple(size), mode="bilinear", align_corners=False)
    flat = density.flatten(1).clamp_min(torch.finfo(density.dtype).tiny)
    return (flat.log() - flat.sum(1, keepdim=True).log()).view_as(density)


def check_images(images: torch.Tensor, name: str = "images") -> None:
    """ValueError unless `images` is a (B, 3, H, W) tensor."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"{name} must be a (B, 3, H, W) tensor of images in [0, 1], got {shape}")


def check_saliency_batch(batch: dict[str, Any], size: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A predictor's training batch: ``x`` (B, 3, H, W) and ``x_map`` (B, 1, H, W) densities, at
    `size` = (H, W) when given. Returns (x, x_map); ValueError naming what is wrong otherwise."""
    images, maps = batch["x"], batch["x_map"]
    check_images(images, "x")
    if size is not None and tuple(images.shape[-2:]) != tuple(size):
        raise ValueError(f"x has size {tuple(images.shape[-2:])}; expected the config's input_size {tuple(size)} "
                         "(build the data with model.make_dataset)")
    expected = (images.shape[0], 1, *images.shape[-2:])
    if not isinstance(maps, torch.Tensor) or tuple(maps.shape) != expected:
        shape = tuple(maps.shape) if isinstance(maps, torch.Tensor) else type(maps).__name__
        raise ValueError(f"x_map has shape {shape}; expected {expected}, one density per image of x")
    with torch.no_grad():
        sums = maps.float().flatten(1).sum(1)
        if bool((maps < 0).any()) or not bool(torch.isfinite(sums).all()) or float((sums - 1).abs().max()) > 1e-2:
            raise ValueError("x_map is not a density per image: expected non-negative densities summing to 1, "
                             f"got sums {sums.tolist()[:4]}")
    return images, maps
