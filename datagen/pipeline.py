"""Rendering a paired dataset: resume, local worker processes or Ray tasks, progress, summary.

Pair i depends only on (seed, i): its scenes come from `sample_pair(seed, i, attempt)`, its
split from `assign_split(seed, i)`. Any sharding, worker count or resume gives the same
dataset. A pair is complete when its scene file exists (the worker writes it last, after
both images and masks); pairs.csv is updated from the main process as pairs finish.

A run owns its dataset folder and its workers (`datagen.run_ownership`): it holds the folder's
run lock from before it reads the folder until after its workers have ended, workers die with
the main process however it ends, and a worker commits a file only while its run holds the lock.
"""
from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator

from tqdm import tqdm

from datadir.dataset import Dataset
from datadir.layout import SUBDIRS, is_dataset, meta_path, pairs_path
from datagen.blender.settings import RenderDeviceError
from datagen.cluster import ray_session
from datagen.generator_config import GeneratorConfig
from datagen.run_ownership import RunLock, RunToken
from datagen.worker import PairOutcome, pair_files, pair_id_of, pair_row, prepare_worker_process, render_pair

log = logging.getLogger(__name__)

# pairs.csv is rewritten whole; batching keeps 60,000-pair runs from rewriting it per pair.
FLUSH_EVERY_PAIRS = 50
FLUSH_EVERY_SECONDS = 5.0


class GenerationAborted(ValueError):
    """A problem no retry can fix (e.g. the requested GPU does not exist); what finished is saved."""


@dataclass
class RunSummary:
    """What a `generate` run did."""

    path: Path
    requested: int
    rendered: int = 0
    skipped: int = 0  # complete before this run
    adopted: int = 0  # complete on disk but missing from pairs.csv (a crash between the two)
    resampled: int = 0  # extra samples after a visibility check failed
    failed: dict[str, str] = field(default_factory=dict)  # pair id -> reason
    seconds: float = 0.0
    devices: Counter = field(default_factory=Counter)
    resample_reasons: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        lines = [
            f"dataset: {self.path}",
            f"pairs requested {self.requested}: rendered {self.rendered}, skipped {self.skipped} (already complete),"
            f" adopted {self.adopted}, failed {len(self.failed)}",
            f"resampled {self.resampled} time(s) after visibility checks"
            + (f" (e.g. {self.resample_reasons[0]})" if self.resample_reasons else ""),
            f"time {self.seconds:.1f} s" + (f", {self.rendered * 2 / self.seconds:.2f} images/s" if self.rendered else "")
            + (f", devices {dict(self.devices)}" if self.devices else ""),
        ]
        lines += [f"failed {pid}: {reason}" for pid, reason in sorted(self.failed.items())]
        return lines


