"""SalGAN (Pan et al. 2017; replicated by Khanna, papers/003): a VGG16 encoder–decoder saliency
generator trained with a downsampled BCE content loss, then adversarially against a 4-channel
(image + map) discriminator.

Generator: VGG16 conv1_1 … conv5_3 (the last pool and the classifier dropped; ImageNet weights
from `models.backbones.VGGFeatures`, only the layers from `trainable_encoder_from` on are trained —
SalGAN trains the last two groups, conv4_1 on, and keeps the earlier ones fixed), then a mirrored
decoder: per VGG block in reverse order 3, 3, 3, 2, 2 convolutions of 3×3 + ReLU, nearest 2×
upsampling between blocks, and a 1×1 convolution with a sigmoid (He-initialised: Lasagne's Glorot
default, SalGAN's, fades the signal over 13 ReLU layers when the encoder is random). Discriminator (SalGAN Table 1):
1×1 conv to 3 channels, 3×3 convs 32 | pool | 64, 64 | pool | 64, 64 | pool, ReLU, then fully
connected 100 (tanh), 2 (tanh), 1 — kept as a logit here, the sigmoid living in the BCE losses.

Training (`train_step`): for the first `bce_only_steps` steps the generator learns from the content
loss alone (BCE between the max-normalised target map and the prediction, both average-pooled by 4);
then the steps alternate one batch each, discriminator first (as SalGAN's code): a D step on
BCE(D(I, S), 1) + BCE(D(I, Ŝ), 0), a G step on α·L_BCE + BCE(D(I, Ŝ), 1) with α = 1/20. AdaGrad,
lr 3e-4, weight decay 1e-4, batch 32, 256×192 inputs. The step counter is a buffer, so a resumed
run continues in the right phase.

Random backbones (no ImageNet weights, e.g. offline): a random VGG16 is a poor feature extractor.
Its deep features of different images are nearly alike — random ReLU layers pull every input
towards the same activation pattern (Pearson correlation of relu5_3 activations between
different 64×48 scenes 0.94, of relu1_2 0.37) — and four max-pools leave only a 3×4 grid at
64×48 that no longer says where in each 16×16 cell an object is. Frozen up to conv5_1 with a
trained decoder, SalGAN then predicts one map for every image (the former CPU preset: CC 0.72
with each image's own map and 0.72 with other images'; predictions of different images
correlate at 0.99). Training the whole VGG16 from scratch does not rescue it within a CPU
budget: the 27-layer plain network (no skips) stays near the mean map for hundreds of steps
(after 400 steps its maps of different images still correlate at 0.8; CC 0.22 with the own
density, 0.16 with others'), with BCE or KL, AdaGrad or Adam, with or without batch norm.
What learns from scratch is a shallower SalGAN, the "cpu" preset: `encoder_blocks` = 3 (VGG16
conv1_1 … conv3_3, output stride 4), every layer trained, the mirrored decoder batch-normalised
(`decoder_norm`), and the BCE stage only — the small discriminator never gets past chance at
that size and budget, and its gradient, weighted 20× the content loss, undid what the BCE
stage had learnt (CC 0.90 → 0.22 in 200 adversarial steps). Four blocks (stride 8, plain decoder) stayed
on the mean map for 300 steps. On held-out synthetic scenes the "cpu" preset recovers the
generating density at CC 0.92 after 800 steps (centre bias 0.15, shuffle 0.01; `benchmarks/bench_recovery.py --quick`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from models import amp, losses
from models.backbones import VGGFeatures, vgg_layer_names
from models.base import SaliencyPredictor, check_images, check_saliency_batch
from models.registry import PREDICTORS

logger = logging.getLogger(__name__)

__all__ = ["SalGAN", "SalGANConfig", "SalGANGenerator", "SalGANDiscriminator"]

VGG16_BLOCK_CONVS = (2, 2, 3, 3, 3)  # convolutions per VGG16 block; the decoder mirrors them
VGG16_BLOCK_WIDTHS = (64, 128, 256, 512, 512)


@dataclass
class SalGANConfig:
    """SalGAN's settings; the defaults are the paper's.

    input_size: (height, width) in pixels of the images the model works on (SalGAN: 256×192 W×H).
    backbone_weights: "imagenet" | "random" | path of a VGG16 state_dict, for the encoder.
    trainable_encoder_from: first VGG16 conv layer that is trained; the ones before stay fixed
        (SalGAN: the last two groups, conv4_1 on; "conv1_1" trains the whole encoder, as the
        replication from scratch did).
    encoder_blocks: how many VGG16 blocks the encoder keeps (SalGAN: all 5, conv1_1 … conv5_3;
        3 ends at conv3_3, output stride 4 — what trains from a random backbone, see above).
    decoder_channels: output channels of the decoder blocks mirroring the encoder's VGG blocks,
        deepest first (SalGAN: blocks 5, 4, 3, 2, 1); one width per encoder block.
    decoder_norm: "none" (SalGAN's) or "batch" (batch norm after each decoder convolution).
    disc_channels: the discriminator's conv widths conv1_1 (1×1), conv1_2, conv2_1, conv2_2,
        conv3_1, conv3_2; disc_hidden: its hidden fully connected widths (fc4, fc5).
    alpha: weight of the BCE content loss in the adversarial phase (L = α·L_BCE + L_adv).
    bce_downsample: average-pooling factor of both maps before the BCE (4: 64×48 maps).
    bce_only_steps: steps of BCE-only pretraining (15 epochs of SALICON's 10,000 images at batch 32);
        at least the run's steps to train the BCE stage only.
    lr, weight_decay: AdaGrad's, the same for G and D.
    batch_size, max_steps: the run's defaults (`gazelab train`); 100 epochs as the replication.
    """

    PRESETS: ClassVar[dict[str, dict]] = {
        # Minutes on a laptop CPU from a random backbone (the demo; see the module docstring): VGG16 blocks 1–3
        # trained from scratch, a slim batch-normalised decoder, the BCE stage only, the loss at the full
        # 64×48 map as SalGAN's (its 256×192 inputs pooled by 4). No weight decay: it shrank the weights of
        # dead ReLU channels into float32 denormals, which made CPU steps 4x slower by step 800.
        "cpu": {"input_size": (48, 64), "encoder_blocks": 3, "trainable_encoder_from": "conv1_1",
                "decoder_channels": (32, 16, 16), "decoder_norm": "batch", "disc_channels": (3, 8, 16, 16, 16, 16),
                "disc_hidden": (16, 2), "bce_downsample": 1, "bce_only_steps": 10**9, "lr": 1e-2, "weight_decay": 0.0,
                "batch_size": 4, "max_steps": 400},
        # Minutes on a CPU from ImageNet weights: the paper's network, its last VGG block fine-tuned (not
        # checked offline, where no ImageNet weights exist; a random backbone here learns no image: see above).
        "cpu_imagenet": {"input_size": (48, 64), "trainable_encoder_from": "conv5_1",
                         "decoder_channels": (32, 32, 32, 16, 16), "disc_channels": (3, 8, 16, 16, 16, 16),
                         "disc_hidden": (16, 2), "bce_only_steps": 60, "lr": 3e-3, "batch_size": 4, "max_steps": 80},
        "tiny": {"input_size": (24, 32), "backbone_weights": "random", "trainable_encoder_from": "conv5_3",
                 "decoder_channels": (8, 8, 8, 8, 8),
                 "disc_channels": (3, 8, 8, 8, 8, 8), "disc_hidden": (16, 2), "bce_only_steps": 3,
                 "batch_size": 2, "max_steps": 20},
    }

    input_size: tuple[int, int] = (192, 256)
    backbone_weights: str = "imagenet"
    trainable_encoder_from: str = "conv4_1"
    decoder_channels: tuple[int, ...] = (512, 512, 256, 128, 64)
    decoder_norm: str = "none"
    encoder_blocks: int = 5
    disc_channels: tuple[int, ...] = (3, 32, 64, 64, 64, 64)
    disc_hidden: tuple[int, ...] = (100, 2)
    alpha: float = 1 / 20
    bce_downsample: int = 4
    bce_only_steps: int = 4680
    lr: float = 3e-4
    weight_decay: float = 1e-4
    batch_size: int = 32
    max_steps: int = 31200


class SalGANGenerator(nn.Module):
    """(B, 3, H, W) images in [0, 1] → (B, 1, H, W) saliency *logits* (sigmoid gives the map).

    Any H, W ≥ 2**(encoder_blocks − 1) work (16 for SalGAN's five blocks): the decoder upsamples to
    the sizes the encoder's pools saw.
    """

    def __init__(self, weights: str, trainable_from: str, decoder_channels: tuple[int, ...],
                 decoder_norm: str = "none", encoder_blocks: int = 5):
        super().__init__()
        if decoder_norm not in ("none", "batch"):
            raise ValueError(f"decoder_norm = {decoder_norm!r}; expected 'none' (SalGAN's) or 'batch'")
        if encoder_blocks not in range(1, 6):
            raise ValueError(f"encoder_blocks = {encoder_blocks!r}; expected 1 … 5 VGG16 blocks (SalGAN: 5)")
        last = f"relu{encoder_blocks}_{VGG16_BLOCK_CONVS[encoder_blocks - 1]}"
        names = vgg_layer_names("vgg16")
        used = names[: names.index(last) + 1]
        if not trainable_from.startswith("conv") or trainable_from not in used:
            convs = [name for name in used if name.startswith("conv")]
            raise ValueError(f"trainable_encoder_from = {trainable_from!r}; expected a conv layer of the encoder's "
                             f"VGG16 blocks: {', '.join(convs)}")
        if len(decoder_channels) != encoder_blocks or min(decoder_channels) < 1:
            raise ValueError(f"decoder_channels = {decoder_channels!r}; expected {encoder_blocks} positive widths "
                             f"(blocks {encoder_blocks} … 1)")
        self.last_layer = last
        self.encoder = VGGFeatures("vgg16", layers=(last,), weights=weights, requires_grad=True)
        first_trained = names.index(trainable_from)  # layer names follow the feature stack's order
        for index, module in enumerate(self.encoder.features):
            if index < first_trained:
                module.requires_grad_(False)
        blocks, in_channels = [], VGG16_BLOCK_WIDTHS[encoder_blocks - 1]
        for n_convs, width in zip(reversed(VGG16_BLOCK_CONVS[:encoder_blocks]), decoder_channels):
            layers: list[nn.Module] = []
            for _ in range(n_convs):
                if decoder_norm == "batch":
                    layers += [nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                               nn.ReLU()]
                else:
                    layers += [nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU()]
                in_channels = width
            blocks.append(nn.Sequential(*layers))
        self.decoder = nn.ModuleList(blocks)
        self.output = nn.Conv2d(in_channels, 1, 1)
        for module in self.decoder.modules():
            if isinstance(module, nn.Conv2d):  # He init, as torchvision's VGG: the signal keeps its scale
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        height, width = images.shape[-2:]
        sizes = [(height, width)]
        for _ in range(len(self.decoder) - 1):  # the sizes after the encoder's pools (floor division)
            sizes.append((sizes[-1][0] // 2, sizes[-1][1] // 2))
        x = self.encoder(images)[self.last_layer]
        for block, size in zip(self.decoder, reversed(sizes)):
            if tuple(x.shape[-2:]) != size:
                x = F.interpolate(x, size=size, mode="nearest")
            x = block(x)
        return self.output(x)


class SalGANDiscriminator(nn.Module):
    """(B, 4, H, W) map + image (map channel first) at `input_size` → (B, 1) real/fake logits."""

    def __init__(self, input_size: tuple[int, int], channels: tuple[int, ...], hidden: tuple[int, ...]):
        super().__init__()
        if len(channels) != 6 or min(channels) < 1:
            raise ValueError(f"disc_channels = {channels!r}; expected 6 positive widths (conv1_1 … conv3_2)")
        if not hidden or min(hidden) < 1:
            raise ValueError(f"disc_hidden = {hidden!r}; expected positive fully connected widths")
        height, width = input_size
        if height < 8 or width < 8:
            raise ValueError(f"input_size = {input_size!r}; the discriminator's three pools need at least 8×8 pixels")
        layers: list[nn.Module] = [nn.Conv2d(4, channels[0], 1), nn.ReLU()]
        for index in range(1, 6):  # conv1_2 | conv2_1, conv2_2 | conv3_1, conv3_2, a pool after each group
            layers += [nn.Conv2d(channels[index - 1], channels[index], 3, padding=1), nn.ReLU()]
            if index % 2 == 1:
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        layers = [nn.Flatten()]
        in_features = channels[5] * (height // 8) * (width // 8)
        for size in hidden:
            layers += [nn.Linear(in_features, size), nn.Tanh()]
            in_features = size
        layers.append(nn.Linear(in_features, 1))
        self.classifier = nn.Sequential(*layers)

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(pairs))


@PREDICTORS.register("salgan")
class SalGAN(SaliencyPredictor):
    """The SalGAN predictor: `forward` gives log-densities, `saliency_map` the sigmoid map.

    `make_dataset` (inherited) yields ``x`` (3, H, W) in [0, 1] and ``x_map`` (1, H, W) densities at
    `input_size`; `train_step` takes such batches. weights_info = {"backbone": the VGG's provenance,
    "random_backbone": bool}.
    """

    name = "salgan"
    Config = SalGANConfig

    def __init__(self, config: SalGANConfig, *, load_pretrained: bool = True):
        super().__init__()
        self.config = config
        weights = config.backbone_weights if load_pretrained else "random"
        self.generator = SalGANGenerator(weights, config.trainable_encoder_from, tuple(config.decoder_channels),
                                         config.decoder_norm, config.encoder_blocks)
        self.discriminator = SalGANDiscriminator(tuple(config.input_size), tuple(config.disc_channels),
                                                 tuple(config.disc_hidden))
        if config.bce_downsample < 1 or config.bce_only_steps < 0:
            raise ValueError(f"bce_downsample = {config.bce_downsample} must be >= 1 and bce_only_steps = "
                             f"{config.bce_only_steps} >= 0")
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))  # saved: resume keeps the phase
        g_params = [p for p in self.generator.parameters() if p.requires_grad]
        self.optimizer_g = torch.optim.Adagrad(g_params, lr=config.lr, weight_decay=config.weight_decay)
        self.optimizer_d = torch.optim.Adagrad(self.discriminator.parameters(), lr=config.lr,
                                               weight_decay=config.weight_decay)
        backbone = self.generator.encoder.weights_info
        self.weights_info = {"backbone": backbone, "random_backbone": backbone["source"] == "random"}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, h, w) images in [0, 1] → (B, 1, h, w) natural-log densities: log(σ / Σσ)."""
        check_images(images)
        return _log_density(self.generator(images))

    def saliency_map(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, h, w) images in [0, 1] → (B, 1, h, w) SalGAN's sigmoid map in [0, 1]."""
        check_images(images)
        return torch.sigmoid(self.generator(images).float())

    def train_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """One step: BCE-only while `steps_done < bce_only_steps`, then D and G steps alternately.

        Returns {"bce", "adv", "d", "g"} every step (one network is updated, the other's losses
        are measured without gradients): content BCE, the generator's adversarial BCE, the
        discriminator's loss and the generator's total.
        """
        images, target = check_saliency_batch(batch, tuple(self.config.input_size))
        target = target / target.amax(dim=(-2, -1), keepdim=True)  # SalGAN's maps are max-normalised
        step = int(self.steps_done)
        self.steps_done += 1
        adversarial = step >= self.config.bce_only_steps
        if step == self.config.bce_only_steps and step > 0:
            logger.info("SalGAN: %d BCE-only steps done; alternating D and G steps from now on", step)
        d_turn = adversarial and (step - self.config.bce_only_steps) % 2 == 0  # D first, as SalGAN's code
        alpha, down = self.config.alpha, self.config.bce_downsample

        if d_turn:
            with torch.no_grad():
                logits = self.generator(images)
            self.optimizer_d.zero_grad(set_to_none=True)
            real, fake = self._discriminate(images, target, torch.sigmoid(logits))
            d_loss = losses.bce_gan_d(real, fake)
            amp.backward(d_loss)
            amp.step(self.optimizer_d)
            with torch.no_grad():
                bce = losses.bce_map_loss(logits, target, down, from_logits=True)
                adv = losses.bce_gan_g(fake)
            return {"bce": bce, "adv": adv, "d": d_loss.detach(), "g": alpha * bce + adv}

        self.optimizer_g.zero_grad(set_to_none=True)
        logits = self.generator(images)
        bce = losses.bce_map_loss(logits, target, down, from_logits=True)
        if adversarial:
            real, fake = self._discriminate(images, target, torch.sigmoid(logits))
            adv = losses.bce_gan_g(fake)
            g_loss = alpha * bce + adv
        else:
            with torch.no_grad():
                real, fake = self._discriminate(images, target, torch.sigmoid(logits))
                adv = losses.bce_gan_g(fake)
            g_loss = bce
        amp.backward(g_loss)
        amp.step(self.optimizer_g)
        d_loss = losses.bce_gan_d(real.detach(), fake.detach())
        return {"bce": bce.detach(), "adv": adv.detach(), "d": d_loss, "g": g_loss.detach()}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": self.optimizer_g, "discriminator": self.optimizer_d}

    def networks(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "discriminator": self.discriminator}

    def _discriminate(self, images, real_maps, fake_maps) -> tuple[torch.Tensor, torch.Tensor]:
        """D's logits on (map, image) pairs, real and fake in one forward (one call under DDP)."""
        maps = torch.cat([real_maps.to(fake_maps.dtype), fake_maps], dim=0)
        pairs = torch.cat([maps, torch.cat([images, images], dim=0).to(maps.dtype)], dim=1)
        logits = self.discriminator(pairs)
        return logits[: images.shape[0]], logits[images.shape[0]:]


def _log_density(logits: torch.Tensor) -> torch.Tensor:
    """(B, 1, h, w) logits → log of the sigmoid map normalised to sum 1 per image, in float32."""
    log_map = F.logsigmoid(logits.float())
    return torch.log_softmax(log_map.flatten(1), dim=1).view_as(log_map)
