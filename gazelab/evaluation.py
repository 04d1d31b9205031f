"""`gazelab evaluate`: every method's outputs on one dataset split, scored one way for all.

Methods are trained editors (a checkpoint: run here, timed the same way for all by
`models.runs.iter_pair_edits`), folders of existing outputs (`<pair_id>.png`, optional samples
`samples/<pair_id>_<k>.png`; scored without running), and always `input`, the unedited X, as the
reference row. This module is the orchestration above `models` and `analysis`: it loads checkpoints
and runs editors and the predictor; the evaluation folder's format and every score come from
`analysis.evaluation` (pure functions on arrays, tables and files).

Rerunning with the same --out continues: pairs already scored are kept, new methods are added; a
method name given again with another source, or another dataset, split or predictor, is refused.
"""
from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import logging
import math
import multiprocessing
import os
import platform
import shutil
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from analysis.edit_parameters import parameter_limit_shares
from analysis.eval_pairs import PairInputs, pair_metrics, read_pairs, read_rgb, resize_density
from analysis.evaluation import (FORMAT, IMAGE_CONVENTION, LOCAL_DS_REGIONS, REFERENCE, LpipsScorer, MethodSpec,
                                 append_row, c2st_rows, check_unique, coverage, finite_or_none, now, output_digests,
                                 parse_methods, per_image_table, predictor_check, read_rows, set_metrics,
                                 summary_lines, summary_table, write_json, write_png)
from datadir import Dataset, is_dataset
from datagen.cluster import ray_session
from models.runs import iter_pair_edits, iter_pair_parameters, load_editor_for_editing, load_saliency_function

logger = logging.getLogger(__name__)

__all__ = ["MethodSpec", "parse_methods", "evaluate", "REFERENCE", "LOCAL_DS_REGIONS"]


