"""bench_editing's yardsticks: fixed edits of every strength and the per-case measures they share with the editors.

A fixed edit is one knob at one strength for every image, blended in as GazeShiftNet blends its
edits (`models.editors.gazeshift_ops.apply_parameters` with an identity background: the mask
blurred by GazeShiftNet's σ, I' = I + m·(op(I) − I)); a background knob uses 1 − m. The knobs
(`FIXED_KNOBS`): foreground exposure ±3 stops (I·2^e), contrast ±1 (GazeShiftNet's), saturation ±1
(I' = L + (1 + s)·(I − L), L the luminance: −1 greys, +1 doubles the chroma, L unchanged before
clipping) and background exposure ±3 stops, each in equal steps from the identity outwards.
`fixed_edit_grid` makes and measures them all on every held-out case; `matched_frontiers` adds,
per case, each knob's edit of exactly an editor's size there; `best_fixed_at` is the best fixed
edit of a mean size or less.

Images are (N, 3, H, W) in [0, 1]; masks (N, 1, H, W) in {0, 1}; densities (N, 1, H, W) summing to 1.
"""
from __future__ import annotations

import numpy as np
import torch

from analysis.attention_shift import delta_p_object, saliency_increase
from analysis.edit_frontier import Frontier, above_frontier, fixed_edit_frontier, matching_position
from analysis.metrics import cc
from models.editors import gazeshift_ops as ops
from models.editors.gazeshiftnet import GazeShiftNetConfig

__all__ = ["FIXED_KNOBS", "DIRECTION_SIGN", "fixed_edit", "saturate", "case_measures", "fixed_edit_grid",
           "best_fixed_at", "matched_frontiers", "per_case_above"]

# knob: (region, operation, largest |strength|, steps per side); exposure in stops
FIXED_KNOBS = {"fg exposure": ("fg", "exposure", 3.0, 12), "fg contrast": ("fg", "contrast", 1.0, 8),
               "fg saturation": ("fg", "saturation", 1.0, 8), "bg exposure": ("bg", "exposure", 3.0, 12)}
# the gain of an edit in a direction: Δp for an increase, −Δp for a decrease
DIRECTION_SIGN = {"increase": 1.0, "decrease": -1.0}
MASK_BLUR = GazeShiftNetConfig().mask_blur  # σ of the blend mask's blur, fraction of the short side


def fixed_edit(images: torch.Tensor, masks: torch.Tensor, knob: str, strength) -> torch.Tensor:
    """`images` with the fixed edit `knob` (a key of FIXED_KNOBS) at `strength` (its units: one number,
    or (N,) one per image), blended by the blurred mask (module docstring); (N, 3, H, W) in [0, 1]."""
    if knob not in FIXED_KNOBS:
        raise ValueError(f"unknown fixed edit {knob!r}; expected one of {list(FIXED_KNOBS)}")
    region, operation, _, _ = FIXED_KNOBS[knob]
    amount = torch.as_tensor(strength, dtype=images.dtype).reshape(-1).expand(len(images))
    whole = {"exposure": ops.expose, "contrast": ops.adjust_contrast, "saturation": saturate}[operation](images, amount)
    weight = ops.soften_mask(masks.to(images.dtype), MASK_BLUR * min(images.shape[-2:]))
    if region == "bg":
        weight = 1 - weight
    return images + weight * (whole - images)


def saturate(image: torch.Tensor, amount: torch.Tensor) -> torch.Tensor:
    """clip(L + (1 + s)·(I − L)): (N, 3, H, W) in [0, 1], s (N,) in [−1, 1]; L = GazeShiftNet's luminance."""
    lum = ops.luminance(image)
    return (lum + (1 + amount.view(-1, 1, 1, 1)) * (image - lum)).clamp(0.0, 1.0)


def case_measures(edited: torch.Tensor, cases: dict, rule, measurer) -> dict[str, np.ndarray]:
    """Per held-out case (N,): size = mean |edited − input| over pixels and channels ([0, 1] units);
    dp, dp_rel = Δp(mask) and Δp / p(mask) under the measuring predictor (Gatys §5.3; densities);
    dp_train = Δp under the rule the editors trained against; sal = GazeShiftNet's Δsal (mean over
    the mask of max-normalised maps, after − before) under the measuring predictor; cc = CC of the
    measuring predictor's map of the edit with the rule's (how well it models the rule there)."""
    images, masks = cases["images"], cases["masks"]
    with torch.no_grad():
        after, after_rule = measurer.density(edited), rule.density(edited)
    inside = masks[:, 0].numpy() > 0
    out = {"size": (edited - images).abs().flatten(1).mean(1).double().numpy()}
    columns = {"dp": [], "dp_rel": [], "dp_train": [], "sal": [], "cc": []}
    for i, mask in enumerate(inside):
        before, now = cases["before"][i, 0].numpy(), after[i, 0].numpy()
        change, ratio = delta_p_object(before, now, mask)
        columns["dp"].append(change)
        columns["dp_rel"].append(ratio)
        rule_change, _ = delta_p_object(cases["before_rule"][i, 0].numpy(), after_rule[i, 0].numpy(), mask)
        columns["dp_train"].append(rule_change)
        columns["sal"].append(saliency_increase(before, now, mask))
        columns["cc"].append(cc(now, after_rule[i, 0].numpy()))
    return {**out, **{name: np.array(values) for name, values in columns.items()}}


