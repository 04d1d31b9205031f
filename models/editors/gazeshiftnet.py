"""GazeShiftNet (Mejjati et al., ECCV 2020, papers/004): attention shifting by global parametric edits.

G_E (`ParameterEncoder`) sees the image and the object mask (the mask, and the tiled latent z
when `z_dim` > 0, concatenated again before every conv stage), pools globally and predicts, per
direction ("increase", and "decrease" when `config.decrease`), one foreground and one
background parameter set through separate fully connected heads. G_D (`gazeshift_ops`) applies
sharpen → exposure → contrast → tone → colour to the image, each region with its own set,
blended by the blurred mask. Training: hinge GAN against a multi-scale critic (eq. 4), the
softmax attention loss of the attached saliency predictor (eq. 5) with λ_s, and, with z, the
latent reconstruction L_r = mean |z − ENC(p)| (§5). Parameters are predicted at
`param_size` px (short side) and applied at full resolution, so `edit` scales to 4K images.

Beyond the paper, so that a config means the same at every size and z is used: the attention
term is eq. 5 times the saliency map's pixel count, weighted λ_s / (256·256) (eq. 6 exactly at
256×256; `GazeShiftNet.attention_weight`); G_E starts from He-normal weights (`ParameterEncoder`);
L_r is weighted 10 (the paper gives no weight). `benchmarks/bench_editing.py` measures the effect.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from models import amp, losses
from models.base import Editor
from models.editors.gazeshift_ops import (CONTRAST_RANGE, EXPOSURE_RANGE, SHARPEN_RANGE, apply_parameters,
                                         check_image_and_mask, flatten_parameters, mask_from_guidance,
                                         parameters_from_raw, raw_size)
from models.editors._layers import MultiScaleDiscriminator, latent_codes
from models.editors.gazeshift_data import GazeShiftSamples
from models.registry import EDITORS
from models.schedules import linear_decay

logger = logging.getLogger(__name__)

__all__ = ["GazeShiftNetConfig", "GazeShiftNet", "ParameterEncoder", "LatentEncoder", "GazeShiftSamples"]

DIRECTIONS = ("increase", "decrease")


@dataclass
class GazeShiftNetConfig:
    """GazeShiftNet's settings; defaults are the paper's where it gives them (papers/004 §3, §5).

    Presets: "paper" (the defaults) is the main model of §3 — increase only, λ_s = 2.5e4, 37,500
    steps of batch 4. "paper_bidirectional" is §5's increase/decrease model: "we trained this model
    for double the amount of time, with hyper-parameter λ_s = 2 × 10^4"; its other change, "we had
    to discard from the training set all masks where the average computational saliency was too
    small", is `decrease_min_saliency`, at a threshold of ours (the paper gives none).
    "paper_stochastic" is §5's multi-style model, z ∈ R^10 (the paper gives it no λ_s or length of
    its own). "cpu" and "tiny" train both directions and a 3-d z, so that every head is exercised;
    their λ_s means what it means at 256×256 (see `GazeShiftNet.attention_weight`). They also add a
    fidelity prior the paper does not have, `lambda_fidelity` = 50: trained on a dozen images, the
    critic cannot hold realism, and without the prior the demo's edits flattened the background to
    grey; with it, on the demo's renders, background SSIM to the input went from 0.91 (λ 20) to 0.99,
    while 10 of 12 masks still gained predicted saliency.
    """

    PRESETS: ClassVar[dict[str, dict]] = {
        "paper_bidirectional": {"decrease": True, "lambda_attention": 2e4, "max_steps": 75000,
                                "decrease_min_saliency": 1.0},
        "paper_stochastic": {"z_dim": 10},
        # minutes on a laptop CPU (the demo); at 80 steps its edits were still large (mean |edit − input| 0.11
        # on the demo's images), by 300 they have settled (benchmarks/bench_editing.py: 0.07)
        "cpu": {"image_size": (48, 64), "param_size": 48, "encoder_channels": (16, 32, 64), "fc_width": 64,
                "z_dim": 3, "decrease": True, "d_scales": 2, "d_channels": 16, "d_layers": 2, "lr": 1e-3,
                "d_lr": 1e-3, "batch_size": 4, "max_steps": 300, "lambda_fidelity": 50.0},
        "tiny": {"image_size": (24, 32), "param_size": 24, "encoder_channels": (8, 16), "fc_width": 16,
                 "z_dim": 3, "decrease": True, "d_scales": 2, "d_channels": 8, "d_layers": 2, "lr": 1e-3,
                 "d_lr": 1e-3, "batch_size": 2, "max_steps": 20, "lambda_fidelity": 50.0},
    }
    image_size: tuple[int, int] = (256, 256)  # training (height, width), pixels
    param_size: int = 256  # short side (px) of the image G_E sees; edits apply at full resolution
    encoder_channels: tuple[int, ...] = (32, 64, 128, 256, 256)  # one stride-2 stage each (not in the paper)
    fc_width: int = 256  # shared fully connected layers and heads (not in the paper)
    curve_knots: int = 8  # tone and per-channel colour curves (Exposure's 8)
    z_dim: int = 0  # latent style code (§5 uses 10); 0 = a deterministic model
    decrease: bool = False  # also train the "decrease" heads (§5), in the same steps as "increase"
    # §5: masks whose mean density under the predictor, in the input and in units of the uniform
    # density, is below this train no "decrease" (0 = every mask does); see `GazeShiftNet.train_step`.
    # paper_bidirectional's 1 (as dense as the average pixel) keeps every mask of the demo's CLEVR
    # renders under its SalGAN (2.3–5.9) and none of bench_editing.py's dark boxes under its luminance
    # predictor (0.59–0.77; there the decrease heads then learn nothing: held-out masks whose density
    # fell, 100 % → 50 %). `decrease_kept` in the training log shows the share kept.
    decrease_min_saliency: float = 0.0
    mask_blur: float = 0.01  # σ of the blend mask's Gaussian blur, fraction of the short side
    d_scales: int = 3  # multi-scale critic: PatchGANs on the image halved d_scales − 1 times
    d_channels: int = 64
    d_layers: int = 3  # stride-2 convolutions per PatchGAN
    d_spectral_norm: bool = True  # hinge loss with spectral norm, after the paper's [32, 45]
    lambda_attention: float = 2.5e4  # λ_s (eq. 6) at attention_reference_size; see `GazeShiftNet.attention_weight`
    attention_reference_size: tuple[int, int] = (256, 256)  # (H, W) of the saliency map at which λ_s is eq. 6's
    # weight of L_r (§5 gives none): at 1 the attention and GAN terms won and z stayed unrecovered
    # (L_r ≈ 0.7·E|z| after 300 steps of the cpu preset); at 10, 0.1–0.35·E|z| (bench_editing.py)
    lambda_latent: float = 10.0
    lr: float = 1e-5  # G_E (and ENC), Adam
    d_lr: float = 1e-5
    adam_betas: tuple[float, float] = (0.5, 0.999)  # not in the paper
    batch_size: int = 4  # the run's default (`gazelab train`; the trainer takes its own)
    max_steps: int = 37500  # the run's length; the LR decays linearly to 0 from decay_start·max_steps to it
    decay_start: float = 0.5
    mask_min_area: float = 0.01  # CoCoClutter curation: object area fraction within [min, max]
    mask_max_area: float = 0.5
    mask_seed: int = 0  # the draw of one object per training image (fixed, so resumes see the same)
    # Not in the paper: weight of a fidelity prior, the mean |edit − input| outside the mask (L1, [0, 1]
    # images). The paper holds realism with the critic alone, trained on 60k+ images; with a dozen the
    # critic cannot, and the attention term alone flattens the background to grey and darkens the target
    # (the demo's first edits: background exposure −2.2 stops). 0 = the paper's objective.
    lambda_fidelity: float = 0.0


@EDITORS.register("gazeshiftnet")
class GazeShiftNet(Editor):
    """The GazeShiftNet editor; see the module docstring. `edit(image, mask)` → edited image."""

    name = "gazeshiftnet"
    Config = GazeShiftNetConfig
    guidance = "mask"

    def __init__(self, config: GazeShiftNetConfig, *, load_pretrained: bool = True):
        super().__init__()
        self.config = config
        _check_config(config)
        self.directions = DIRECTIONS if config.decrease else DIRECTIONS[:1]
        n_raw = raw_size(config.curve_knots)
        self.encoder = ParameterEncoder(config.encoder_channels, config.fc_width, config.z_dim, self.directions, n_raw)
        self.latent_encoder = (LatentEncoder(2 * n_raw, config.fc_width, config.z_dim, self.directions)
                               if config.z_dim > 0 else None)
        # the critic: PatchGANs without norms on images in [0, 1], spectral norm on every convolution
        self.discriminator = MultiScaleDiscriminator(3, config.d_channels, config.d_layers, config.d_scales,
                                                     norm="none", spectral=config.d_spectral_norm, unit_input=True)
        # load_pretrained has nothing to load: no part of GazeShiftNet starts from pretrained weights
        self.weights_info = {**self.weights_info, "backbone": "none", "random_backbone": False,
                             "encoder": "trained from scratch (GazeShiftNet has no pretrained backbone)"}
        g_params = [p for net in (self.encoder, self.latent_encoder) if net is not None for p in net.parameters()]
        betas = tuple(config.adam_betas)
        self.optimizer_g = torch.optim.Adam(g_params, lr=config.lr, betas=betas)
        self.optimizer_d = torch.optim.Adam(self.discriminator.parameters(), lr=config.d_lr, betas=betas)
        decay = linear_decay(config.max_steps, config.decay_start)
        self.scheduler_g = torch.optim.lr_scheduler.LambdaLR(self.optimizer_g, decay)
        self.scheduler_d = torch.optim.lr_scheduler.LambdaLR(self.optimizer_d, decay)

    # -- the trainer's protocol ---------------------------------------------------------------------

    @property
    def attention_weight(self) -> float:
        """λ_s / (H_ref·W_ref): the weight of the logged attention term, L_att · n_pixels.

        Eq. 5 averages a softmax density over the mask, so its value scales with 1 / n_pixels of
        the saliency map (≈ −1/(H·W) for a flat map) and a fixed λ_s would weigh it against the
        GAN term 21× more at 48×64 than at 256×256. Training therefore uses L_att · n_pixels —
        minus the mask's mean density in units of the uniform density (−1: as salient as a flat
        map; −10: ten times that), the same at every size — with this weight, which equals eq. 6's
        λ_s·L_att exactly where the map has `attention_reference_size` pixels (the paper gives no
        training resolution; 256×256 is this config's default image_size).
        """
        height, width = self.config.attention_reference_size
        return self.config.lambda_attention / (height * width)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"g": self.optimizer_g, "d": self.optimizer_d}

    def schedulers(self) -> dict[str, torch.optim.lr_scheduler.LRScheduler]:
        return {"g": self.scheduler_g, "d": self.scheduler_d}

    def networks(self) -> dict[str, nn.Module]:
        nets = {"encoder": self.encoder, "discriminator": self.discriminator, "latent_encoder": self.latent_encoder}
        return {name: net for name, net in nets.items() if net is not None}

    def train_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """One D step then one G step on ``image`` (B, 3, H, W) in [0, 1] and ``mask`` (B, 1, H, W) {0, 1}.

        Every step edits the batch in each trained direction; the attention term is
        L_att(S(I'_inc), m) − L_att(S(I'_dec), m) (§5), so "decrease" lowers the density inside m.
        The logged ``attention*`` values are L_att · n_pixels (see `attention_weight`): −1 is a flat
        map's density in the mask, −5 five times that.

        With `decrease_min_saliency` > 0 (§5: "we had to discard from the training set all masks
        where the average computational saliency was too small. Such masks were not suitable for
        the objective of decreasing saliency"), the decrease term averages over the masks whose
        mean density in the input, in those units, reaches the threshold, and is 0 in a batch with
        none; ``decrease_kept`` logs their share. Unlike the paper, the other masks still train the
        increase heads and the critic: they suit those, and the data stay lazy (no pass of the
        predictor over the training set before training).
        """
        image, mask = batch["image"], batch["mask"].to(batch["image"].dtype)
        check_image_and_mask(image, mask)
        params, z = self._predict_all(image, mask)
        blur = self._blur_px(image)
        edited = {d: apply_parameters(image, mask, params[d], 1.0, mask_blur_px=blur) for d in self.directions}
        fakes = torch.cat([edited[d] for d in self.directions])

        # D: real and fake in one forward (one DDP forward per backward)
        scores = self.discriminator(torch.cat([image, fakes.detach()]))
        d_loss = losses.hinge_d([s[: len(image)] for s in scores], [s[len(image):] for s in scores])
        self.optimizer_d.zero_grad(set_to_none=True)
        amp.backward(d_loss)
        amp.step(self.optimizer_d)

        g_adv = losses.hinge_g(self.discriminator(fakes))
        # L_att · n_pixels: −(mean over m of the density in units of the uniform density), so that
        # λ_s / reference_pixels weighs it as eq. 6 does at the reference size, at every size
        attention, kept = {}, None
        for d in self.directions:
            log_density = self.predictor.log_density(edited[d])
            per_mask = -_mask_density(log_density, mask)
            if d == "decrease" and self.config.decrease_min_saliency > 0:
                kept = self._salient_enough(image, mask)
                attention[d] = (per_mask * kept).sum() / kept.sum().clamp(min=1)
            else:
                attention[d] = per_mask.mean()
        att = attention["increase"] - attention["decrease"] if self.config.decrease else attention["increase"]
        g_loss = g_adv + self.attention_weight * att
        out = {"d_hinge": d_loss.detach(), "g_hinge": g_adv.detach(), "attention": att.detach(),
               "attention_increase": attention["increase"].detach()}
        if self.config.lambda_fidelity > 0:
            background = 1 - mask
            change = sum(((edited[d] - image).abs() * background).sum((1, 2, 3)) for d in self.directions)
            fidelity = (change / (3 * background.sum((1, 2, 3)).clamp(min=1) * len(self.directions))).mean()
            g_loss = g_loss + self.config.lambda_fidelity * fidelity
            out["fidelity_bg"] = fidelity.detach()
        if self.config.decrease:
            out["attention_decrease"] = attention["decrease"].detach()
        if kept is not None:
            out["decrease_kept"] = kept.mean()
        if self.latent_encoder is not None:
            flat = {d: torch.cat([flatten_parameters(params[d]["fg"]), flatten_parameters(params[d]["bg"])], 1)
                    for d in self.directions}
            z_pred = self.latent_encoder(flat)
            latent = sum(losses.latent_regression_loss(z_pred[d], z) for d in self.directions) / len(self.directions)
            g_loss = g_loss + self.config.lambda_latent * latent
            out["latent"] = latent.detach()
        self.optimizer_g.zero_grad(set_to_none=True)
        amp.backward(g_loss)
        amp.step(self.optimizer_g)
        out["g_total"] = g_loss.detach()
        return out

    # -- inference ------------------------------------------------------------------------------------

    def parameters_for(self, image: torch.Tensor, mask: torch.Tensor, direction: str = "increase",
                       z: torch.Tensor | None = None) -> dict[str, dict[str, torch.Tensor]]:
        """The predicted {"fg": set, "bg": set} (see `gazeshift_ops`) for (B, 3, H, W) images in [0, 1]
        and (B, 1, H, W) masks in [0, 1], any size (G_E sees them at `param_size`). z: (B, z_dim)
        latent codes; None draws them from N(0, 1) with the global torch RNG (z_dim > 0 only)."""
        self._check_direction(direction)
        check_image_and_mask(image, mask)
        codes = self._latent_codes(image.shape[0], 1, z, None, image.device)
        raw = self.encoder(*self._encoder_inputs(image, mask), None if codes is None else codes[:, 0])
        return self._activate(raw[direction])

    def recover_latent(self, image: torch.Tensor, mask: torch.Tensor, z: torch.Tensor,
                       direction: str = "increase") -> torch.Tensor:
        """ENC(G_E(image, mask, z)) (§5): the (B, z_dim) code read back from the predicted parameters.

        image (B, 3, H, W) in [0, 1], mask (B, 1, H, W) in [0, 1], z (B, z_dim). Training drives
        mean |z − recover_latent(…)| (L_r) well below E|z| ≈ 0.8 when the edits depend on z.
        """
        if self.latent_encoder is None:
            raise ValueError("this model has no latent z (z_dim = 0), so there is nothing to recover")
        params = self.parameters_for(image, mask, direction, z=z)
        flat = torch.cat([flatten_parameters(params["fg"]), flatten_parameters(params["bg"])], 1)
        return self.latent_encoder({direction: flat})[direction]

    def edit(self, image: torch.Tensor, guidance: torch.Tensor, *, direction: str = "increase",
             strength: float = 1.0, z: torch.Tensor | None = None, samples: int = 1,
             seed: int | None = None) -> torch.Tensor:
        """Shift attention towards (or away from) the masked region of every image.

        image: (B, 3, H, W) in [0, 1], any size. guidance: (B, 1, H, W) mask in [0, 1] (1 = the
        region), or integer labels (> 0 = the region). direction: "increase" or "decrease".
        strength in [0, 1]: 0 returns the input exactly, 1 the predicted edit (parameter space).
        z: (B, z_dim) (or (B, samples, z_dim)) latent codes; None draws them with `seed`.
        Returns (B, 3, H, W) in [0, 1], or (B, samples, 3, H, W) when samples > 1 (z_dim > 0).
        """
        mask = mask_from_guidance(image, guidance)
        self._check_direction(direction)
        strength = float(strength)
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength must lie in [0, 1] (0 = the input, 1 = the predicted edit), got {strength}")
        if not isinstance(samples, int) or samples < 1 or (samples > 1 and self.config.z_dim == 0):
            raise ValueError(f"samples must be 1, or a larger int for a model with a latent z (z_dim > 0; this one "
                             f"has z_dim = {self.config.z_dim}), got {samples!r}")
        codes = self._latent_codes(image.shape[0], samples, z, seed, image.device)
        with torch.no_grad():
            small_image, small_mask = self._encoder_inputs(image, mask)
            outputs = []
            for k in range(samples):
                raw = self.encoder(small_image, small_mask, None if codes is None else codes[:, k])
                params = self._activate(raw[direction])
                outputs.append(apply_parameters(image, mask, params, strength, mask_blur_px=self._blur_px(image)))
        return outputs[0].to(image.dtype) if samples == 1 else torch.stack(outputs, 1).to(image.dtype)

    def parameter_limits(self) -> dict[str, tuple[float, float]]:
        """(low, high) of each scalar edit parameter `edit_parameters` reports: sharpen, exposure
        (stops) and contrast of the foreground and background sets (`parameters_from_raw`'s ranges;
        the curve knots are left out, since a knot at a bound is no extreme edit by itself)."""
        bounds = {"sharpen": SHARPEN_RANGE, "exposure": EXPOSURE_RANGE, "contrast": CONTRAST_RANGE}
        return {f"{region}_{name}": (-bound, bound) for region in ("fg", "bg") for name, bound in bounds.items()}

    def edit_parameters(self, image: torch.Tensor, guidance: torch.Tensor, *, direction: str = "increase",
                        z: torch.Tensor | None = None, seed: int | None = None, **_) -> dict[str, torch.Tensor]:
        """The scalar parameters `edit` applies with the same arguments (the first sample's z):
        {"fg_sharpen": (B,), …} as named by `parameter_limits`, in their own units."""
        mask = mask_from_guidance(image, guidance)
        codes = self._latent_codes(image.shape[0], 1, z, seed, image.device)
        with torch.no_grad():
            params = self.parameters_for(image, mask, direction, z=None if codes is None else codes[:, 0])
        return {name: params[name.split("_")[0]][name.split("_")[1]].float().cpu() for name in self.parameter_limits()}

    def make_dataset(self, data_dir: str | os.PathLike, split: str | None = "train") -> GazeShiftSamples:
        """Image–mask pairs at `config.image_size` from a gazelab dataset dir (see `GazeShiftSamples`)."""
        height, width = self.config.image_size
        return GazeShiftSamples(data_dir, split, (width, height), self.config.mask_min_area,
                                self.config.mask_max_area, self.config.mask_seed)

    # -- helpers --------------------------------------------------------------------------------------

    def _predict_all(self, image, mask):
        codes = self._latent_codes(image.shape[0], 1, None, None, image.device)
        z = None if codes is None else codes[:, 0]
        raw = self.encoder(*self._encoder_inputs(image, mask), z)
        return {d: self._activate(raw[d]) for d in self.directions}, z

    @torch.no_grad()
    def _salient_enough(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B,) float: 1 where the mask's mean density in the unedited image, in units of the
        uniform density, reaches `decrease_min_saliency`."""
        mean_density = _mask_density(self.predictor.log_density(image), mask)
        return (mean_density >= self.config.decrease_min_saliency).to(mean_density.dtype)

    def _activate(self, raw: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
        return {region: parameters_from_raw(raw[region].float(), self.config.curve_knots) for region in ("fg", "bg")}

    def _encoder_inputs(self, image, mask):
        """Image and mask resized (bilinear, antialiased) so that the short side is `param_size`."""
        height, width = image.shape[-2:]
        scale = self.config.param_size / min(height, width)
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        if size == (height, width):
            return image, mask
        resize = dict(size=size, mode="bilinear", align_corners=False, antialias=True)
        return F.interpolate(image.float(), **resize), F.interpolate(mask.float(), **resize)

    def _blur_px(self, image) -> float:
        return self.config.mask_blur * min(image.shape[-2:])

    def _check_direction(self, direction: str) -> None:
        if direction not in self.directions:
            raise ValueError(f"direction must be one of {self.directions} for this model, got {direction!r}")

    def _latent_codes(self, batch: int, samples: int, z, seed, device) -> torch.Tensor | None:
        """(B, samples, z_dim) codes: `z` as given, or N(0, 1) draws (from `seed`, else the global
        torch RNG); None when the model has no z."""
        z_dim = self.config.z_dim
        if z_dim == 0:
            if z is not None:
                raise ValueError("this model has no latent z (z_dim = 0); pass z=None")
            return None
        return latent_codes(batch, samples, z_dim, z, seed, device)


class ParameterEncoder(nn.Module):
    """G_E: (B, 3, h, w) images in [0, 1], (B, 1, h, w) masks and (B, z_dim) codes →
    {direction: {"fg": (B, n_raw), "bg": (B, n_raw)}} raw parameters (any h, w ≥ 1).

    Stage k: concat(features, mask resized bilinearly to them, tiled z) → conv 3×3 stride 2 →
    LeakyReLU → conv 3×3 → LeakyReLU. Then global average pooling, two shared FC layers and
    one two-layer FC head per (direction, region). Weights start He-normal for the LeakyReLU
    (PyTorch's default init shrinks the signal ~√3× per layer: through the ten layers, a unit
    change of z moved the raw outputs by ~1e-5, and ENC then took thousands of steps to recover
    each z dimension in turn), biases 0; the heads' last layers are scaled by 0.01, so the first
    edits are near the identity.
    """

    def __init__(self, channels, fc_width: int, z_dim: int, directions, n_raw: int):
        super().__init__()
        self.z_dim = z_dim
        stages, previous = [], 3
        for width in channels:
            stages.append(nn.Sequential(nn.Conv2d(previous + 1 + z_dim, width, 3, 2, 1), nn.LeakyReLU(0.2),
                                        nn.Conv2d(width, width, 3, 1, 1), nn.LeakyReLU(0.2)))
            previous = width
        self.stages = nn.ModuleList(stages)
        self.shared = nn.Sequential(nn.Linear(previous, fc_width), nn.LeakyReLU(0.2),
                                    nn.Linear(fc_width, fc_width), nn.LeakyReLU(0.2))
        self.heads = nn.ModuleDict()
        for direction in directions:
            for region in ("fg", "bg"):
                self.heads[f"{direction}_{region}"] = nn.Sequential(
                    nn.Linear(fc_width, fc_width), nn.LeakyReLU(0.2), nn.Linear(fc_width, n_raw))
        _he_init(self)
        with torch.no_grad():
            for head in self.heads.values():
                head[-1].weight.mul_(0.01)

    def forward(self, image: torch.Tensor, mask: torch.Tensor, z: torch.Tensor | None = None):
        x = image * 2 - 1
        for stage in self.stages:
            size = x.shape[-2:]
            cond = [mask if mask.shape[-2:] == size else
                    F.interpolate(mask.float(), size=size, mode="bilinear", align_corners=False, antialias=True)]
            if self.z_dim:
                cond.append(z[:, :, None, None].expand(-1, -1, *size))
            x = stage(torch.cat([x] + [c.to(x.dtype) for c in cond], 1))
        features = self.shared(x.mean((2, 3)))
        out: dict[str, dict[str, torch.Tensor]] = {}
        for key, head in self.heads.items():
            direction, region = key.rsplit("_", 1)
            out.setdefault(direction, {})[region] = head(features)
        return out


class LatentEncoder(nn.Module):
    """ENC (§5): {direction: (B, 2·n_raw) fg ⊕ bg parameters} → {direction: (B, z_dim) codes}, an MLP each."""

    def __init__(self, n_params: int, width: int, z_dim: int, directions):
        super().__init__()
        self.nets = nn.ModuleDict({d: nn.Sequential(nn.Linear(n_params, width), nn.LeakyReLU(0.2),
                                                    nn.Linear(width, width), nn.LeakyReLU(0.2),
                                                    nn.Linear(width, z_dim)) for d in directions})

    def forward(self, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {d: self.nets[d](params[d]) for d in params}


def _he_init(module: nn.Module) -> None:
    """He-normal weights (fan in, LeakyReLU 0.2) and zero biases on every conv and linear layer."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(layer.weight, a=0.2, nonlinearity="leaky_relu")
            nn.init.zeros_(layer.bias)


def _mask_density(log_density: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B,) mean density inside each mask in units of the uniform density: −L_att (eq. 5) · n_pixels."""
    return -losses.softmax_attention_loss(log_density, mask, reduction="none") * log_density[0].numel()


def _check_config(config: GazeShiftNetConfig) -> None:
    problems = [f"{name} = {getattr(config, name)!r} ({rule})" for name, ok, rule in (
        ("param_size", config.param_size >= 8, "at least 8 px"),
        ("encoder_channels", len(config.encoder_channels) > 0, "at least one stage"),
        ("z_dim", config.z_dim >= 0, ">= 0"), ("curve_knots", config.curve_knots >= 1, ">= 1"),
        ("decrease_min_saliency", config.decrease_min_saliency >= 0, ">= 0, in units of the uniform density"),
        ("lambda_fidelity", config.lambda_fidelity >= 0, ">= 0"),
        ("max_steps", config.max_steps >= 1, ">= 1"), ("decay_start", 0 <= config.decay_start <= 1, "in [0, 1]"),
        ("attention_reference_size", len(config.attention_reference_size) == 2
         and all(side >= 1 for side in config.attention_reference_size), "(height, width) in pixels, each >= 1"),
    ) if not ok]
    if problems:
        raise ValueError("invalid GazeShiftNet config: " + "; ".join(problems))
