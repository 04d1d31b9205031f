"""GazeShiftNet's decoder G_D: fixed differentiable photo edits, applied per region (papers/004 §3).

The operations follow the white-box filters of Exposure (Hu et al. 2018, the paper's [18]), in
the paper's order: sharpen → exposure → contrast → tone curve → colour curves. Images are
(B, 3, H, W) RGB in [0, 1]; every operation clips its result to [0, 1]. A parameter set is a dict

    sharpen  (B,)       s ∈ (−2, 2)  I + s·|∇L|·I, |∇L| the Sobel gradient magnitude of luminance
    exposure (B,)       e ∈ (−3, 3)  I·2^e (stops)
    contrast (B,)       c ∈ (−1, 1)  I + c·(I·Ľ/L − I), L luminance, Ľ = ½ − ½·cos(π·L)
    tone     (B, K)     knots > 0    one K-knot monotone curve on every channel
    color    (B, 3, K)  knots > 0    one K-knot curve per channel

and `apply_parameters` takes {"fg": set, "bg": set}: each set edits the whole image in its own
chain; the two results are blended by the (optionally blurred) mask, I' = I_b + m·(I_f − I_b).
The identity set (s = e = c = 0, all knots 1) returns the input bit for bit, so `strength`
(a linear interpolation from the identity set, in parameter space) at 0 returns the input.
Raw network outputs map to parameters by `parameters_from_raw` (2·tanh, 3·tanh, tanh, 3·sigmoid).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from models.losses import gaussian_blur

__all__ = [
    "OPERATIONS", "LUMA_WEIGHTS", "raw_size", "parameters_from_raw", "identity_parameters",
    "interpolate_parameters", "flatten_parameters", "share_at_limits", "apply_parameters", "apply_chain", "sharpen",
    "expose", "adjust_contrast", "apply_curve", "luminance", "sobel_magnitude", "soften_mask", "check_image",
    "check_image_and_mask", "mask_from_guidance",
]

OPERATIONS = ("sharpen", "exposure", "contrast", "tone", "color")
LUMA_WEIGHTS = (0.27, 0.67, 0.06)  # Exposure's luminance weights (they sum to 1)
SHARPEN_RANGE, EXPOSURE_RANGE, CONTRAST_RANGE, KNOT_RANGE = 2.0, 3.0, 1.0, 3.0
_SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))


def raw_size(knots: int) -> int:
    """Raw outputs per parameter set: sharpen, exposure, contrast, K tone knots, 3·K colour knots."""
    return 3 + 4 * knots


def parameters_from_raw(raw: torch.Tensor, knots: int) -> dict[str, torch.Tensor]:
    """(B, raw_size(knots)) unbounded network outputs → a parameter set (see the module docstring).

    Raw zeros give s = e = c = 0 and all knots 1.5: the identity edit.
    """
    if raw.ndim != 2 or raw.shape[1] != raw_size(knots):
        raise ValueError(f"raw parameters must be (B, {raw_size(knots)}) for {knots} knots, got {tuple(raw.shape)}")
    batch = raw.shape[0]
    return {
        "sharpen": SHARPEN_RANGE * torch.tanh(raw[:, 0]),
        "exposure": EXPOSURE_RANGE * torch.tanh(raw[:, 1]),
        "contrast": CONTRAST_RANGE * torch.tanh(raw[:, 2]),
        "tone": KNOT_RANGE * torch.sigmoid(raw[:, 3:3 + knots]),
        "color": KNOT_RANGE * torch.sigmoid(raw[:, 3 + knots:]).reshape(batch, 3, knots),
    }


def identity_parameters(batch: int, knots: int, device=None, dtype=torch.float32) -> dict[str, torch.Tensor]:
    """The parameter set that leaves an image unchanged: s = e = c = 0, every knot 1."""
    zeros = torch.zeros(batch, device=device, dtype=dtype)
    return {"sharpen": zeros, "exposure": zeros.clone(), "contrast": zeros.clone(),
            "tone": torch.ones(batch, knots, device=device, dtype=dtype),
            "color": torch.ones(batch, 3, knots, device=device, dtype=dtype)}


def interpolate_parameters(params: dict[str, torch.Tensor], strength: float) -> dict[str, torch.Tensor]:
    """identity + strength·(params − identity), per entry: 0 → the identity set, 1 → `params`."""
    out = {}
    for name in OPERATIONS:
        value = params[name]
        neutral = 1.0 if name in ("tone", "color") else 0.0
        out[name] = neutral + strength * (value - neutral)
    return out


def flatten_parameters(params: dict[str, torch.Tensor]) -> torch.Tensor:
    """A parameter set as one (B, raw_size(K)) tensor, in OPERATIONS order."""
    return torch.cat([params[name].reshape(params[name].shape[0], -1) for name in OPERATIONS], dim=1)


def share_at_limits(params: dict[str, torch.Tensor], margin: float = 0.05) -> torch.Tensor:
    """(B,) share of a set's sharpen, exposure and contrast within `margin` (a range fraction) of ±bound.

    Bounds ±2, ±3 stops, ±1, where `parameters_from_raw`'s tanh saturates: 0 for the identity set,
    1 when all three are pinned (a sign that the attention term overwhelms the GAN term). Curve
    knots are left out: each curve is normalised by its knots' sum, so a knot at a bound of
    (0, 3) is no extreme edit by itself (all knots at 3 is the identity curve).
    """
    if not 0.0 < margin < 0.5:
        raise ValueError(f"margin must lie in (0, 0.5) (a fraction of each parameter's range), got {margin}")
    bounds = {"sharpen": SHARPEN_RANGE, "exposure": EXPOSURE_RANGE, "contrast": CONTRAST_RANGE}
    pinned = [(params[name].abs() >= (1 - margin) * bound).float() for name, bound in bounds.items()]
    return torch.stack(pinned, 1).mean(1)


def apply_parameters(image: torch.Tensor, mask: torch.Tensor, params: dict[str, dict[str, torch.Tensor]],
                     strength: float = 1.0, *, mask_blur_px: float = 0.0) -> torch.Tensor:
    """Edit `image` with the foreground set inside `mask` and the background set outside (eq. 3).

    image: (B, 3, H, W) in [0, 1], any size; mask: (B, 1, H, W) in [0, 1] (1 = foreground);
    params: {"fg": set, "bg": set} (see the module docstring), one entry per image; strength in
    [0, 1] interpolates each set from the identity (0: the input, exactly) to itself (1).
    mask_blur_px: σ in pixels of a Gaussian blur of the mask before blending (0: as given); the
    kernel is cut at 3σ, so pixels further than that from the mask follow the bg set only.
    Computed in float32 (outside autocast); returns (B, 3, H, W) float32 in [0, 1].
    """
    check_image_and_mask(image, mask, check_range=False)
    if set(params) != {"fg", "bg"}:
        raise ValueError(f"params must hold a 'fg' and a 'bg' parameter set, got keys {sorted(params)}")
    strength = float(strength)
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must lie in [0, 1] (0 = no edit, 1 = the predicted edit), got {strength}")
    with torch.autocast(device_type=image.device.type, enabled=False):
        image = image.float()
        weight = soften_mask(mask.float(), mask_blur_px)
        edited = {}
        for region in ("fg", "bg"):
            region_params = {name: value.float() for name, value in params[region].items()}
            edited[region] = apply_chain(image, interpolate_parameters(region_params, strength))
        # lerp form: where the mask is 0 the result is the bg chain bit for bit
        return edited["bg"] + weight * (edited["fg"] - edited["bg"])


def apply_chain(image: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
    """One parameter set applied to the whole image in the paper's order (§3, §4.4)."""
    missing = [name for name in OPERATIONS if name not in params]
    if missing:
        raise ValueError(f"parameter set lacks {missing}; expected {list(OPERATIONS)}")
    image = sharpen(image, params["sharpen"])
    image = expose(image, params["exposure"])
    image = adjust_contrast(image, params["contrast"])
    image = apply_curve(image, params["tone"])
    return apply_curve(image, params["color"])


