"""Losses shared by the editors and saliency predictors, as small functions on tensors.

Conventions: images are (B, C, H, W); saliency maps are (B, H, W) or (B, 1, H, W) — a *density*
sums to 1 over the pixels of each image, a *log-density* is its natural log, a *max-normalised*
map lies in [0, 1]. Every loss returns a scalar mean over the batch unless it says otherwise.
Paired inputs must have equal shapes; a mismatch raises ValueError naming both.
Weights between terms (λ) are the caller's business.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

Scores = torch.Tensor | Sequence[torch.Tensor]

# GAN losses. Inputs are raw discriminator outputs of any shape (PatchGAN maps, scalars), or a list
# of them from a multi-scale discriminator, which is averaged over scales.


def lsgan_d(real: Scores, fake: Scores) -> torch.Tensor:
    """LSGAN discriminator loss ½(E[(D(real) − 1)²] + E[D(fake)²]) (Gatys et al. eq. 8, mean over patches)."""
    return _over_scales(real, fake, lambda r, f: 0.5 * ((r - 1).square().mean() + f.square().mean()))


def lsgan_g(fake: Scores) -> torch.Tensor:
    """LSGAN generator loss E[(D(fake) − 1)²] (Gatys et al. eq. 7, mean over patches)."""
    return _over_scales(fake, None, lambda f, _: (f - 1).square().mean())


def hinge_d(real: Scores, fake: Scores) -> torch.Tensor:
    """Hinge discriminator loss E[max(0, 1 − D(real))] + E[max(0, 1 + D(fake))] (GazeShiftNet eq. 4)."""
    return _over_scales(real, fake, lambda r, f: F.relu(1 - r).mean() + F.relu(1 + f).mean())


def hinge_g(fake: Scores) -> torch.Tensor:
    """Hinge generator loss −E[D(fake)] (GazeShiftNet eq. 4)."""
    return _over_scales(fake, None, lambda f, _: -f.mean())


def bce_gan_d(real_logits: Scores, fake_logits: Scores) -> torch.Tensor:
    """BCE discriminator loss on logits: BCE(D(real), 1) + BCE(D(fake), 0) (SalGAN)."""

    def loss(r: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(r, torch.ones_like(r)) + F.binary_cross_entropy_with_logits(
            f, torch.zeros_like(f)
        )

    return _over_scales(real_logits, fake_logits, loss)


def bce_gan_g(fake_logits: Scores) -> torch.Tensor:
    """Non-saturating BCE generator loss on logits: BCE(D(fake), 1)."""
    return _over_scales(fake_logits, None, lambda f, _: F.binary_cross_entropy_with_logits(f, torch.ones_like(f)))


# Feature-space losses on dicts {layer name: (B, C, H, W)} such as `VGGFeatures` returns.


def content_loss(
    feats_a: Mapping[str, torch.Tensor],
    feats_b: Mapping[str, torch.Tensor],
    layers: Sequence[str] | None = None,
    weights: Sequence[float] | None = None,
    norm: str = "mse",
) -> torch.Tensor:
    """Σ_l w_l · mean over (B, C, H, W) of (a_l − b_l)² (or |a_l − b_l| for norm="l1").

    `layers` defaults to all of `feats_a`'s, `weights` to 1 / len(layers): SaGIM's content and
    cycle losses (1/N_l Σ_l MSE over 5 layers); with one layer, Gatys' feature loss (eq. 4, relu5_2).
    """
    layers, weights = _layers_and_weights(feats_a, feats_b, layers, weights)
    distance = _distance(norm)
    total = feats_a[layers[0]].new_zeros(())
    for layer, weight in zip(layers, weights):
        a, b = feats_a[layer], feats_b[layer]
        _check_same_shape(a, b, f"feats_a[{layer!r}]", f"feats_b[{layer!r}]")
        total = total + weight * distance(a, b).mean()
    return total


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) features → (B, C, C) Gram matrices F Fᵀ / (H·W) (Gatys et al., G_l = F_lᵀF_l / M_l)."""
    if features.ndim != 4:
        raise ValueError(f"gram_matrix expects (B, C, H, W) features, got shape {tuple(features.shape)}")
    b, c, h, w = features.shape
    flat = features.reshape(b, c, h * w)
    return torch.bmm(flat, flat.transpose(1, 2)) / (h * w)


