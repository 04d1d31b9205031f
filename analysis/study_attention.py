"""Human attention from a CodeCharts / BubbleView study export on the evaluated dataset's images.

`human_attention` measures, per image and edited version, how the human fixation map moved into
the edited objects (Gatys et al.'s Δp_obj and entropy change) against the map of the original;
`consistency_curve` measures per displayed image how alike two halves of its observers are
(split-half CC and NSS, and the CC projected to all observers). Both read the points through
`study_stats.image_clicks` (no practice, sentinel or catch rows) and build maps of the image's
size in the dataset, never of the clicks' extent.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pandas as pd
from PIL import Image

from analysis import attention_shift as shift
from analysis.eval_pairs import read_pairs
from analysis.fixations import fixation_map
from analysis.observer_consistency import split_half_consistency
from analysis.study_rows import image_clicks
from datadir import Dataset

if TYPE_CHECKING:
    from analysis.report_tables import Evaluation

log = logging.getLogger(__name__)

# A study's fixation maps: BubbleView's 25 px at 640 px wide, scaled by the image width (the
# default of studyweb.maps when a study sets neither sigma_px nor px_per_degree).
HUMAN_SIGMA_PX_AT_640 = 25.0
MIN_OBSERVERS = 4


def human_attention(responses: pd.DataFrame, ev: Evaluation) -> pd.DataFrame:
    """Per image (pair_id, side) and edited version of a CodeCharts / BubbleView export
    (`study_stats.image_clicks`: no practice, sentinel or catch rows): Δp_obj (absolute,
    relative) and the entropy change of the human map of the version against the human map of
    the original, in the edited objects' region of the evaluated dataset, maps of the dataset
    image's size. Columns condition, method (the version shown: the export's method, or its
    condition where a design names versions there, as Gatys' does), pair_id, side, dp_obj,
    dp_obj_rel, p_obj_x (p_obj of the original), entropy_change_bits. ValueError when a version is not a method of the evaluation
    (a design whose conditions are not methods)."""
    columns = ["condition", "method", "pair_id", "side", "dp_obj", "dp_obj_rel", "p_obj_x", "entropy_change_bits"]
    clicks = image_clicks(responses)
    if clicks.empty:
        return pd.DataFrame(columns=columns)
    plain = clicks["method"].isin(["", "original"])
    clicks = clicks.assign(version=clicks["method"].where(~plain, clicks["condition"].replace("", "original")))
    unknown = clicks[~clicks["version"].isin(["original", *ev.methods])]
    if not unknown.empty:
        r = unknown.iloc[0]
        column = "method" if r["method"] else "condition"
        raise ValueError(f"the study shows version {r[column]!r} (column {column}, condition {r['condition']!r}),"
                         f" which is neither 'original' nor a method of the evaluation {ev.methods}: a design's conditions"
                         " must be the evaluated methods to compare human and predicted attention")
    split = ev.record["split"]
    pairs = {p.pair_id: p for p in read_pairs(ev.record["data"], None if split == "all" else split)}
    rows = []
    for (pair_id, side), group in clicks[clicks["pair_id"].isin(list(pairs))].groupby(["pair_id", "side"]):
        pair = pairs[pair_id]
        before_points = group.loc[group["version"] == "original", ["x", "y"]].to_numpy(float)
        if pair.region is None or len(before_points) == 0:
            log.info("pair %s_%s: no %s; no human attention change", pair_id, side,
                     "edited region" if pair.region is None else "clicks on the original")
            continue
        shape = (pair.y if side == "y" and pair.y is not None else pair.x).shape[:2]
        sigma = HUMAN_SIGMA_PX_AT_640 * shape[1] / 640
        before = fixation_map(before_points, shape, sigma)
        edited = group[group["version"] != "original"]
        for (condition, method), part in edited.groupby(["condition", "version"], sort=False):
            after = fixation_map(part[["x", "y"]].to_numpy(float), shape, sigma)
            change, relative = shift.delta_p_object(before, after, pair.region)
            rows.append({"condition": condition, "method": method, "pair_id": pair_id, "side": side, "dp_obj": change,
                         "dp_obj_rel": relative, "p_obj_x": shift.fixation_probability(before, pair.region),
                         "entropy_change_bits": shift.entropy_change(before, after)})
    return pd.DataFrame(rows, columns=columns)


def consistency_curve(responses: pd.DataFrame, data_dir, max_images: int = 20, n_splits: int = 10,
                      seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """(curve, observers) of the `image_clicks` of a study. observers: participants per displayed
    image (index pair_id, side, condition, method), most first. curve: for the up to `max_images`
    images with most observers (at least MIN_OBSERVERS), `split_half_consistency` on maps of the
    image's size in the dataset at `data_dir` (σ = HUMAN_SIGMA_PX_AT_640 scaled to its width),
    averaged per observers per half: columns n_per_half, images (that reach that size), cc_mean,
    nss_mean, cc_full (the CC projected to each image's observers, Spearman-Brown). Empty
    curve when no image has MIN_OBSERVERS."""
    columns = ["n_per_half", "images", "cc_mean", "nss_mean", "cc_full"]
    clicks = image_clicks(responses)
    keys = ["pair_id", "side", "condition", "method"]
    observers = clicks.groupby(keys)["participant_id"].nunique().sort_values(ascending=False, kind="stable")
    chosen = observers[observers >= MIN_OBSERVERS].head(max_images)
    if chosen.empty:
        return pd.DataFrame(columns=columns), observers
    shapes = image_shapes(data_dir, {(pair_id, side) for pair_id, side, _, _ in chosen.index})
    curves = []
    for key, group in clicks.groupby(keys):
        if key in chosen.index:
            shape = shapes[key[0], key[1]]
            points = {p: g[["x", "y"]].to_numpy(float) for p, g in group.groupby("participant_id", sort=True)}
            sigma = max(HUMAN_SIGMA_PX_AT_640 * shape[1] / 640, 1.0)
            curves.append(split_half_consistency(points, shape, sigma, n_splits=n_splits, seed=seed)
                          .assign(image=str(key)))
    curve = pd.concat(curves).groupby("n_per_half", as_index=False).agg(
        images=("image", "nunique"), cc_mean=("cc_mean", "mean"), nss_mean=("nss_mean", "mean"),
        cc_full=("cc_full", "mean"))
    return curve[columns], observers


def image_shapes(data_dir, keys) -> dict[tuple[str, str], tuple[int, int]]:
    """{(pair_id, side): (height, width)} of the images of the dataset at `data_dir` (pairs.csv's
    side_image, x_image where the side has none), read from the files' headers; ValueError
    naming a pair the dataset lacks."""
    dataset = Dataset.open(data_dir)
    pairs = dataset.pairs.set_index("pair_id")
    shapes = {}
    for pair_id, side in sorted(keys):
        if pair_id not in pairs.index:
            raise ValueError(f"the study's pair {pair_id!r} is not in the evaluated dataset {dataset.path}; is the "
                             "export of another dataset?")
        relative = pairs.loc[pair_id, f"{side}_image"] if side in ("x", "y") else None
        if not isinstance(relative, str) or not relative:
            relative = pairs.loc[pair_id, "x_image"]
        with Image.open(dataset.path / relative) as image:
            width, height = image.size
        shapes[pair_id, side] = (height, width)
    return shapes