def generate(
    out,
    config: GeneratorConfig,
    workers: int = 1,
    ray_address: str | None = None,
    recycle_every: int = 50,
    retries: int = 2,
    progress: bool = True,
    on_pair: Callable[[PairOutcome], None] | None = None,
) -> RunSummary:
    """Render pairs 0..n_pairs-1 of `config` into dataset `out`, resuming what is there.

    workers: local worker processes (each holds one Blender session, replaced after
    `recycle_every` pairs since Blender leaks memory). ray_address: run the same worker
    function as Ray tasks instead ('local' starts a local instance, 'auto' joins a running
    cluster, or an address); `out` must then be on a filesystem every node sees.
    A pair that raises is retried `retries` times, then recorded as failed; the run goes on.
    Another run on the same folder is refused (RunLocked) while it lives.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if recycle_every < 1:
        raise ValueError(f"recycle_every must be >= 1, got {recycle_every}")
    start = time.perf_counter()
    config = as_rendered(config)
    if ray_address is None:  # Ray renders on the cluster's nodes, whose devices this machine cannot see
        check_render_device(config)
    out = Path(out)
    folder_existed, dataset_existed = out.exists(), is_dataset(out)
    if folder_existed and not out.is_dir():
        raise ValueError(f"dataset path {out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)  # the lock lives in it, and guards the dataset's creation too
    try:
        with RunLock.acquire(out) as lock:
            dataset = open_for_generation(out, config)
            summary = RunSummary(dataset.path, config.n_pairs)
            todo, adopted_rows = plan_resume(dataset, config, summary)
            if adopted_rows:
                dataset.add_pairs(adopted_rows)
            if todo:
                threads = config.render.threads or max(1, (os.cpu_count() or 1) // workers)
                job = config.with_threads(threads)
                runner = _ray_results if ray_address else _local_results
                results = runner(job, dataset.path, todo, workers, ray_address, recycle_every, retries, lock.token())
                try:
                    _collect(dataset, results, summary, len(todo), progress, on_pair)
                except GenerationAborted:
                    if not dataset_existed:  # e.g. a Ray worker found no GPU before any pair was done
                        _remove_empty_dataset(dataset)
                    raise
    except BaseException:
        if not folder_existed:  # a folder this run made goes if nothing is left in it
            with contextlib.suppress(OSError):
                out.rmdir()
        raise
    summary.seconds = time.perf_counter() - start
    return summary


def as_rendered(config: GeneratorConfig) -> GeneratorConfig:
    """`config` with the sample count that is actually rendered: --preview caps the samples
    (`RenderSettings.effective_samples`), and the scene files and dataset.json record what made
    the images, so a scene file re-renders exactly."""
    render = config.render
    if render.effective_samples == render.samples:
        return config
    return replace(config, render=replace(render, samples=render.effective_samples))


def check_render_device(config: GeneratorConfig) -> None:
    """Refuse an explicit GPU (--device cuda/optix/hip) that Blender cannot find here, before
    anything is written: the check runs Blender in a spawned process, as a worker would.
    GenerationAborted names the device and what Blender found; 'auto' and 'cpu' pass."""
    if config.render.device in ("auto", "cpu"):
        return
    context = multiprocessing.get_context("spawn")  # bpy must not be forked
    with ProcessPoolExecutor(max_workers=1, mp_context=context, initializer=prepare_worker_process,
                             initargs=(os.getpid(),)) as pool:
        problem = pool.submit(_device_problem, config.render.device).result()
    if problem:
        raise GenerationAborted(f"{problem}; nothing was written")


def _device_problem(device: str) -> str | None:
    """In a worker process: why Blender cannot render on `device`, or None if it can."""
    try:
        from datagen.blender.renderer import select_device  # imports bpy
    except ImportError:
        return None  # no Blender here: the workers report that themselves, pair by pair
    try:
        select_device(device)
    except RenderDeviceError as exc:
        return str(exc)
    return None


def open_for_generation(path: Path, config: GeneratorConfig) -> Dataset:
    """Create the dataset, or open it if its generator settings equal `config`'s (else ValueError)."""
    config = as_rendered(config)
    if not is_dataset(path):
        if path.exists() and any(p for p in path.iterdir() if not p.name.startswith(".")):
            raise ValueError(f"{path} exists, is not empty and holds no dataset; choose an empty or new folder")
        return Dataset.create(path, path.name, source="clevr", generator=config.identity())
    dataset = Dataset.open(path)
    theirs = dataset.settings.get("generator")
    if theirs is None:
        raise ValueError(f"{path} holds a dataset that was not rendered by gazelab datagen; choose another --out")
    mine = _flatten(json.loads(json.dumps(config.identity())))
    theirs = _flatten(theirs)
    differing = [k for k in mine if mine[k] != theirs.get(k)] + [k for k in theirs if k not in mine]
    if differing:
        key = differing[0]
        raise ValueError(
            f"{path} holds a different dataset ({key}: {theirs.get(key)!r} there, {mine.get(key)!r} now);"
            " nothing was changed — use another --out or the same settings to resume"
        )
    return dataset


def plan_resume(dataset: Dataset, config: GeneratorConfig, summary: RunSummary) -> tuple[list[int], list[dict]]:
    """Indices still to render, and rows of pairs complete on disk but missing from pairs.csv.

    Files of incomplete pairs and stray temporary files are deleted so none survives: call it
    only while holding the folder's run lock (as `generate` does), so no live run writes them.
    """
    for stray in [*dataset.path.glob(".*.tmp*"), *dataset.path.glob("*/.*.tmp*")]:
        stray.unlink(missing_ok=True)
    listed = set(dataset.pairs["pair_id"])
    todo, adopted = [], []
    for index in range(config.n_pairs):
        pair_id = pair_id_of(index)
        paths = [dataset.path / rel for rel in pair_files(pair_id).values()]
        complete = all(p.is_file() for p in paths)
        if pair_id in listed and complete:
            summary.skipped += 1
        elif complete:
            adopted.append(pair_row(dataset.path, config, index))
            summary.adopted += 1
        else:
            for p in paths:
                p.unlink(missing_ok=True)
            todo.append(index)
    return todo, adopted


