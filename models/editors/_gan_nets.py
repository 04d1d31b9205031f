"""Networks, data and helpers shared by the CycleGAN and BicycleGAN baselines (cyclegan_sal, bicyclegan_sal).

- `ResnetGenerator`: CycleGAN's ResNet generator (c7s1-64, d128, d256, R256 × n, u128, u64, c7s1-3, tanh).
- `UNetGenerator`: BicycleGAN's U-Net with the latent code z tiled and concatenated at the input, or at
  the input of every level (the public code's default "all").
- `ResNetEncoder`: BicycleGAN's E_ResNet: (B, 3, H, W) → (μ, log σ²), each (B, nz).
- `ImagePool`: CycleGAN's history of generated images, kept in buffers so checkpoints hold it.
- `PairSamples`, `check_pair_batch`: X/Y pairs with both fixation maps, and the batch check.
- `init_weights`, `to_signed`, `to_unit`, `conditioning_maps`: small helpers.

BicycleGAN's two-scale discriminator is `_layers.MultiScaleDiscriminator` with `halve_channels`.

Conventions as in `_layers`: convolutions followed by InstanceNorm have no bias and the norms are
affine (the references use non-affine norms after biased convolutions: the same family of
functions); no activation is in-place. Networks take and give images in [−1, 1].
"""

from __future__ import annotations

import logging
import os
from typing import Any

import torch
from torch import nn

from models.data import TrainingItems
from models.editors._layers import ResidualBlock, check_target_maps, max_normalise

logger = logging.getLogger(__name__)

__all__ = [
    "ResnetGenerator", "UNetGenerator", "ResNetEncoder", "ImagePool", "PairSamples", "check_pair_batch",
    "init_weights", "to_signed", "to_unit", "conditioning_maps",
]


