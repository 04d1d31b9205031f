"""FGTransform: Gatys, Kümmerer, Wallis & Bethge, "Guiding human gaze with convolutional neural
networks" (2017; papers/002).

The transformer (§3.4.1, Fig. 3b): the input image → VGG-19 conv5_1, relu5_1, relu5_2, conv5_3,
relu5_4 (2560 channels at 1/16 resolution, frozen) → 6 residual blocks of 1024 channels → 4
up-sampling stages (nearest ×2, conv, IN, ReLU) halving the channels → a 3-channel output. The
RGB image and the log target map, down-sampled to each stage's size, are concatenated to the
features before the residual blocks (2564 channels), before every up-sampling stage (1028, 516,
260, 132) and before the output convolution (68).

Losses (eq. 9, §7.1.1): λ_s KL(p_t ‖ p̂) of the attached frozen predictor on the output
+ λ_f relu5_2 feature MSE + λ_t Gram texture loss on relu1_1 … relu5_1 + λ_a LSGAN of a 70 px
PatchGAN; λ = 1, 1e-2, 2e-2, 1e-1; Adam, lr 1e-3, batch 4, 512×512 images. One instance is
trained per manipulation (`transform`: "local_shift" or "global_scale"); `chain_edit` applies
a local-shift instance then a global-scale one, as the paper does for its stimuli (§5.1).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models import losses, targets
from models.backbones import VGGFeatures
from models.base import Editor
from models.data import TargetMapSamples, targets_from_predictor
from models.editors._layers import (PatchDiscriminator, ResidualBlock, check_target_maps,
                                    generator_then_discriminator_step,
                                    log_density_ratio, pad_to_multiple)
from models.registry import EDITORS

logger = logging.getLogger(__name__)

__all__ = ["FGTransformConfig", "FGTransform", "FGTransformNet", "chain_edit", "edit_chain"]

FEATURE_LAYERS = ("conv5_1", "relu5_1", "relu5_2", "conv5_3", "relu5_4")
TEXTURE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
FEATURE_STRIDE = 16  # the conv5 features are 1/16 of the input's size


@dataclass
class FGTransformConfig:
    """Paper defaults (Gatys et al. §3.4, §7.1). Sizes are (height, width) in pixels.

    transform: which target maps `make_dataset` generates and the instance is trained on.
    target_source: "predictor" (the paper: targets from DeepGaze's map of the input — here the
    attached predictor's) or "human" (from the image's fixation map of a study).
    max_steps: the paper's 150k iterations (§7.1.2).
    mask_blur_frac: σ of the Gaussian blur of the object mask for local shifts, as a fraction of
    the longer image side (the paper blurs the masks but gives no σ).
    batch_size: the paper's batch size (the trainer takes its own; this is the recorded default).
    """

    PRESETS: ClassVar[dict[str, dict]] = {"tiny": {
        "image_size": (24, 32), "backbone_weights": "random", "res_channels": 16, "n_res_blocks": 2,
        "up_channels": (16, 16, 8, 8), "disc_channels": 8, "batch_size": 2}}

    transform: Literal["local_shift", "global_scale"] = "local_shift"
    image_size: tuple[int, int] = (512, 512)
    backbone_weights: str = "imagenet"
    res_channels: int = 1024
    n_res_blocks: int = 6
    up_channels: tuple[int, ...] = (512, 256, 128, 64)
    disc_channels: int = 64
    lambda_saliency: float = 1.0
    lambda_feature: float = 1e-2
    lambda_texture: float = 2e-2
    lambda_adversarial: float = 1e-1
    lr: float = 1e-3
    batch_size: int = 4
    k_sh_range: tuple[float, float] = targets.LOCAL_SHIFT_RANGE
    k_sc_range: tuple[float, float] = targets.GLOBAL_SCALE_RANGE
    mask_blur_frac: float = 0.02
    target_source: Literal["predictor", "human"] = "predictor"
    max_steps: int = 150_000


class FGTransformNet(nn.Module):
    """The trainable transformer: (VGG features, guidance) → image.

    forward(features (B, feature_channels, H/16, W/16), guidance (B, 4, H, W): RGB in [0, 1] and
    the log target map) → (B, 3, H, W) in [0, 1] (sigmoid output). H and W must be multiples of 16.
    """

    def __init__(self, feature_channels: int = 2560, res_channels: int = 1024, n_res_blocks: int = 6,
                 up_channels: Sequence[int] = (512, 256, 128, 64), guidance_channels: int = 4):
        super().__init__()
        if len(up_channels) != 4:
            raise ValueError(f"up_channels must list 4 stages (1/16 → 1/1 resolution), got {tuple(up_channels)}")
        if n_res_blocks < 1:
            raise ValueError(f"n_res_blocks must be >= 1, got {n_res_blocks}")
        g = guidance_channels
        self.res_blocks = nn.Sequential(*[
            ResidualBlock((feature_channels + g) if i == 0 else res_channels, res_channels)
            for i in range(n_res_blocks)])
        stages, channels = [], res_channels
        for out in up_channels:
            stages.append(nn.Sequential(
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(channels + g, out, 3, padding=1, padding_mode="reflect", bias=False),
                nn.InstanceNorm2d(out, affine=True), nn.ReLU()))
            channels = out
        self.up_stages = nn.ModuleList(stages)
        self.to_image = nn.Conv2d(channels + g, 3, 3, padding=1, padding_mode="reflect")

    def forward(self, features: torch.Tensor, guidance: torch.Tensor) -> torch.Tensor:
        height, width = guidance.shape[-2:]
        if height % FEATURE_STRIDE or width % FEATURE_STRIDE:
            raise ValueError(f"guidance is {height}×{width} (H×W); expected multiples of {FEATURE_STRIDE}")
        pyramid = [guidance]  # full, 1/2, 1/4, 1/8, 1/16
        for _ in range(4):
            pyramid.append(F.avg_pool2d(pyramid[-1], 2))
        x = self.res_blocks(torch.cat([features, pyramid[4]], 1))
        for level, stage in zip((4, 3, 2, 1), self.up_stages):
            x = stage(torch.cat([x, pyramid[level]], 1))
        return torch.sigmoid(self.to_image(torch.cat([x, pyramid[0]], 1)))


@EDITORS.register("fgtransform")
class FGTransform(Editor):
    """Gatys et al.'s feature-guided transform, one manipulation type per instance.

    `edit(image, target_map)`: (B, 3, H, W) images in [0, 1] and (B, 1, H, W) target densities
    (sum 1 per image) → (B, 3, H, W) edited images in [0, 1]. Any size works (inputs are padded
    to multiples of 16, at least 32, and the output cropped back).
    """

    name = "fgtransform"
    Config = FGTransformConfig
    guidance = "target_map"

    def __init__(self, config: FGTransformConfig, *, load_pretrained: bool = True):
        super().__init__()
        self.config = config
        weights = config.backbone_weights if load_pretrained else "random"
        layers = tuple(dict.fromkeys(TEXTURE_LAYERS + FEATURE_LAYERS))  # relu5_2 is both content and feature
        self.vgg = VGGFeatures("vgg19", layers, weights=weights)
        self.transformer = FGTransformNet(512 * len(FEATURE_LAYERS), config.res_channels, config.n_res_blocks,
                                          config.up_channels)
        self.discriminator = PatchDiscriminator(3, config.disc_channels)
        self.optimizer_g = torch.optim.Adam(self.transformer.parameters(), lr=config.lr)
        self.optimizer_d = torch.optim.Adam(self.discriminator.parameters(), lr=config.lr)
        self.weights_info = {**self.weights_info, "backbone": self.vgg.weights_info,
                             "random_backbone": self.vgg.weights_info["source"] == "random"}

    # Inference.

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) images in [0, 1] → (B, 2560, H/16, W/16): the five conv5 layers, concatenated."""
        found = self.vgg(images)
        return torch.cat([found[name] for name in FEATURE_LAYERS], 1)

    def forward(self, image: torch.Tensor, target_map: torch.Tensor,
                image_features: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Differentiable transform (no input checks): images and target densities → images in [0, 1].

        `image_features`: `self.vgg(image)` if already computed (reused when no padding is needed).
        """
        height, width = image.shape[-2:]
        guidance = torch.cat([image, log_density_ratio(target_map)], 1)
        guidance = pad_to_multiple(guidance, FEATURE_STRIDE, minimum=2 * FEATURE_STRIDE)
        if image_features is not None and guidance.shape[-2:] == image.shape[-2:]:
            features = torch.cat([image_features[name] for name in FEATURE_LAYERS], 1)
        else:
            with torch.no_grad():  # the VGG is frozen and the input image needs no gradient
                features = self.features(guidance[:, :3])
        return self.transformer(features, guidance)[..., :height, :width]

    def edit(self, image: torch.Tensor, target_map: torch.Tensor, **options: Any) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] and (B, 1, H, W) target densities → (B, 3, H, W) in [0, 1], no grad."""
        if options:
            raise ValueError(f"fgtransform.edit takes no options, got {sorted(options)}")
        check_target_maps(image, target_map)
        with torch.no_grad():
            return self(image, target_map).clamp(0, 1)

    # Training.

    def generator_losses(self, image: torch.Tensor, target_map: torch.Tensor) -> dict[str, torch.Tensor]:
        """The transformer's weighted loss ``loss`` (eq. 9), its terms, and the ``output`` images."""
        c = self.config
        with torch.no_grad():
            real = self.vgg(image)
        output = self(image, target_map, real)
        fake = self.vgg(output)
        terms = {
            "saliency": losses.kl_saliency_loss(self.predictor.log_density(output), target_map),
            "feature": losses.content_loss(fake, real, layers=["relu5_2"]),
            "texture": losses.texture_loss(fake, real, layers=TEXTURE_LAYERS),
            "adversarial": losses.lsgan_g(self.discriminator(output)),
        }
        total = (c.lambda_saliency * terms["saliency"] + c.lambda_feature * terms["feature"]
                 + c.lambda_texture * terms["texture"] + c.lambda_adversarial * terms["adversarial"])
        return {"loss": total, **terms, "output": output}

    def discriminator_loss(self, image: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        """LSGAN discriminator loss (eq. 8): input images real, transformed (detached) images fake."""
        return losses.lsgan_d(self.discriminator(image), self.discriminator(output.detach()))

    def train_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """One transformer step, then one discriminator step, on ``image`` and ``target_map`` (built
        from the predictor's map of the image when the batch has none: `target_source`)."""
        return generator_then_discriminator_step(self, targets_from_predictor(self.predictor, batch, self.make_target))

    def validation_step(self, batch: dict[str, Any]) -> dict[str, float]:
        """Mean KL(target ‖ predictor) in nats for the input (``kl_input``) and the output (``kl_output``)."""
        batch = targets_from_predictor(self.predictor, batch, self.make_target)
        image, target_map = batch["image"], batch["target_map"]
        output = self.edit(image, target_map)
        return {"kl_input": float(losses.kl_saliency_loss(self.predictor.log_density(image), target_map)),
                "kl_output": float(losses.kl_saliency_loss(self.predictor.log_density(output), target_map))}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"transformer": self.optimizer_g, "discriminator": self.optimizer_d}

    def networks(self) -> dict[str, nn.Module]:
        return {"transformer": self.transformer, "discriminator": self.discriminator}

    def make_dataset(self, data_dir: str | os.PathLike, split: str | None = "train") -> TargetMapSamples:
        """Every X/Y image (with an object mask for local shifts; with a fixation map when
        `target_source` is "human") at `image_size`; targets by `make_target` (see `TargetMapSamples`)."""
        height, width = self.config.image_size
        min_objects = 1 if self.config.transform == "local_shift" else 0
        return TargetMapSamples(data_dir, split, (width, height), self.make_target, min_objects,
                                source=self.config.target_source)

    def make_target(self, rng: np.random.Generator, density: np.ndarray, labels: np.ndarray | None):
        """One target drawn per image (Gatys §3.4.2) from its saliency `density`: local_shift →
        log p_t = log p + k_sh·blur(M) for one random object M of `labels`, k_sh ~ U(k_sh_range);
        global_scale → log p_t = k_sc·log p, k_sc ~ U(k_sc_range). Returns (target, {k_sh, mask_id}
        or {k_sc})."""
        c = self.config
        if c.transform == "local_shift":
            sigma = c.mask_blur_frac * max(c.image_size)
            target, info = targets.sample_local_shift(rng, density, labels, sigma, c.k_sh_range)
            return target, {"k_sh": info["k_sh"], "mask_id": info["mask_id"]}
        return targets.sample_global_scale(rng, density, c.k_sc_range)


def chain_edit(editors: Sequence[Editor], image: torch.Tensor,
               target_maps: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    """Apply trained editors one after another: image → editors[0] → editors[1] → … (Gatys §5.1).

    The paper applies its local-shift instance first and its global-scale instance to that output.
    `target_maps` is one (B, 1, H, W) density per editor, or a single one used at every stage.
    Returns (B, 3, H, W) in [0, 1].
    """
    editors = list(editors)
    if not editors:
        raise ValueError("chain_edit needs at least one editor")
    maps = [target_maps] * len(editors) if isinstance(target_maps, torch.Tensor) else list(target_maps)
    if len(maps) != len(editors):
        raise ValueError(f"got {len(maps)} target maps for {len(editors)} editors; expected one per editor "
                         "(or a single tensor for all)")
    kinds = [getattr(getattr(e, "config", None), "transform", None) for e in editors]
    if kinds == ["global_scale", "local_shift"]:
        logger.info("chain_edit: global scaling before local shifting; the paper applies local shifting first")
    out = image
    for editor, target in zip(editors, maps):
        out = editor.edit(out, target)
    return out


edit_chain = chain_edit