def texture_loss(
    feats_a: Mapping[str, torch.Tensor],
    feats_b: Mapping[str, torch.Tensor],
    layers: Sequence[str] | None = None,
    weights: Sequence[float] | None = None,
) -> torch.Tensor:
    """Gram-matrix texture loss Σ_l w_l E_l, E_l = 1/N_l² Σ_ij (G_l(a) − G_l(b))²_ij (Gatys et al. eqs. 5–6).

    N_l is the channel count, so E_l is the mean over the C×C entries (then over the batch).
    `layers` defaults to all of `feats_a`'s (the paper: relu1_1 … relu5_1), `weights` to equal
    weights 1 / len(layers).
    """
    layers, weights = _layers_and_weights(feats_a, feats_b, layers, weights)
    total = feats_a[layers[0]].new_zeros(())
    for layer, weight in zip(layers, weights):
        a, b = feats_a[layer], feats_b[layer]
        _check_same_shape(a, b, f"feats_a[{layer!r}]", f"feats_b[{layer!r}]")
        total = total + weight * (gram_matrix(a) - gram_matrix(b)).square().mean()
    return total


# Saliency losses.


def kl_saliency_loss(
    pred_log_density: torch.Tensor, target_density: torch.Tensor, reduction: str = "mean", check: bool = True
) -> torch.Tensor:
    """KL(target ‖ pred) = Σ_xy p_t log(p_t / p̂) per image, in nats (Gatys et al. eq. 3).

    pred_log_density: log of a density over pixels (e.g. a log_softmax over H·W), (B, H, W) or
    (B, 1, H, W). target_density: non-negative, sums to 1 per image, same shape. Pixels where
    p_t = 0 contribute 0; −inf predictions are clamped at −100 nats so the loss stays finite.
    `check` verifies both are densities (sums to 1e-3 in float32, looser in bf16/fp16).
    reduction: "mean" over the batch or "none" → (B,). Computed in float32.
    """
    _check_same_shape(pred_log_density, target_density, "pred_log_density", "target_density")
    pred = _flatten_maps(pred_log_density, "pred_log_density").float()
    target = _flatten_maps(target_density, "target_density").float()
    if check:  # bf16/fp16 maps round to a few parts in a thousand, so their tolerance follows their dtype
        _check_density(target, "target_density", _density_tolerance(target_density.dtype))
        _check_density(pred.exp(), "exp(pred_log_density)", _density_tolerance(pred_log_density.dtype))
    per_image = (torch.xlogy(target, target) - target * pred.clamp(min=-100.0)).sum(dim=1)
    return _reduce(per_image, reduction)


def softmax_attention_loss(
    saliency: torch.Tensor, mask: torch.Tensor, normalization: str = "softmax", reduction: str = "mean"
) -> torch.Tensor:
    """GazeShiftNet's attention loss (eq. 5): −(1 / Σ m) Σ_ij S_ij m_ij, S the saliency density.

    saliency: (B, H, W) or (B, 1, H, W) predictor output; normalization="softmax" applies a softmax
    over the pixels (the paper's; a log-density comes out as its density), "none" takes it as a
    density already. mask: same shape, in [0, 1], with some foreground in every image. The value
    lies in [−1, 0] and is tiny (≈ −1/(H·W) for a flat map), hence the paper's λ_s = 2.5e4,
    applied by the caller. reduction: "mean" over the batch or "none" → (B,).
    """
    _check_same_shape(saliency, mask, "saliency", "mask")
    flat = _flatten_maps(saliency, "saliency").float()
    weights = _flatten_maps(mask, "mask").to(flat.dtype)
    if normalization == "softmax":
        density = torch.softmax(flat, dim=1)
    elif normalization == "none":
        density = flat
    else:
        raise ValueError(f"normalization must be 'softmax' or 'none', got {normalization!r}")
    area = weights.sum(dim=1)
    if bool((area <= 0).any()):
        empty = torch.nonzero(area <= 0).flatten().tolist()
        raise ValueError(f"mask has no foreground in batch item(s) {empty}; expected a mask with pixels > 0")
    return _reduce(-(density * weights).sum(dim=1) / area, reduction)


