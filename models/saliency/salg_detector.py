"""SalG-GAN's saliency detector (Jiang et al. 2021, papers/000 §3.2), as a stand-alone predictor.

The paper gives the outline only: "3 dense blocks [DenseNet] followed by 3 deconvolutional blocks,
with 36 convolutional layers in total", with an ASPP [DeepLab] between them, trained to match
fixation maps in KL divergence (its saliency loss, eq. 7). Everything else is standard DenseNet-BC /
DeepLabv3, chosen here because the paper is silent:

    stem        3×3 conv, 3 → 2k channels (k = growth rate 32), stride 1                1 conv
    3 × dense   L = 2, 3, 5 bottleneck layers BN-ReLU-1×1(4k)-BN-ReLU-3×3(k), concatenated;
                transition BN-ReLU-1×1 (compression 0.5)-avgpool 2                      2·10 + 3 convs
    ASPP        BN-ReLU, then 1×1 | 3×3 at rates 6, 12, 18 | image pooling-1×1, each 256
                channels, concatenated, 1×1 projection                                   6 convs
    3 × deconv  4×4 stride-2 transposed conv (128, 64, 32 channels)-BN-ReLU, 3×3 conv
                (BN-ReLU; the last one gives the 1-channel logits)                       6 convs

36 convolutions in all (nn.Conv2d + nn.ConvTranspose2d), at every preset. The three pools and three
deconvolutions bring the map back to the input size. The rates 6, 12, 18 are DeepLabv3's for feature
maps of about 32×32, which 256×256 inputs give at output stride 8. The image-pooling branch has no
batch norm (a 1×1 map cannot be batch-normalised at batch size 1) and the projection no dropout.
Input 256×256 (the SalG-GAN generator's U-Net has 8 stride-2 levels, so its images are 256² —
the paper states no size), Adam lr 1e-4, β = (0.9, 0.999), batch 16: common saliency-net values,
as the paper gives no training setup for the detector. Weights start from scratch: the paper names
no pretrained backbone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from models import amp, losses
from models.base import SaliencyPredictor, check_images, check_saliency_batch
from models.registry import PREDICTORS
from models.schedules import linear_decay


__all__ = ["SalGDetector", "SalGDetectorConfig", "SalGDetectorNet"]


@dataclass
class SalGDetectorConfig:
    """The detector's settings (see the module docstring for which are the paper's).

    input_size: (height, width) in pixels the model works on.
    growth_rate, block_layers, bottleneck_width, compression: the dense blocks (k, L per block,
        bottleneck channels = bottleneck_width·k, transition channel factor).
    aspp_channels, aspp_rates: ASPP branch width and the dilation rates of its 3×3 branches.
    decoder_channels: widths of the three deconvolution blocks.
    lr, betas, weight_decay: Adam's. batch_size, max_steps: the run's defaults (`gazelab train`).
    decay_start: the learning rate stays `lr` until decay_start·max_steps, then falls linearly to 0
        at max_steps (1.0, the default: constant, as the paper states no schedule).
    """

    PRESETS: ClassVar[dict[str, dict]] = {
        # Minutes on a laptop CPU: growth rate 12, slim ASPP and decoder, Adam at 10× the paper's lr for a
        # short run; 96×72 inputs (48×64 lost ~0.05 CC on benchmarks/bench_recovery.py's 96×72 scenes)
        "cpu": {"input_size": (72, 96), "growth_rate": 12, "aspp_channels": 48, "decoder_channels": (48, 32, 16),
                "lr": 1e-3, "decay_start": 0.5, "batch_size": 4, "max_steps": 800},
        "tiny": {"input_size": (24, 32), "growth_rate": 4, "aspp_channels": 8, "decoder_channels": (8, 8, 8),
                 "batch_size": 2, "max_steps": 20},
    }

    input_size: tuple[int, int] = (256, 256)
    growth_rate: int = 32
    block_layers: tuple[int, ...] = (2, 3, 5)
    bottleneck_width: int = 4
    compression: float = 0.5
    aspp_channels: int = 256
    aspp_rates: tuple[int, ...] = (6, 12, 18)
    decoder_channels: tuple[int, ...] = (128, 64, 32)
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    batch_size: int = 16
    max_steps: int = 20000
    decay_start: float = 1.0


class SalGDetectorNet(nn.Module):
    """(B, 3, H, W) images in [0, 1] → (B, 1, H, W) saliency logits (any H, W; best multiples of 8)."""

    def __init__(self, config: SalGDetectorConfig):
        super().__init__()
        k = config.growth_rate
        if len(config.block_layers) != 3 or min(config.block_layers) < 1:
            raise ValueError(f"block_layers = {config.block_layers!r}; expected 3 positive layer counts")
        if len(config.decoder_channels) != 3 or min(config.decoder_channels) < 1:
            raise ValueError(f"decoder_channels = {config.decoder_channels!r}; expected 3 positive widths")
        if k < 1 or config.bottleneck_width < 1 or config.aspp_channels < 1 or not 0 < config.compression <= 1:
            raise ValueError(f"growth_rate = {k}, bottleneck_width = {config.bottleneck_width}, aspp_channels = "
                             f"{config.aspp_channels} must be >= 1 and compression = {config.compression} in (0, 1]")
        if not config.aspp_rates or min(config.aspp_rates) < 1:
            raise ValueError(f"aspp_rates = {config.aspp_rates!r}; expected positive dilation rates")
        self.stem = nn.Conv2d(3, 2 * k, 3, padding=1, bias=False)
        blocks, channels = [], 2 * k
        for n_layers in config.block_layers:
            layers: list[nn.Module] = []
            for _ in range(n_layers):
                layers.append(_DenseLayer(channels, k, config.bottleneck_width * k))
                channels += k
            out = max(1, math.floor(channels * config.compression))
            layers.append(_transition(channels, out))
            blocks.append(nn.Sequential(*layers))
            channels = out
        self.dense = nn.Sequential(*blocks)
        self.aspp = _ASPP(channels, config.aspp_channels, tuple(config.aspp_rates))
        decoder, channels = [], config.aspp_channels
        for index, width in enumerate(config.decoder_channels):
            last = index == len(config.decoder_channels) - 1
            layers = [nn.ConvTranspose2d(channels, width, 4, stride=2, padding=1, bias=False),
                      nn.BatchNorm2d(width), nn.ReLU()]
            if last:
                layers.append(nn.Conv2d(width, 1, 3, padding=1))
            else:
                layers += [nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
            decoder.append(nn.Sequential(*layers))
            channels = width
        self.decoder = nn.Sequential(*decoder)
        for module in self.modules():  # torchvision's DenseNet initialisation
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.stem(images * 2 - 1)  # [0, 1] → [−1, 1]
        logits = self.decoder(self.aspp(self.dense(x)))
        if logits.shape[-2:] != images.shape[-2:]:  # sizes that are not multiples of 8
            logits = F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)
        return logits


@PREDICTORS.register("salg_detector")
class SalGDetector(SaliencyPredictor):
    """SalG-GAN's saliency detector: `forward` gives log-densities, `saliency_map` a [0, 1] map.

    `make_dataset` (inherited) yields ``x`` (3, H, W) in [0, 1] and ``x_map`` (1, H, W) densities
    at `input_size`; `train_step` minimises KL(x_map ‖ predicted density) with Adam.
    """

    name = "salg_detector"
    Config = SalGDetectorConfig

    def __init__(self, config: SalGDetectorConfig, *, load_pretrained: bool = True):
        super().__init__()
        del load_pretrained  # no pretrained backbone to load: the detector is trained from scratch
        self.config = config
        self.detector = SalGDetectorNet(config)
        self.optimizer = torch.optim.Adam(self.detector.parameters(), lr=config.lr, betas=tuple(config.betas),
                                          weight_decay=config.weight_decay)
        if not 0 <= config.decay_start <= 1 or config.max_steps < 1:
            raise ValueError(f"decay_start = {config.decay_start} must be in [0, 1] and max_steps = "
                             f"{config.max_steps} >= 1")
        # No scheduler at a constant rate: runs from before decay_start existed resume as they were.
        self.scheduler = (torch.optim.lr_scheduler.LambdaLR(self.optimizer, linear_decay(config.max_steps,
                                                                                         config.decay_start))
                          if config.decay_start < 1 else None)
        self.weights_info = {"backbone": None, "random_backbone": False,
                             "init": "from scratch (the SalG-GAN detector has no pretrained backbone)"}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, h, w) images in [0, 1] → (B, 1, h, w) natural-log densities (log_softmax over pixels)."""
        check_images(images)
        logits = self.detector(images).float()
        return torch.log_softmax(logits.flatten(1), dim=1).view_as(logits)

    def saliency_map(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, h, w) images in [0, 1] → (B, 1, h, w) the predicted density divided by its maximum."""
        log_density = self(images)
        return (log_density - log_density.amax(dim=(-2, -1), keepdim=True)).exp()

    def train_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """One Adam step on KL(x_map ‖ prediction) in nats; returns {"kl": the batch mean}."""
        images, maps = check_saliency_batch(batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss = losses.kl_saliency_loss(self(images), maps)
        amp.backward(loss)
        amp.step(self.optimizer)
        return {"kl": loss.detach()}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"detector": self.optimizer}

    def schedulers(self) -> dict[str, torch.optim.lr_scheduler.LRScheduler]:
        return {} if self.scheduler is None else {"detector": self.scheduler}

    def networks(self) -> dict[str, nn.Module]:
        return {"detector": self.detector}


class _DenseLayer(nn.Module):
    """DenseNet-BC bottleneck layer: input ⊕ 3×3(1×1(x)), adding `growth` channels."""

    def __init__(self, channels: int, growth: int, bottleneck: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(channels), nn.ReLU(), nn.Conv2d(channels, bottleneck, 1, bias=False),
            nn.BatchNorm2d(bottleneck), nn.ReLU(), nn.Conv2d(bottleneck, growth, 3, padding=1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.body(x)], dim=1)


def _transition(channels: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(), nn.Conv2d(channels, out, 1, bias=False), nn.AvgPool2d(2))


class _ASPP(nn.Module):
    """DeepLabv3's atrous spatial pyramid pooling on pre-activated DenseNet features."""

    def __init__(self, channels: int, width: int, rates: tuple[int, ...]):
        super().__init__()
        self.pre = nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU())
        branches = [nn.Sequential(nn.Conv2d(channels, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())]
        for rate in rates:
            branches.append(nn.Sequential(nn.Conv2d(channels, width, 3, padding=rate, dilation=rate, bias=False),
                                          nn.BatchNorm2d(width), nn.ReLU()))
        self.branches = nn.ModuleList(branches)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, width, 1), nn.ReLU())
        self.project = nn.Sequential(nn.Conv2d(width * (len(rates) + 2), width, 1, bias=False),
                                     nn.BatchNorm2d(width), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pre(x)
        outs = [branch(x) for branch in self.branches]
        outs.append(self.pool(x).expand(-1, -1, *x.shape[-2:]))  # a 1×1 map: bilinear upsampling is a copy
        return self.project(torch.cat(outs, dim=1))