def evaluate(data_dir, methods: list[MethodSpec], out_dir, *, predictor=None, split: str = "test",
             device: str = "auto", samples: int = 1, fid: bool = True, c2st: bool = True, lpips_net: str = "alex",
             local_ds_region: str = "attention-boxes", progress: bool = True, echo: Callable[[str], Any] = logger.info,
             workers: int = 1, ray_address: str | None = None, _random_weights_for_tests: bool = False) -> dict:
    """Evaluate `methods` on the pairs of `split` ("all": every pair) of the dataset at `data_dir`
    into `out_dir` (module docstring). `predictor`: a saliency predictor checkpoint for the
    attention-shift metrics (without one only the image metrics are scored). `samples`: outputs per
    input for the diversity scores (editors that sample). `c2st`: the realism C2ST of each method
    against X. `local_ds_region`: a key of LOCAL_DS_REGIONS. `workers` > 1 scores each method's
    pairs in that many processes (each runs the editor and the predictor on its shard of the pairs),
    or as that many Ray tasks on the cluster at `ray_address` ("local": a local Ray instance); the
    per-image rows are the same files either way. Local workers split the machine's cores between
    them (recorded per method as "sharding"); an editor that optimises per image (HAG) gives outputs
    equal to a one-process run with the same torch thread count, and within float rounding of
    another. Returns the evaluation.json dict."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    if local_ds_region not in LOCAL_DS_REGIONS:
        raise ValueError(f"local_ds_region {local_ds_region!r}: expected one of {sorted(LOCAL_DS_REGIONS)}")
    check_unique(methods)
    if any(m.name == REFERENCE for m in methods):
        raise ValueError(f"the method name {REFERENCE!r} is reserved for the unedited input; choose another")
    out = Path(out_dir)
    pairs = read_pairs(data_dir, None if split == "all" else split)
    methods = [MethodSpec(REFERENCE, "input")] + list(methods)
    record = _start_record(out, data_dir, split, predictor, samples, methods, len(pairs), local_ds_region)
    echo(f"evaluating {len(methods) - 1} method(s) and the unedited input on {len(pairs)} pairs of split {split} "
         f"into {out}")
    saliency = _Saliency(predictor, device, out / "maps", record) if predictor else None
    lpips = LpipsScorer(lpips_net, device, local_ds_region, _random_weights_for_tests)
    settings = _ShardSettings(str(data_dir), None if split == "all" else split, str(out), predictor, device, lpips_net,
                              local_ds_region, samples, _random_weights_for_tests)
    with contextlib.ExitStack() as stack:
        pool = None
        if workers > 1 and not ray_address:  # one pool for every method: each worker loads its tools once
            spawn = multiprocessing.get_context("spawn")  # torch's and OpenCV's threads do not survive a fork
            pool = stack.enter_context(ProcessPoolExecutor(max_workers=workers, mp_context=spawn))
        for method in methods:
            scorer = _MethodScorer(method, pairs, out, saliency, lpips, samples, device, record, progress)
            if workers > 1 or ray_address:
                _run_sharded(scorer, settings, workers, ray_address, echo, pool)
            else:
                scorer.run(echo)
    table = per_image_table(out, methods, pairs)
    table.to_csv(out / "per_image.csv", index=False)
    output_digests(out, methods, table).to_csv(out / "outputs.csv", index=False)
    common, missing = coverage(table, methods, pairs, out)
    record["missing"] = missing
    record["common_pairs"] = len(common)
    summary = summary_table(table[table["pair_id"].isin(common)], methods)
    summary.to_csv(out / "summary.csv", index=False)
    set_table = pd.concat([set_metrics(out, methods, pairs, common, fid, device, record, _random_weights_for_tests),
                           c2st_rows(out, methods, pairs, common, c2st, device)], ignore_index=True)
    set_table[[c for c in set_table.columns if c != "note"] + ["note"]].to_csv(out / "set_metrics.csv", index=False)
    if saliency is not None:
        record["predictor_check"] = predictor_check(out, pairs, saliency)
    record["lpips"] = lpips.describe()
    record["finished"] = now()
    write_json(out / "evaluation.json", record)
    for line in summary_lines(summary, missing):
        echo(line)
    return record


# ---------------------------------------------------------------- one method


class _MethodScorer:
    """Outputs of one method (run, copied or the input itself), scored pair by pair, resumable."""

    def __init__(self, method: MethodSpec, pairs: list[PairInputs], out: Path, saliency, lpips, samples: int,
                 device: str, record: dict, progress: bool, shard: int | None = None):
        self.method, self.pairs, self.saliency, self.lpips = method, {p.pair_id: p for p in pairs}, saliency, lpips
        self.samples, self.device, self.record, self.progress = samples, device, record, progress
        self.folder = out / "outputs" / method.name
        self.rows_file = out / "metrics" / f"{method.name}.jsonl"
        self.shard = shard  # a worker's share of the pairs: rows go to its own file, merged by the parent
        if shard is not None:
            self.rows_file = _shard_folder(out, method.name) / f"{shard}.jsonl"
        self.skipped: dict[str, Counter] = defaultdict(Counter)

    def todo(self) -> tuple[list[str], int]:
        """The pairs still to score, and how many were scored before (rows of earlier runs and of
        shards an interrupted sharded run left are merged into the method's rows file first)."""
        _merge_shards(self.rows_file.parent.parent, self.method.name)
        rows = read_rows(self.rows_file)
        if self.rows_file.is_file() and len(self.rows_file.read_text().splitlines()) != len(rows):
            # an interrupted run left half a line: keep the whole rows, so appends start on a fresh line
            self.rows_file.write_text("".join(json.dumps(row) + "\n" for row in rows))
        done = {row["pair_id"] for row in rows if "missing" not in row}
        return [pair_id for pair_id in self.pairs if pair_id not in done], len(done)

    def run(self, echo, todo: list[str] | None = None) -> None:
        if todo is None:
            todo, done = self.todo()
            echo(f"  {self.method.name}: {done} pairs scored before, {len(todo)} to go")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.rows_file.parent.mkdir(parents=True, exist_ok=True)
        if todo:
            with tqdm(total=len(todo), desc=self.method.name, disable=not self.progress) as bar:
                for pair_id, images, seconds in self._outputs(todo):
                    self._score(pair_id, images, seconds)
                    bar.update()
        self.record_skipped(self.skipped)

    def record_skipped(self, skipped: dict[str, Counter]) -> None:
        info = self.record["methods"][self.method.name]
        info["skipped_metrics"] = {metric: dict(reasons) for metric, reasons in sorted(skipped.items())}

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
        if self.shard is None:  # a shard's worker reports back; the parent writes evaluation.json
            write_json(self.folder.parent.parent / "evaluation.json", self.record)
        table = Dataset.open(self.record["data"]).pairs
        in_split = table["pair_id"] if self._split() is None else table.loc[table["split"] == self._split(), "pair_id"]
        skip = set(in_split) - set(todo)  # a shard's worker edits its own pairs only
        for pair_id, images, seconds in iter_pair_edits(editor, self.record["data"], self._split(), skip=skip,
                                                        options=options):
            if pair_id not in self.pairs:
                continue
            if images is None:
                yield pair_id, None, seconds
                continue
            yield pair_id, self._save(pair_id, _to_uint8(images)), seconds
        if hasattr(editor, "edit_parameters") and self.shard is None:
            self.record_parameters(editor, options)

    def record_parameters(self, editor, options: dict) -> None:
        """parameters/METHOD.csv (one row per pair, one column per scalar edit parameter) and, in
        evaluation.json, each parameter's share of images at its limits (never averaged)."""
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
        write_png(self.folder / f"{pair_id}.png", images[0])
        if len(images) > 1:
            (self.folder / "samples").mkdir(exist_ok=True)
            for k, image in enumerate(images, start=1):
                write_png(self.folder / "samples" / f"{pair_id}_{k}.png", image)
            return np.concatenate([images[:1], images])
        return images

    def _score(self, pair_id: str, images, seconds) -> None:
        pair = self.pairs[pair_id]
        if images is None:
            append_row(self.rows_file, {"pair_id": pair_id, "missing": str(seconds)})
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
        append_row(self.rows_file, {"pair_id": pair_id, **{k: finite_or_none(v) for k, v in values.items()}})


class _Saliency:
    """The predictor's density of an image, cached on disk as maps/METHOD/PAIR.npy."""

    def __init__(self, ckpt, device: str, folder: Path, record: dict):
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


# ---------------------------------------------------------------- shards


@dataclass(frozen=True)
class _ShardSettings:
    """What a worker needs to score its shard of one method's pairs as the parent would."""

    data_dir: str
    split: str | None
    out: str
    predictor: str | None
    device: str
    lpips_net: str
    local_ds_region: str
    samples: int
    random_weights: bool
    threads: int = 0  # torch threads per worker (0: torch's default)


def _shard_folder(out: Path, method: str) -> Path:
    """Where the workers of a sharded run write their rows (one file each), until merged."""
    return out / "metrics" / f"{method}.shards"


def _merge_shards(out: Path, method: str) -> None:
    """Append the whole rows of every shard file to the method's rows file, then delete them: what
    a sharded run does at its end, and what a rerun does with the shards an interrupted one left."""
    folder = _shard_folder(out, method)
    if not folder.is_dir():
        return
    rows_file = out / "metrics" / f"{method}.jsonl"
    rows = read_rows(rows_file)
    for part in sorted(folder.glob("*.jsonl")):
        rows.extend(read_rows(part))
    _write_json_lines(rows_file, rows)
    shutil.rmtree(folder)


def _write_json_lines(path: Path, rows: list[dict]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _score_shard(method: MethodSpec, settings: _ShardSettings, shard: int, pair_ids: list[str], record: dict) -> dict:
    """A worker: score `pair_ids` of `method` into its own rows file; returns what the parent
    records (the method's info and the metrics skipped, with reasons and counts)."""
    if settings.threads:  # workers share the machine's cores instead of each taking all of them
        torch.set_num_threads(settings.threads)
    out = Path(settings.out)
    pairs = read_pairs(settings.data_dir, settings.split, pair_ids=pair_ids)
    record = {**record, "methods": {method.name: dict(record["methods"][method.name])}}
    saliency, lpips = _measuring_tools(settings)
    scorer = _MethodScorer(method, pairs, out, saliency, lpips, settings.samples, settings.device, record,
                           progress=False, shard=shard)
    scorer.run(lambda line: None, todo=[p.pair_id for p in pairs])
    return {"info": record["methods"][method.name],
            "skipped": {metric: dict(reasons) for metric, reasons in scorer.skipped.items()}}


_TOOLS: dict[_ShardSettings, tuple] = {}  # a worker's predictor and LPIPS, loaded once for every method's shard


def _measuring_tools(settings: _ShardSettings) -> tuple:
    if settings not in _TOOLS:
        out = Path(settings.out)
        saliency = _Saliency(settings.predictor, settings.device, out / "maps", {}) if settings.predictor else None
        _TOOLS.clear()
        _TOOLS[settings] = (saliency, LpipsScorer(settings.lpips_net, settings.device, settings.local_ds_region,
                                                  settings.random_weights))
    return _TOOLS[settings]


def _run_sharded(scorer: _MethodScorer, settings: _ShardSettings, workers: int, ray_address: str | None,
                 echo, pool: ProcessPoolExecutor | None = None) -> None:
    """Score one method's remaining pairs in `workers` shards (processes, or Ray tasks), then merge
    the shards' rows into the method's rows file and their reports into evaluation.json."""
    todo, done = scorer.todo()
    shards = [todo[k::workers] for k in range(workers) if todo[k::workers]]
    where = f"Ray at {ray_address}" if ray_address else f"{len(shards)} processes"
    echo(f"  {scorer.method.name}: {done} pairs scored before, {len(todo)} to go in {len(shards)} shard(s) on {where}")
    if not shards:
        return
    if not ray_address:  # the workers share the cores (each taking all of them is slower than one process)
        settings = dataclasses.replace(settings, threads=max(1, (os.cpu_count() or 1) // len(shards)))
    scorer.record["methods"][scorer.method.name]["sharding"] = {
        "shards": len(shards), "where": "ray" if ray_address else "processes",
        "torch_threads_per_worker": settings.threads or "Ray's default"}
    jobs = [(scorer.method, settings, k, shard, scorer.record) for k, shard in enumerate(shards)]
    results = _run_on_ray(jobs, ray_address) if ray_address else list(pool.map(_score_shard, *zip(*jobs)))
    _merge_shards(Path(settings.out), scorer.method.name)
    skipped: dict[str, Counter] = defaultdict(Counter)
    for result in results:
        scorer.record["methods"][scorer.method.name].update(
            {k: v for k, v in result["info"].items() if k != "skipped_metrics"})
        for metric, reasons in result["skipped"].items():
            skipped[metric].update(reasons)
    scorer.record_skipped(skipped)
    if scorer.method.kind == "checkpoint":
        editor = load_editor_for_editing(scorer.method.path, device=settings.device)
        if hasattr(editor, "edit_parameters"):
            scorer.record_parameters(editor, scorer.record["methods"][scorer.method.name].get("options", {}))


def _run_on_ray(jobs: list[tuple], address: str) -> list[dict]:
    with ray_session(address) as ray:
        task = ray.remote(max_retries=0)(_score_shard)
        return ray.get([task.remote(*job) for job in jobs])


# ---------------------------------------------------------------- state


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
                "local_ds_region": local_ds_region, "image_convention": IMAGE_CONVENTION}
    record: dict[str, Any] = {"format": FORMAT, **settings, "started": now(), "methods": {}}
    if path.is_file():
        previous = json.loads(path.read_text())
        for key, value in settings.items():
            if previous.get(key) != value:
                raise ValueError(f"{out} holds an evaluation with {key} = {previous.get(key)!r}, not {value!r}; "
                                 "choose another --out to start a new one")
        record = {**previous, "started": previous.get("started", now())}
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
    write_json(path, record)
    return record


def _dataset_provenance(data: str) -> dict:
    meta = Dataset.open(data).meta if is_dataset(data) else {}
    return {"path": data, "name": meta.get("name"), "created": meta.get("created"),
            "generator": meta.get("generator") or meta.get("settings")}


def _software() -> dict:
    versions = {"python": platform.python_version()}
    for package in ("gazelab", "numpy", "scipy", "scikit-image", "opencv-python-headless", "torch", "torchvision",
                    "lpips", "pytorch-fid"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