def sharpen(image: torch.Tensor, amount: torch.Tensor) -> torch.Tensor:
    """clip(I + s·|∇L|·I): (B, 3, H, W) in [0, 1], s (B,). |∇L| is per pixel, so hues are kept."""
    return (image + _per_image(amount) * sobel_magnitude(luminance(image)) * image).clamp(0.0, 1.0)


def expose(image: torch.Tensor, stops: torch.Tensor) -> torch.Tensor:
    """clip(I·2^e): (B, 3, H, W) in [0, 1], e (B,) in stops (e = 1 doubles every value)."""
    return (image * torch.exp2(_per_image(stops))).clamp(0.0, 1.0)


def adjust_contrast(image: torch.Tensor, amount: torch.Tensor) -> torch.Tensor:
    """Exposure's contrast: blend towards the image with an S-curved luminance, c (B,) in (−1, 1).

    L = luminance (clipped to [0, 1]), Ľ = ½ − ½·cos(π·L), enhanced = I·Ľ / (L + 1e-6);
    out = clip(I + c·(enhanced − I)). c > 0 raises contrast, c < 0 lowers it.
    """
    lum = luminance(image).clamp(0.0, 1.0)
    curved = 0.5 - 0.5 * torch.cos(math.pi * lum)
    enhanced = image / (lum + 1e-6) * curved
    return (image + _per_image(amount) * (enhanced - image)).clamp(0.0, 1.0)


