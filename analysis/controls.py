"""Honest predictor checks: score two controls on the same images as a saliency predictor.

- centre bias: one isotropic Gaussian density at the image centre (σ = 25% of the diagonal),
  the same for every image — the baseline any predictor must beat;
- shuffle ("other image"): each image's prediction scored against the ground truth of an image
  of *another scene* — a seeded random derangement of the images in which no image is paired
  with itself nor with an image of its own `scene` (the other side of its pair: X and Y of one
  pair share most of their content, so such a partner would make the control look too good).
  A predictor scoring as well against other scenes' maps as against its own carries no
  image-specific information, however good its absolute numbers look. When no such pairing
  exists (one scene holds more than half the images) the shuffle is not scored: NaN.

`with_controls` gives the per-image table of all three (with `partner`, the shuffle's partner);
`control_verdicts` says in words, per metric, whether the predictor beats each control: its
per-image scores are better (in the metric's direction) by more than MIN_MARGIN on average, and a
one-sided Wilcoxon signed-rank test of the paired differences (scipy) gives p < ALPHA. A control
that could not be scored is never counted as beaten; the verdict needs both beaten and names the
one that was not. With fewer than MIN_IMAGES images no difference can reach p < ALPHA (the
smallest one-sided p of n pairs is 1 / 2^n), and the verdict says there are too few images to tell
instead of judging the predictor.
"""
from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from analysis.scoring import score_many

