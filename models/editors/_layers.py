"""Blocks and helpers shared by the editors.

- `PatchDiscriminator`: pix2pix's 70 px PatchGAN (5 convolutions with 64, 128, 256, 512, 1
  channels, LeakyReLU 0.2), InstanceNorm instead of BatchNorm as Gatys et al. §7.1.2 use it, or
  no norm and spectral norm (GazeShiftNet).
- `MultiScaleDiscriminator`: PatchGANs on the input average-pooled 0, 1, … times (BicycleGAN,
  SalG-GAN's D_G, GazeShiftNet's critic).
- `ResidualBlock`: conv–IN–ReLU–conv–IN plus the input (then a ReLU for Gatys' Fig. 3c, none for
  CycleGAN's generator); a 1×1 projection when the channel count changes.
- `check_target_maps`: the ValueError checks of `edit(image, target_map)`.
- `pad_to_multiple`, `max_normalise`, `log_density_ratio`: small tensor helpers.
- `latent_codes`: the style codes z of an editor that samples (GazeShiftNet, SalG-GAN).

Convolutions followed by InstanceNorm have no bias (the norm would cancel it) and the norms are
affine, so every parameter receives a gradient.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from models import amp

logger = logging.getLogger(__name__)

__all__ = [
    "PatchDiscriminator", "MultiScaleDiscriminator", "ResidualBlock", "check_target_maps", "pad_to_multiple",
    "max_normalise", "log_density_ratio", "latent_codes",
]

LOG_RATIO_FLOOR = -20.0  # log(p·H·W) below this (e^-20 of the uniform density) counts as zero mass


class PatchDiscriminator(nn.Module):
    """(B, in_channels, H, W) images → (B, 1, h, w) raw patch scores, each seeing 70×70 px at n_layers 3.

    Kernel 4; strides 2 (`n_layers` times), 1, 1; channels base·(1, 2, 4, 8, 8, …), then 1 (pix2pix).
    `norm` "instance": InstanceNorm after every convolution but the first and the last, which alone
    have a bias (Gatys et al. §7.1.2 use IN instead of BatchNorm); "none": no norms, every
    convolution biased (GazeShiftNet's critic). `spectral`: spectral norm on every convolution.
    With IN, inputs must be at least about 24 px on each side (IN needs more than one position).
    """

    def __init__(self, in_channels: int = 3, base_channels: int = 64, n_layers: int = 3, *,
                 norm: str = "instance", spectral: bool = False):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"a PatchGAN needs n_layers >= 1 stride-2 convolutions, got {n_layers}")
        if norm not in ("instance", "none"):
            raise ValueError(f"norm must be 'instance' or 'none', got {norm!r}")
        wrap = spectral_norm if spectral else (lambda conv: conv)
        instance = norm == "instance"
        layers: list[nn.Module] = [wrap(nn.Conv2d(in_channels, base_channels, 4, 2, 1)), nn.LeakyReLU(0.2)]
        channels = base_channels
        for index in range(1, n_layers + 1):
            out = base_channels * min(2 ** index, 8)
            stride = 2 if index < n_layers else 1
            layers.append(wrap(nn.Conv2d(channels, out, 4, stride, 1, bias=not instance)))
            if instance:
                layers.append(nn.InstanceNorm2d(out, affine=True))
            layers.append(nn.LeakyReLU(0.2))
            channels = out
        layers.append(wrap(nn.Conv2d(channels, 1, 4, 1, 1)))
        self.net = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)


class MultiScaleDiscriminator(nn.Module):
    """(B, in_channels, H, W) → a list of `scales` (B, 1, h_k, w_k) raw patch-score maps, one per scale.

    Scale k is a `PatchDiscriminator` (`n_layers`, `norm`, `spectral` as there) on the input
    average-pooled (3×3, stride 2, padding 1) k times (pix2pixHD / BicycleGAN multi-scale D), with
    `channels` base channels, or round(channels / 2**k) (at least 1) with `halve_channels`
    (BicycleGAN's D_NLayersMulti). `unit_input`: the inputs are images in [0, 1], mapped to [−1, 1]
    first (GazeShiftNet's critic). The three editors that use it:

        BicycleGAN:   MultiScaleDiscriminator(3, 64, 3, 2, halve_channels=True)
        SalG-GAN D_G: MultiScaleDiscriminator(3 + 1, 64, 3, 3)
        GazeShiftNet: MultiScaleDiscriminator(3, 64, 3, 3, norm="none", spectral=True, unit_input=True)

    State dicts from GazeShiftNet's former critic, whose scales were bare `nn.Sequential`s
    (``nets.0.0.bias`` for ``nets.0.net.0.bias``), load unchanged.
    """

    def __init__(self, in_channels: int = 3, channels: int = 64, n_layers: int = 3, scales: int = 3, *,
                 halve_channels: bool = False, norm: str = "instance", spectral: bool = False,
                 unit_input: bool = False):
        super().__init__()
        if scales < 1:
            raise ValueError(f"scales must be >= 1, got {scales}")
        self.unit_input = unit_input
        self.nets = nn.ModuleList(
            PatchDiscriminator(in_channels, max(1, round(channels / 2**k)) if halve_channels else channels, n_layers,
                               norm=norm, spectral=spectral) for k in range(scales))

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = images * 2 - 1 if self.unit_input else images
        scores = []
        for k, net in enumerate(self.nets):
            if k:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            scores.append(net(x))
        return scores

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for key in [k for k in state_dict if k.startswith(prefix) and _BARE_SCALE.match(k[len(prefix):])]:
            scale, rest = key[len(prefix) + len("nets."):].split(".", 1)
            state_dict[f"{prefix}nets.{scale}.net.{rest}"] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


_BARE_SCALE = re.compile(r"nets\.\d+\.\d+\.")


class ResidualBlock(nn.Module):
    """(B, in_channels, h, w) → (B, out_channels, h, w): x' = act(IN(conv(act(IN(conv(x))))) + skip(x)).

    act after the sum is a ReLU when `final_relu` (Gatys et al. Fig. 3c: "the input is added
    before the second ReLU"), the identity otherwise (CycleGAN). skip is the identity, or a 1×1
    convolution with InstanceNorm when the channel count changes.
    """

    def __init__(self, in_channels: int, out_channels: int | None = None, final_relu: bool = True,
                 padding_mode: str = "reflect"):
        super().__init__()
        out_channels = out_channels or in_channels
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, padding_mode=padding_mode, bias=False),
            nn.InstanceNorm2d(out_channels, affine=True), nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, padding_mode=padding_mode, bias=False),
            nn.InstanceNorm2d(out_channels, affine=True))
        self.skip = nn.Identity() if in_channels == out_channels else nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.InstanceNorm2d(out_channels, affine=True))
        self.final = nn.ReLU() if final_relu else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final(self.body(x) + self.skip(x))


def check_target_maps(images: torch.Tensor, target_maps: torch.Tensor, name: str = "target_map") -> None:
    """ValueError unless `images` is (B, 3, H, W) and `target_maps` (B, 1, H, W) densities (sum 1 per image)."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"image must be a (B, 3, H, W) tensor in [0, 1], got {shape}")
    if not isinstance(target_maps, torch.Tensor) or target_maps.ndim != 4 or target_maps.shape[1] != 1:
        shape = tuple(target_maps.shape) if isinstance(target_maps, torch.Tensor) else type(target_maps).__name__
        raise ValueError(f"{name} must be a (B, 1, H, W) density tensor, got {shape}")
    if target_maps.shape[0] != images.shape[0] or target_maps.shape[2:] != images.shape[2:]:
        raise ValueError(f"{name} has size {tuple(target_maps.shape)} but image has size {tuple(images.shape)}; "
                         f"expected ({images.shape[0]}, 1, {images.shape[2]}, {images.shape[3]})")
    with torch.no_grad():
        flat = target_maps.detach().flatten(1).float()
        sums = flat.sum(1)
        if not bool(torch.isfinite(flat).all()) or bool((flat < 0).any()):
            raise ValueError(f"{name} must be finite and >= 0 (a density over pixels), got min {float(flat.min()):.4g}")
        tolerance = max(1e-3, 4 * torch.finfo(target_maps.dtype).eps)
        if float((sums - 1).abs().max()) > tolerance:
            raise ValueError(f"{name} is not a density: per-image sums {[round(s, 6) for s in sums.tolist()[:4]]}"
                             f"; expected 1 ± {tolerance:g} (divide a map by its sum)")


def pad_to_multiple(x: torch.Tensor, multiple: int, minimum: int = 0) -> torch.Tensor:
    """Pad (B, C, H, W) at the bottom and right to sides that are multiples of `multiple` (≥ `minimum`).

    Reflect padding where the side allows it, replicate otherwise; crop back with [..., :H, :W].
    """
    height, width = x.shape[-2:]
    target_h = max(minimum, -(-height // multiple) * multiple)
    target_w = max(minimum, -(-width // multiple) * multiple)
    pad_h, pad_w = target_h - height, target_w - width
    if pad_h == 0 and pad_w == 0:
        return x
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


def max_normalise(maps: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) non-negative maps divided by their per-image maximum → [0, 1]."""
    peak = maps.flatten(1).amax(1).clamp_min(torch.finfo(maps.dtype).tiny).view(-1, 1, 1, 1)
    return maps / peak


def log_density_ratio(density: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) densities → log(p · H·W), the log-density relative to the uniform one, ≥ LOG_RATIO_FLOOR.

    0 for a uniform map whatever the size, so a network sees the same values at 32 or 512 px.
    """
    pixels = density.shape[-2] * density.shape[-1]
    return torch.log((density.float() * pixels).clamp_min(float(np.exp(LOG_RATIO_FLOOR)))).to(density.dtype)


def generator_then_discriminator_step(editor, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
    """One G step, then one D step, of a target-map editor on ``image`` and ``target_map``.

    `editor` has generator_losses(image, target_map) -> {"loss", terms…, "output"},
    discriminator_loss(image, output) and optimizer_g / optimizer_d. Returns the detached terms
    and ``discriminator``.
    """
    image, target_map = batch["image"], batch["target_map"]
    check_target_maps(image, target_map)
    found = editor.generator_losses(image, target_map)
    editor.optimizer_g.zero_grad(set_to_none=True)
    amp.backward(found["loss"])  # D's parameters get gradients too; zeroed before its own step (DDP-safe)
    amp.step(editor.optimizer_g)
    editor.optimizer_d.zero_grad(set_to_none=True)
    loss_d = editor.discriminator_loss(image, found["output"])
    amp.backward(loss_d)
    amp.step(editor.optimizer_d)
    return {**{k: v.detach() for k, v in found.items() if k != "output"}, "discriminator": loss_d.detach()}


def latent_codes(batch: int, samples: int, z_dim: int, z, seed, device) -> torch.Tensor:
    """(batch, samples, z_dim) style codes: N(0, 1) draws (from `seed` when given, else the global
    torch RNG), or `z` as given — (batch, z_dim) for one sample or (batch, samples, z_dim);
    ValueError naming the shape otherwise."""
    if z is None:
        generator = torch.Generator().manual_seed(int(seed)) if seed is not None else None
        return torch.randn(batch, samples, z_dim, generator=generator).to(device)
    if isinstance(z, torch.Tensor) and samples == 1 and tuple(z.shape) == (batch, z_dim):
        return z[:, None].to(device)
    if isinstance(z, torch.Tensor) and tuple(z.shape) == (batch, samples, z_dim):
        return z.to(device)
    shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
    raise ValueError(f"z must be a ({batch}, {z_dim}) or ({batch}, {samples}, {z_dim}) tensor for {samples} "
                     f"sample(s), got {shape}")
