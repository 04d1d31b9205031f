"""`gazelab evaluate`: every method's outputs on one dataset split, scored one way for all.

Methods are trained editors (a checkpoint: run here, timed the same way for all by
`models.runs.iter_pair_edits`), folders of existing outputs (`<pair_id>.png`, optional samples
`samples/<pair_id>_<k>.png`; scored without running), and always `input`, the unedited X, as the
reference row. Every output is scored as the 8-bit PNG it is saved as. The evaluation folder:

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

Rerunning with the same --out continues: pairs already scored are kept, new methods are added; a
method name given again with another source, or another dataset, split or predictor, is refused.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from analysis.attention_boxes import salggan_boxes
from analysis.eval_pairs import (METRIC_INFO, PairInputs, pair_metrics, pixel_digest, read_pairs, read_rgb,
                                 region_box, resize_density)

logger = logging.getLogger(__name__)

__all__ = ["MethodSpec", "parse_methods", "evaluate", "REFERENCE", "LOCAL_DS_REGIONS"]

REFERENCE = "input"  # the unedited X, scored like a method
# Where the local diversity score is measured: SalG-GAN's attention boxes B_a (its paper's), or the
# bounding box of the edited objects.
LOCAL_DS_REGIONS = {"attention-boxes": "SalG-GAN's attention boxes B_a of the predictor's map of X and the target map",
                    "edited-box": "the bounding box of the edited objects (not the paper's definition)"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_FORMAT = 2
# Format 1 evaluations fed LPIPS, diversity and FID [0, 1] images read as [-1, 1]; they are not continued.
_IMAGE_CONVENTION = "uint8 RGB as saved; LPIPS sees [-1, 1], FID's Inception [0, 1]"


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
    _check_unique(specs)
    return specs


def evaluate(data_dir, methods: list[MethodSpec], out_dir, *, predictor=None, split: str = "test",
             device: str = "auto", samples: int = 1, fid: bool = True, c2st: bool = True, lpips_net: str = "alex",
             local_ds_region: str = "attention-boxes", progress: bool = True, echo: Callable[[str], Any] = logger.info,
             _random_weights_for_tests: bool = False) -> dict:
    """Evaluate `methods` on the pairs of `split` ("all": every pair) of the dataset at `data_dir`
    into `out_dir` (module docstring). `predictor`: a saliency predictor checkpoint for the
    attention-shift metrics (without one only the image metrics are scored). `samples`: outputs per
    input for the diversity scores (editors that sample). `c2st`: the realism C2ST of each method
    against X. `local_ds_region`: a key of LOCAL_DS_REGIONS. Returns the evaluation.json dict."""
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    if local_ds_region not in LOCAL_DS_REGIONS:
        raise ValueError(f"local_ds_region {local_ds_region!r}: expected one of {sorted(LOCAL_DS_REGIONS)}")
    _check_unique(methods)
    if any(m.name == REFERENCE for m in methods):
        raise ValueError(f"the method name {REFERENCE!r} is reserved for the unedited input; choose another")
    out = Path(out_dir)
    pairs = read_pairs(data_dir, None if split == "all" else split)
    methods = [MethodSpec(REFERENCE, "input")] + list(methods)
    record = _start_record(out, data_dir, split, predictor, samples, methods, len(pairs), local_ds_region)
    echo(f"evaluating {len(methods) - 1} method(s) and the unedited input on {len(pairs)} pairs of split {split} "
         f"into {out}")
    saliency = _Saliency(predictor, device, out / "maps", record) if predictor else None
    lpips = _Lpips(lpips_net, device, local_ds_region, _random_weights_for_tests)
    for method in methods:
        scorer = _MethodScorer(method, pairs, out, saliency, lpips, samples, device, record, progress)
        scorer.run(echo)
    table = _per_image_table(out, methods, pairs)
    table.to_csv(out / "per_image.csv", index=False)
    _output_digests(out, methods, table).to_csv(out / "outputs.csv", index=False)
    common, missing = _coverage(table, methods, pairs, out)
    record["missing"] = missing
    record["common_pairs"] = len(common)
    summary = _summary(table[table["pair_id"].isin(common)], methods)
    summary.to_csv(out / "summary.csv", index=False)
    set_metrics = pd.concat([_set_metrics(out, methods, pairs, common, fid, device, record, _random_weights_for_tests),
                             _c2st_rows(out, methods, pairs, common, c2st, device)], ignore_index=True)
    set_metrics[[c for c in set_metrics.columns if c != "note"] + ["note"]].to_csv(out / "set_metrics.csv", index=False)
    if saliency is not None:
        record["predictor_check"] = _predictor_check(out, pairs, saliency)
    record["lpips"] = lpips.describe()
    record["finished"] = _now()
    _write_json(out / "evaluation.json", record)
    for line in _summary_lines(summary, missing):
        echo(line)
    return record


# ---------------------------------------------------------------- one method


class _MethodScorer:
    """Outputs of one method (run, copied or the input itself), scored pair by pair, resumable."""

    def __init__(self, method: MethodSpec, pairs: list[PairInputs], out: Path, saliency, lpips, samples: int,
                 device: str, record: dict, progress: bool):
        self.method, self.pairs, self.saliency, self.lpips = method, {p.pair_id: p for p in pairs}, saliency, lpips
        self.samples, self.device, self.record, self.progress = samples, device, record, progress
        self.folder = out / "outputs" / method.name
        self.rows_file = out / "metrics" / f"{method.name}.jsonl"
        self.skipped: dict[str, Counter] = defaultdict(Counter)

    def run(self, echo) -> None:
        rows = _read_rows(self.rows_file)
        if self.rows_file.is_file() and len(self.rows_file.read_text().splitlines()) != len(rows):
            # an interrupted run left half a line: keep the whole rows, so appends start on a fresh line
            self.rows_file.write_text("".join(json.dumps(row) + "\n" for row in rows))
        done = {row["pair_id"] for row in rows if "missing" not in row}
        todo = [pair_id for pair_id in self.pairs if pair_id not in done]
        self.folder.mkdir(parents=True, exist_ok=True)
        self.rows_file.parent.mkdir(parents=True, exist_ok=True)
        echo(f"  {self.method.name}: {len(done)} pairs scored before, {len(todo)} to go")
        if todo:
            with tqdm(total=len(todo), desc=self.method.name, disable=not self.progress) as bar:
                for pair_id, images, seconds in self._outputs(todo):
                    self._score(pair_id, images, seconds)
                    bar.update()
        info = self.record["methods"][self.method.name]
        info["skipped_metrics"] = {metric: dict(reasons) for metric, reasons in sorted(self.skipped.items())}

    def _outputs(self, todo: list[str]):
        """(pair_id, images (K, H, W, 3) uint8 as saved, seconds) or (pair_id, None, reason)."""
        if self.method.kind == "input":
            for pair_id in todo:
                yield pair_id, self._save(pair_id, self.pairs[pair_id].x[None]), math.nan
        elif self.method.kind == "outputs":
            for pair_id in todo:
                yield (pair_id, *self._read_folder_outputs(pair_id))
        else:
            yield from self._run_editor(todo)

    def _run_editor(self, todo: list[str]):
        import inspect

        from models.runs import iter_pair_edits, load_editor_for_editing

        editor = load_editor_for_editing(self.method.path, device=self.device)
        accepted = inspect.signature(editor.edit).parameters
        options = {"seed": 0} if "seed" in accepted else {}
        if self.samples > 1:
            if "samples" in accepted:
                options["samples"] = self.samples
            else:
                self.record["methods"][self.method.name]["samples_note"] = f"{editor.name} gives one output per input"
        info = self.record["methods"][self.method.name]
        info.update(editor=editor.name, step=getattr(editor, "checkpoint_info", {}).get("step"),
                    weights_info=editor.weights_info, guidance=editor.guidance, options=options)
        _write_json(self.folder.parent.parent / "evaluation.json", self.record)
        skip = set(self.pairs) - set(todo)
        for pair_id, images, seconds in iter_pair_edits(editor, self.record["data"], self._split(), skip=skip,
                                                        options=options):
            if pair_id not in self.pairs:
                continue
            if images is None:
                yield pair_id, None, seconds
                continue
            yield pair_id, self._save(pair_id, _to_uint8(images)), seconds
        if hasattr(editor, "edit_parameters"):
            self._record_parameters(editor, options)

    def _record_parameters(self, editor, options: dict) -> None:
        """parameters/METHOD.csv (one row per pair, one column per scalar edit parameter) and, in
        evaluation.json, each parameter's share of images at its limits (never averaged)."""
        from analysis.edit_parameters import parameter_limit_shares
        from models.runs import iter_pair_parameters

        rows = [{"pair_id": pair_id, **values} for pair_id, values in
                iter_pair_parameters(editor, self.record["data"], self._split(), options=options)
                if pair_id in self.pairs]
        if not rows:
            return
        table = pd.DataFrame(rows)
        folder = self.folder.parent.parent / "parameters"
        folder.mkdir(exist_ok=True)
        table.to_csv(folder / f"{self.method.name}.csv", index=False)
        limits = editor.parameter_limits()
        shares = parameter_limit_shares({name: table[name].to_numpy() for name in limits}, limits)
        self.record["methods"][self.method.name]["parameter_limits"] = {
            "limits": {name: list(bounds) for name, bounds in limits.items()},
            "shares": shares.to_dict("records")}

    def _split(self) -> str | None:
        return None if self.record["split"] == "all" else self.record["split"]

    def _read_folder_outputs(self, pair_id: str):
        source = Path(self.method.path)
        main = source / f"{pair_id}.png"
        if not main.is_file():
            return None, f"no file {pair_id}.png in {source}"
        sample_files = sorted((source / "samples").glob(f"{pair_id}_*.png")) or sorted(source.glob(f"{pair_id}_*.png"))
        try:
            images = [read_rgb(path) for path in [main, *sample_files]]
        except ValueError as exc:
            return None, str(exc)
        shape = self.pairs[pair_id].x.shape
        for path, image in zip([main, *sample_files], images):
            if image.shape != shape:
                return None, (f"{path.name} is {image.shape[1]}×{image.shape[0]} (W×H); expected the input's "
                              f"{shape[1]}×{shape[0]}")
        shutil.copyfile(main, self.folder / main.name)
        stacked = np.stack(images[1:] if sample_files else images[:1])
        if sample_files:
            (self.folder / "samples").mkdir(exist_ok=True)
            for path in sample_files:
                shutil.copyfile(path, self.folder / "samples" / path.name)
        return np.concatenate([images[0][None], stacked]) if sample_files else stacked, math.nan

    def _save(self, pair_id: str, images: np.ndarray) -> np.ndarray:
        """Write the uint8 output (and its samples when K > 1) as PNGs; return [output, *samples]."""
        _write_png(self.folder / f"{pair_id}.png", images[0])
        if len(images) > 1:
            (self.folder / "samples").mkdir(exist_ok=True)
            for k, image in enumerate(images, start=1):
                _write_png(self.folder / "samples" / f"{pair_id}_{k}.png", image)
            return np.concatenate([images[:1], images])
        return images

    def _score(self, pair_id: str, images, seconds) -> None:
        pair = self.pairs[pair_id]
        if images is None:
            _append_row(self.rows_file, {"pair_id": pair_id, "missing": str(seconds)})
            return
        output = images[0]
        before = after = None
        if self.saliency is not None:
            before = self.saliency.density(REFERENCE, pair_id, pair.x)
            after = before if self.method.kind == "input" else self.saliency.density(self.method.name, pair_id, output)
        values, skipped = pair_metrics(pair, output, before, after)
        values.update(self.lpips.regions(output, pair, skipped))
        if len(images) > 2:  # images[0] is the output, images[1:] its samples
            values.update(self.lpips.diversity(images[1:], pair, before, skipped))
        values["seconds"] = seconds
        for metric, reason in skipped.items():
            self.skipped[metric][reason] += 1
        _append_row(self.rows_file, {"pair_id": pair_id, **{k: _finite_or_none(v) for k, v in values.items()}})


