"""The evaluation folder of `gazelab evaluate` and the pure parts that fill it.

Running editors and predictors (loading checkpoints) is `gazelab.evaluation`'s job, above `models`;
this module works on arrays, tables and files only: the methods (`MethodSpec`), LPIPS scoring, the
per-image table, summaries, set metrics (FID, realism C2ST), the predictor check and the folder's
files. Every output is scored as the 8-bit PNG it is saved as. The evaluation folder:

    evaluation.json         what was evaluated with what (provenance), and what could not be scored and why
    outputs/METHOD/PAIR.png each method's output (+ samples/PAIR_K.png when it gives K samples)
    maps/METHOD/PAIR.npy    the predictor's density of each output (maps/input/: of X)
    metrics/METHOD.jsonl    per-image rows as they are scored: what a rerun resumes from
    per_image.csv           tidy: one row per (pair_id, method), every metric (analysis.eval_pairs.METRIC_INFO)
    summary.csv             per method and metric: n, mean, std over the pairs every method has
    set_metrics.csv         per method and set-level metric: FID against the reference images, and realism_c2st
                            (the held-out accuracy of a classifier telling the method's outputs from the
                            unedited X of the same pairs, `analysis.realism`, with its 95% interval, n_test
                            and p); a value, or a note saying why there is none
    predictor_check.csv     the predictor on X and Y against their human maps, beside the centre bias and shuffle
    parameters/METHOD.csv   editors with scalar edit parameters (GazeShiftNet): each pair's values; evaluation.json
                            holds each parameter's share of images at its limits
    outputs.csv             per method and pair: the pixel digest of the output scored (`eval_pairs.pixel_digest`),
                            which `gazelab report` matches against a study's stimuli.csv

Images are uint8 RGB everywhere (`analysis.image_metrics`' convention): every metric sees the
8-bit image a reader of the PNG sees. The local diversity score is measured, as SalG-GAN's paper
does, inside the attention boxes B_a (`analysis.attention_boxes.salggan_boxes` of the predictor's
map of X and the pair's target map); `local_ds_region="edited-box"` measures it in the bounding
box of the edited objects instead (named so in evaluation.json and the report).
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import pandas as pd

from analysis import image_metrics, realism
from analysis.attention_boxes import salggan_boxes
from analysis.controls import control_verdicts, with_controls
from analysis.eval_pairs import METRIC_INFO, PairInputs, pixel_digest, read_rgb, region_box

logger = logging.getLogger(__name__)

__all__ = ["MethodSpec", "parse_methods", "REFERENCE", "LOCAL_DS_REGIONS", "LpipsScorer", "per_image_table",
           "coverage", "summary_table", "set_metrics", "c2st_rows", "predictor_check", "output_digests"]

REFERENCE = "input"  # the unedited X, scored like a method
# Where the local diversity score is measured: SalG-GAN's attention boxes B_a (its paper's), or the
# bounding box of the edited objects.
LOCAL_DS_REGIONS = {"attention-boxes": "SalG-GAN's attention boxes B_a of the predictor's map of X and the target map",
                    "edited-box": "the bounding box of the edited objects (not the paper's definition)"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
FORMAT = 2
# Format 1 evaluations fed LPIPS, diversity and FID [0, 1] images read as [-1, 1]; they are not continued.
IMAGE_CONVENTION = "uint8 RGB as saved; LPIPS sees [-1, 1], FID's Inception [0, 1]"


class DensitySource(Protocol):
    """The predictor's density of an image (`gazelab.evaluation` runs it and caches the maps)."""

    def density(self, method: str, pair_id: str, image: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class MethodSpec:
    """A method to evaluate: kind "checkpoint" (an editor to run), "outputs" (a folder) or "input"."""

    name: str
    kind: str
    path: str | None = None


def parse_methods(values: Iterable[str]) -> list[MethodSpec]:
    """`NAME=CKPT` or `NAME=DIR` strings as MethodSpecs; ValueError naming a bad one."""
    specs: list[MethodSpec] = []
    for value in values:
        name, sep, path = str(value).partition("=")
        if not sep or not path:
            raise ValueError(f"--methods {value!r}: expected NAME=CHECKPOINT or NAME=FOLDER")
        specs.append(_spec(name.strip(), Path(path.strip())))
    check_unique(specs)
    return specs


def _spec(name: str, path: Path) -> MethodSpec:
    if not _NAME.match(name):
        raise ValueError(f"method name {name!r}: expected letters, digits, '_', '.' or '-' (at most 64), "
                         "starting with a letter or digit")
    if path.is_dir():
        return MethodSpec(name, "outputs", str(path))
    if path.is_file():
        return MethodSpec(name, "checkpoint", str(path))
    raise ValueError(f"method {name}: {path} is neither a checkpoint file nor a folder of outputs")


def check_unique(specs: list[MethodSpec]) -> None:
    names = Counter(spec.name for spec in specs)
    twice = sorted(name for name, count in names.items() if count > 1)
    if twice:
        raise ValueError(f"method name(s) {', '.join(twice)} given more than once; each method needs its own name")


# ---------------------------------------------------------------- measuring tools


class LpipsScorer:
    """LPIPS fidelity to X (full, background, foreground) and the diversity scores; or why not."""

    def __init__(self, net: str, device: str, local_ds_region: str, random_weights: bool):
        self.metrics, self.net, self.random = image_metrics, net, random_weights
        self.local_ds_region = local_ds_region
        self.device = "cpu" if device == "auto" else device
        probe = np.zeros((32, 32, 3), np.uint8)  # learn once whether the weights are there
        result = image_metrics.lpips_regions(probe, probe, net=net, device=self.device,
                                             _random_weights_for_tests=random_weights)
        self.unavailable: str | None = result.reason if isinstance(result, image_metrics.Unavailable) else None

    def regions(self, output: np.ndarray, pair: PairInputs, skipped: dict) -> dict:
        names = {"full": "lpips_x", "background": "lpips_x_bg", "foreground": "lpips_x_fg"}
        if self._skip(names.values(), skipped):
            return {}
        try:
            result = self.metrics.lpips_regions(output, pair.x, pair.region,
                                                net=self.net, device=self.device, _random_weights_for_tests=self.random)
        except ValueError as exc:  # an image too small for the network
            skipped.update(dict.fromkeys(names.values(), str(exc)))
            return {}
        if isinstance(result, self.metrics.Unavailable):
            self.unavailable = result.reason
            self._skip(names.values(), skipped)
            return {}
        if pair.region is None:
            skipped.update({names["background"]: pair.region_note, names["foreground"]: pair.region_note})
        return {names[region]: float(value) for region, value in result.items()}

    def diversity(self, samples: np.ndarray, pair: PairInputs, before, skipped: dict) -> dict:
        """The diversity score of the samples, and the local one inside `local_boxes`' boxes.
        before: the predictor's density of X (None without a predictor)."""
        if self._skip(("lpips_diversity", "lpips_local_diversity"), skipped):
            return {}
        images = list(samples)
        options = {"net": self.net, "device": self.device, "_random_weights_for_tests": self.random}
        try:
            values = {"lpips_diversity": self.metrics.diversity_score(images, **options)}
            boxes, why_not = self.local_boxes(pair, before)
            if boxes:
                values["lpips_local_diversity"] = self.metrics.diversity_score(images, boxes=boxes, **options)
            else:
                skipped["lpips_local_diversity"] = why_not
        except ValueError as exc:  # an image too small for the network
            skipped.update(dict.fromkeys(("lpips_diversity", "lpips_local_diversity"), str(exc)))
            return {}
        if any(isinstance(v, self.metrics.Unavailable) for v in values.values()):
            self.unavailable = next(v.reason for v in values.values() if isinstance(v, self.metrics.Unavailable))
            self._skip(values, skipped)
            return {}
        return {k: float(v) for k, v in values.items()}

    def local_boxes(self, pair: PairInputs, before) -> tuple[list, str | None]:
        """(boxes of the local DS, None) or ([], why there are none) for `pair`."""
        if self.local_ds_region == "edited-box":
            return ([region_box(pair.region)], None) if pair.region is not None else ([], pair.region_note)
        if before is None or pair.target is None:
            return [], "local DS on B_a needs --predictor (S_x) and the pair's target map (S_y)"
        boxes = salggan_boxes(before, pair.target)
        return (boxes, None) if boxes else ([], "B_a is empty: X's map and the target map do not differ enough")

    def describe(self) -> dict:
        if self.unavailable:
            return {"net": self.net, "status": f"unavailable: {self.unavailable}"}
        return {"net": self.net, "status": "random weights: meaningless, tests only" if self.random else "ok"}

    def _skip(self, names, skipped: dict) -> bool:
        if self.unavailable is None:
            return False
        skipped.update(dict.fromkeys(names, f"unavailable: {self.unavailable}"))
        return True


# ---------------------------------------------------------------- tables


def per_image_table(out: Path, methods: list[MethodSpec], pairs: list[PairInputs]) -> pd.DataFrame:
    info = {p.pair_id: {"edit_type": p.edit_type, "source": p.source} for p in pairs}
    records = []
    for method in methods:
        latest = {row["pair_id"]: row for row in read_rows(out / "metrics" / f"{method.name}.jsonl")}
        for pair_id, row in sorted(latest.items()):
            if "missing" in row or pair_id not in info:
                continue
            records.append({"pair_id": pair_id, "method": method.name, **info[pair_id],
                            **{k: v for k, v in row.items() if k != "pair_id"}})
    table = pd.DataFrame.from_records(records)
    if table.empty:
        raise ValueError("no method produced an output for any pair; nothing to score")
    metrics = [m for m in METRIC_INFO if m in table.columns]
    return table.reindex(columns=["pair_id", "method", "edit_type", "source", *metrics]).astype(
        {m: float for m in metrics})


def coverage(table: pd.DataFrame, methods: list[MethodSpec], pairs: list[PairInputs], out: Path):
    """The pairs every method has, and per method the missing pairs with their reasons."""
    all_ids = [p.pair_id for p in pairs]
    missing: dict[str, dict[str, str]] = {}
    common = set(all_ids)
    for method in methods:
        have = set(table.loc[table["method"] == method.name, "pair_id"])
        latest = {row["pair_id"]: row for row in read_rows(out / "metrics" / f"{method.name}.jsonl")}
        gone = {pid: latest.get(pid, {}).get("missing", "not scored") for pid in all_ids if pid not in have}
        if gone:
            missing[method.name] = gone
        if have:
            common &= have
    return sorted(common), missing


def summary_table(table: pd.DataFrame, methods: list[MethodSpec]) -> pd.DataFrame:
    metrics = [m for m in METRIC_INFO if m in table.columns]
    rows = []
    for method in methods:
        part = table[table["method"] == method.name]
        for metric in metrics:
            values = part[metric].dropna()
            rows.append({"method": method.name, "metric": metric, "n": len(values),
                         "mean": values.mean() if len(values) else math.nan,
                         "std": values.std(ddof=1) if len(values) > 1 else math.nan})
    return pd.DataFrame(rows, columns=["method", "metric", "n", "mean", "std"])


def set_metrics(out: Path, methods, pairs, common, fid: bool, device: str, record: dict, random: bool) -> pd.DataFrame:
    """FID of each method's outputs on the common pairs against the ground-truth Y images (or X where
    a pair has no Y): one row per method, the value or "unavailable: why"."""
    chosen = [p for p in pairs if p.pair_id in set(common)]
    with_y = all(p.y is not None for p in chosen)
    reference = [p.y if with_y else p.x for p in chosen]
    rows = []
    for method in methods:
        row = {"method": method.name, "metric": "fid", "n_images": len(chosen),
               "reference": "ground-truth Y" if with_y else "input X", "value": math.nan, "note": ""}
        if not fid:
            row["note"] = "not computed (--no-fid)"
        elif len(chosen) < 2:
            row["note"] = f"needs at least 2 images per set, the methods share {len(chosen)} pair(s)"
        else:
            images = [read_rgb(out / "outputs" / method.name / f"{p.pair_id}.png") for p in chosen]
            value = image_metrics.fid(images, reference,
                                      device="cpu" if device == "auto" else device, _random_weights_for_tests=random)
            if isinstance(value, image_metrics.Unavailable):
                row["note"] = str(value)
            else:
                row["value"] = float(value)
                row["note"] = ("random weights: meaningless, tests only" if random else
                               f"biased upwards at {len(chosen)} images: compare only at equal set sizes")
        rows.append(row)
    return pd.DataFrame(rows)


def c2st_rows(out: Path, methods, pairs, common, c2st: bool, device: str) -> pd.DataFrame:
    """realism_c2st of each method: its outputs against the unedited X of the common pairs
    (`analysis.realism.realism_c2st`, seed 0, pair-aware split): one row per method, the held-out
    accuracy with ci_low, ci_high, n_test and p_value, or a note saying why there is none."""
    chosen = [p for p in pairs if p.pair_id in set(common)]
    rows = []
    for method in methods:
        row = {"method": method.name, "metric": "realism_c2st", "n_images": len(chosen),
               "reference": "input X of the same pairs", "value": math.nan, "note": ""}
        if method.kind == "input":
            row["note"] = "the reference"
        elif not c2st:
            row["note"] = "not computed (--no-c2st)"
        elif len(chosen) < realism.MIN_PAIRS:
            row["note"] = f"needs at least {realism.MIN_PAIRS} pairs, the methods share {len(chosen)}"
        else:
            images = [read_rgb(out / "outputs" / method.name / f"{p.pair_id}.png") for p in chosen]
            result = realism.realism_c2st(images, [p.x for p in chosen], seed=0,
                                          device="cpu" if device == "auto" else device)
            row.update(value=result.accuracy, ci_low=result.ci_low, ci_high=result.ci_high, n_test=result.n_test,
                       p_value=result.p_value,
                       note=f"held-out accuracy of a small CNN telling outputs from X at {realism.C2ST_SIZE}×"
                            f"{realism.C2ST_SIZE} px (seed 0; {result.n_train} training, {result.n_test} held-out "
                            "images, pairs kept on one side); 0.5 = indistinguishable")
        rows.append(row)
    return pd.DataFrame(rows, columns=["method", "metric", "n_images", "reference", "value", "ci_low", "ci_high",
                                       "n_test", "p_value", "note"])


def predictor_check(out: Path, pairs: list[PairInputs], saliency: DensitySource) -> dict:
    """The predictor's maps of the evaluated X and Y images against their human maps, beside the
    two controls (the predictor's maps of Y are cached under maps/ground_truth_y/)."""
    items = [{"name": f"{p.pair_id}/x", "scene": p.pair_id, "pred": saliency.density(REFERENCE, p.pair_id, p.x),
              "gt_map": p.x_human} for p in pairs if p.x_human is not None]
    items += [{"name": f"{p.pair_id}/y", "scene": p.pair_id, "pred": saliency.density("ground_truth_y", p.pair_id, p.y),
               "gt_map": p.target} for p in pairs if p.y is not None and p.target is not None]
    if len(items) < 2:
        return {"status": f"not checked: {len(items)} evaluated image(s) have a human map (the shuffle needs 2)"}
    table = with_controls(items, metrics=["cc", "sim", "kld"], rng=0)
    table.to_csv(out / "predictor_check.csv", index=False)
    return {"status": "checked", "images": len(items), "verdicts": control_verdicts(table)}


def output_digests(out: Path, methods: list[MethodSpec], table: pd.DataFrame) -> pd.DataFrame:
    """method, pair_id, pixel_sha256 of every scored output (the PNG under outputs/METHOD/)."""
    rows = []
    for method in methods:
        for pair_id in sorted(table.loc[table["method"] == method.name, "pair_id"]):
            image = read_rgb(out / "outputs" / method.name / f"{pair_id}.png")
            rows.append({"method": method.name, "pair_id": pair_id, "pixel_sha256": pixel_digest(image)})
    return pd.DataFrame(rows, columns=["method", "pair_id", "pixel_sha256"])


# ---------------------------------------------------------------- files


def read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut short by an interrupted run: that pair is scored again
            continue
    return rows


def append_row(path: Path, row: dict) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(row) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def write_png(path: Path, image: np.ndarray) -> None:
    tmp = path.with_name(f".{path.stem}.tmp.png")
    if not cv2.imwrite(str(tmp), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise ValueError(f"cannot write {path}")
    os.replace(tmp, path)


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=_jsonable))
    os.replace(tmp, path)


def _jsonable(value):
    return str(value)  # paths, numpy scalars: as text


def finite_or_none(value):
    value = float(value)
    return value if math.isfinite(value) else None


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def summary_lines(summary: pd.DataFrame, missing: dict) -> list[str]:
    lines = []
    headline = ["l1_x", "l1_y", "lpips_x", "sal_increase", "kld_target", "seconds"]
    for method, part in summary.groupby("method", sort=False):
        shown = part[part["metric"].isin(headline) & (part["n"] > 0)]
        text = ", ".join(f"{r.metric} {r.mean:.4g}" for r in shown.itertuples())
        lines.append(f"  {method}: {text or 'no metric'}")
    for method, gone in missing.items():
        lines.append(f"  {method}: no output for {len(gone)} pair(s), e.g. {next(iter(gone))}: "
                     f"{next(iter(gone.values()))}")
    return lines
