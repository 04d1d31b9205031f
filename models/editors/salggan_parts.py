"""SalG-GAN's parts (Jiang et al., CVPR 2021, papers/000 §3.2), used by `models.editors.salggan`.

- `attention_maps`: the saliency-based attention module. SAF(S) = Norm(sigmoid(θ_α·(S − θ_β)))
  (eq. 1) of the source map S_x and the target map S_y, their change Δ = SAF(S_y) − SAF(S_x)
  set to 0 where |Δ| < τ (the threshold, see there), then the additive map S_p = max(Δ, 0), the
  subtractive map S_m = max(−Δ, 0) and the difference map S_d = |Δ| = S_p + S_m, all
  (B, 1, H, W) in [0, 1].
- `attention_boxes`: the density-based boxes B_a of the salient change regions (see there).
- `crop_patches`, `box_mask`: the boxes as resized patches (D_L's input) and as a pixel mask.
- `SaliencyGuidedGenerator`: eq. 2, Ŷ = C_1×1(S_d·Unet(X, S_p, S_m, z) ⊕ (1 − S_d)·X) where
  S_d > 0 and Ŷ = X exactly where S_d = 0.
- `CueEncoder`: the saliency cue encoder E (5 convolutions, FC heads for μ and log σ²).

The discriminators come from `_layers`: D_G is a `MultiScaleDiscriminator`, D_L a `PatchDiscriminator`.

The paper gives the components' outlines only; what fills them in is BicycleGAN's (Zhu et al.
2017, the paper's [38], whose disentangling scheme SalG-GAN follows) and pix2pix's, as each
docstring says.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torchvision.ops import roi_align

from analysis.attention_boxes import attention_boxes as boxes_of
from models.data import TrainingItems
from models.editors._layers import check_target_maps, max_normalise, pad_to_multiple

logger = logging.getLogger(__name__)

__all__ = ["AttentionMaps", "Box", "CueEncoder", "SalGGANSamples", "SaliencyGuidedGenerator",
           "UNet", "attention_boxes", "attention_maps", "box_mask", "check_batch", "check_config", "crop_patches",
           "saliency_adjustment"]

Box = tuple[int, int, int, int]  # (x0, y0, x1, y1) in pixels: columns x0 … x1 − 1, rows y0 … y1 − 1


@dataclass(frozen=True)
class AttentionMaps:
    """What the attention module gives for a batch; every map is (B, 1, H, W) in [0, 1].

    source, target: S_x and S_y divided by their maxima (the discriminators' condition).
    additive, subtractive, difference: S_p, S_m, S_d (from the SAF-adjusted maps).
    """

    source: torch.Tensor
    target: torch.Tensor
    additive: torch.Tensor
    subtractive: torch.Tensor
    difference: torch.Tensor


def saliency_adjustment(saliency: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """SAF (eq. 1): (B, 1, H, W) non-negative maps of any scale (densities, max-normalised maps) →
    (B, 1, H, W) in [0, 1].

    The map is divided by its maximum first, so θ_β is a fraction of the peak; then
    sigmoid(α·(S − β)) and a per-image min–max normalisation ("Norm"). A constant map (nothing
    stands out) gives zeros.
    """
    s = saliency.float()
    peak = s.flatten(1).amax(1).clamp_min(torch.finfo(torch.float32).tiny).view(-1, 1, 1, 1)
    squashed = torch.sigmoid(alpha * (s / peak - beta))
    low = squashed.flatten(1).amin(1).view(-1, 1, 1, 1)
    span = squashed.flatten(1).amax(1).view(-1, 1, 1, 1) - low
    flat = span <= 1e-6
    return torch.where(flat, torch.zeros_like(squashed), (squashed - low) / torch.where(flat, 1.0, span))


def attention_maps(source: torch.Tensor, target: torch.Tensor, alpha: float, beta: float,
                   threshold: float = 0.0) -> AttentionMaps:
    """The attention module on (B, 1, H, W) source and target saliency maps (densities or any
    non-negative scale); see the module docstring. S_p and S_m are disjoint (one of them is 0 at
    every pixel) and S_d is exactly 0 wherever the two adjusted maps differ by less than
    `threshold` (in SAF units, [0, 1]: a fraction of the adjusted maps' full range).

    Why a threshold: SAF's min–max normalisation maps only each map's minimum to exactly 0, so
    two maps that agree on the background (both near 0 there) still differ by ~1e-3 at almost
    every pixel; without it S_d is exactly 0 on a tiny share of the image and "outside S_d, Ŷ = X"
    holds almost nowhere. Values at or above it are kept as they are (not shrunk), so the boxes
    B_a, whose core pixels need S_d ≥ box_min_difference, are those of the unthresholded map
    (`analysis.attention_boxes.difference_map`, evaluation's twin) whenever threshold ≤
    box_min_difference. threshold = 0 is the paper's module unchanged.
    """
    adjusted_source = saliency_adjustment(source, alpha, beta)
    adjusted_target = saliency_adjustment(target, alpha, beta)
    change = adjusted_target - adjusted_source
    change = torch.where(change.abs() >= threshold, change, torch.zeros_like(change))
    return AttentionMaps(source=max_normalise(source.float()), target=max_normalise(target.float()),
                         additive=change.clamp_min(0), subtractive=(-change).clamp_min(0), difference=change.abs())


def attention_boxes(difference: torch.Tensor, *, threshold: float = 0.5, min_difference: float = 0.1,
                    link_px: int = 1, min_pixels: int = 1, margin_px: int = 0, max_boxes: int = 4) -> list[list[Box]]:
    """Density-based boxes B_a of the regions where attention changes, per image of a (B, 1, H, W)
    S_d in [0, 1]: `analysis.attention_boxes.attention_boxes` on each image (the rule and its
    arguments are documented there; evaluation's local DS draws its boxes with the same code).
    Returns per image a list of (x0, y0, x1, y1) boxes (x1, y1 exclusive)."""
    if difference.ndim != 4 or difference.shape[1] != 1:
        raise ValueError(f"difference must be a (B, 1, H, W) map, got shape {tuple(difference.shape)}")
    maps = difference.detach().float().cpu().numpy()[:, 0]
    return [boxes_of(d, threshold=threshold, min_difference=min_difference, link_px=link_px, min_pixels=min_pixels,
                     margin_px=margin_px, max_boxes=max_boxes) for d in maps]


def box_mask(boxes: list[list[Box]], shape: tuple[int, int], device=None) -> torch.Tensor:
    """(B, 1, H, W) float mask, 1 inside the union of each image's boxes."""
    mask = torch.zeros(len(boxes), 1, *shape, device=device)
    for index, image_boxes in enumerate(boxes):
        for x0, y0, x1, y1 in image_boxes:
            mask[index, :, y0:y1, x0:x1] = 1
    return mask


def crop_patches(images: torch.Tensor, boxes: list[list[Box]], size: int) -> torch.Tensor:
    """(B, C, H, W) → (N, C, size, size): every box of every image, cropped and resized (bilinear,
    RoIAlign, differentiable), image by image in box order. N may be 0."""
    rows = [(index, *box) for index, image_boxes in enumerate(boxes) for box in image_boxes]
    if not rows:
        return images.new_zeros(0, images.shape[1], size, size)
    rois = torch.tensor(rows, dtype=torch.float32, device=images.device)
    return roi_align(images.float(), rois, (size, size), spatial_scale=1.0, sampling_ratio=2,
                     aligned=True).to(images.dtype)


class UNet(nn.Module):
    """pix2pix's U-Net: `depth` encoder/decoder pairs with symmetric skips (the paper's 8 at 256²).

    (B, in_channels, H, W), H and W multiples of 2**depth → (B, out_channels, H, W) in [−1, 1].
    Encoder k: [LeakyReLU 0.2] → conv 4×4 stride 2 → InstanceNorm (none on the first and the
    innermost); widths channels·2^k up to max_channels. Decoder: ReLU → transposed conv 4×4
    stride 2 on the concatenation with the skip → InstanceNorm (the outermost: tanh instead).
    Convolutions followed by a norm have no bias (the affine norm has it).
    """

    def __init__(self, in_channels: int, out_channels: int = 3, depth: int = 8, channels: int = 64,
                 max_channels: int = 512):
        super().__init__()
        if depth < 2:
            raise ValueError(f"unet_depth = {depth}; expected at least 2 encoder/decoder pairs")
        widths = [min(channels * 2**k, max_channels) for k in range(depth)]
        downs: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 4, 2, 1)]
        for k in range(1, depth):
            inner = k == depth - 1
            layers = [nn.LeakyReLU(0.2), nn.Conv2d(widths[k - 1], widths[k], 4, 2, 1, bias=inner)]
            downs.append(nn.Sequential(*layers) if inner else nn.Sequential(*layers, nn.InstanceNorm2d(widths[k],
                                                                                                        affine=True)))
        ups: list[nn.Module] = [nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(2 * widths[0], out_channels, 4, 2, 1),
                                              nn.Tanh())]
        for k in range(1, depth):
            fan_in = widths[k] if k == depth - 1 else 2 * widths[k]
            ups.append(nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(fan_in, widths[k - 1], 4, 2, 1, bias=False),
                                     nn.InstanceNorm2d(widths[k - 1], affine=True)))
        self.downs, self.ups = nn.ModuleList(downs), nn.ModuleList(ups)
        self.multiple = 2**depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for down in self.downs:
            x = down(x)
            skips.append(x)
        x = self.ups[-1](skips[-1])
        for k in range(len(self.ups) - 2, -1, -1):
            x = self.ups[k](torch.cat([x, skips[k]], 1))
        return x