# ---------------------------------------------------------------- measuring tools


class _Saliency:
    """The predictor's density of an image, cached on disk as maps/METHOD/PAIR.npy."""

    def __init__(self, ckpt, device: str, folder: Path, record: dict):
        from models.runs import load_saliency_function

        self.predict, name, weights_info = load_saliency_function(ckpt, device)
        self.folder = folder
        record["predictor"] = {"checkpoint": str(Path(ckpt).resolve()), "name": name, "weights_info": weights_info}

    def density(self, method: str, pair_id: str, image: np.ndarray) -> np.ndarray:
        path = self.folder / method / f"{pair_id}.npy"
        if path.is_file():
            return np.load(path).astype(np.float64)
        density = resize_density(self.predict(image.astype(np.float32) / 255.0), image.shape[:2])
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.tmp.npy")
        np.save(tmp, density.astype(np.float32))
        os.replace(tmp, path)
        return density


class _Lpips:
    """LPIPS fidelity to X (full, background, foreground) and the diversity scores; or why not."""

    def __init__(self, net: str, device: str, local_ds_region: str, random_weights: bool):
        from analysis import image_metrics

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


def _per_image_table(out: Path, methods: list[MethodSpec], pairs: list[PairInputs]) -> pd.DataFrame:
    info = {p.pair_id: {"edit_type": p.edit_type, "source": p.source} for p in pairs}
    records = []
    for method in methods:
        latest = {row["pair_id"]: row for row in _read_rows(out / "metrics" / f"{method.name}.jsonl")}
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


