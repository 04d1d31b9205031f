"""Honest predictor checks: score two controls on the same images as a saliency predictor.

- centre bias: one isotropic Gaussian density at the image centre (σ = 25% of the diagonal),
  the same for every image — the baseline any predictor must beat;
- shuffle ("other image"): each image's prediction scored against another image's ground
  truth (a fixed derangement: image i against image i+1 of the sorted names, cyclically). A
  predictor scoring as well against other images' maps as against its own carries no
  image-specific information, however good its absolute numbers look.

`with_controls` gives the per-image table of all three; `control_verdicts` says in words, per
metric, whether the predictor beats each control: its per-image scores are better (in the
metric's direction) by more than MIN_MARGIN on average, and a one-sided Wilcoxon signed-rank
test of the paired differences (scipy) gives p < ALPHA. With fewer than MIN_IMAGES images no
difference can reach that (the smallest one-sided p of n pairs is 1 / 2^n), and the verdict says
there are too few images to tell instead of judging the predictor.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.scoring import score_many

CENTRE_SIGMA_FRAC = 0.25
MIN_MARGIN = 0.01
ALPHA = 0.05
MIN_IMAGES = 5  # 1 / 2^5 = 0.031 < ALPHA: the fewest paired images a Wilcoxon test can decide on
LOWER_IS_BETTER = {"kld"}
MODELS = ("predictor", "centre_bias", "shuffle")


def centre_bias(shape: tuple[int, int], sigma_frac: float = CENTRE_SIGMA_FRAC) -> np.ndarray:
    """A centre-bias density (float64, sums to 1) of `shape` = (height, width): an isotropic
    Gaussian at the centre with σ = sigma_frac × the image diagonal, in pixels."""
    height, width = (int(v) for v in shape)
    if height < 1 or width < 1:
        raise ValueError(f"shape must be (height, width) >= 1, got {shape!r}")
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64) + 0.5
    sigma = sigma_frac * float(np.hypot(width, height))
    density = np.exp(-((xs - width / 2) ** 2 + (ys - height / 2) ** 2) / (2 * sigma**2))
    return density / density.sum()


def with_controls(items: list[dict], metrics=None, rng=None) -> pd.DataFrame:
    """Score the predictor and both controls on the same items (dicts name, pred, gt_map,
    fixations as for `analysis.scoring.score_many`): one row per (model, name), columns model,
    name, then the metrics. Needs at least 2 items (the shuffle pairs images)."""
    if len(items) < 2:
        raise ValueError(f"the shuffle control needs at least 2 images, got {len(items)}")
    items = sorted(items, key=lambda item: str(item["name"]))
    generator = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    shapes = [np.asarray(item["gt_map"] if item.get("gt_map") is not None else item["pred"]).shape[:2]
              for item in items]
    centre = [{**item, "pred": centre_bias(shape)} for item, shape in zip(items, shapes)]
    shuffled = [{**items[(i + 1) % len(items)], "name": item["name"], "pred": item["pred"]}
                for i, item in enumerate(items)]
    tables = []
    for model, entries in zip(MODELS, (items, centre, shuffled)):
        table = score_many(entries, metrics=metrics, rng=generator)
        table.insert(0, "model", model)
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def control_verdicts(table: pd.DataFrame) -> list[str]:
    """Per metric in `table` (from `with_controls`), one sentence: whether the predictor beats
    the centre bias and the shuffle, with the means, and — when it beats neither — that it
    carries no image-specific information."""
    metrics = [c for c in table.columns if c not in ("model", "name")]
    lines = []
    for metric in metrics:
        values = {model: table[table["model"] == model].set_index("name")[metric] for model in MODELS}
        sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
        beats = {}
        for control in ("centre_bias", "shuffle"):
            diff = sign * (values["predictor"] - values[control]).dropna()
            if diff.empty:
                beats[control] = None
                continue
            beats[control] = _better(diff.to_numpy())
        means = {model: float(values[model].mean()) for model in MODELS}
        said = (f"{metric}: predictor {means['predictor']:.3f}, centre bias {means['centre_bias']:.3f}, "
                f"other images' maps {means['shuffle']:.3f} —")
        n_images = int(values["predictor"].notna().sum())
        if n_images < MIN_IMAGES:
            lines.append(f"{said} too few images ({n_images}) to tell whether it beats the controls: a paired test "
                         f"needs at least {MIN_IMAGES}.")
        elif beats["centre_bias"] is False and beats["shuffle"] is False:
            lines.append(f"{said} it beats neither control: the predictor carries no image-specific information.")
        elif beats["shuffle"] is False:
            lines.append(f"{said} it scores as well against other images' maps as against its own: no image-specific "
                         "information.")
        elif beats["centre_bias"] is False:
            lines.append(f"{said} it does not beat a centre bias.")
        else:
            lines.append(f"{said} it beats both controls.")
    return lines


def _better(diff: np.ndarray) -> bool:
    """Whether paired differences (positive = predictor better) show the predictor better."""
    from scipy.stats import wilcoxon

    if float(diff.mean()) <= MIN_MARGIN or not np.any(diff != 0):
        return False
    return bool(wilcoxon(diff, alternative="greater").pvalue < ALPHA)