class ResnetGenerator(nn.Module):
    """(B, in_channels, H, W) in [−1, 1] → (B, out_channels, H, W) in [−1, 1] (tanh).

    H and W must be multiples of 4 (and at least 16): the callers pad and crop around it.
    """

    def __init__(self, in_channels: int, out_channels: int = 3, channels: int = 64, n_blocks: int = 9):
        super().__init__()
        c = channels

        def norm_relu(width: int) -> list[nn.Module]:
            return [nn.InstanceNorm2d(width, affine=True), nn.ReLU()]

        self.net = nn.Sequential(
            nn.Conv2d(in_channels, c, 7, padding=3, padding_mode="reflect", bias=False), *norm_relu(c),
            nn.Conv2d(c, 2 * c, 3, stride=2, padding=1, bias=False), *norm_relu(2 * c),
            nn.Conv2d(2 * c, 4 * c, 3, stride=2, padding=1, bias=False), *norm_relu(4 * c),
            *[ResidualBlock(4 * c, final_relu=False) for _ in range(n_blocks)],
            nn.ConvTranspose2d(4 * c, 2 * c, 3, stride=2, padding=1, output_padding=1, bias=False), *norm_relu(2 * c),
            nn.ConvTranspose2d(2 * c, c, 3, stride=2, padding=1, output_padding=1, bias=False), *norm_relu(c),
            nn.Conv2d(c, out_channels, 7, padding=3, padding_mode="reflect"), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class UNetGenerator(nn.Module):
    """G(x, z): (B, in_channels, H, W) in [−1, 1] and (B, nz) codes → (B, out_channels, H, W) in [−1, 1].

    `levels` stride-2 levels (8 = BicycleGAN's unet_256, whose 256² input has a 1×1 bottleneck), so H
    and W must be multiples of 2**levels. Level i has channels·min(2**i, 8) features; dropout 0.5
    (when `dropout`) after the up-convolutions of levels 4 … levels − 2, as the reference's 8·ngf
    blocks. z is tiled over the image and concatenated to the input, and with
    `z_at_every_level` to the input of every level.
    """

    def __init__(self, in_channels: int, out_channels: int = 3, nz: int = 8, levels: int = 8, channels: int = 64,
                 z_at_every_level: bool = True, dropout: bool = True):
        super().__init__()
        if levels < 2:
            raise ValueError(f"a U-Net needs at least 2 levels, got levels = {levels}")
        widths = [channels * min(2**i, 8) for i in range(levels)]
        block = None
        for i in reversed(range(levels)):
            takes_z = nz > 0 and (i == 0 or z_at_every_level)
            inputs = (in_channels if i == 0 else widths[i - 1]) + (nz if takes_z else 0)
            outer = out_channels if i == 0 else widths[i - 1]
            block = _UNetLevel(inputs, outer, widths[i], block, outermost=i == 0, takes_z=takes_z,
                               dropout=dropout and 4 <= i <= levels - 2)
        self.root = block

    def forward(self, x: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        return self.root(x, z)


class _UNetLevel(nn.Module):
    """One U-Net level: down (LeakyReLU 0.2, conv 4×4 stride 2, IN), the inner levels, up (ReLU,
    transposed conv 4×4 stride 2, IN), then the skip concatenation of the level's input. The
    outermost level is a bare down-convolution and an up-convolution into tanh, without the skip;
    the innermost has no inner levels and no down-norm."""

    def __init__(self, inputs: int, outer: int, inner: int, submodule: _UNetLevel | None, *, outermost: bool,
                 takes_z: bool, dropout: bool):
        super().__init__()
        self.submodule, self.outermost, self.takes_z = submodule, outermost, takes_z
        innermost = submodule is None
        up_in = inner if innermost else 2 * inner
        if outermost:
            down: list[nn.Module] = [nn.Conv2d(inputs, inner, 4, 2, 1)]
            up: list[nn.Module] = [nn.ReLU(), nn.ConvTranspose2d(up_in, outer, 4, 2, 1), nn.Tanh()]
        else:
            down = [nn.LeakyReLU(0.2), nn.Conv2d(inputs, inner, 4, 2, 1, bias=innermost)]
            if not innermost:
                down.append(nn.InstanceNorm2d(inner, affine=True))
            up = [nn.ReLU(), nn.ConvTranspose2d(up_in, outer, 4, 2, 1, bias=False),
                  nn.InstanceNorm2d(outer, affine=True)]
            if dropout:
                up.append(nn.Dropout(0.5))
        self.down, self.up = nn.Sequential(*down), nn.Sequential(*up)

    def forward(self, x: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        h = torch.cat([x, _tile(z, x)], 1) if self.takes_z else x
        h = self.down(h)
        if self.submodule is not None:
            h = self.submodule(h, z)
        h = self.up(h)
        return h if self.outermost else torch.cat([h, x], 1)


def _tile(z: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return z.to(like.dtype)[:, :, None, None].expand(-1, -1, *like.shape[-2:])


class ResNetEncoder(nn.Module):
    """E(y): (B, in_channels, H, W) in [−1, 1] → (μ, log σ²), each (B, nz).

    A 4×4 stride-2 convolution, then n_blocks − 1 residual blocks (IN, LeakyReLU 0.2, conv 3×3, IN,
    LeakyReLU, conv 3×3, average pool 2; shortcut: average pool 2, conv 1×1) with channels·min(n, 4)
    features, LeakyReLU, global average pooling (the reference's 8×8 pool at 256² with 5 blocks)
    and two linear heads. H and W must be at least 2**n_blocks.
    """

    def __init__(self, in_channels: int = 3, nz: int = 8, channels: int = 64, n_blocks: int = 5):
        super().__init__()
        if n_blocks < 2:
            raise ValueError(f"the ResNet encoder needs n_blocks >= 2, got {n_blocks}")
        layers: list[nn.Module] = [nn.Conv2d(in_channels, channels, 4, 2, 1, bias=False)]
        width = channels
        for n in range(1, n_blocks):
            width = channels * min(4, n + 1)
            layers.append(_EncoderBlock(channels * min(4, n), width))
        layers += [nn.LeakyReLU(0.2), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.mu, self.logvar = nn.Linear(width, nz), nn.Linear(width, nz)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.features(images)
        return self.mu(features), self.logvar(features)


class _EncoderBlock(nn.Module):
    def __init__(self, inputs: int, outputs: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.InstanceNorm2d(inputs, affine=True), nn.LeakyReLU(0.2), nn.Conv2d(inputs, inputs, 3, 1, 1, bias=False),
            nn.InstanceNorm2d(inputs, affine=True), nn.LeakyReLU(0.2), nn.Conv2d(inputs, outputs, 3, 1, 1),
            nn.AvgPool2d(2))
        self.shortcut = nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(inputs, outputs, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


class ImagePool(nn.Module):
    """A history of up to `size` generated images that D is shown instead of the newest ones (CycleGAN).

    `query(images)`: while the pool is not full, each image is stored and returned as it is; once
    it is full, each image is, with probability ½, returned as it is, or else stored in place of a
    uniformly drawn stored image, which is returned instead. Draws use the global torch RNG and the
    images live in buffers (`images`, `count`), so a checkpoint resumes the pool exactly. `size` 0
    returns every batch unchanged. image_shape = (C, H, W) of every image queried.
    """

    def __init__(self, size: int, image_shape: tuple[int, int, int]):
        super().__init__()
        if size < 0:
            raise ValueError(f"pool size must be >= 0, got {size}")
        self.size = int(size)
        self.register_buffer("images", torch.zeros(self.size, *image_shape))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) images (detached here) → (B, C, H, W): each the input or a stored one."""
        if self.size == 0:
            return images.detach()
        if tuple(images.shape[1:]) != tuple(self.images.shape[1:]):
            raise ValueError(f"the image pool holds images of shape {tuple(self.images.shape[1:])}, got a batch of "
                             f"{tuple(images.shape)}; train on the config's image_size (build data with make_dataset)")
        out = []
        for image in images.detach():
            filled = int(self.count)
            if filled < self.size:
                self.images[filled] = image
                self.count += 1
                out.append(image)
            elif float(torch.rand(())) < 0.5:
                out.append(image)
            else:
                index = int(torch.randint(self.size, ()))
                out.append(self.images[index].clone().to(image.dtype))
                self.images[index] = image
        return torch.stack(out)


class PairSamples(TrainingItems):
    """The X/Y pairs of a gazelab dataset split that have both images and both fixation maps.

    `size` = (W, H). Items: ``x``, ``y`` (3, H, W) in [0, 1], ``x_map``, ``y_map`` (1, H, W)
    densities and ``pair_id``. Rows of source "single" have no ground-truth Y and are not pairs;
    a split without any pair is a ValueError that says so, naming `editor`.
    """

    def __init__(self, data_dir: str | os.PathLike, split: str | None, size: tuple[int, int], editor: str):
        super().__init__(data_dir, split, unit="pair", size=tuple(size), require=("y", "x_map", "y_map"),
                         owner=f"{editor} (X/Y pairs with a ground-truth Y and both fixation maps)")

    def prepare(self, item: dict[str, Any], index: int) -> dict[str, Any]:
        return {key: item[key] for key in ("x", "y", "x_map", "y_map", "pair_id")}


def check_pair_batch(batch: dict[str, Any], editor: str) -> tuple[torch.Tensor, ...]:
    """(x, y, x_map, y_map) of a training batch; ValueError naming what is missing or misshapen."""
    missing = [key for key in ("x", "y", "x_map", "y_map") if not isinstance(batch.get(key), torch.Tensor)]
    if missing:
        raise ValueError(f"{editor} trains on X/Y pairs with both fixation maps; the batch lacks {missing} (rows of "
                         "source 'single' have no ground-truth Y: build the data with make_dataset)")
    x, y, x_map, y_map = (batch[key] for key in ("x", "y", "x_map", "y_map"))
    check_target_maps(x, x_map, "x_map")
    check_target_maps(x, y_map, "y_map")
    if y.shape != x.shape:
        raise ValueError(f"y has shape {tuple(y.shape)} but x has {tuple(x.shape)}; expected the same")
    return x, y, x_map, y_map


def conditioning_maps(*densities: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) densities → (B, n, H, W): each max-normalised to [0, 1], then mapped to [−1, 1] like the images."""
    return torch.cat([to_signed(max_normalise(d.float())) for d in densities], 1)


def to_signed(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] → [−1, 1]."""
    return 2 * images - 1


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """[−1, 1] → [0, 1]."""
    return (images + 1) / 2


def init_weights(module: nn.Module, kind: str = "normal", gain: float = 0.02) -> None:
    """The references' initialisation: conv and linear weights N(0, gain²) ("normal", CycleGAN) or
    Xavier-normal with `gain` ("xavier", BicycleGAN), biases 0; norms keep weight 1, bias 0."""
    if kind not in ("normal", "xavier"):
        raise ValueError(f"init kind must be 'normal' or 'xavier', got {kind!r}")
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            if kind == "normal":
                nn.init.normal_(layer.weight, 0.0, gain)
            else:
                nn.init.xavier_normal_(layer.weight, gain=gain)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
