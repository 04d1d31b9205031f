"""CycleGAN (Zhu et al., ICCV 2017) conditioned on saliency maps: SalG-GAN's baseline (papers/000 §5.1).

SalG-GAN retrains CycleGAN with "the saliency maps concatenated with the input, as the conditional
information" and with its saliency detector and saliency loss added. Here:

- Domains: A = the X images, B = the Y images of a gazelab dataset's pairs. The losses never use
  the correspondence of X and Y (CycleGAN is unpaired); a pair supplies X's target map S_y, as
  `edit` gets it.
- Conditioning: each generator sees its input image, the input's saliency map (the *source*) and
  the map it should produce (the *target*), both max-normalised to [0, 1] and, like the image,
  mapped to [−1, 1]: 5 input channels. G_A(X, S_x, S_y) → Ŷ; G_B(Y, S_y, S_x) → X̂; the cycles
  G_B(Ŷ, S_y, S_x) ≈ X and G_A(X̂, S_x, S_y) ≈ Y; identity G_A(Y, S_y, S_y) ≈ Y and G_B(X, S_x, S_x) ≈ X
  (a target equal to the source asks for no change). Source maps are the dataset's measured
  maps (the paper's SGIT maps), or with `source_map = "predicted"` the attached predictor's maps,
  which is what `edit` always uses for S_x (a new image has no measured map).
- Losses (CycleGAN's code: LSGAN, λ_cycle 10 for both cycles, identity 0.5·λ_cycle, L1 in [−1, 1]
  units) plus λ_sal·(KL(S_y ‖ P(Ŷ)) + KL(S_x ‖ P(X̂))), P the attached frozen predictor, KL in
  nats as `losses.kl_saliency_loss`: the benchmark's saliency KLD, target first (SalG-GAN's eq. 7
  writes the arguments the other way round). D_A judges G_A's
  outputs against real Y, D_B G_B's against real X, each through a 50-image pool; the
  discriminators are unconditional 70 px PatchGANs, as CycleGAN's.
- λ_sal: SalG-GAN's paper names λ_sal (eq. 9) without giving its value; 1.0 here, the weight that
  FGTransform (Gatys et al.) gives the same KL, so the term is of the order of the LSGAN terms.

Everything is trained from scratch (CycleGAN uses no pretrained network).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from models import amp, losses
from models.base import Editor
from models.editors._gan_nets import (ImagePool, PairSamples, ResnetGenerator, check_pair_batch, conditioning_maps,
                                      init_weights, to_signed, to_unit)
from models.editors._layers import PatchDiscriminator, check_target_maps, pad_to_multiple
from models.registry import EDITORS
from models.schedules import linear_decay

logger = logging.getLogger(__name__)

__all__ = ["CycleGANSalConfig", "CycleGANSal"]


@dataclass
class CycleGANSalConfig:
    """CycleGAN's published settings (Zhu et al. and their code) unless noted. Sizes (height, width) in px.

    image_size: training size (CycleGAN's 256² crops). generator_channels (ngf), n_res_blocks (9 =
    resnet_9blocks), disc_channels (ndf), disc_layers (3 = the 70 px PatchGAN). lambda_cycle: λ_A =
    λ_B; lambda_identity: the identity weight as a fraction of λ_cycle. lambda_saliency: λ_sal (see
    the module docstring). source_map: "measured" (the dataset's S_x, S_y) or "predicted" (the
    predictor's) as the generators' source maps in training. pool_size: images per pool. lr, betas:
    Adam's, for both generators and both discriminators. max_steps: the run's length (CycleGAN's
    200 epochs of a ~1,000-image set; SalG-GAN gives none); the LR decays linearly to 0 from
    decay_start·max_steps. init_gain: σ of the N(0, σ²) initial weights.
    """

    PRESETS: ClassVar[dict[str, dict]] = {
        # the demo: 80 steps in about 15 s on one CPU thread (batch 2, 48×64)
        "cpu": {"image_size": (48, 64), "generator_channels": 8, "n_res_blocks": 3, "disc_channels": 8,
                "lr": 1e-3, "batch_size": 2, "max_steps": 80},
        "tiny": {"image_size": (24, 32), "generator_channels": 8, "n_res_blocks": 2, "disc_channels": 8,
                 "pool_size": 4, "batch_size": 2, "max_steps": 20},
    }

    image_size: tuple[int, int] = (256, 256)
    generator_channels: int = 64
    n_res_blocks: int = 9
    disc_channels: int = 64
    disc_layers: int = 3
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.5
    lambda_saliency: float = 1.0
    source_map: Literal["measured", "predicted"] = "measured"
    pool_size: int = 50
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    batch_size: int = 1
    max_steps: int = 200_000
    decay_start: float = 0.5
    init_gain: float = 0.02


@EDITORS.register("cyclegan_sal")
class CycleGANSal(Editor):
    """CycleGAN with saliency conditioning and a saliency loss.

    `edit(image, target_map)`: (B, 3, H, W) images in [0, 1], any size, and (B, 1, H, W) target
    densities → (B, 3, H, W) in [0, 1]; S_x comes from the attached predictor.
    """

    name = "cyclegan_sal"
    Config = CycleGANSalConfig
    guidance = "target_map"
    needs_predictor_at_edit = True  # S_x of the image to edit

    def __init__(self, config: CycleGANSalConfig, *, load_pretrained: bool = True):
        super().__init__()  # load_pretrained: nothing here is pretrained
        _check_config(config)
        self.config = c = config
        self.generator_a = ResnetGenerator(5, 3, c.generator_channels, c.n_res_blocks)
        self.generator_b = ResnetGenerator(5, 3, c.generator_channels, c.n_res_blocks)
        self.discriminator_a = PatchDiscriminator(3, c.disc_channels, c.disc_layers)
        self.discriminator_b = PatchDiscriminator(3, c.disc_channels, c.disc_layers)
        for net in self.networks().values():
            init_weights(net, "normal", c.init_gain)
        self.pool_a = ImagePool(c.pool_size, (3, *c.image_size))  # G_A's outputs (domain B), for D_A
        self.pool_b = ImagePool(c.pool_size, (3, *c.image_size))
        generators = [*self.generator_a.parameters(), *self.generator_b.parameters()]
        discriminators = [*self.discriminator_a.parameters(), *self.discriminator_b.parameters()]
        self.optimizer_g = torch.optim.Adam(generators, lr=c.lr, betas=tuple(c.betas))
        self.optimizer_d = torch.optim.Adam(discriminators, lr=c.lr, betas=tuple(c.betas))
        decay = linear_decay(c.max_steps, c.decay_start)
        self.scheduler_g = torch.optim.lr_scheduler.LambdaLR(self.optimizer_g, decay)
        self.scheduler_d = torch.optim.lr_scheduler.LambdaLR(self.optimizer_d, decay)

    # Inference.

    def forward(self, image: torch.Tensor, source_map: torch.Tensor, target_map: torch.Tensor) -> torch.Tensor:
        """Differentiable G_A(image, S_source, S_target): [0, 1] images and densities → [0, 1] images."""
        return to_unit(self._translate(self.generator_a, to_signed(image), conditioning_maps(source_map, target_map)))

    def edit(self, image: torch.Tensor, target_map: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] and (B, 1, H, W) target densities → (B, 3, H, W) in [0, 1], no grad."""
        check_target_maps(image, target_map)
        with torch.no_grad():
            return self(image, self.predictor.density(image), target_map).clamp(0, 1).to(image.dtype)

    def _translate(self, generator: nn.Module, image: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
        """generator(image ⊕ maps) in [−1, 1], padded to a multiple of 4 (≥ 16 px) and cropped back."""
        height, width = image.shape[-2:]
        padded = pad_to_multiple(torch.cat([image, maps.to(image.dtype)], 1), 4, minimum=16)
        return generator(padded)[..., :height, :width]

    # Training.

    def generator_losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """The weighted G loss ``loss``, its terms, and the outputs ``fake_b`` = G_A(X) and ``fake_a`` = G_B(Y)
        in [−1, 1]."""
        c = self.config
        x, y, x_map, y_map = check_pair_batch(batch, self.name)
        real_a, real_b = to_signed(x), to_signed(y)
        source_a, source_b = self._source_maps(x, y, x_map, y_map)
        target_b, target_a = y_map, x_map
        n = len(x)
        # fake_b and the identity of G_A in one call (instance norm keeps the images independent)
        maps = torch.cat([conditioning_maps(source_a, target_b), conditioning_maps(source_b, source_b)])
        both = self._translate(self.generator_a, torch.cat([real_a, real_b]), maps)
        fake_b, same_b = both[:n], both[n:]
        maps = torch.cat([conditioning_maps(source_b, target_a), conditioning_maps(source_a, source_a)])
        both = self._translate(self.generator_b, torch.cat([real_b, real_a]), maps)
        fake_a, same_a = both[:n], both[n:]
        rec_a = self._translate(self.generator_b, fake_b, conditioning_maps(target_b, source_a))
        rec_b = self._translate(self.generator_a, fake_a, conditioning_maps(target_a, source_b))
        terms = {
            "gan_a": losses.lsgan_g(self.discriminator_a(fake_b)),
            "gan_b": losses.lsgan_g(self.discriminator_b(fake_a)),
            "cycle_a": (rec_a - real_a).abs().mean(),
            "cycle_b": (rec_b - real_b).abs().mean(),
            "identity_a": (same_b - real_b).abs().mean(),
            "identity_b": (same_a - real_a).abs().mean(),
            "saliency_a": losses.kl_saliency_loss(self.predictor.log_density(to_unit(fake_b)), target_b),
            "saliency_b": losses.kl_saliency_loss(self.predictor.log_density(to_unit(fake_a)), target_a),
        }
        loss = (terms["gan_a"] + terms["gan_b"] + c.lambda_cycle * (terms["cycle_a"] + terms["cycle_b"])
                + c.lambda_cycle * c.lambda_identity * (terms["identity_a"] + terms["identity_b"])
                + c.lambda_saliency * (terms["saliency_a"] + terms["saliency_b"]))
        return {"loss": loss, **terms, "fake_b": fake_b, "fake_a": fake_a}

    def discriminator_losses(self, batch: dict[str, Any], fake_b: torch.Tensor,
                             fake_a: torch.Tensor) -> dict[str, torch.Tensor]:
        """LSGAN D losses ``d_a`` (real Y vs pooled G_A outputs) and ``d_b`` (real X vs pooled G_B outputs)."""
        real_a, real_b = to_signed(batch["x"]), to_signed(batch["y"])
        return {"d_a": _lsgan_d(self.discriminator_a, real_b, self.pool_a.query(fake_b)),
                "d_b": _lsgan_d(self.discriminator_b, real_a, self.pool_b.query(fake_a))}

    def train_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """One step of both generators, then one of both discriminators (CycleGAN's order), on a
        batch of ``x``, ``y`` (B, 3, H, W) in [0, 1] and ``x_map``, ``y_map`` (B, 1, H, W) densities."""
        found = self.generator_losses(batch)
        self.optimizer_g.zero_grad(set_to_none=True)
        amp.backward(found["loss"])  # D's parameters get gradients too; zeroed before their own step
        amp.step(self.optimizer_g)
        d_losses = self.discriminator_losses(batch, found["fake_b"], found["fake_a"])
        self.optimizer_d.zero_grad(set_to_none=True)
        amp.backward(d_losses["d_a"] + d_losses["d_b"])
        amp.step(self.optimizer_d)
        out = {key: value.detach() for key, value in found.items() if key not in ("fake_a", "fake_b")}
        return {**out, **{key: value.detach() for key, value in d_losses.items()}}

    def validation_step(self, batch: dict[str, Any]) -> dict[str, float]:
        """Mean saliency KLD (nats) to the target S_y of the input X (``kld_input``) and of its edit
        (``kld_output``)."""
        x, _, _, y_map = check_pair_batch(batch, self.name)
        output = self.edit(x, y_map)
        return {"kld_input": float(losses.kl_saliency_loss(self.predictor.log_density(x), y_map)),
                "kld_output": float(losses.kl_saliency_loss(self.predictor.log_density(output), y_map))}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generators": self.optimizer_g, "discriminators": self.optimizer_d}

    def schedulers(self) -> dict[str, torch.optim.lr_scheduler.LRScheduler]:
        return {"generators": self.scheduler_g, "discriminators": self.scheduler_d}

    def networks(self) -> dict[str, nn.Module]:
        return {"generator_a": self.generator_a, "generator_b": self.generator_b,
                "discriminator_a": self.discriminator_a, "discriminator_b": self.discriminator_b}

    def make_dataset(self, data_dir: str | os.PathLike, split: str | None = "train") -> PairSamples:
        """The split's X/Y pairs with both fixation maps at `image_size` (see `PairSamples`)."""
        height, width = self.config.image_size
        return PairSamples(data_dir, split, (width, height), self.name)

    def _source_maps(self, x, y, x_map, y_map) -> tuple[torch.Tensor, torch.Tensor]:
        """The maps the generators are told their inputs X and Y have (densities)."""
        if self.config.source_map == "measured":
            return x_map, y_map
        with torch.no_grad():
            return self.predictor.density(x), self.predictor.density(y)


def _lsgan_d(discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """½(E[(D(real) − 1)²] + E[D(fake)²]), real and (detached) fake in one forward."""
    scores = discriminator(torch.cat([real, fake.detach().to(real.dtype)]))
    return losses.lsgan_d(scores[: len(real)], scores[len(real):])


def _check_config(config: CycleGANSalConfig) -> None:
    height, width = config.image_size
    problems = [f"{name} = {getattr(config, name)!r} ({rule})" for name, ok, rule in (
        ("image_size", min(height, width) >= 24, "at least 24 px a side, for the PatchGAN"),
        ("generator_channels", config.generator_channels >= 1, ">= 1"),
        ("n_res_blocks", config.n_res_blocks >= 0, ">= 0"),
        ("disc_layers", config.disc_layers >= 1, ">= 1"),
        ("pool_size", config.pool_size >= 0, ">= 0 (0: no pool)"),
        ("max_steps", config.max_steps >= 1, ">= 1"),
        ("decay_start", 0 <= config.decay_start <= 1, "in [0, 1]"),
    ) if not ok]
    if problems:
        raise ValueError("invalid cyclegan_sal config: " + "; ".join(problems))