def fixed_edit_grid(cases: dict, rule, measurer) -> dict:
    """Every fixed edit of FIXED_KNOBS on every case, and each case's frontier per direction.

    Returns {"paths": [{"knob", "sign" (+1 / −1), "strengths" (K,), "size", "dp", "dp_train", "cc"
    (K, N) per case}, one per knob and sign, strengths from the identity outwards], "frontiers":
    {direction: [Frontier per case]} (`analysis.edit_frontier`, gain = DIRECTION_SIGN · Δp)}.
    """
    images, masks = cases["images"], cases["masks"]
    paths = []
    for knob, (_, _, limit, steps) in FIXED_KNOBS.items():
        for sign in (1, -1):
            strengths = sign * limit * np.arange(1, steps + 1) / steps
            measures = [case_measures(fixed_edit(images, masks, knob, s), cases, rule, measurer) for s in strengths]
            paths.append({"knob": knob, "sign": sign, "strengths": strengths,
                          **{key: np.stack([m[key] for m in measures]) for key in ("size", "dp", "dp_train", "cc")}})
    sizes = np.concatenate([path["size"] for path in paths])  # (every edit, N)
    gains = np.concatenate([path["dp"] for path in paths])
    frontiers = {direction: [fixed_edit_frontier(sizes[:, i], sign * gains[:, i]) for i in range(sizes.shape[1])]
                 for direction, sign in DIRECTION_SIGN.items()}
    return {"paths": paths, "frontiers": frontiers}


def best_fixed_at(grid: dict, size: float, direction: str) -> tuple[str, float, float]:
    """The best fixed edit of mean size `size` or less over the cases, by mean gain in `direction`.

    Along each knob's path (mean |edit − input| per strength), a line search for `size`
    (`matching_position`; the whole path where no strength is that large), then the best of the
    strengths up to there and the interpolated one at it: a knob that saturates below `size` still
    counts with its best. Returns (knob, strength, mean Δp); the identity (strength 0, Δp 0) when
    nothing beats it."""
    sign = DIRECTION_SIGN[direction]
    best = (next(iter(FIXED_KNOBS)), 0.0, 0.0)
    for path in grid["paths"]:
        sizes, strengths = path["size"].mean(1), np.concatenate([[0.0], path["strengths"]])
        dps, steps = np.concatenate([[0.0], path["dp"].mean(1)]), np.arange(len(strengths))
        position = matching_position(sizes, size)
        end = float(len(sizes)) if position is None else position
        for at in [*range(int(np.floor(end)) + 1), end]:  # every size up to `end` is < size
            dp = float(np.interp(at, steps, dps))
            if sign * dp > sign * best[2]:
                best = (path["knob"], float(np.interp(at, steps, strengths)), dp)
    return best


def matched_frontiers(cases: dict, grid: dict, sizes: np.ndarray, rule, measurer, direction: str) -> list[Frontier]:
    """Per case, the frontier (gain = DIRECTION_SIGN · Δp) of its fixed edits on the grid and, for each
    knob, its edit of that case's size in `sizes` (N,): a line search along the case's own path
    (`matching_position`), the edit then made and measured. So at a case's size the frontier is at
    least the best measured fixed edit of that size, never only a line between grid points; a knob
    whose path never gets that large adds nothing beyond its grid points."""
    sign = DIRECTION_SIGN[direction]
    extra: list[list[tuple[float, float]]] = [[] for _ in sizes]
    for path in grid["paths"]:
        steps, strengths = np.arange(len(path["strengths"]) + 1), np.concatenate([[0.0], path["strengths"]])
        positions = [matching_position(path["size"][:, i], size) for i, size in enumerate(sizes)]
        matched = [i for i, position in enumerate(positions) if position is not None]
        if not matched:
            continue
        per_image = torch.tensor([np.interp(p, steps, strengths) if p is not None else 0.0 for p in positions])
        measures = case_measures(fixed_edit(cases["images"], cases["masks"], path["knob"], per_image), cases, rule,
                                 measurer)
        for i in matched:
            extra[i].append((measures["size"][i], sign * measures["dp"][i]))
    grid_sizes = np.concatenate([path["size"] for path in grid["paths"]])
    grid_gains = sign * np.concatenate([path["dp"] for path in grid["paths"]])
    return [fixed_edit_frontier([*grid_sizes[:, i], *(size for size, _ in extra[i])],
                                [*grid_gains[:, i], *(gain for _, gain in extra[i])]) for i in range(len(sizes))]


def per_case_above(frontiers: list[Frontier], sizes: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """(N,) bool: case i's (size, gain) strictly above its own frontier (`analysis.edit_frontier`)."""
    return np.array([above_frontier(s, g, f) for f, s, g in zip(frontiers, sizes, gains, strict=True)])