def bce_map_loss(
    pred: torch.Tensor, target: torch.Tensor, downsample: int = 4, from_logits: bool = False
) -> torch.Tensor:
    """SalGAN's content loss: mean per-pixel BCE between max-normalised maps, after downsampling.

    pred: (B, 1, H, W) or (B, H, W) probabilities in [0, 1] (or logits with from_logits=True);
    target: same shape, in [0, 1]. Both are average-pooled by `downsample` first (SalGAN's code
    computes it at 64×48 for 256×192 inputs, i.e. 4); 1 keeps full resolution (SaGIM's L_rec).
    """
    _check_same_shape(pred, target, "pred", "target")
    if downsample < 1:
        raise ValueError(f"downsample must be a positive integer, got {downsample}")
    pred4, target4 = _as_4d(pred, "pred").float(), _as_4d(target, "target").float()
    if downsample > 1:
        if from_logits:  # pooling logits is not pooling probabilities
            pred4, from_logits = torch.sigmoid(pred4), False
        pred4 = F.avg_pool2d(pred4, downsample, ceil_mode=True)
        target4 = F.avg_pool2d(target4, downsample, ceil_mode=True)
    if from_logits:
        return F.binary_cross_entropy_with_logits(pred4, target4)
    # binary_cross_entropy refuses autocast; the inputs are float32 here already
    with torch.autocast(device_type=pred4.device.type, enabled=False):
        return F.binary_cross_entropy(pred4.clamp(1e-7, 1 - 1e-7), target4)


# Image-space losses.


def gaussian_color_loss(
    a: torch.Tensor,
    b: torch.Tensor,
    kernel_size: int = 21,
    sigma: float | None = None,
    weight_map: torch.Tensor | None = None,
    norm: str = "l1",
) -> torch.Tensor:
    """SaGIM's colour loss (eq. 3): 1/N Σ S_guiding · |M(a) − M(b)|, M a per-channel Gaussian blur.

    a, b: (B, C, H, W) images in the same range. kernel_size 21 as the paper; sigma, which the paper
    does not give, defaults to OpenCV's rule for that size, 0.3·((k − 1)/2 − 1) + 0.8 = 3.5 px.
    weight_map: (B, 1, H, W) or (B, H, W), typically the guiding map in [0, 1], broadcast over
    channels; None weighs all pixels 1. norm "l1" is the paper's |·|, "mse" squares instead.
    The mean runs over B, C, H, W (N = pixels × channels).
    """
    _check_same_shape(a, b, "a", "b")
    if a.ndim != 4:
        raise ValueError(f"gaussian_color_loss expects (B, C, H, W) images, got shape {tuple(a.shape)}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size}")
    sigma = 0.3 * ((kernel_size - 1) * 0.5 - 1) + 0.8 if sigma is None else float(sigma)
    difference = _distance(norm)(gaussian_blur(a, kernel_size, sigma), gaussian_blur(b, kernel_size, sigma))
    if weight_map is not None:
        weight = _as_4d(weight_map, "weight_map")
        if weight.shape[0] != a.shape[0] or weight.shape[1] != 1 or weight.shape[2:] != a.shape[2:]:
            raise ValueError(
                f"weight_map shape {tuple(weight_map.shape)} does not fit images of shape {tuple(a.shape)}; "
                f"expected ({a.shape[0]}, 1, {a.shape[2]}, {a.shape[3]}) or ({a.shape[0]}, {a.shape[2]}, {a.shape[3]})"
            )
        difference = difference * weight.to(difference.dtype)
    return difference.mean()


def gaussian_blur(images: torch.Tensor, kernel_size: int, sigma: float) -> torch.Tensor:
    """Per-channel Gaussian blur of (B, C, H, W) images with a normalised kernel, reflect-padded."""
    radius = kernel_size // 2
    x = torch.arange(kernel_size, device=images.device, dtype=images.dtype) - radius
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    channels = images.shape[1]
    mode = "reflect" if min(images.shape[2:]) > radius else "replicate"  # reflect needs pad < size
    out = F.pad(images, (radius, radius, radius, radius), mode=mode)
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, kernel_size), groups=channels)
    return F.conv2d(out, kernel.view(1, 1, -1, 1).expand(channels, 1, kernel_size, 1), groups=channels)


def cycle_loss(reconstruction, original, norm: str = "l1") -> torch.Tensor:
    """Cycle-consistency loss between a reconstruction and the original.

    Tensors of equal shape: mean |r − x| (SalG-GAN eq. 8; norm="mse" squares). Feature dicts from
    a VGG: `content_loss` over their layers (SaGIM eq. 5, cycle in VGG space, MSE).
    """
    if isinstance(reconstruction, Mapping) and isinstance(original, Mapping):
        return content_loss(reconstruction, original, norm="mse" if norm == "l1" else norm)
    _check_same_shape(reconstruction, original, "reconstruction", "original")
    return _distance(norm)(reconstruction, original).mean()


