"""SaGIM: Chen et al., "Guide your eyes: learning image manipulation under saliency guidance"
(BMVC 2019; papers/001).

A manipulation network G maps an image I and a guiding saliency map S_g (max-normalised, in
[0, 1]) to Ĩ = G(I, S_g); a frozen differentiable saliency estimator E (the attached predictor)
scores it. Losses (eqs. 1–6): λ1 L_rec = BCE(E(Ĩ), S_g) over pixels (max-normalised maps, full
resolution), λ2 L_content = 1/5 Σ_l MSE(φ_l(Ĩ), φ_l(I)) over 5 VGG layers, λ3 L_color =
mean S_g · |M(I) − M(Ĩ)| with M a 21-tap Gaussian blur, λ4 L_cycle = 1/5 Σ_l MSE(φ_l(I),
φ_l(G(Ĩ, E(I)))), λ5 L_adv (the GAN log-loss of eq. 5, non-saturating for G); λ1:…:λ5 =
5:5:1:9:5; Adam, lr 1e-3.

The paper leaves G's and D's architecture to its supplement; as its code builds on CycleGAN's,
G here is CycleGAN's ResNet generator (7×7 stem, 2 stride-2 downsamplings, 9 residual blocks,
2 transposed-convolution upsamplings, 7×7 head, tanh) with the guiding map as a 4th input
channel, and D is the 70 px PatchGAN.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import nn

from models import losses, targets
from models.backbones import VGGFeatures
from models.base import Editor
from models.data import TargetMapSamples, targets_from_predictor
from models.editors._layers import (PatchDiscriminator, ResidualBlock, check_target_maps,
                                    generator_then_discriminator_step,
                                    max_normalise, pad_to_multiple)
from models.registry import EDITORS

logger = logging.getLogger(__name__)

__all__ = ["SaGIMConfig", "SaGIM", "ManipulationNet"]


@dataclass
class SaGIMConfig:
    """Paper defaults (Chen et al. §3, §4.1) where it gives them. Sizes are (height, width) in pixels.

    Not in the paper (CycleGAN's defaults): image_size 256×256, generator_channels 64,
    n_res_blocks 9, batch_size 1. content_layers: the paper uses 5 VGG layers without naming
    them; these are Gatys' style-transfer layers. reorder_factor: the extra random boost/damping
    U(low, high) on top of the exact swap of the most and least salient objects'
    (`targets.sagim_reorder`); guide_blur_frac: σ of the guiding map's Gaussian smoothing as a
    fraction of the longer side (the paper smooths, σ not given). target_source: "predictor" (the
    paper: the guide re-orders SalGAN's map of the input — here the attached predictor's) or
    "human" (the image's fixation map). max_epochs: the paper's 100 epochs (§4.1); `gazelab train`
    turns them into steps for the dataset at hand unless --steps is given.
    """

    PRESETS: ClassVar[dict[str, dict]] = {"tiny": {
        "image_size": (24, 32), "backbone_weights": "random", "generator_channels": 8, "n_res_blocks": 2,
        "disc_channels": 8, "batch_size": 2}}

    image_size: tuple[int, int] = (256, 256)
    backbone_weights: str = "imagenet"
    vgg_arch: Literal["vgg16", "vgg19"] = "vgg19"
    content_layers: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    generator_channels: int = 64
    n_res_blocks: int = 9
    disc_channels: int = 64
    lambda_reconstruction: float = 5.0
    lambda_content: float = 5.0
    lambda_color: float = 1.0
    lambda_cycle: float = 9.0
    lambda_adversarial: float = 5.0
    color_kernel_size: int = 21
    lr: float = 1e-3
    batch_size: int = 1
    reorder_factor: tuple[float, float] = (1.0, 2.0)
    guide_blur_frac: float = 0.02
    target_source: Literal["predictor", "human"] = "predictor"
    max_epochs: int = 100


class ManipulationNet(nn.Module):
    """G(image, guide): (B, 3, H, W) images and (B, 1, H, W) max-normalised guides, both in [0, 1]
    → (B, 3, H, W) images in [0, 1].

    H and W must be multiples of 4 (and at least 16); `SaGIM` pads and crops around it.
    """

    def __init__(self, channels: int = 64, n_res_blocks: int = 9):
        super().__init__()
        c = channels

        def norm_relu(out: int) -> list[nn.Module]:
            return [nn.InstanceNorm2d(out, affine=True), nn.ReLU()]

        self.net = nn.Sequential(
            nn.Conv2d(4, c, 7, padding=3, padding_mode="reflect", bias=False), *norm_relu(c),
            nn.Conv2d(c, 2 * c, 3, stride=2, padding=1, bias=False), *norm_relu(2 * c),
            nn.Conv2d(2 * c, 4 * c, 3, stride=2, padding=1, bias=False), *norm_relu(4 * c),
            *[ResidualBlock(4 * c, final_relu=False) for _ in range(n_res_blocks)],
            nn.ConvTranspose2d(4 * c, 2 * c, 3, stride=2, padding=1, output_padding=1, bias=False), *norm_relu(2 * c),
            nn.ConvTranspose2d(2 * c, c, 3, stride=2, padding=1, output_padding=1, bias=False), *norm_relu(c),
            nn.Conv2d(c, 3, 7, padding=3, padding_mode="reflect"), nn.Tanh())

    def forward(self, image: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        return (self.net(torch.cat([2 * image - 1, 2 * guide - 1], 1)) + 1) / 2


@EDITORS.register("sagim")
class SaGIM(Editor):
    """Saliency-guided image manipulation with a frozen saliency estimator.

    `edit(image, target_map)`: (B, 3, H, W) images in [0, 1] and (B, 1, H, W) guiding densities
    (sum 1 per image; G sees them max-normalised) → (B, 3, H, W) images in [0, 1].
    """

    name = "sagim"
    Config = SaGIMConfig
    guidance = "target_map"

    def __init__(self, config: SaGIMConfig, *, load_pretrained: bool = True):
        super().__init__()
        self.config = config
        weights = config.backbone_weights if load_pretrained else "random"
        self.vgg = VGGFeatures(config.vgg_arch, config.content_layers, weights=weights)
        self.generator = ManipulationNet(config.generator_channels, config.n_res_blocks)
        self.discriminator = PatchDiscriminator(3, config.disc_channels)
        self.optimizer_g = torch.optim.Adam(self.generator.parameters(), lr=config.lr)
        self.optimizer_d = torch.optim.Adam(self.discriminator.parameters(), lr=config.lr)
        self.weights_info = {**self.weights_info, "backbone": self.vgg.weights_info,
                             "random_backbone": self.vgg.weights_info["source"] == "random"}

    # Inference.

    def forward(self, image: torch.Tensor, target_map: torch.Tensor) -> torch.Tensor:
        """Differentiable G(I, max-normalised target) without input checks; (B, 3, H, W) in [0, 1]."""
        return self._manipulate(image, max_normalise(target_map))

    def edit(self, image: torch.Tensor, target_map: torch.Tensor, **options: Any) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] and (B, 1, H, W) guiding densities → (B, 3, H, W) in [0, 1], no grad."""
        if options:
            raise ValueError(f"sagim.edit takes no options, got {sorted(options)}")
        check_target_maps(image, target_map)
        with torch.no_grad():
            return self(image, target_map).clamp(0, 1)

    def _manipulate(self, image: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[-2:]
        padded = pad_to_multiple(torch.cat([image, guide.to(image.dtype)], 1), 4, minimum=16)
        return self.generator(padded[:, :3], padded[:, 3:])[..., :height, :width]

    def _estimated_guide(self, image: torch.Tensor) -> torch.Tensor:
        """E(image), max-normalised to [0, 1] (computed in float32)."""
        log_density = self.predictor.log_density(image).float()
        peak = log_density.flatten(1).amax(1).view(-1, 1, 1, 1)
        return torch.exp(log_density - peak)

    # Training.

    def generator_losses(self, image: torch.Tensor, target_map: torch.Tensor) -> dict[str, torch.Tensor]:
        """The weighted G loss ``loss`` (eq. 6 without D's part), its five terms, and the ``output``."""
        c = self.config
        guide = max_normalise(target_map.float())
        output = self._manipulate(image, guide)
        with torch.no_grad():
            real = self.vgg(image)
            original_guide = self._estimated_guide(image)
        cycled = self._manipulate(output, original_guide)
        terms = {
            "reconstruction": losses.bce_map_loss(self._estimated_guide(output), guide, downsample=1),
            "content": losses.content_loss(self.vgg(output), real),
            "color": losses.gaussian_color_loss(image, output, c.color_kernel_size, weight_map=guide),
            "cycle": losses.cycle_loss(self.vgg(cycled), real),
            "adversarial": losses.bce_gan_g(self.discriminator(output)),
        }
        weights = {"reconstruction": c.lambda_reconstruction, "content": c.lambda_content, "color": c.lambda_color,
                   "cycle": c.lambda_cycle, "adversarial": c.lambda_adversarial}
        total = sum(weights[key] * value for key, value in terms.items())
        return {"loss": total, **terms, "output": output}

    def discriminator_loss(self, image: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        """GAN log-loss for D (eq. 5): input images real, manipulated (detached) images fake."""
        return losses.bce_gan_d(self.discriminator(image), self.discriminator(output.detach()))

    def train_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """One G step, then one D step, on ``image`` and ``target_map`` (the guiding density, built
        from the predictor's map of the image when the batch has none: `target_source`)."""
        return generator_then_discriminator_step(self, targets_from_predictor(self.predictor, batch, self.make_target))

    def validation_step(self, batch: dict[str, Any]) -> dict[str, float]:
        """Mean BCE(E(·), S_g) of the input (``bce_input``) and of the manipulated output (``bce_output``)."""
        batch = targets_from_predictor(self.predictor, batch, self.make_target)
        image, target_map = batch["image"], batch["target_map"]
        guide = max_normalise(target_map.float())
        output = self.edit(image, target_map)
        return {"bce_input": float(losses.bce_map_loss(self._estimated_guide(image), guide, downsample=1)),
                "bce_output": float(losses.bce_map_loss(self._estimated_guide(output), guide, downsample=1))}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": self.optimizer_g, "discriminator": self.optimizer_d}

    def networks(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "discriminator": self.discriminator}

    def make_dataset(self, data_dir: str | os.PathLike, split: str | None = "train") -> TargetMapSamples:
        """Every X/Y image with at least 2 objects (and a fixation map when `target_source` is
        "human") at `image_size`; guiding maps by `make_target` (see `TargetMapSamples`)."""
        height, width = self.config.image_size
        return TargetMapSamples(data_dir, split, (width, height), self.make_target, min_objects=2,
                                source=self.config.target_source)

    def make_target(self, rng: np.random.Generator, density: np.ndarray, labels: np.ndarray | None):
        """The guide: `targets.sagim_reorder` of the saliency `density` — the most and least salient
        objects of `labels` trade places (times U(reorder_factor)), then a Gaussian smoothing.
        Returns (guide density, {most_salient_id, least_salient_id})."""
        c = self.config
        sigma = c.guide_blur_frac * max(c.image_size)
        found = targets.sagim_reorder(density, labels, rng, extra_factor=c.reorder_factor, blur_sigma_px=sigma)
        return found.density, {"most_salient_id": found.most_salient_id, "least_salient_id": found.least_salient_id}