def _coverage(table: pd.DataFrame, methods: list[MethodSpec], pairs: list[PairInputs], out: Path):
    """The pairs every method has, and per method the missing pairs with their reasons."""
    all_ids = [p.pair_id for p in pairs]
    missing: dict[str, dict[str, str]] = {}
    common = set(all_ids)
    for method in methods:
        have = set(table.loc[table["method"] == method.name, "pair_id"])
        latest = {row["pair_id"]: row for row in _read_rows(out / "metrics" / f"{method.name}.jsonl")}
        gone = {pid: latest.get(pid, {}).get("missing", "not scored") for pid in all_ids if pid not in have}
        if gone:
            missing[method.name] = gone
        if have:
            common &= have
    return sorted(common), missing


def _summary(table: pd.DataFrame, methods: list[MethodSpec]) -> pd.DataFrame:
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


def _set_metrics(out: Path, methods, pairs, common, fid: bool, device: str, record: dict, random: bool) -> pd.DataFrame:
    """FID of each method's outputs on the common pairs against the ground-truth Y images (or X where
    a pair has no Y): one row per method, the value or "unavailable: why"."""
    from analysis import image_metrics

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


def _c2st_rows(out: Path, methods, pairs, common, c2st: bool, device: str) -> pd.DataFrame:
    """realism_c2st of each method: its outputs against the unedited X of the common pairs
    (`analysis.realism.realism_c2st`, seed 0, pair-aware split): one row per method, the held-out
    accuracy with ci_low, ci_high, n_test and p_value, or a note saying why there is none."""
    from analysis import realism

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