CENTRE_SIGMA_FRAC = 0.25
MIN_MARGIN = 0.01
ALPHA = 0.05
MIN_IMAGES = 5  # 1 / 2^5 = 0.031 < ALPHA: the fewest paired images a Wilcoxon test can decide on
LOWER_IS_BETTER = {"kld"}
MODELS = ("predictor", "centre_bias", "shuffle")
CONTROL_NAMES = {"centre_bias": "the centre bias", "shuffle": "the shuffle"}


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
    fixations as for `analysis.scoring.score_many`, and optionally `scene`: items of one scene,
    e.g. the X and Y of one pair, are never each other's shuffle partner; default: the name, so
    every item is its own scene): one row per (model, name), columns model, name, partner (the
    shuffle's other image; empty for the other models), then the metrics. Needs at least 2 items."""
    if len(items) < 2:
        raise ValueError(f"the shuffle control needs at least 2 images, got {len(items)}")
    items = sorted(items, key=lambda item: str(item["name"]))
    names = [str(item["name"]) for item in items]
    if len(set(names)) < len(names):
        raise ValueError(f"item names must be unique; {sorted({n for n in names if names.count(n) > 1})[:5]} repeat")
    generator = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    scenes = [str(item.get("scene", item["name"])) for item in items]
    partners = shuffle_partners(scenes, generator)
    shapes = [np.asarray(item["gt_map"] if item.get("gt_map") is not None else item["pred"]).shape[:2]
              for item in items]
    centre = [{**_plain(item), "pred": centre_bias(shape)} for item, shape in zip(items, shapes)]
    tables = []
    for model, entries in zip(MODELS[:2], ([_plain(item) for item in items], centre)):
        tables.append(_scored(model, entries, metrics, generator, ""))
    if partners is None:
        blank = tables[0].copy()
        blank.loc[:, [c for c in blank.columns if c not in ("model", "name", "partner")]] = np.nan
        blank["model"] = "shuffle"
        tables.append(blank)
    else:
        shuffled = [{**_plain(items[j]), "name": item["name"], "pred": item["pred"]} for item, j in zip(items, partners)]
        table = _scored("shuffle", shuffled, metrics, generator, "")
        table["partner"] = [names[j] for j in partners]
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def shuffle_partners(scenes: list[str], rng) -> list[int] | None:
    """A seeded random derangement of range(len(scenes)) in which no index maps to an index of
    the same scene (nor to itself); None when there is none (a scene holds more than half)."""
    n = len(scenes)
    largest = max(Counter(scenes).values())
    if n < 2 or largest > n - largest:
        return None
    generator = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    codes = np.unique(np.asarray(scenes), return_inverse=True)[1]
    for _ in range(10_000):  # rejection sampling: a uniform draw among the valid derangements
        order = generator.permutation(n)
        if not np.any(codes[order] == codes):
            return order.tolist()
    # Rarely reached (one scene near half the images): rotate a scene-grouped random order by
    # the largest scene's size, which never lands in the same scene.
    order = generator.permutation(n)
    order = order[np.argsort(codes[order], kind="stable")]
    partners = np.empty(n, np.int64)
    partners[order] = np.roll(order, -largest)
    return partners.tolist()


def control_tests(table: pd.DataFrame) -> pd.DataFrame:
    """Per metric in `table` (from `with_controls`): n (images the predictor was scored on), the
    mean of the predictor and of each control, and per control (centre_bias, shuffle) the one-sided
    Wilcoxon signed-rank p of the paired per-image differences (predictor better; scipy, NaN when
    the control was not scored or every difference is 0) and `beats_…`: True, False, or None when
    the control was not scored (never counted as beaten)."""
    metrics = [c for c in table.columns if c not in ("model", "name", "partner")]
    rows = []
    for metric in metrics:
        values = {model: table[table["model"] == model].set_index("name")[metric] for model in MODELS}
        sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
        row = {"metric": metric, "better": "lower" if sign < 0 else "higher",
               "n": int(values["predictor"].notna().sum()),
               **{model: float(values[model].mean()) if values[model].notna().any() else np.nan for model in MODELS}}
        for control in ("centre_bias", "shuffle"):
            diff = (sign * (values["predictor"] - values[control])).dropna().to_numpy()
            row[f"p_{control}"] = _one_sided_p(diff)
            row[f"beats_{control}"] = None if diff.size == 0 else _better(diff, row[f"p_{control}"])
        rows.append(row)
    return pd.DataFrame(rows)


def control_verdicts(table: pd.DataFrame) -> list[str]:
    """Per metric in `table` (from `with_controls`), one sentence: whether the predictor beats
    the centre bias and the shuffle, with the means; a control that was not scored is said so
    and is not beaten."""
    lines = []
    for row in control_tests(table).to_dict("records"):
        beats = {control: row[f"beats_{control}"] for control in ("centre_bias", "shuffle")}
        means = {model: "not scored" if np.isnan(row[model]) else f"{row[model]:.3f}" for model in MODELS}
        said = (f"{row['metric']}: predictor {means['predictor']}, centre bias {means['centre_bias']}, "
                f"other scenes' maps {means['shuffle']} —")
        unscored = [CONTROL_NAMES[c] for c, beaten in beats.items() if beaten is None]
        unscored_note = (f" ({' and '.join(unscored)} not scored: "
                         f"{'no pairing of different scenes exists' if 'the shuffle' in unscored else 'no values'})"
                         if unscored else "")
        if row["n"] < MIN_IMAGES:
            lines.append(f"{said} too few images ({row['n']}) to tell whether it beats the controls: a paired test "
                         f"needs at least {MIN_IMAGES}.")
        elif beats["centre_bias"] is False and beats["shuffle"] is False:
            lines.append(f"{said} it beats neither control: the predictor carries no image-specific information.")
        elif beats["shuffle"] is False:
            lines.append(f"{said} it does not beat the shuffle: it scores as well against other scenes' maps as "
                         f"against its own, so no image-specific information{unscored_note}.")
        elif beats["centre_bias"] is False:
            lines.append(f"{said} it does not beat a centre bias{unscored_note}.")
        elif unscored:
            lines.append(f"{said} not checked against {' and '.join(unscored)}{unscored_note}; a control that was not "
                         "scored is not beaten.")
        else:
            lines.append(f"{said} it beats both controls.")
    return lines


def _scored(model: str, entries: list[dict], metrics, generator, partner: str) -> pd.DataFrame:
    table = score_many(entries, metrics=metrics, rng=generator)
    table.insert(0, "model", model)
    table.insert(2, "partner", partner)
    return table


def _plain(item: dict) -> dict:
    """An item without the keys only the controls read."""
    return {k: v for k, v in item.items() if k != "scene"}


def _one_sided_p(diff: np.ndarray) -> float:
    """One-sided Wilcoxon signed-rank p of paired differences (positive = predictor better)."""
    from scipy.stats import wilcoxon

    if diff.size == 0 or not np.any(diff != 0):
        return np.nan
    return float(wilcoxon(diff, alternative="greater").pvalue)


def _better(diff: np.ndarray, p: float) -> bool:
    """Whether paired differences (positive = predictor better) show the predictor better: by more
    than MIN_MARGIN on average and p < ALPHA."""
    return bool(float(diff.mean()) > MIN_MARGIN and np.isfinite(p) and p < ALPHA)
