"""HAG: saliency-based image editing after Hagiwara, Sugimoto & Kawamoto, "Saliency-based image
editing for guiding visual attention" (PETMEI 2011), the deterministic baseline of SalG-GAN
(papers/000 §5.1: "the target saliency map is input for editing the original image").

Hagiwara et al. compute an Itti–Koch saliency map and adjust the image's intensity and colour
channels, iteratively, until the saliency of the edited image approaches the target. This
module keeps that idea — a per-image optimisation of intensity and colour, no training — and
departs from it as follows:

- saliency comes from the attached differentiable predictor (salgan, salg_detector, …), not
  from Itti–Koch, so the edit is steered by the same model the learnt editors train against;
- the adjustment is gradient descent (Adam, a fixed number of iterations) on
  KL(target ‖ predicted(edited)) + fidelity_weight · MSE in YCbCr of (edited, image), not the
  original's channel-by-channel update rule;
- the edit is two smooth fields at `field_size` (bilinearly upsampled): a luma gain in
  [1 − max_intensity_change, 1 + max_intensity_change] and Cb/Cr offsets in
  [−max_chroma_shift, max_chroma_shift] in full-range BT.601 YCbCr, where luma stands for
  Itti–Koch's intensity channel and Cr/Cb roughly for its red–green and blue–yellow
  opponencies; orientation, the third Itti–Koch channel, is not edited;
- of the iterates tried, each image keeps the one with the lowest objective (the input itself
  is the first), so an edit never scores worse than leaving the image alone.

The original's exact update rule, step sizes and stopping rule are not in this project's
papers; every default below is ours (see `HAGConfig`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from models import losses
from models.base import Editor
from models.data import TrainingItems
from models.editors._layers import check_target_maps
from models.registry import EDITORS

logger = logging.getLogger(__name__)

__all__ = ["HAG", "HAGConfig", "HAGResult", "HAGSamples"]

# Full-range BT.601 (JPEG) RGB → YCbCr: rows Y, Cb, Cr; RGB in [0, 1] gives Y in [0, 1], Cb and Cr in [−0.5, 0.5].
RGB_TO_YCBCR = ((0.299, 0.587, 0.114),
                (-0.299 / 1.772, -0.587 / 1.772, 0.886 / 1.772),
                (0.701 / 1.402, -0.587 / 1.402, -0.114 / 1.402))
# Adam moves a field by about lr whatever its gradient's size once that is well above eps; with torch's 1e-8,
# float32 rounding noise (~1e-9, e.g. on a colour channel the predictor ignores) would drift the edit.
ADAM_EPS = 1e-6


@dataclass
class HAGConfig:
    """HAG's settings; none is in the paper (see the module docstring), all are ours.

    iterations: Adam steps per image (the predictor runs iterations + 1 times: the last scores
        the final iterate). lr: Adam's learning rate on the fields' raw (pre-tanh) values.
    field_size: (rows, cols) of the adjustment fields, bilinearly upsampled to the image; an
        image smaller than that uses its own size. 16×16 gives 16 px cells on 256 px images.
    max_intensity_change: a, the luma gain's bound: Y' = Y · g with g ∈ [1 − a, 1 + a].
    max_chroma_shift: c, the bound of the Cb/Cr offsets (chroma spans [−0.5, 0.5]).
    fidelity_weight: λ of the fidelity term added to the KL (nats): the mean squared change of Y,
        Cb and Cr. Measured in YCbCr, not RGB, so that it does not pull the colour to offset an
        intensity change (an RGB error would: a luma gain is cheaper in RGB with a hue shift).
    max_steps: the trainer steps of `gazelab train editor hag`; each trains nothing (HAG has no
        trainable parameters) and the run exists to write the checkpoint the edit commands load.
    """

    PRESETS: ClassVar[dict[str, dict]] = {
        "tiny": {"iterations": 20, "field_size": (6, 8)},
        "cpu": {"iterations": 40, "field_size": (8, 8)},  # the demo's size: a few seconds per image on 2 cores
    }

    iterations: int = 100
    lr: float = 0.05
    field_size: tuple[int, int] = (16, 16)
    max_intensity_change: float = 0.3
    max_chroma_shift: float = 0.1
    fidelity_weight: float = 1.0
    max_steps: int = 1


@dataclass
class HAGResult:
    """What `HAG.optimise` found for a batch of B images of H×W pixels.

    image: (B, 3, H, W) edited images in [0, 1], in the input's dtype. gain: (B, 1, H, W) the luma gain applied.
    chroma_shift: (B, 2, H, W) the Cb, Cr offsets applied. kl, objective: (iterations + 1, B)
    KL(target ‖ predicted) in nats and KL + λ·MSE of every iterate (row 0: the input).
    best_iteration: (B,) the row each image's result comes from.
    """

    image: torch.Tensor
    gain: torch.Tensor
    chroma_shift: torch.Tensor
    kl: torch.Tensor
    objective: torch.Tensor
    best_iteration: torch.Tensor


@EDITORS.register("hag")
class HAG(Editor):
    """Per-image intensity and colour optimisation towards a target saliency density.

    `edit(image, target_map, progress=False)`: (B, 3, H, W) images in [0, 1] and (B, 1, H, W)
    target densities (sum 1 per image) → (B, 3, H, W) edited images in [0, 1]. Deterministic on
    the CPU (no randomness; on CUDA as deterministic as the predictor's backward pass). The tqdm
    bar over the iterations is off unless `progress=True`, so library callers stay quiet.
    """

    name = "hag"
    Config = HAGConfig
    guidance = "target_map"
    needs_predictor_at_edit = True

    def __init__(self, config: HAGConfig, *, load_pretrained: bool = True):
        super().__init__()
        _check_config(config)
        self.config = config
        # A parameter (frozen) rather than a buffer: models/runs.py finds an editor's device from its parameters.
        self.rgb_to_ycbcr = nn.Parameter(torch.tensor(RGB_TO_YCBCR), requires_grad=False)
        self._said_nothing_to_train = False

    # Editing.

    def edit(self, image: torch.Tensor, target_map: torch.Tensor, progress: bool = False) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] and (B, 1, H, W) target densities → (B, 3, H, W) in [0, 1]."""
        return self.optimise(image, target_map, progress=progress).image

    def optimise(self, image: torch.Tensor, target_map: torch.Tensor, progress: bool = False) -> HAGResult:
        """Run `config.iterations` Adam steps on the fields of every image; see `HAGResult`.

        ValueError if the image is not (B, 3, H, W) in [0, 1], the target not (B, 1, H, W)
        densities of the same size, or no predictor is attached. Runs with gradients enabled
        even inside torch.no_grad (the fields need them); the predictor stays frozen.
        """
        check_target_maps(image, target_map)
        if float(image.min()) < 0 or float(image.max()) > 1:
            raise ValueError(f"image values must lie in [0, 1], got [{float(image.min()):.4g}, {float(image.max()):.4g}]")
        if not self._predictor:
            raise ValueError("hag edits by optimising against a saliency predictor and none is attached: "
                             "attach one with attach_predictor(...) or pass --predictor CKPT")
        c = self.config
        dtype = image.dtype
        image = image.detach().float()
        target = target_map.detach().float()
        batch, _, height, width = image.shape
        field_size = (min(c.field_size[0], height), min(c.field_size[1], width))
        ycbcr = self._to_ycbcr(image)
        fields = torch.zeros(batch, 3, *field_size, device=image.device, requires_grad=True)
        optimizer = torch.optim.Adam([fields], lr=c.lr, eps=ADAM_EPS)
        best_objective = torch.full((batch,), float("inf"), device=image.device)
        best_fields = fields.detach().clone()
        best_iteration = torch.zeros(batch, dtype=torch.long, device=image.device)
        kls, objectives = [], []
        bar = tqdm(total=c.iterations, desc=self.name, disable=not progress, dynamic_ncols=True)
        try:
            with torch.enable_grad():
                for iteration in range(c.iterations + 1):
                    edited = self._edited(ycbcr, fields)
                    kl = losses.kl_saliency_loss(self.predictor.log_density(edited), target, reduction="none",
                                                 check=False)
                    change = self._to_ycbcr(edited) - ycbcr
                    objective = kl + c.fidelity_weight * change.square().flatten(1).mean(1)
                    kls.append(kl.detach())
                    objectives.append(objective.detach())
                    better = objective.detach() < best_objective
                    best_objective = torch.where(better, objective.detach(), best_objective)
                    best_fields[better] = fields.detach()[better]
                    best_iteration[better] = iteration
                    if iteration == c.iterations:
                        break
                    optimizer.zero_grad(set_to_none=True)
                    objective.sum().backward()  # images are independent: the sum's gradient is each one's own
                    optimizer.step()
                    bar.update(1)
                    bar.set_postfix(kl=f"{float(kl.detach().mean()):.4g}")
        finally:
            bar.close()
        with torch.no_grad():
            gain, chroma_shift = self._adjustments(best_fields, (height, width))
            edited = self._edited(ycbcr, best_fields)
        return HAGResult(image=edited.to(dtype), gain=gain, chroma_shift=chroma_shift,
                         kl=torch.stack(kls), objective=torch.stack(objectives), best_iteration=best_iteration)

    def _to_ycbcr(self, rgb: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB in [0, 1] → (B, 3, H, W) Y in [0, 1], Cb and Cr in [−0.5, 0.5]."""
        return torch.einsum("ij,bjhw->bihw", self.rgb_to_ycbcr.float(), rgb)

    def _adjustments(self, fields: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw (B, 3, h, w) fields → the luma gain (B, 1, H, W) and the Cb/Cr offsets (B, 2, H, W) at `size`."""
        c = self.config
        bounded = torch.tanh(F.interpolate(fields, size=size, mode="bilinear", align_corners=True))
        return 1 + c.max_intensity_change * bounded[:, :1], c.max_chroma_shift * bounded[:, 1:]

    def _edited(self, ycbcr: torch.Tensor, fields: torch.Tensor) -> torch.Tensor:
        """The image with the fields' gain and offsets applied, back in RGB, clamped to [0, 1]."""
        gain, chroma_shift = self._adjustments(fields, tuple(ycbcr.shape[-2:]))
        adjusted = torch.cat([ycbcr[:, :1] * gain, ycbcr[:, 1:] + chroma_shift], 1)
        to_rgb = torch.linalg.inv(self.rgb_to_ycbcr.double()).float()
        return torch.einsum("ij,bjhw->bihw", to_rgb, adjusted).clamp(0, 1)

    # "Training": the trainer's protocol, with nothing to learn.

    def train_step(self, batch: dict[str, Any]) -> dict[str, float]:
        """Checks the batch is something HAG could edit and trains nothing; returns
        ``trainable_parameters`` (0) so the run's log says so."""
        check_target_maps(batch["image"], batch["target_map"])
        if not self._said_nothing_to_train:
            logger.warning("hag has nothing to train: writing its checkpoint (it optimises each image when editing)")
            self._said_nothing_to_train = True
        return {"trainable_parameters": float(sum(p.numel() for p in self.parameters() if p.requires_grad))}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {}

    def networks(self) -> dict[str, nn.Module]:
        return {}

    def make_dataset(self, data_dir: str | os.PathLike, split: str | None = "train") -> HAGSamples:
        """The edits HAG would be asked for in a gazelab dataset dir (see `HAGSamples`); `gazelab train
        editor hag` reads one batch of it per step only to check the data, and learns nothing."""
        return HAGSamples(data_dir, split)


class HAGSamples(TrainingItems):
    """Every pair of `split` with an X image and a Y fixation map, at the files' size.

    Items: ``image`` (3, H, W) X in [0, 1], ``target_map`` (1, H, W) Y's fixation density (X should
    draw attention the way Y does, as `models.runs.edit_dataset` asks), ``pair_id``.
    """

    def __init__(self, data_dir: str | os.PathLike, split: str | None = "train"):
        super().__init__(data_dir, split, unit="pair", require=("y_map",), owner="HAG (its target is the Y map)")

    def prepare(self, item: dict[str, Any], index: int) -> dict[str, Any]:
        return {"image": item["x"], "target_map": item["y_map"], "pair_id": item["pair_id"]}


def _check_config(config: HAGConfig) -> None:
    """ValueError naming the first setting outside its range."""
    rows, cols = config.field_size
    checks = [
        ("iterations", config.iterations, config.iterations >= 0, "an int >= 0"),
        ("lr", config.lr, config.lr > 0, "> 0"),
        ("field_size", config.field_size, rows >= 1 and cols >= 1, "two ints >= 1 (rows, cols)"),
        ("max_intensity_change", config.max_intensity_change, 0 <= config.max_intensity_change < 1,
         "in [0, 1) (the luma gain stays positive)"),
        ("max_chroma_shift", config.max_chroma_shift, 0 <= config.max_chroma_shift <= 0.5,
         "in [0, 0.5] (Cb and Cr span [-0.5, 0.5])"),
        ("fidelity_weight", config.fidelity_weight, config.fidelity_weight >= 0, ">= 0"),
        ("max_steps", config.max_steps, config.max_steps >= 1, "an int >= 1"),
    ]
    for name, value, ok, expected in checks:
        if not ok:
            raise ValueError(f"hag config {name} = {value!r}; expected {expected}")