def apply_curve(image: torch.Tensor, knots: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear monotone curve(s) with K knots (Exposure's curve filter) on [0, 1] images.

    knots: (B, K) → one curve on every channel (tone), or (B, 3, K) → one per channel (colour).
    Segment i covers [i/K, (i+1)/K] with slope a_i = K·t_i / Σ_j t_j, so f(0) = 0, f(1) = 1 and
    equal knots give f(x) = x. Evaluated as f(x) = x + Σ_{j<i} (a_j − 1)/K + (x − i/K)·(a_i − 1)
    with i = the segment of x, which is exactly x when every a_i is 1.
    """
    if knots.ndim == 2:
        knots = knots[:, None, :].expand(-1, image.shape[1], -1)
    if knots.ndim != 3 or knots.shape[:2] != image.shape[:2]:
        raise ValueError(f"curve knots must be (B, K) or (B, {image.shape[1]}, K), got {tuple(knots.shape)}")
    batch, channels, count = knots.shape
    excess = count * knots / knots.sum(-1, keepdim=True) - 1.0  # a_i − 1, (B, C, K)
    offsets = torch.cumsum(excess, -1) / count - excess / count  # Σ_{j<i} (a_j − 1)/K
    flat = image.reshape(batch, channels, -1)
    segment = (flat * count).floor().clamp(0, count - 1)
    index = segment.long()
    out = flat + offsets.gather(2, index) + (flat - segment / count) * excess.gather(2, index)
    return out.reshape(image.shape).clamp(0.0, 1.0)


def luminance(image: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB → (B, 1, H, W) luminance with Exposure's weights 0.27, 0.67, 0.06."""
    weights = torch.tensor(LUMA_WEIGHTS, device=image.device, dtype=image.dtype).view(1, 3, 1, 1)
    return (image * weights).sum(1, keepdim=True)


def sobel_magnitude(channel: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) → (B, 1, H, W) Sobel gradient magnitude per pixel (kernels / 8, replicate padding).

    A step of height h between two columns gives h/2 on the pixels either side of it; flat
    regions give exactly 0 (and a zero, not NaN, gradient).
    """
    kernel_x = torch.tensor(_SOBEL_X, device=channel.device, dtype=channel.dtype) / 8.0
    kernels = torch.stack([kernel_x, kernel_x.t()])[:, None]  # (2, 1, 3, 3)
    grads = F.conv2d(F.pad(channel, (1, 1, 1, 1), mode="replicate"), kernels)
    squared = grads.square().sum(1, keepdim=True)
    positive = squared > 0
    return torch.where(positive, squared.clamp_min(torch.finfo(squared.dtype).tiny).sqrt(), 0.0)


def soften_mask(mask: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """(B, 1, H, W) mask blurred with a Gaussian of σ = sigma_px (cut at 3σ); σ < 0.3 px: unchanged."""
    sigma_px = float(sigma_px)
    if not sigma_px >= 0:
        raise ValueError(f"mask blur sigma must be >= 0 pixels, got {sigma_px}")
    if sigma_px < 0.3:
        return mask
    radius = max(1, math.ceil(3 * sigma_px))
    return gaussian_blur(mask, 2 * radius + 1, sigma_px).clamp(0.0, 1.0)


def check_image(image, check_range: bool = True) -> None:
    """ValueError unless `image` is a (B, 3, H, W) float tensor (finite, in [0, 1] when `check_range`)."""
    if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[1] != 3:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"image must be a (B, 3, H, W) tensor in [0, 1], got {shape}")
    if not image.dtype.is_floating_point:
        raise ValueError(f"image must hold floats in [0, 1], got dtype {image.dtype}")
    if check_range:
        low, high = float(image.min()), float(image.max())
        if not (0 <= low and high <= 1):  # NaN fails too
            raise ValueError(f"image values must lie in [0, 1], got [{low:.4g}, {high:.4g}]")


def check_image_and_mask(image, mask, check_range: bool = True) -> None:
    """`check_image`, and ValueError unless `mask` is a (B, 1, H, W) tensor of the image's B, H, W."""
    check_image(image, check_range)
    if (not isinstance(mask, torch.Tensor) or mask.ndim != 4 or mask.shape[1] != 1
            or mask.shape[0] != image.shape[0] or mask.shape[2:] != image.shape[2:]):
        shape = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"mask has shape {shape} but the image {tuple(image.shape)}; expected "
                         f"({image.shape[0]}, 1, {image.shape[2]}, {image.shape[3]})")


def mask_from_guidance(image: torch.Tensor, guidance) -> torch.Tensor:
    """An editor's (B, 1, H, W) guidance → float mask in [0, 1]: float masks as given (they must lie
    in [0, 1]), integer or bool labels binarised (> 0). ValueError naming the images whose mask is empty."""
    check_image_and_mask(image, guidance)
    if guidance.dtype.is_floating_point:
        low, high = float(guidance.min()), float(guidance.max())
        if not (0 <= low and high <= 1):
            raise ValueError(f"a float guidance mask must lie in [0, 1], got [{low:.4g}, {high:.4g}]; "
                             "pass integer labels to binarise them")
        mask = guidance.float()
    else:
        mask = (guidance > 0).float()
    empty = torch.nonzero(mask.flatten(1).amax(1) <= 0).flatten().tolist()
    if empty:
        raise ValueError(f"guidance mask of image(s) {empty} has no foreground (all 0); "
                         "expected 1 (or a label > 0) on the region whose attention to shift")
    return mask


def _per_image(values: torch.Tensor) -> torch.Tensor:
    return values.reshape(-1, 1, 1, 1)