def _collect(dataset, results: Iterator[PairOutcome], summary: RunSummary, total: int, progress: bool, on_pair) -> None:
    pending: list[dict] = []
    last_flush = time.monotonic()
    bar = tqdm(total=total, unit="pair", desc="rendering", disable=not progress, smoothing=0.1)
    try:
        for outcome in results:
            bar.update(1)
            if outcome.fatal:
                raise GenerationAborted(outcome.error)
            if outcome.error:
                summary.failed[outcome.pair_id] = outcome.error
                log.error("pair %s failed: %s", outcome.pair_id, outcome.error)
            else:
                summary.rendered += 1
                summary.resampled += outcome.resampled
                summary.resample_reasons.extend(outcome.resample_reasons)
                summary.devices[outcome.device] += 1
                pending.append(outcome.row)
            if on_pair:
                on_pair(outcome)
            if pending and (len(pending) >= FLUSH_EVERY_PAIRS or time.monotonic() - last_flush > FLUSH_EVERY_SECONDS):
                dataset.add_pairs(pending)
                pending, last_flush = [], time.monotonic()
    finally:
        bar.close()
        if hasattr(results, "close"):  # a runner generator: its workers end now, however this ends
            results.close()
        if pending:  # also on Ctrl-C: what finished is saved
            dataset.add_pairs(pending)


def _local_results(config, out: Path, todo, workers, _address, recycle_every, retries,
                   run: RunToken) -> Iterator[PairOutcome]:
    """Outcomes as they finish from a spawn-based process pool whose workers are recycled and
    die with this process."""
    context = multiprocessing.get_context("spawn")  # bpy must not be forked
    attempts: Counter = Counter()
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=context, max_tasks_per_child=recycle_every,
        initializer=prepare_worker_process, initargs=(os.getpid(),),
    ) as pool:
        futures: dict[Future, int] = {}

        def submit(index: int) -> None:
            attempts[index] += 1
            futures[pool.submit(render_pair, config, str(out), index, run)] = index

        queue = list(todo)
        try:
            while queue or futures:
                while queue and len(futures) < 2 * workers:  # bounded queue keeps memory flat
                    submit(queue.pop(0))
                done, _ = wait(futures, return_when=FIRST_COMPLETED)
                for future in done:
                    index = futures.pop(future)
                    outcome = _outcome_of(future, index)
                    if outcome.error and not outcome.fatal and attempts[index] <= retries:
                        log.warning("pair %s failed (%s); retrying", outcome.pair_id, outcome.error)
                        submit(index)
                        continue
                    yield outcome
        except BaseException:  # e.g. Ctrl-C: stop now, not after the queued pairs, and before the lock goes
            _kill_workers(pool)
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _kill_workers(pool: ProcessPoolExecutor) -> None:
    # Python 3.14 has pool.kill_workers(); before it, the executor's own table of processes.
    processes = list((pool._processes or {}).values())
    for process in processes:
        process.kill()
    for process in processes:
        process.join()


def _ray_results(config, out: Path, todo, workers, address, recycle_every, retries,
                 run: RunToken) -> Iterator[PairOutcome]:
    """The same worker function as Ray tasks; GPU renders request a GPU each. A task checks
    `run` against the lock file (on the shared filesystem) before it commits a file."""
    with ray_session(address) as ray:
        gpus = 1 if config.render.device in ("cuda", "optix", "hip") else 0
        task = ray.remote(num_cpus=config.render.threads, num_gpus=gpus, max_calls=recycle_every,
                          max_retries=0)(render_pair)
        attempts: Counter = Counter()
        refs: dict[Any, int] = {}

        def submit(index: int) -> None:
            attempts[index] += 1
            refs[task.remote(config, str(out), index, run)] = index

        try:
            for index in todo:
                submit(index)
            while refs:
                done, _ = ray.wait(list(refs), num_returns=1)
                index = refs.pop(done[0])
                try:
                    outcome = ray.get(done[0])
                except Exception as exc:  # a worker that died: report it like any failed pair
                    outcome = PairOutcome(pair_id_of(index), error=f"worker died: {type(exc).__name__}: {exc}")
                if outcome.error and not outcome.fatal and attempts[index] <= retries:
                    submit(index)
                    continue
                yield outcome
        finally:
            for ref in refs:
                ray.cancel(ref, force=True)


def _remove_empty_dataset(dataset: Dataset) -> None:
    """Undo the creation of a dataset that holds no pair and no pair file (only empty folders
    are removed, so a file a late worker wrote keeps its folder)."""
    if len(dataset.pairs) or any(p.is_file() for sub in SUBDIRS for p in (dataset.path / sub).rglob("*")):
        return
    for table in (pairs_path(dataset.path), meta_path(dataset.path)):
        table.unlink(missing_ok=True)
    for folder in [dataset.path / sub for sub in SUBDIRS]:
        with contextlib.suppress(OSError):
            folder.rmdir()


def _flatten(settings: dict, prefix: str = "") -> dict[str, Any]:
    """{'render': {'seed': 1}} → {'render.seed': 1}, so a mismatch names the exact setting."""
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _outcome_of(future: Future, index: int) -> PairOutcome:
    try:
        return future.result()
    except Exception as exc:  # the worker process died (e.g. out of memory); retried like a failure
        return PairOutcome(pair_id_of(index), error=f"worker died: {type(exc).__name__}: {exc}")
