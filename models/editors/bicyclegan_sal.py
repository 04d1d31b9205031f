"""BicycleGAN (Zhu et al., NeurIPS 2017) conditioned on saliency maps: SalG-GAN's baseline (papers/000 §5.1).

SalG-GAN retrains BicycleGAN with "the saliency maps concatenated with the input, as the conditional
information" and with its saliency detector and saliency loss added. Here, on the X/Y pairs of a
gazelab dataset (A = X, B = Y, paired, as BicycleGAN is):

- G (a U-Net) sees X, its map S_x (the source) and the target S_y, both max-normalised to [0, 1]
  and, like the image, mapped to [−1, 1], plus the latent code z (nz = 8) tiled over the image.
  S_x is the dataset's measured map in training (the paper's SGIT maps), or with `source_map =
  "predicted"` the attached predictor's, which is what `edit` always uses (a new image has no
  measured map).
- Each batch is split in half, as BicycleGAN's code does: the first half takes the cVAE-GAN path
  (z ~ E(Y): L1 to Y, KL of E's posterior to N(0, 1), GAN on D), the same X with z ~ N(0, 1) takes
  the cLR-GAN path (GAN on D2, and L1 between z and E's mean for the output, which updates G
  only); the second half's Y are D2's real images. LSGAN; G's GAN terms are summed over D's two
  scales as the reference's; D's own loss is `losses.lsgan_d` (½, mean over scales), a constant
  factor of the reference's that Adam's updates do not see.
- λ_sal·(KL(S_y ‖ P(Ŷ_encoded)) + KL(S_y ‖ P(Ŷ_random))) is added, P the attached frozen
  predictor, KL in nats as `losses.kl_saliency_loss`: the benchmark's saliency KLD, target first
  (SalG-GAN's eq. 7 writes the arguments the other way round).
  SalG-GAN's paper names λ_sal (eq. 9) without giving its value; 1.0 here, the weight FGTransform
  (Gatys et al.) gives the same KL, so the term is of the order of the LSGAN terms.
- The KL of the posterior is `losses.kl_to_normal` (summed over z, mean over the batch); the
  reference sums over the batch too, which is the same at its batch size 2 (halves of 1).
- The discriminators are unconditional (the reference's default, conditional_D off).

Rows without a ground-truth Y (source "single") cannot train the cVAE path: `make_dataset` and
`train_step` refuse them with a ValueError that says so. Everything is trained from scratch.
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
from models.editors._gan_nets import (PairSamples, ResNetEncoder, UNetGenerator, check_pair_batch, conditioning_maps,
                                      init_weights, to_signed, to_unit)
from models.editors._layers import MultiScaleDiscriminator, check_target_maps, pad_to_multiple
from models.registry import EDITORS
from models.schedules import linear_decay

logger = logging.getLogger(__name__)

__all__ = ["BicycleGANSalConfig", "BicycleGANSal"]


@dataclass
class BicycleGANSalConfig:
    """BicycleGAN's published settings (Zhu et al. and their code) unless noted. Sizes (height, width) in px.

    image_size: training size (256² crops). nz: latent size. unet_levels: 8 = unet_256 (a 1×1
    bottleneck at 256²); generator_channels (ngf); z_at_every_level: z enters every U-Net level
    (where_add "all", the code's default) or the input only; dropout: after the inner 8·ngf levels
    (the training scripts' --use_dropout). encoder_channels (nef), encoder_blocks (5 = resnet_256).
    disc_channels (ndf), disc_layers (3 = basic_256_multi), disc_scales (num_Ds = 2). lambda_l1,
    lambda_kl, lambda_latent (λ_z), lambda_gan, lambda_gan2: the code's defaults; lambda_saliency:
    λ_sal (see the module docstring). source_map: "measured" or "predicted" S_x in training.
    lr, betas: Adam's, for G, E, D and D2. batch_size: 2 (one cVAE and one cLR item). max_steps: the
    run's length (not given for SGIT; ~ CycleGAN's); the LR decays linearly to 0 from
    decay_start·max_steps. init_gain: of the Xavier-normal initial weights.
    """

    PRESETS: ClassVar[dict[str, dict]] = {
        # the demo: 80 steps in 10–15 s on one CPU thread (batch 2, 48×64)
        "cpu": {"image_size": (48, 64), "unet_levels": 4, "generator_channels": 16, "encoder_channels": 16,
                "encoder_blocks": 3, "disc_channels": 16, "disc_layers": 2, "lr": 1e-3, "batch_size": 2,
                "max_steps": 80},
        "tiny": {"image_size": (32, 32), "unet_levels": 5, "generator_channels": 8, "encoder_channels": 8,
                 "encoder_blocks": 3, "disc_channels": 8, "disc_layers": 2, "batch_size": 2, "max_steps": 20},
    }

    image_size: tuple[int, int] = (256, 256)
    nz: int = 8
    unet_levels: int = 8
    generator_channels: int = 64
    z_at_every_level: bool = True
    dropout: bool = True
    encoder_channels: int = 64
    encoder_blocks: int = 5
    disc_channels: int = 64
    disc_layers: int = 3
    disc_scales: int = 2
    lambda_l1: float = 10.0
    lambda_kl: float = 0.01
    lambda_latent: float = 0.5
    lambda_gan: float = 1.0
    lambda_gan2: float = 1.0
    lambda_saliency: float = 1.0
    source_map: Literal["measured", "predicted"] = "measured"
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    batch_size: int = 2
    max_steps: int = 200_000
    decay_start: float = 0.5
    init_gain: float = 0.02


@EDITORS.register("bicyclegan_sal")
class BicycleGANSal(Editor):
    """BicycleGAN with saliency conditioning and a saliency loss.

    `edit(image, target_map, samples=1, seed=None)`: (B, 3, H, W) images in [0, 1], any size, and
    (B, 1, H, W) target densities → (B, 3, H, W) in [0, 1], or (B, samples, 3, H, W) for samples > 1,
    one z ~ N(0, 1) each (from `seed`, else the global torch RNG; the k-th of a seed does not depend
    on `samples`). S_x comes from the attached predictor.
    """

    name = "bicyclegan_sal"
    Config = BicycleGANSalConfig
    guidance = "target_map"
    needs_predictor_at_edit = True  # S_x of the image to edit

    def __init__(self, config: BicycleGANSalConfig, *, load_pretrained: bool = True):
        super().__init__()  # load_pretrained: nothing here is pretrained
        _check_config(config)
        self.config = c = config
        self.generator = UNetGenerator(5, 3, c.nz, c.unet_levels, c.generator_channels, c.z_at_every_level,
                                       c.dropout)
        self.encoder = ResNetEncoder(3, c.nz, c.encoder_channels, c.encoder_blocks)
        self.discriminator = MultiScaleDiscriminator(3, c.disc_channels, c.disc_layers, c.disc_scales,
                                                     halve_channels=True)
        self.discriminator2 = MultiScaleDiscriminator(3, c.disc_channels, c.disc_layers, c.disc_scales,
                                                      halve_channels=True)
        for net in self.networks().values():
            init_weights(net, "xavier", c.init_gain)
        betas = tuple(c.betas)
        self.optimizer_g = torch.optim.Adam(self.generator.parameters(), lr=c.lr, betas=betas)
        self.optimizer_e = torch.optim.Adam(self.encoder.parameters(), lr=c.lr, betas=betas)
        self.optimizer_d = torch.optim.Adam(self.discriminator.parameters(), lr=c.lr, betas=betas)
        self.optimizer_d2 = torch.optim.Adam(self.discriminator2.parameters(), lr=c.lr, betas=betas)
        decay = linear_decay(c.max_steps, c.decay_start)
        self._schedulers = {name: torch.optim.lr_scheduler.LambdaLR(optimizer, decay)
                            for name, optimizer in self.optimizers().items()}

    # Inference.

    def forward(self, image: torch.Tensor, source_map: torch.Tensor, target_map: torch.Tensor,
                z: torch.Tensor) -> torch.Tensor:
        """Differentiable G(image, S_source, S_target, z): [0, 1] images, densities and (B, nz) codes → [0, 1]."""
        return to_unit(self._generate(to_signed(image), conditioning_maps(source_map, target_map), z))

    def edit(self, image: torch.Tensor, target_map: torch.Tensor, *, samples: int = 1,
             seed: int | None = None) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] and (B, 1, H, W) target densities → (B, 3, H, W) in [0, 1], or
        (B, samples, 3, H, W) when samples > 1; no grad."""
        check_target_maps(image, target_map)
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise ValueError(f"samples must be an int >= 1 (the number of latent codes to draw), got {samples!r}")
        generator = torch.Generator().manual_seed(int(seed)) if seed is not None else None
        # sample-major draws: the k-th code of a seed is the same whatever the number of samples
        codes = torch.randn(samples, image.shape[0], self.config.nz, generator=generator).to(image.device)
        with torch.no_grad():
            maps = conditioning_maps(self.predictor.density(image), target_map)
            signed = to_signed(image)
            outputs = [to_unit(self._generate(signed, maps, codes[k])).clamp(0, 1) for k in range(samples)]
        out = outputs[0] if samples == 1 else torch.stack(outputs, 1)
        return out.to(image.dtype)

    def _generate(self, image: torch.Tensor, maps: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """G(image ⊕ maps, z) in [−1, 1], padded to a multiple of 2**unet_levels and cropped back."""
        height, width = image.shape[-2:]
        side = 2**self.config.unet_levels
        padded = pad_to_multiple(torch.cat([image, maps.to(image.dtype)], 1), side, minimum=side)
        return self.generator(padded, z)[..., :height, :width]

    # Training.

    def generator_losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """The weighted G and E loss ``loss``, its terms, and ``fake_encoded``, ``fake_random`` in [−1, 1]."""
        c = self.config
        x, y, x_map, y_map = check_pair_batch(batch, self.name)
        if len(x) < 2:
            raise ValueError(f"{self.name} splits each batch into a cVAE-GAN and a cLR-GAN half; it needs a batch "
                             f"of at least 2 pairs, got {len(x)}")
        half = len(x) // 2
        real_a, real_b = to_signed(x[:half]), to_signed(y[:half])
        source = self._source_map(x[:half], x_map[:half])
        maps = conditioning_maps(source, y_map[:half])
        mu, logvar = self.encoder(real_b)
        z_encoded = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        z_random = torch.randn(half, c.nz, device=x.device, dtype=mu.dtype)
        # both paths in one generator call (instance norm keeps the items independent)
        fakes = self._generate(torch.cat([real_a, real_a]), torch.cat([maps, maps]), torch.cat([z_encoded, z_random]))
        fake_encoded, fake_random = fakes[:half], fakes[half:]
        # E's mean for the cLR output, with E's weights held fixed: the latent L1 trains G only
        encoder = getattr(self.encoder, "module", self.encoder)  # under DDP: the wrapped network, no second sync
        frozen = {name: p.detach() for name, p in encoder.named_parameters()}
        z_recovered, _ = torch.func.functional_call(encoder, frozen, (fake_random,))
        scales = self.config.disc_scales  # the reference sums its GAN loss over D's scales
        terms = {
            "gan": scales * losses.lsgan_g(self.discriminator(fake_encoded)),
            "gan2": scales * losses.lsgan_g(self.discriminator2(fake_random)),
            "l1": (fake_encoded - real_b).abs().mean(),
            "kl": losses.kl_to_normal(mu, logvar),
            "latent": losses.latent_regression_loss(z_recovered, z_random),
            "saliency_encoded": losses.kl_saliency_loss(self.predictor.log_density(to_unit(fake_encoded)),
                                                        y_map[:half]),
            "saliency_random": losses.kl_saliency_loss(self.predictor.log_density(to_unit(fake_random)),
                                                       y_map[:half]),
        }
        loss = (c.lambda_gan * terms["gan"] + c.lambda_gan2 * terms["gan2"] + c.lambda_l1 * terms["l1"]
                + c.lambda_kl * terms["kl"] + c.lambda_latent * terms["latent"]
                + c.lambda_saliency * (terms["saliency_encoded"] + terms["saliency_random"]))
        return {"loss": loss, **terms, "fake_encoded": fake_encoded, "fake_random": fake_random}

    def discriminator_losses(self, batch: dict[str, Any], fake_encoded: torch.Tensor,
                             fake_random: torch.Tensor) -> dict[str, torch.Tensor]:
        """LSGAN losses of D (the first half's Y vs cVAE outputs) and D2 (the second half's Y vs cLR outputs)."""
        y = to_signed(batch["y"])
        half = len(y) // 2
        return {"d": _lsgan_d(self.discriminator, y[:half], fake_encoded),
                "d2": _lsgan_d(self.discriminator2, y[half:], fake_random)}

    def train_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """One step of G and E, then one of D and D2 (BicycleGAN's order), on a batch of ``x``, ``y``
        (B, 3, H, W) in [0, 1] and ``x_map``, ``y_map`` (B, 1, H, W) densities, B >= 2."""
        found = self.generator_losses(batch)
        self.optimizer_g.zero_grad(set_to_none=True)
        self.optimizer_e.zero_grad(set_to_none=True)
        amp.backward(found["loss"])  # D's parameters get gradients too; zeroed before their own step
        amp.step(self.optimizer_g)
        amp.step(self.optimizer_e)
        d_losses = self.discriminator_losses(batch, found["fake_encoded"], found["fake_random"])
        self.optimizer_d.zero_grad(set_to_none=True)
        self.optimizer_d2.zero_grad(set_to_none=True)
        amp.backward(d_losses["d"] + d_losses["d2"])
        amp.step(self.optimizer_d)
        amp.step(self.optimizer_d2)
        out = {key: value.detach() for key, value in found.items() if not key.startswith("fake_")}
        return {**out, **{key: value.detach() for key, value in d_losses.items()}}

    def validation_step(self, batch: dict[str, Any]) -> dict[str, float]:
        """Mean saliency KLD (nats) to the target S_y of the input X (``kld_input``) and of an edit
        with a random z (``kld_output``)."""
        x, _, _, y_map = check_pair_batch(batch, self.name)
        output = self.edit(x, y_map)
        return {"kld_input": float(losses.kl_saliency_loss(self.predictor.log_density(x), y_map)),
                "kld_output": float(losses.kl_saliency_loss(self.predictor.log_density(output), y_map))}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": self.optimizer_g, "encoder": self.optimizer_e, "discriminator": self.optimizer_d,
                "discriminator2": self.optimizer_d2}

    def schedulers(self) -> dict[str, torch.optim.lr_scheduler.LRScheduler]:
        return dict(self._schedulers)

    def networks(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "encoder": self.encoder, "discriminator": self.discriminator,
                "discriminator2": self.discriminator2}

    def make_dataset(self, data_dir: str | os.PathLike, split: str | None = "train") -> PairSamples:
        """The split's X/Y pairs with both fixation maps at `image_size` (see `PairSamples`)."""
        height, width = self.config.image_size
        return PairSamples(data_dir, split, (width, height), self.name)

    def _source_map(self, x: torch.Tensor, x_map: torch.Tensor) -> torch.Tensor:
        """The map G is told X has (a density): measured, or the predictor's."""
        if self.config.source_map == "measured":
            return x_map
        with torch.no_grad():
            return self.predictor.density(x)


def _lsgan_d(discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """½(E[(D(real) − 1)²] + E[D(fake)²]) averaged over D's scales; real and (detached) fake in one forward."""
    scores = discriminator(torch.cat([real, fake.detach().to(real.dtype)]))
    return losses.lsgan_d([s[: len(real)] for s in scores], [s[len(real):] for s in scores])


def _check_config(config: BicycleGANSalConfig) -> None:
    height, width = config.image_size
    side = 2**config.unet_levels
    problems = [f"{name} = {getattr(config, name)!r} ({rule})" for name, ok, rule in (
        ("unet_levels", config.unet_levels >= 2, ">= 2"),
        ("image_size", height % side == 0 and width % side == 0,
         f"multiples of 2**unet_levels = {side}, so training needs no padding"),
        ("nz", config.nz >= 1, ">= 1 (BicycleGAN needs a latent code)"),
        ("encoder_blocks", config.encoder_blocks >= 2 and min(height, width) >= 2**config.encoder_blocks,
         f">= 2 and 2**encoder_blocks <= the image's shorter side {min(height, width)}"),
        ("disc_scales", config.disc_scales >= 1, ">= 1"),
        ("batch_size", config.batch_size >= 2, ">= 2: each batch is split into a cVAE and a cLR half"),
        ("max_steps", config.max_steps >= 1, ">= 1"),
        ("decay_start", 0 <= config.decay_start <= 1, "in [0, 1]"),
    ) if not ok]
    if problems:
        raise ValueError("invalid bicyclegan_sal config: " + "; ".join(problems))