class SaliencyGuidedGenerator(nn.Module):
    """G (eq. 2): Ŷ = C_1×1(S_d·Unet(X, condition, z) ⊕ (1 − S_d)·X) where S_d > 0, Ŷ = X where S_d = 0.

    forward(image (B, 3, H, W) in [0, 1], condition (B, condition_channels, H, W) in [0, 1] —
    S_p and S_m, or S_y for "G w/o sal" —, difference (B, 1, H, W) S_d in [0, 1], z (B, z_dim))
    → (B, 3, H, W), nominally [0, 1] (not clamped), float32 or wider where the image is. Any H, W:
    the U-Net input is padded to a multiple of 2**depth and its output cropped back. z is tiled
    over the pixels and concatenated to the U-Net's input (BicycleGAN's "add to input"); the
    U-Net sees the image in [−1, 1] and gives [0, 1].

    C_1×1 starts as the identity of the blend — the plain sum of the two halves, no bias — so the
    untrained G is the residual blend S_d·Unet + (1 − S_d)·X; `mix_drift` (a loss term) holds it
    there. Where S_d = 0, eq. 2 gives C(0 ⊕ X), which is X only while C is that identity; rather
    than trust a penalty, the output there is X itself, bit for bit (a select, not a blend, so
    X passes exactly under bf16 autocast too). Eq. 2 is unchanged wherever S_d > 0 — C stays
    learnt, as in the paper — and the penalty keeps the two sides of S_d's edge close. The
    alternative Ŷ = X + S_d·(C(…) − X) would also be exact but gates the U-Net twice.
    """

    def __init__(self, condition_channels: int, z_dim: int, depth: int = 8, channels: int = 64,
                 max_channels: int = 512):
        super().__init__()
        self.z_dim = z_dim
        self.unet = UNet(3 + condition_channels + z_dim, 3, depth, channels, max_channels)
        self.mix = nn.Conv2d(6, 3, 1)
        with torch.no_grad():
            self.mix.weight.copy_(torch.cat([torch.eye(3), torch.eye(3)], 1)[:, :, None, None])
            self.mix.bias.zero_()

    def forward(self, image: torch.Tensor, condition: torch.Tensor, difference: torch.Tensor,
                z: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[-2:]
        inputs = pad_to_multiple(torch.cat([image * 2 - 1, condition.to(image.dtype)], 1), self.unet.multiple)
        tiled = z.to(inputs.dtype)[:, :, None, None].expand(-1, -1, *inputs.shape[-2:])
        translated = (self.unet(torch.cat([inputs, tiled], 1))[..., :height, :width] + 1) / 2
        gate = difference.to(translated.dtype)
        mixed = self.mix(torch.cat([gate * translated, (1 - gate) * image.to(translated.dtype)], 1))
        return torch.where(difference > 0, mixed, image)  # promotes a bf16 mix to the image's dtype

    def mix_drift(self) -> torch.Tensor:
        """Σ (C_1×1's weights and bias − the blend identity [I | I], 0)², a 0-d tensor (0 at init)."""
        eye = torch.eye(3, device=self.mix.weight.device, dtype=self.mix.weight.dtype)
        identity = torch.cat([eye, eye], 1)[:, :, None, None]
        return (self.mix.weight - identity).square().sum() + self.mix.bias.square().sum()


class CueEncoder(nn.Module):
    """E (eq. 3): (B, 3, H, W) images in [0, 1] (Y·S_d) → (μ, log σ²), each (B, z_dim).

    One 4×4 stride-2 convolution per entry of `channels` (the paper's 5: BicycleGAN's conv_256
    encoder widths 64, 128, 256, 256, 256), LeakyReLU 0.2, InstanceNorm between them (none after
    the first and the last); global average pooling; two FC heads. The images need about
    2**len(channels) px per side.
    """

    def __init__(self, channels=(64, 128, 256, 256, 256), z_dim: int = 8):
        super().__init__()
        channels = tuple(channels)
        layers: list[nn.Module] = [nn.Conv2d(3, channels[0], 4, 2, 1), nn.LeakyReLU(0.2)]
        for k in range(1, len(channels)):
            last = k == len(channels) - 1
            layers.append(nn.Conv2d(channels[k - 1], channels[k], 4, 2, 1, bias=last))
            if not last:
                layers.append(nn.InstanceNorm2d(channels[k], affine=True))
            layers.append(nn.LeakyReLU(0.2))
        self.features = nn.Sequential(*layers)
        self.mu = nn.Linear(channels[-1], z_dim)
        self.logvar = nn.Linear(channels[-1], z_dim)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = self.features(images * 2 - 1).mean((2, 3))
        return self.mu(pooled), self.logvar(pooled)


class SalGGANSamples(TrainingItems):
    """SalG-GAN's training items from one split of a gazelab dataset dir, at `size` = (W, H).

    Every pair (source clevr or photo) that has a Y fixation map, and every ``single`` row (an
    image and a target map, no ground-truth Y) when `allow_single` (ValueError otherwise: only
    the unsupervised path can use them). Pairs without a Y map are left out (logged). Items:
    ``x``, ``y`` (3, H, W) in [0, 1] (``y`` zeros for single rows), ``x_map`` (1, H, W) density
    (uniform where the row has none), ``y_map`` (1, H, W) the target density, ``has_y`` and
    ``has_x_map`` (0-d bool tensors), ``pair_id``.
    """

    def __init__(self, data_dir, split: str | None, size: tuple[int, int], allow_single: bool = True):
        super().__init__(data_dir, split, unit="pair", size=size, require=("y_map",), singles=True, owner="SalG-GAN")
        n_single = sum(kind == "single" for kind, _ in self.rows)
        if n_single and not allow_single:
            raise ValueError(f"split {split or 'all'} of {data_dir} has {n_single} single row(s) (no ground-truth Y), "
                             "which only the unsupervised path can train on, and this config has "
                             "unsupervised_path=False (ablation no_upath); drop them or use a config with both paths")
        if n_single:
            logger.info("%s: %d single row(s) without a ground-truth Y train the unsupervised path only",
                        data_dir, n_single)

    def prepare(self, item: dict[str, Any], index: int) -> dict[str, Any]:
        target = item["y_map"]
        has_y = "y" in item
        y = item["y"] if has_y else torch.zeros_like(item["x"])
        source = item.get("x_map")
        has_x_map = source is not None
        if source is None:
            source = torch.full_like(target, 1.0 / target.numel())
        return {"x": item["x"], "y": y, "x_map": source, "y_map": target, "has_y": torch.tensor(has_y),
                "has_x_map": torch.tensor(has_x_map), "pair_id": item["pair_id"]}


def check_batch(batch: dict[str, Any], unsupervised_path: bool = True):
    """(x, y, x_map, y_map, has_y, has_x_map) of a SalG-GAN training batch (see `SalGGAN.train_step`);
    ValueError naming what is wrong. A missing ``x_map`` gives has_x_map all False (S_x from SalD)."""
    missing = [key for key in ("x", "y_map") if key not in batch]
    if missing:
        raise ValueError(f"a SalG-GAN batch needs x, y, x_map and y_map; it lacks {missing}")
    x, target = batch["x"], batch["y_map"]
    check_target_maps(x, target, "y_map")
    rows = x.shape[0]
    has_y = batch.get("has_y")
    has_y = torch.ones(rows, dtype=torch.bool, device=x.device) if has_y is None else has_y.to(x.device).bool()
    y = batch.get("y")
    if y is None:
        if bool(has_y.any()):
            raise ValueError("the batch has no y but has_y marks rows with a ground-truth Y")
        y = torch.zeros_like(x)
    elif tuple(y.shape) != tuple(x.shape):
        raise ValueError(f"y has shape {tuple(y.shape)} but x has {tuple(x.shape)}; expected pairs of one size")
    if not unsupervised_path and not bool(has_y.all()):
        raise ValueError(f"{int((~has_y).sum())} row(s) of the batch have no ground-truth Y (source single); only "
                         "the unsupervised path trains on them, and this config has unsupervised_path=False "
                         "(ablation no_upath)")
    source = batch.get("x_map")
    has_x_map = batch.get("has_x_map")
    if source is None:
        source = torch.full_like(target, 1.0 / target[0].numel())
        has_x_map = torch.zeros(rows, dtype=torch.bool, device=x.device)
    else:
        check_target_maps(x, source, "x_map")
        has_x_map = (torch.ones(rows, dtype=torch.bool, device=x.device) if has_x_map is None
                     else has_x_map.to(x.device).bool())
    return x, y, source, target, has_y, has_x_map


def check_config(config: Any) -> None:
    """ValueError listing every setting of a `SalGGANConfig` that cannot work (sizes too small for the networks)."""
    c = config
    short = min(c.image_size)
    smallest_global = _patch_size(_pooled(short, c.d_scales - 1), c.d_layers)
    problems = [f"{name} ({rule})" for name, ok, rule in (
        (f"supervised_path = {c.supervised_path}, unsupervised_path = {c.unsupervised_path}",
         c.supervised_path or c.unsupervised_path, "at least one path must train"),
        (f"z_dim = {c.z_dim}", c.z_dim >= 1, ">= 1"),
        (f"unet_depth = {c.unet_depth}", c.unet_depth >= 2, ">= 2"),
        (f"encoder_channels = {c.encoder_channels}", len(c.encoder_channels) >= 1, "at least one convolution"),
        (f"image_size = {tuple(c.image_size)}", short >= 2 ** len(c.encoder_channels),
         f"short side >= 2^{len(c.encoder_channels)} px for the encoder's {len(c.encoder_channels)} stride-2 convs"),
        (f"d_scales = {c.d_scales}", c.d_scales >= 1, ">= 1"),
        (f"image_size = {tuple(c.image_size)} with d_scales = {c.d_scales}, d_layers = {c.d_layers}",
         smallest_global >= 1, "the coarsest D_G scale gives no score: fewer scales or layers, or larger images"),
        (f"local_size = {c.local_size} with local_layers = {c.local_layers}",
         _patch_size(c.local_size, c.local_layers) >= 1, "D_L's patches give no score: larger patches or fewer layers"),
        (f"max_boxes = {c.max_boxes}", c.max_boxes >= 1, ">= 1"),
        (f"box_threshold = {c.box_threshold}", 0 < c.box_threshold <= 1, "in (0, 1]"),
        (f"attention_threshold = {c.attention_threshold} with box_min_difference = {c.box_min_difference}",
         0 <= c.attention_threshold <= min(c.box_min_difference, 1),
         "in [0, box_min_difference], so B_a stays that of the unthresholded S_d (evaluation's)"),
        (f"lambda_mix_identity = {c.lambda_mix_identity}", c.lambda_mix_identity >= 0, ">= 0"),
        (f"max_steps = {c.max_steps}", c.max_steps >= 1, ">= 1"),
    ) if not ok]
    if problems:
        raise ValueError("invalid SalG-GAN config: " + "; ".join(problems))


def _pooled(size: int, times: int) -> int:
    for _ in range(times):
        size = (size + 1) // 2  # avg_pool2d(3, stride 2, padding 1)
    return size


def _patch_size(size: int, layers: int) -> int:
    """Output side of a `PatchDiscriminator` with `layers` layers on `size` px."""
    for _ in range(layers):
        size //= 2
    return size - 2