def _predictor_check(out: Path, pairs: list[PairInputs], saliency: _Saliency) -> dict:
    """The predictor's maps of the evaluated X and Y images against their human maps, beside the
    two controls (the predictor's maps of Y are cached under maps/ground_truth_y/)."""
    from analysis.controls import control_verdicts, with_controls

    items = [{"name": f"{p.pair_id}/x", "scene": p.pair_id, "pred": saliency.density(REFERENCE, p.pair_id, p.x),
              "gt_map": p.x_human} for p in pairs if p.x_human is not None]
    items += [{"name": f"{p.pair_id}/y", "scene": p.pair_id, "pred": saliency.density("ground_truth_y", p.pair_id, p.y),
               "gt_map": p.target} for p in pairs if p.y is not None and p.target is not None]
    if len(items) < 2:
        return {"status": f"not checked: {len(items)} evaluated image(s) have a human map (the shuffle needs 2)"}
    table = with_controls(items, metrics=["cc", "sim", "kld"], rng=0)
    table.to_csv(out / "predictor_check.csv", index=False)
    return {"status": "checked", "images": len(items), "verdicts": control_verdicts(table)}


# ---------------------------------------------------------------- state and files


def _output_digests(out: Path, methods: list[MethodSpec], table: pd.DataFrame) -> pd.DataFrame:
    """method, pair_id, pixel_sha256 of every scored output (the PNG under outputs/METHOD/)."""
    rows = []
    for method in methods:
        for pair_id in sorted(table.loc[table["method"] == method.name, "pair_id"]):
            image = read_rgb(out / "outputs" / method.name / f"{pair_id}.png")
            rows.append({"method": method.name, "pair_id": pair_id, "pixel_sha256": pixel_digest(image)})
    return pd.DataFrame(rows, columns=["method", "pair_id", "pixel_sha256"])


