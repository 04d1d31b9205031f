"""SalG-GAN: Jiang, Wang, Xu, Sigal, "Saliency-Guided Image Translation" (CVPR 2021; papers/000).

Given an image X, its saliency map S_x and a target map S_y, the attention module (`salggan_parts`)
gives the additive, subtractive and difference maps S_p, S_m, S_d and the boxes B_a of the
regions whose attention changes; the generator G translates X into Ŷ =
C_1×1(S_d·Unet(X, S_p, S_m, z) ⊕ (1 − S_d)·X) (eq. 2) for a latent saliency cue z. Two paths share
every component (§3.1):

- supervised (pairs with a ground-truth Y): z_s ~ Q(z|Y) = N(μ, σ²), (μ, log σ²) = E(Y·S_d)
  (eq. 3); Ŷ_s should reconstruct Y;
- unsupervised (every row): z_u ~ N(0, 1); E re-predicts z_u from Ŷ_u·S_d, and Ŷ_u translated
  back, G(Ŷ_u, S_m, S_p, z'_u) with the two maps swapped and z'_u ~ Q(z|X), should give X.

Losses (eqs. 4–9): LSGAN (eq. 4) on the global D_G (3-scale PatchGAN) and the local D_L (one
PatchGAN on the B_a patches, cropped and resized), both conditioned on the saliency map of
their image — reals (X, S_x) and (Y, S_y), fakes (Ŷ_s, S_y) and (Ŷ_u, S_y); λ_cont VGG feature
distance outside S_d between Ŷ and X (eq. 5, Johnson et al.'s relu2_2 feature loss); λ_img
|Ŷ_s − Y|; λ_local |Ŷ_s − Y| inside B_a; λ_KL KL(Q(z|Y) ‖ N(0, 1)) (eq. 6); λ_sal
KL(S_y ‖ SalD(Ŷ)) (eq. 7, see `SalGGANConfig`); λ_cycle |X − G(Ŷ_u, …)| (eq. 8); λ_cue
|ẑ_u − z_u|; and, not in the paper, λ_mix Σ(C_1×1 − identity)² (see below). SalD is the
attached saliency predictor (the paper's is `salg_detector`), frozen: it scores Ŷ for L_sal and
gives S_x in training where a row has no X map.

The invariant: S_d is exactly 0 where the adjusted maps differ by less than
`attention_threshold` (`salggan_parts.attention_maps` says why SAF alone leaves almost no exact
zeros), and there Ŷ = X bit for bit, whatever C_1×1 has learnt (`SaliencyGuidedGenerator`).

S_x at edit time (`edit`'s ``sx``, `gazelab edit --sx`): "predicted" (the default; the paper's
footnote 1: at test time S_x comes from the saliency detector), SalD's map of X, or "measured",
a given ``source_map`` (with `gazelab edit --data`, the pair's human map of X). Evaluation
passes neither, so it scores the predicted S_x.

The paper gives no loss weights, widths or training settings; `SalGGANConfig` says where each
default comes from. `ABLATIONS` maps the Table 3 variants to config overrides.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import nn
from torch.func import functional_call

from models import amp, losses
from models.backbones import VGGFeatures
from models.base import Editor
from models.editors._layers import MultiScaleDiscriminator, PatchDiscriminator, check_target_maps, latent_codes
from models.editors.salggan_parts import (AttentionMaps, CueEncoder, SalGGANSamples,
                                          SaliencyGuidedGenerator, attention_boxes, attention_maps, box_mask,
                                          check_batch, check_config, crop_patches)
from models.registry import EDITORS

logger = logging.getLogger(__name__)

__all__ = ["ABLATIONS", "SalGGAN", "SalGGANConfig", "SalGGANSamples"]

# Table 3's variants: name → the config overrides that build it.
ABLATIONS: dict[str, dict[str, bool]] = {
    "no_spath": {"supervised_path": False},  # w/o S-path
    "no_upath": {"unsupervised_path": False},  # w/o U-path
    "no_dl": {"local_discriminator": False},  # w/o D_L
    "no_sald": {"saliency_loss": False},  # w/o SalD: no L_sal (S_x at edit time still predicted by default)
    "e_no_sal": {"encoder_attention": False},  # E w/o sal: E sees Y, not Y·S_d
    "d_no_sal": {"discriminator_condition": False},  # D w/o sal: D_G and D_L see images only
    "g_no_sal": {"generator_attention": False},  # G w/o sal: the U-Net sees S_y instead of S_p, S_m
}


@dataclass
class SalGGANConfig:
    """SalG-GAN's settings. Sizes are (height, width) in pixels; fractions are of the image's short side.

    From the paper: unet_depth 8 (§3.2), encoder of 5 convolutions with μ and σ heads, D_G with 3
    scales and a single-scale D_L, LSGAN, the loss terms and both paths. The paper gives no
    values for the rest; BicycleGAN's (Zhu et al. 2017, the scheme SalG-GAN extends) where it has
    them: image_size 256² (its unet_256, whose 8 levels match the paper's), z_dim 8, unet and D
    widths 64 (max 512), encoder widths (64, 128, 256, 256, 256), λ_img 10, λ_KL 0.01,
    λ_cue 0.5 (which, as there, trains G only, not E), λ_adversarial 1, Adam lr 2e-4,
    β (0.5, 0.999), batch 2, InstanceNorm. CycleGAN's λ_cycle 10. Not from either: λ_local 10
    (= λ_img), λ_cont 1 on VGG16 relu2_2 (Johnson et al. [17]'s content layer, the paper's
    D_VGG), λ_sal 1 (the weight of the KL saliency loss in Gatys et al., papers/002),
    local_size 64 (D_L's patches), max_steps, and the attention-module values: SAF's
    θ_α = 10 and θ_β = 0.5 (of the map's peak), the change threshold attention_threshold τ = 0.1
    (S_d := 0 where |SAF(S_y) − SAF(S_x)| < τ; at most box_min_difference, so B_a is unchanged;
    0 is the paper's module), λ_mix_identity 1 (Σ of squared differences of C_1×1's 18 weights
    and 3 biases from the identity blend), and the box clustering (see
    `salggan_parts.attention_boxes`): core pixels at ≥ box_threshold of the peak S_d and
    ≥ box_min_difference, linked within box_link, clusters of ≥ box_min_area (fraction of the
    image) kept, grown by box_margin, at most max_boxes. L_sal is KL(S_y ‖ SalD(Ŷ)), the
    saliency benchmark's direction: eq. 7 writes the arguments the other way round, which is
    infinite wherever S_y is 0. SalD stays frozen (the project's attached predictor); the paper
    lists it among the minimised networks.

    The booleans supervised_path … generator_attention switch the Table 3 variants (`ABLATIONS`).

    Checkpoints saved before attention_threshold and lambda_mix_identity existed load at 0.1 and
    1, so they edit with the invariant (S_d loses its sub-0.1 fringe, where their Ŷ was already
    within 0.1·|Unet − X| of X, plus C's drift); attention_threshold: 0 gives their old S_d back.
    """

    PRESETS: ClassVar[dict[str, dict]] = {
        # seconds on a laptop CPU (the demo, with its --random-backbone): 80 steps at 64×48, content on relu1_1
        "cpu": {"image_size": (48, 64), "z_dim": 8, "unet_depth": 4, "unet_channels": 16, "unet_max_channels": 64,
                "encoder_channels": (16, 32, 32, 32), "content_layers": ("relu1_1",), "d_channels": 16,
                "d_layers": 2, "local_size": 24, "local_channels": 16, "local_layers": 2, "lr": 5e-4,
                "batch_size": 4, "max_steps": 80},
        # the tests: 32×24, a few channels, a random VGG
        "tiny": {"image_size": (24, 32), "backbone_weights": "random", "z_dim": 4, "unet_depth": 3,
                 "unet_channels": 8, "unet_max_channels": 16, "encoder_channels": (8, 16, 16, 16), "d_channels": 8,
                 "d_layers": 1, "local_size": 16, "local_channels": 8, "local_layers": 1, "batch_size": 2,
                 "max_steps": 20},
    }

    image_size: tuple[int, int] = (256, 256)
    backbone_weights: str = "imagenet"  # the content loss's VGG: "imagenet", "random" (asked for only), or a path
    vgg_arch: Literal["vgg16", "vgg19"] = "vgg16"
    content_layers: tuple[str, ...] = ("relu2_2",)
    saf_alpha: float = 10.0
    saf_beta: float = 0.5
    attention_threshold: float = 0.1
    box_threshold: float = 0.5
    box_min_difference: float = 0.1
    box_link: float = 0.04
    box_margin: float = 0.03
    box_min_area: float = 0.001
    max_boxes: int = 4
    z_dim: int = 8
    unet_depth: int = 8
    unet_channels: int = 64
    unet_max_channels: int = 512
    encoder_channels: tuple[int, ...] = (64, 128, 256, 256, 256)
    d_scales: int = 3
    d_channels: int = 64
    d_layers: int = 3
    local_size: int = 64
    local_channels: int = 64
    local_layers: int = 3
    lambda_adversarial: float = 1.0
    lambda_content: float = 1.0
    lambda_img: float = 10.0
    lambda_local: float = 10.0
    lambda_kl: float = 0.01
    lambda_sal: float = 1.0
    lambda_cycle: float = 10.0
    lambda_cue: float = 0.5
    lambda_mix_identity: float = 1.0
    supervised_path: bool = True
    unsupervised_path: bool = True
    local_discriminator: bool = True
    saliency_loss: bool = True
    encoder_attention: bool = True
    discriminator_condition: bool = True
    generator_attention: bool = True
    lr: float = 2e-4
    adam_betas: tuple[float, float] = (0.5, 0.999)
    batch_size: int = 2
    max_steps: int = 200_000


@dataclass
class _Pass:
    """One forward pass of both paths on a batch (what the D and G losses share)."""

    x: torch.Tensor
    y: torch.Tensor
    target_density: torch.Tensor
    maps: AttentionMaps
    boxes: list
    has_y: torch.Tensor
    sup: torch.Tensor  # row indices of the supervised path
    unsup: torch.Tensor  # row indices of the unsupervised path
    fake_sup: torch.Tensor  # Ŷ_s
    fake_unsup: torch.Tensor  # Ŷ_u
    mu: torch.Tensor | None = None
    logvar: torch.Tensor | None = None
    z_unsup: torch.Tensor | None = None
    z_predicted: torch.Tensor | None = None
    cycled: torch.Tensor | None = None


@EDITORS.register("salggan")
class SalGGAN(Editor):
    """The SalG-GAN editor; see the module docstring.

    `edit(image, target_map, samples=K, seed=…, sx=…)`: (B, 3, H, W) images in [0, 1] and
    (B, 1, H, W) target densities → (B, 3, H, W) in [0, 1], or (B, K, 3, H, W) for K > 1 diverse
    translations.
    """

    name = "salggan"
    Config = SalGGANConfig
    guidance = "target_map"
    needs_predictor_at_edit = True  # S_x comes from SalD at edit time unless sx="measured"

    def __init__(self, config: SalGGANConfig, *, load_pretrained: bool = True):
        super().__init__()
        check_config(config)
        self.config = c = config
        condition_channels = 2 if c.generator_attention else 1
        self.generator = SaliencyGuidedGenerator(condition_channels, c.z_dim, c.unet_depth, c.unet_channels,
                                                 c.unet_max_channels)
        self.encoder = CueEncoder(c.encoder_channels, c.z_dim)
        d_inputs = 4 if c.discriminator_condition else 3
        self.discriminator_global = MultiScaleDiscriminator(d_inputs, c.d_channels, c.d_layers, c.d_scales)
        self.discriminator_local = (PatchDiscriminator(d_inputs, c.local_channels, c.local_layers)
                                    if c.local_discriminator else None)
        weights = c.backbone_weights if load_pretrained else "random"
        self.vgg = VGGFeatures(c.vgg_arch, c.content_layers, weights=weights)
        betas = tuple(c.adam_betas)
        self.optimizer_g = torch.optim.Adam(self.generator.parameters(), lr=c.lr, betas=betas)
        self.optimizer_e = torch.optim.Adam(self.encoder.parameters(), lr=c.lr, betas=betas)
        d_params = [p for net in (self.discriminator_global, self.discriminator_local) if net is not None
                    for p in net.parameters()]
        self.optimizer_d = torch.optim.Adam(d_params, lr=c.lr, betas=betas)
        self.weights_info = {**self.weights_info, "backbone": self.vgg.weights_info,
                             "random_backbone": self.vgg.weights_info["source"] == "random"}

    # -- inference ------------------------------------------------------------------------------------

    def attention(self, source_map: torch.Tensor, target_map: torch.Tensor) -> AttentionMaps:
        """The attention module on (B, 1, H, W) source and target saliency maps (see `salggan_parts`)."""
        c = self.config
        return attention_maps(source_map, target_map, c.saf_alpha, c.saf_beta, c.attention_threshold)

    def boxes(self, difference: torch.Tensor) -> list[list[tuple[int, int, int, int]]]:
        """B_a per image of a (B, 1, H, W) S_d, with the config's clustering parameters scaled to its size."""
        c = self.config
        height, width = difference.shape[-2:]
        short = min(height, width)
        return attention_boxes(difference, threshold=c.box_threshold, min_difference=c.box_min_difference,
                               link_px=max(1, round(c.box_link * short)), margin_px=round(c.box_margin * short),
                               min_pixels=max(1, round(c.box_min_area * height * width)), max_boxes=c.max_boxes)

    def translate(self, image: torch.Tensor, target_map: torch.Tensor, z: torch.Tensor,
                  source_map: torch.Tensor) -> torch.Tensor:
        """Differentiable Ŷ = G(X, S_d, S_p, S_m, z) without input checks; (B, 3, H, W), not clamped."""
        maps = self.attention(source_map, target_map)
        return self.generator(image, self._condition(maps), maps.difference, z)

    def edit(self, image: torch.Tensor, target_map: torch.Tensor, *, samples: int = 1, seed: int | None = None,
             z: torch.Tensor | None = None, sx: Literal["predicted", "measured"] = "predicted",
             source_map: torch.Tensor | None = None) -> torch.Tensor:
        """Translate every image towards its target saliency map, `samples` times with different z.

        image: (B, 3, H, W) in [0, 1], any size. target_map: (B, 1, H, W) densities (sum 1).
        sx: where S_x comes from — "predicted", the attached predictor's (SalD's) map of the image
        (the paper's test time), or "measured", `source_map`, a (B, 1, H, W) density (a human
        map of the image); ValueError if sx is "measured" without a source_map or "predicted"
        with one. z: (B, z_dim) or (B, samples, z_dim) latent cues; None draws them from N(0, 1)
        with `seed` (else the global torch RNG). Returns (B, 3, H, W) in [0, 1], or
        (B, samples, 3, H, W) when samples > 1.
        """
        check_target_maps(image, target_map)
        if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
            raise ValueError(f"samples must be an int >= 1, got {samples!r}")
        if sx not in ("predicted", "measured"):
            raise ValueError(f"sx = {sx!r}; expected 'predicted' (SalD's map of X) or 'measured' (a given source_map)")
        if (sx == "measured") != (source_map is not None):
            raise ValueError("sx='measured' needs the measured S_x as source_map" if source_map is None else
                             "a source_map was given with sx='predicted'; pass sx='measured' to edit with it")
        with torch.no_grad():
            if sx == "predicted":
                source_map = self.predictor.log_density(image).exp()
            else:
                check_target_maps(image, source_map, "source_map")
            codes = self._codes(image.shape[0], samples, z, seed, image.device)
            outputs = [self.translate(image, target_map, codes[:, k], source_map).clamp(0, 1) for k in range(samples)]
        out = outputs[0] if samples == 1 else torch.stack(outputs, 1)
        return out.to(image.dtype)

    # -- training -------------------------------------------------------------------------------------

    def train_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """One forward of both paths, one D step (D_G and D_L), one G and E step.

        batch: ``x``, ``y`` (B, 3, H, W) in [0, 1]; ``x_map``, ``y_map`` (B, 1, H, W) densities;
        optional ``has_y`` (B,) bool (False: a `single` row, whose ``y`` is a placeholder and
        ``y_map`` the target) and ``has_x_map`` (B,) bool (False: S_x from SalD). Returns the
        detached loss terms, ``g_total``, ``d_global`` and ``d_local``.
        """
        found = self.forward_pass(batch)
        d_losses = self.discriminator_losses(found)
        self.optimizer_d.zero_grad(set_to_none=True)
        amp.backward(sum(d_losses.values()))
        amp.step(self.optimizer_d)
        g_losses = self.generator_losses(found)
        self.optimizer_g.zero_grad(set_to_none=True)
        self.optimizer_e.zero_grad(set_to_none=True)
        amp.backward(g_losses["loss"])  # D's parameters get gradients too; zeroed before their own step
        amp.step(self.optimizer_g)
        amp.step(self.optimizer_e)
        out = {key: value.detach() for key, value in g_losses.items() if key != "loss"}
        return {**out, "g_total": g_losses["loss"].detach(), **{k: v.detach() for k, v in d_losses.items()}}

    def forward_pass(self, batch: dict[str, Any]) -> _Pass:
        """Attention maps, boxes, Ŷ_s and Ŷ_u (and E's codes, the cycle and the re-predicted z_u)."""
        c = self.config
        x, y, source, target, has_y, has_x_map = check_batch(batch, self.config.unsupervised_path)
        if bool((~has_x_map).any()):
            with torch.no_grad():
                predicted = self.predictor.log_density(x).exp().to(source.dtype)
            source = torch.where(has_x_map.view(-1, 1, 1, 1), source, predicted)
        maps = self.attention(source, target)
        rows = torch.arange(x.shape[0], device=x.device)
        sup = rows[has_y] if c.supervised_path else rows[:0]
        unsup = rows if c.unsupervised_path else rows[:0]
        d = maps.difference
        # one E pass: Q(z|Y) for the supervised rows, Q(z|X) (z'_u of the cycle) for the unsupervised ones
        encoded = self.encoder(torch.cat([self._encoder_input(y[sup], d[sup]),
                                          self._encoder_input(x[unsup], d[unsup])]))
        mu, logvar = (part[: len(sup)] for part in encoded)
        z_s = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        z_u = torch.randn(len(unsup), c.z_dim, device=x.device, dtype=mu.dtype)
        picked = torch.cat([sup, unsup])
        condition = self._condition(maps)
        fakes = self.generator(x[picked], condition[picked], d[picked], torch.cat([z_s, z_u]))
        found = _Pass(x=x, y=y, target_density=target, maps=maps, boxes=self.boxes(d), has_y=has_y, sup=sup,
                      unsup=unsup, fake_sup=fakes[: len(sup)], fake_unsup=fakes[len(sup):], mu=mu, logvar=logvar)
        if c.unsupervised_path:
            mu_x, logvar_x = (part[len(sup):] for part in encoded)
            z_back = mu_x + torch.randn_like(mu_x) * torch.exp(0.5 * logvar_x)  # z'_u ~ Q(z|X)
            reverse = self._condition(maps, reverse=True)[unsup]
            found.cycled = self.generator(found.fake_unsup, reverse, d[unsup], z_back)
            # BicycleGAN: the latent regression trains G only, so E sees Ŷ_u through frozen weights
            encoder = getattr(self.encoder, "module", self.encoder)  # the network itself under DDP
            frozen = {name: p.detach() for name, p in encoder.named_parameters()}
            found.z_unsup = z_u
            found.z_predicted = functional_call(encoder, frozen, (self._encoder_input(found.fake_unsup, d[unsup]),))[0]
        return found

    def discriminator_losses(self, found: _Pass) -> dict[str, torch.Tensor]:
        """LSGAN D losses (eq. 4): reals (X, S_x), (Y, S_y); fakes (Ŷ_s, S_y), (Ŷ_u, S_y), detached.
        {"d_global"} and, with D_L, {"d_local"} on the B_a patches."""
        reals, fakes, rows_real, rows_fake = self._real_and_fake(found, detach=True)
        scores = self.discriminator_global(torch.cat([reals, fakes]))
        n = len(reals)
        out = {"d_global": losses.lsgan_d([s[:n] for s in scores], [s[n:] for s in scores])}
        if self.discriminator_local is not None:
            boxes, weight = self._local_boxes(found)
            real_patches = crop_patches(reals, [boxes[i] for i in rows_real.tolist()], self.config.local_size)
            fake_patches = crop_patches(fakes, [boxes[i] for i in rows_fake.tolist()], self.config.local_size)
            local = self.discriminator_local(torch.cat([real_patches, fake_patches]))
            k = len(real_patches)
            out["d_local"] = weight * losses.lsgan_d(local[:k], local[k:])
        return out

    def generator_losses(self, found: _Pass) -> dict[str, torch.Tensor]:
        """The weighted G + E objective ``loss`` (eq. 9 without D's part) and each term, unweighted."""
        c = self.config
        _, fakes, _, rows_fake = self._real_and_fake(found, detach=False)
        terms = {"adversarial_global": losses.lsgan_g(self.discriminator_global(fakes))}
        weights = {"adversarial_global": c.lambda_adversarial}
        if self.discriminator_local is not None:
            boxes, weight = self._local_boxes(found)
            patches = crop_patches(fakes, [boxes[i] for i in rows_fake.tolist()], c.local_size)
            terms["adversarial_local"] = weight * losses.lsgan_g(self.discriminator_local(patches))
            weights["adversarial_local"] = c.lambda_adversarial
        translated = torch.cat([found.fake_sup, found.fake_unsup])
        keep = 1 - found.maps.difference[rows_fake].to(translated.dtype)
        with torch.no_grad():
            original = self.vgg(keep * found.x[rows_fake])
        terms["content"] = losses.content_loss(self.vgg(keep * translated), original)
        weights["content"] = c.lambda_content
        terms["mix_identity"] = getattr(self.generator, "module", self.generator).mix_drift()  # DDP unwrapped
        weights["mix_identity"] = c.lambda_mix_identity
        if c.saliency_loss:
            terms["saliency"] = losses.kl_saliency_loss(self.predictor.log_density(translated),
                                                        found.target_density[rows_fake])
            weights["saliency"] = c.lambda_sal
        if c.supervised_path:
            terms.update(self._supervised_terms(found))
            weights.update(img=c.lambda_img, local=c.lambda_local, kl=c.lambda_kl)
        if c.unsupervised_path:  # then every row takes it
            terms["cycle"] = (found.cycled - found.x[found.unsup]).abs().mean()
            terms["cue"] = losses.latent_regression_loss(found.z_predicted.float(), found.z_unsup.float())
            weights.update(cycle=c.lambda_cycle, cue=c.lambda_cue)
        total = sum(weights[key] * value for key, value in terms.items())
        return {"loss": total, **terms}

    def validation_step(self, batch: dict[str, Any]) -> dict[str, float]:
        """Saliency KLD, KL(y_map ‖ SalD(Ŷ)) in nats, of the translation with z = 0 (the prior's mean),
        and ``l1`` = mean |Ŷ − Y| over the rows with a ground-truth Y (when the batch has any)."""
        with torch.no_grad():
            x, y, source, target, has_y, has_x_map = check_batch(batch, self.config.unsupervised_path)
            if bool((~has_x_map).any()):
                source = torch.where(has_x_map.view(-1, 1, 1, 1), source, self.predictor.log_density(x).exp())
            z = x.new_zeros(x.shape[0], self.config.z_dim)
            out = self.translate(x, target, z, source).clamp(0, 1)
            found = {"saliency_kld": float(losses.kl_saliency_loss(self.predictor.log_density(out), target))}
            if bool(has_y.any()):
                found["l1"] = float((out[has_y] - y[has_y]).abs().mean())
        return found

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": self.optimizer_g, "encoder": self.optimizer_e, "discriminator": self.optimizer_d}

    def networks(self) -> dict[str, nn.Module]:
        nets = {"generator": self.generator, "encoder": self.encoder, "discriminator_global": self.discriminator_global,
                "discriminator_local": self.discriminator_local}
        return {name: net for name, net in nets.items() if net is not None}

    def make_dataset(self, data_dir: str | os.PathLike, split: str | None = "train") -> SalGGANSamples:
        """Pairs with a Y map and `single` rows of a gazelab dataset dir at `image_size` (see
        `SalGGANSamples`); single rows only where the unsupervised path is on (else ValueError)."""
        height, width = self.config.image_size
        return SalGGANSamples(data_dir, split, (width, height), allow_single=self.config.unsupervised_path)

    # -- helpers --------------------------------------------------------------------------------------

    def _supervised_terms(self, found: _Pass) -> dict[str, torch.Tensor]:
        sup = found.sup
        if len(sup) == 0:  # a batch of single rows only
            zero = found.fake_unsup.new_zeros(())
            return {"img": zero, "local": zero, "kl": zero}
        error = (found.fake_sup - found.y[sup]).abs()
        inside = box_mask([found.boxes[i] for i in sup.tolist()], error.shape[-2:], error.device).to(error.dtype)
        local = (error * inside).sum() / (3 * inside.sum()).clamp_min(1)
        kl = losses.kl_to_normal(found.mu.float(), found.logvar.float())
        return {"img": error.mean(), "local": local, "kl": kl}

    def _real_and_fake(self, found: _Pass, detach: bool):
        """D inputs: reals (X, S_x) for every row, (Y, S_y) where there is a Y; fakes (Ŷ_s, S_y), (Ŷ_u, S_y).
        Also the batch row of each real and each fake (for its boxes)."""
        maps = found.maps
        rows = torch.arange(found.x.shape[0], device=found.x.device)
        with_y = rows[found.has_y]
        reals = torch.cat([self._d_input(found.x, maps.source), self._d_input(found.y[with_y], maps.target[with_y])])
        rows_fake = torch.cat([found.sup, found.unsup])
        fakes = self._d_input(torch.cat([found.fake_sup, found.fake_unsup]), maps.target[rows_fake])
        return reals, fakes.detach() if detach else fakes, torch.cat([rows, with_y]), rows_fake

    def _local_boxes(self, found: _Pass):
        """The batch's boxes and D_L's loss weight: 1, or 0 with whole-image boxes when no image has
        a box (D_L still runs, so every network sees the same graph on every step and DDP rank)."""
        if any(found.boxes):
            return found.boxes, 1.0
        height, width = found.x.shape[-2:]
        return [[(0, 0, width, height)] for _ in found.boxes], 0.0

    def _d_input(self, images: torch.Tensor, saliency: torch.Tensor) -> torch.Tensor:
        if not self.config.discriminator_condition:
            return images * 2 - 1
        return torch.cat([images * 2 - 1, saliency.to(images.dtype) * 2 - 1], 1)

    def _encoder_input(self, images: torch.Tensor, difference: torch.Tensor) -> torch.Tensor:
        return images * difference.to(images.dtype) if self.config.encoder_attention else images

    def _condition(self, maps: AttentionMaps, reverse: bool = False) -> torch.Tensor:
        """G's condition: S_p ⊕ S_m (S_m ⊕ S_p going back to X), or S_y (S_x back) for "G w/o sal"."""
        if not self.config.generator_attention:
            return maps.source if reverse else maps.target
        pair = (maps.subtractive, maps.additive) if reverse else (maps.additive, maps.subtractive)
        return torch.cat(pair, 1)

    def _codes(self, batch: int, samples: int, z, seed, device) -> torch.Tensor:
        return latent_codes(batch, samples, self.config.z_dim, z, seed, device)