def total_variation(images: torch.Tensor, norm: str = "l1") -> torch.Tensor:
    """Anisotropic total variation of (B, C, H, W) images: mean |Δx| + mean |Δy| over neighbours ("mse": squared)."""
    if images.ndim != 4:
        raise ValueError(f"total_variation expects (B, C, H, W) images, got shape {tuple(images.shape)}")
    distance = _distance(norm)
    horizontal = distance(images[..., :, 1:], images[..., :, :-1])
    vertical = distance(images[..., 1:, :], images[..., :-1, :])
    zero = images.new_zeros(())
    return (horizontal.mean() if horizontal.numel() else zero) + (vertical.mean() if vertical.numel() else zero)


# Latent-code losses (SalG-GAN / BicycleGAN).


def kl_to_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, σ²) ‖ N(0, 1)) = ½ Σ_j (μ² + σ² − 1 − log σ²), summed over latent dims j.

    Mean over the batch. mu, logvar: (B, Z) (or (B, …), all non-batch dims summed), logvar = log σ².
    """
    _check_same_shape(mu, logvar, "mu", "logvar")
    per_item = 0.5 * (mu.square() + logvar.exp() - 1 - logvar)
    return per_item.reshape(per_item.shape[0], -1).sum(dim=1).mean()


def latent_regression_loss(z_pred: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """SalG-GAN's latent cue regression ‖ẑ − z‖₁ as BicycleGAN has it: mean |ẑ − z| over entries."""
    _check_same_shape(z_pred, z, "z_pred", "z")
    return (z_pred - z).abs().mean()


# Helpers.


def _over_scales(first: Scores, second: Scores | None, loss) -> torch.Tensor:
    firsts = [first] if isinstance(first, torch.Tensor) else list(first)
    if second is None:
        seconds = [None] * len(firsts)
    else:
        seconds = [second] if isinstance(second, torch.Tensor) else list(second)
    if not firsts or len(firsts) != len(seconds):
        raise ValueError(f"expected as many real as fake discriminator outputs, got {len(firsts)} and {len(seconds)}")
    return sum(loss(f, s) for f, s in zip(firsts, seconds)) / len(firsts)


def _layers_and_weights(feats_a, feats_b, layers, weights) -> tuple[list[str], list[float]]:
    layers = list(feats_a) if layers is None else list(layers)
    if not layers:
        raise ValueError("no layers to compare: feats_a is empty and no layers were given")
    for layer in layers:
        for name, feats in (("feats_a", feats_a), ("feats_b", feats_b)):
            if layer not in feats:
                raise ValueError(f"layer {layer!r} is missing from {name}, which has {list(feats)}")
    weights = [1.0 / len(layers)] * len(layers) if weights is None else [float(w) for w in weights]
    if len(weights) != len(layers):
        raise ValueError(f"got {len(weights)} weights for {len(layers)} layers {layers}")
    return layers, weights


def _distance(norm: str):
    if norm == "l1":
        return lambda a, b: (a - b).abs()
    if norm == "mse":
        return lambda a, b: (a - b).square()
    raise ValueError(f"norm must be 'l1' or 'mse', got {norm!r}")


def _check_same_shape(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(f"{name_a} has shape {tuple(a.shape)} but {name_b} has shape {tuple(b.shape)}; expected equal")


def _as_4d(maps: torch.Tensor, name: str) -> torch.Tensor:
    if maps.ndim == 3:
        return maps.unsqueeze(1)
    if maps.ndim == 4 and maps.shape[1] == 1:
        return maps
    raise ValueError(f"{name} must be (B, H, W) or (B, 1, H, W) maps, got shape {tuple(maps.shape)}")


def _flatten_maps(maps: torch.Tensor, name: str) -> torch.Tensor:
    return _as_4d(maps, name).flatten(1)


def _check_density(flat: torch.Tensor, name: str, tolerance: float = 1e-3) -> None:
    with torch.no_grad():
        sums = flat.sum(dim=1)
        if bool((flat < 0).any()) or not bool(torch.isfinite(sums).all()):
            raise ValueError(f"{name} must be a non-negative finite density over pixels")
        worst = (sums - 1).abs().max()
        if float(worst) > tolerance:
            raise ValueError(
                f"{name} is not a density: per-image sums {sums.tolist()[:4]} (expected 1 ± {tolerance})"
            )


def _density_tolerance(dtype: torch.dtype) -> float:
    return max(1e-3, 4 * torch.finfo(dtype).eps) if dtype.is_floating_point else 1e-3


def _reduce(per_image: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return per_image.mean()
    if reduction == "none":
        return per_image
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")