def _to_uint8(images: np.ndarray) -> np.ndarray:
    """An editor's float outputs in [0, 1] rounded to the uint8 image that is saved and scored."""
    return np.clip(np.asarray(images, np.float64) * 255 + 0.5, 0, 255).astype(np.uint8)


def _start_record(out: Path, data_dir, split: str, predictor, samples: int, methods: list[MethodSpec],
                  n_pairs: int, local_ds_region: str) -> dict:
    """evaluation.json: a new one, or the one there after checking that this run continues it."""
    path = out / "evaluation.json"
    data = str(Path(data_dir).resolve())
    settings = {"data": data, "split": split, "samples": samples,
                "predictor_checkpoint": str(Path(predictor).resolve()) if predictor else None,
                "local_ds_region": local_ds_region, "image_convention": _IMAGE_CONVENTION}
    record: dict[str, Any] = {"format": _FORMAT, **settings, "started": _now(), "methods": {}}
    if path.is_file():
        previous = json.loads(path.read_text())
        for key, value in settings.items():
            if previous.get(key) != value:
                raise ValueError(f"{out} holds an evaluation with {key} = {previous.get(key)!r}, not {value!r}; "
                                 "choose another --out to start a new one")
        record = {**previous, "started": previous.get("started", _now())}
    for method in methods:
        source = {"kind": method.kind, "path": str(Path(method.path).resolve()) if method.path else None}
        known = record["methods"].get(method.name)
        if known and (known["kind"], known["path"]) != (source["kind"], source["path"]):
            raise ValueError(f"{out} already holds method {method.name!r} from {known['path'] or known['kind']}, "
                             f"not {source['path'] or source['kind']}; name it differently or choose another --out")
        record["methods"].setdefault(method.name, source)
    record.update(dataset=_dataset_provenance(data), n_pairs=n_pairs, software=_software())
    record["timing"] = ("seconds per image: wall time of the editor's edit call alone on the evaluation device, "
                        "after one untimed warm-up edit, file reads and writes excluded; empty for methods given "
                        "as folders (not run here)")
    out.mkdir(parents=True, exist_ok=True)
    _write_json(path, record)
    return record


def _dataset_provenance(data: str) -> dict:
    meta_path = Path(data) / "dataset.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    return {"path": data, "name": meta.get("name"), "created": meta.get("created"),
            "generator": meta.get("generator") or meta.get("settings")}


def _software() -> dict:
    import platform
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for package in ("gazelab", "numpy", "scipy", "scikit-image", "opencv-python-headless", "torch", "torchvision",
                    "lpips", "pytorch-fid"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def _spec(name: str, path: Path) -> MethodSpec:
    if not _NAME.match(name):
        raise ValueError(f"method name {name!r}: expected letters, digits, '_', '.' or '-' (at most 64), "
                         "starting with a letter or digit")
    if path.is_dir():
        return MethodSpec(name, "outputs", str(path))
    if path.is_file():
        return MethodSpec(name, "checkpoint", str(path))
    raise ValueError(f"method {name}: {path} is neither a checkpoint file nor a folder of outputs")


def _check_unique(specs: list[MethodSpec]) -> None:
    names = Counter(spec.name for spec in specs)
    twice = sorted(name for name, count in names.items() if count > 1)
    if twice:
        raise ValueError(f"method name(s) {', '.join(twice)} given more than once; each method needs its own name")


def _read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut short by an interrupted run: that pair is scored again
            continue
    return rows


def _append_row(path: Path, row: dict) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(row) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _write_png(path: Path, image: np.ndarray) -> None:
    tmp = path.with_name(f".{path.stem}.tmp.png")
    if not cv2.imwrite(str(tmp), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise ValueError(f"cannot write {path}")
    os.replace(tmp, path)


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=_jsonable))
    os.replace(tmp, path)


def _jsonable(value):
    return str(value)  # paths, numpy scalars: as text


def _finite_or_none(value):
    value = float(value)
    return value if math.isfinite(value) else None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _summary_lines(summary: pd.DataFrame, missing: dict) -> list[str]:
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
