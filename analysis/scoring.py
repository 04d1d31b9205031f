"""Scoring many saliency maps at once: `score` (several metrics of one prediction) and
`score_many` (a table, one row per item), built on the pure metrics of `analysis.metrics`."""
from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
from tqdm import tqdm

from analysis.metrics import (METRICS, _as_map, _fixation_indices, _generator, _mass, _reference_shape,
                              _resized)

# The inputs of `score` each metric takes after the prediction, in argument order.
_NEEDS = {
    "nss": ("fixations",), "cc": ("gt_map",), "sim": ("gt_map",), "kld": ("gt_map",),
    "auc_judd": ("fixations",), "auc_borji": ("fixations",),
    "sauc": ("fixations", "other_fixations"), "info_gain": ("baseline", "fixations"),
}


def score(pred, gt_map=None, fixations=None, metrics=None, other_fixations=None, baseline=None, rng=None) -> dict[str, float]:
    """Several metrics of one prediction: {metric name: value}, in the order asked for.

    pred: saliency map (any size; resized to gt_map's shape when given). gt_map: ground-truth
    density (cc, sim, kld). fixations: points or binary map (nss, the AUCs, info_gain).
    other_fixations: negatives for sauc. baseline: baseline density for info_gain.
    metrics: names from METRICS; None = every metric computable from the inputs given. A
    metric asked for by name whose input is missing raises ValueError. rng: seeds AUC-Borji's
    and sAUC's splits (one Generator shared by both).
    """
    inputs = {"gt_map": gt_map, "fixations": fixations, "other_fixations": other_fixations, "baseline": baseline}
    given = {name: value is not None for name, value in inputs.items()}
    metrics = _metric_names(metrics, given)
    for metric in metrics:
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; expected one of {sorted(METRICS)}")
        missing = [n for n in _NEEDS[metric] if not given[n]]
        if missing:
            raise ValueError(f"metric {metric!r} needs {' and '.join(missing)}, which was not given")
    # float32 maps stay float32 (the metrics compute in float64 as they read them).
    pred = _as_map(pred, "pred", keep_float32=True)
    density_needed = {"sim", "kld", "info_gain"} & set(metrics)
    if gt_map is not None:
        gt_map = _as_map(gt_map, "gt_map", keep_float32=True)
        if {"sim", "kld"} & density_needed:
            _mass(gt_map, "gt_map")
        pred = _resized(pred, gt_map.shape)
        if fixations is not None:  # a fixation map must share the ground truth's shape
            _fixation_indices(fixations, gt_map.shape, "fixations")
    if density_needed:
        _mass(pred, "pred")
    if "info_gain" in metrics:
        _mass(_as_map(baseline, "baseline", keep_float32=True), "baseline")
    inputs.update(gt_map=gt_map)
    random = {"rng": _generator(rng)}
    return {m: METRICS[m](pred, *(inputs[n] for n in _NEEDS[m]), **(random if m in ("auc_borji", "sauc") else {}))
            for m in metrics}


def score_many(items: Iterable, metrics=None, baseline=None, rng=None, progress: bool = False) -> pd.DataFrame:
    """Score many predictions: one row per item, columns `name` then the metrics.

    items: (name, pred, gt_map, fixations) tuples or dicts with those keys (gt_map or fixations
    may be None) and optionally `other_fixations` and `baseline`. baseline: a baseline density
    shared by all items for info_gain (an item's own `baseline` wins). For sAUC an item without
    `other_fixations` gets the fixated pixels of all other items (MIT draws 10 other images),
    rescaled to its own shape. metrics: as in `score`; with None an item that lacks a metric's
    input gets NaN there. rng: one Generator for all items, in order. progress: a tqdm bar.
    """
    rows = [_item(entry, index) for index, entry in enumerate(items)]
    generator = _generator(rng)
    want_sauc = metrics is None or "sauc" in _metric_names(metrics, {})
    # Each item's fixated pixel centres as fractions of its width and height, for sAUC.
    unit_points = [None if r["fixations"] is None or not want_sauc else _unit_points(r) for r in rows]
    records = []
    for index, row in enumerate(tqdm(rows, desc="scoring", disable=not progress)):
        others = row.get("other_fixations")
        if others is None and unit_points[index] is not None:
            pool = [p for j, p in enumerate(unit_points) if j != index and p is not None]
            if pool:
                size = np.array(row["shape"][::-1], np.float64)
                others = np.minimum(np.concatenate(pool) * size, np.nextafter(size, 0))
        values = score(row["pred"], row["gt_map"], row["fixations"], metrics, others,
                       row.get("baseline", baseline), generator)
        records.append({"name": row["name"], **values})
    table = pd.DataFrame.from_records(records)
    ordered = ["name"] + [m for m in METRICS if m in table.columns]
    return table.reindex(columns=ordered + [c for c in table.columns if c not in ordered])


# ---------------------------------------------------------------- helpers


def _metric_names(metrics, given: dict) -> list[str]:
    """The metrics asked for; with None those whose inputs are all `given`."""
    if metrics is None:
        return [m for m, needs in _NEEDS.items() if all(given.get(n) for n in needs)]
    return [metrics] if isinstance(metrics, str) else list(metrics)


def _item(entry, index: int) -> dict:
    if isinstance(entry, Mapping):
        row = dict(entry)
    else:
        try:
            name, pred, gt_map, fixations = entry
        except (TypeError, ValueError) as exc:
            raise ValueError(f"items[{index}] must be (name, pred, gt_map, fixations) or a dict") from exc
        row = {"name": name, "pred": pred, "gt_map": gt_map, "fixations": fixations}
    if "pred" not in row:
        raise ValueError(f"items[{index}] has no 'pred'; expected keys name, pred, gt_map, fixations")
    row = {"name": str(index), "gt_map": None, "fixations": None, **row}
    row["shape"] = (tuple(np.shape(row["gt_map"])) if row["gt_map"] is not None
                    else _reference_shape(row["fixations"], np.shape(row["pred"])))
    return row


def _unit_points(row: dict) -> np.ndarray:
    """An item's fixated pixel centres as (x / width, y / height)."""
    height, width = row["shape"]
    rows, cols = _fixation_indices(row["fixations"], (height, width), f"fixations of item {row['name']!r}")
    return np.stack([(cols + 0.5) / width, (rows + 0.5) / height], axis=1)
