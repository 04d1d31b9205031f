"""Training data at the scale of 60,000 pairs: building `TrainingItems`, and items/s through the trainer's loader.

    python benchmarks/bench_loader.py            # 60,000 pairs; about a minute on 2 cores
    python benchmarks/bench_loader.py --quick    # 6,000 pairs, fewer items timed

The data: a synthetic gazelab dataset dir whose pairs.csv has `--pairs` rows. They share the files
of 64 template pairs (PNG images and label masks at `--size`, .npy fixation densities, scene
JSON), except that every row and side gets its own hard link to its map, at the row's own map
path in the layout: construction checks that each map file exists, so those paths are distinct, as
in a real dataset.

1. Construction of `TrainingItems(unit="pair")` (what every model's `make_dataset` builds on) must
   read no image, map or mask: the files opened while it runs are counted (Python's audit hook
   sees every open() and np.load; cv2 opens in C, so the calls of the image / mask / map readers
   are counted too) and the script exits 1 if any was read. Timed against a baseline run in the
   same process: a plain `pandas.read_csv` of pairs.csv; and at a tenth of the rows, for the
   per-row cost (linear: equal per-row times).
2. The loader: items/s of `models.batching.batch_stream` (what the Trainer iterates: the
   per-epoch order, `set_epoch`, seeded per-batch reading, `collate`) with 0 and 2 workers,
   against the baseline of reading the same files with cv2 / np.load / json in a plain loop in
   this process (no dataset class, no tensors, no collate). The first batch (which starts the
   workers) is timed apart.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import models.data as data_module  # noqa: E402
from datadir import SUBDIRS, Dataset, PairWriter, relative_path  # noqa: E402
from datadir.layout import pairs_path  # noqa: E402
from models.arrays import collate  # noqa: E402
from models.batching import batch_stream  # noqa: E402
from models.data import TrainingItems  # noqa: E402

TEMPLATES = 64
READERS = ("read_image", "read_mask", "read_density")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=60_000, help="rows of pairs.csv")
    parser.add_argument("--size", default="64x48", help="WxH of the images, masks and maps")
    parser.add_argument("--items", type=int, default=3_200, help="items timed per loader configuration")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2, help="loader workers of the second configuration")
    parser.add_argument("--quick", action="store_true", help="6,000 pairs and 640 items per configuration")
    parser.add_argument("--keep", type=Path, default=None, help="write the dataset here and keep it")
    args = parser.parse_args()
    if args.quick:
        args.pairs, args.items = min(args.pairs, 6_000), min(args.items, 640)
    width, height = (int(v) for v in args.size.lower().split("x"))
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"{args.pairs:,} pairs of {width}x{height} images; {os.cpu_count()} CPUs (load average {load}: the "
          f"worker figures need idle cores); batch {args.batch_size}")
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp) / "pairs"
        started = time.perf_counter()
        write_dataset(root, args.pairs, (width, height))
        print(f"dataset written in {time.perf_counter() - started:.1f} s")
        failed = bench_construction(root, args.pairs)
        bench_loader(root, args)
    return 1 if failed else 0


def write_dataset(root: Path, n_pairs: int, size: tuple[int, int]) -> None:
    """`n_pairs` rows sharing TEMPLATES template pairs' files; one hard link per row and side for its map."""
    width, height = size
    dataset = Dataset.create(root, "bench-loader", seed=0)
    writer = PairWriter(root)
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:height, 0:width]
    objects = [{"id": k, "mask_id": k} for k in (1, 2, 3)]
    templates = [f"t{t}" for t in range(TEMPLATES)]  # files only: no pairs.csv row names them as its pair
    for template in templates:
        for side in ("x", "y"):
            image = rng.integers(0, 255, (height, width, 3), np.uint8)
            mask = np.zeros((height, width), np.uint8)
            for k in (1, 2, 3):
                y0, x0 = int(rng.integers(0, height // 2)), int(rng.integers(0, width // 2))
                mask[y0:y0 + height // 4, x0:x0 + width // 4] = k
            writer.image(template, side, image[..., ::-1])  # drawn as cv2's BGR: the same bytes as before
            writer.mask(template, side, mask)
            cy, cx = rng.uniform(0, height), rng.uniform(0, width)
            density = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * (width / 8) ** 2)) + 1e-4
            writer.map(template, side, density, png=False)
        writer.scene(template, {"x": {"objects": objects}, "y": {"objects": objects},
                                "edit": {"type": "recolor", "object_ids": [1]}})
    rows = []
    for index in range(n_pairs):
        pair_id, template = f"{index:06d}", templates[index % TEMPLATES]
        row = {"pair_id": pair_id, "split": "train", "source": "clevr", "edit_type": "recolor", "n_edited": 1,
               "scene": relative_path(template, "scene")}
        for side in ("x", "y"):
            # The row's own map path (where the layout puts it), a hard link to its template's map.
            os.link(writer.path(template, "map_npy", side), writer.path(pair_id, "map_npy", side))
            row.update({f"{side}_image": relative_path(template, "image", side),
                        f"{side}_mask": relative_path(template, "mask", side),
                        f"{side}_map": relative_path(pair_id, "map_npy", side), f"n_observers_{side}": 7})
        rows.append(row)
    dataset.add_pairs(rows)


def bench_construction(root: Path, n_pairs: int) -> bool:
    """Print construction figures; True if construction read an image, map or mask."""
    csv_s = best_of(3, lambda: pd.read_csv(pairs_path(root)))
    opened: list[str] = []
    counting = [False]

    def audit(event: str, args) -> None:
        if counting[0] and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
            opened.append(os.fsdecode(args[0]))

    sys.addaudithook(audit)
    calls = {name: 0 for name in READERS}
    originals = {name: getattr(data_module, name) for name in READERS}
    for name in READERS:
        def counted(*a, _name=name, **k):
            calls[_name] += 1
            return originals[_name](*a, **k)

        setattr(data_module, name, counted)
    try:
        counting[0] = True
        started = time.perf_counter()
        items = TrainingItems(root, "train", unit="pair", require=("y", "x_map", "y_map", "x_mask", "y_mask"))
        build_s = time.perf_counter() - started
        counting[0] = False
    finally:
        counting[0] = False
        for name, original in originals.items():
            setattr(data_module, name, original)
    data_files = [p for p in opened if Path(p).suffix in (".png", ".npy", ".jpg") and str(root) in p]
    others = sorted({Path(p).name for p in opened if str(root) in p and p not in data_files})
    print(f"\nconstruction: TrainingItems of {len(items):,} pair items in {build_s:.2f} s "
          f"({1e6 * build_s / n_pairs:.1f} us/row)")
    print(f"  files opened under the dataset: {len(data_files)} images/maps/masks, others {others}; "
          f"reader calls {calls}")
    print(f"  baseline pandas.read_csv(pairs.csv): {csv_s:.3f} s  -> construction / read_csv = {build_s / csv_s:.1f}x")
    tenth = root.parent / f"{root.name}-tenth"
    subset = Dataset.create(tenth, "bench-loader-tenth", seed=0)
    table = pd.read_csv(pairs_path(root), dtype=str, keep_default_na=False).iloc[: max(1, n_pairs // 10)]
    for folder in SUBDIRS:  # the subset reads the full dataset's files
        (tenth / folder).rmdir()
        (tenth / folder).symlink_to(root / folder)
    subset.add_pairs(table)
    small_s = best_of(1, lambda: TrainingItems(tenth, "train", unit="pair",
                                               require=("y", "x_map", "y_map", "x_mask", "y_mask")))
    per_row_small, per_row_full = small_s / len(table), build_s / n_pairs
    print(f"  at {len(table):,} rows: {small_s:.2f} s ({1e6 * per_row_small:.1f} us/row); "
          f"per-row cost at all rows / at a tenth = {per_row_full / per_row_small:.2f}x (1.0 = linear)")
    read_anything = bool(data_files) or any(calls.values())
    if read_anything:
        print("FAILED: construction read data files; it must read pairs.csv and check that maps exist only")
    return read_anything


def bench_loader(root: Path, args) -> None:
    items = TrainingItems(root, "train", unit="pair", require=("y", "x_map", "y_map", "x_mask", "y_mask"))
    rows = items.readers["pair"].rows
    n_items = max(args.batch_size, args.items // args.batch_size * args.batch_size)
    baseline_s = best_of(2, lambda: raw_reads(root, rows, n_items))
    baseline = n_items / baseline_s
    print(f"\nloader: {n_items:,} items a configuration, batch {args.batch_size}")
    print(f"  baseline, the same files with cv2 / np.load / json in a loop: {baseline:,.0f} items/s")
    rates = {}
    for workers in (0, args.workers):
        rate, first_s = loader_rate(items, workers, args.batch_size, n_items // args.batch_size)
        rates[workers] = rate
        print(f"  batch_stream, {workers} workers: {rate:,.0f} items/s = {rate / baseline:.2f}x the baseline "
              f"(first batch {1000 * first_s:.0f} ms)")
    print(f"  {args.workers} workers / 0 workers = {rates[args.workers] / rates[0]:.2f}x")


def raw_reads(root: Path, rows: list[dict], n_items: int) -> None:
    """What one pair item reads, for `n_items` rows in the loader's order of files, without any dataset code."""
    for row in (rows[i % len(rows)] for i in range(n_items)):
        for side in ("x", "y"):
            cv2.imread(str(root / row[f"{side}_image"]), cv2.IMREAD_COLOR)
            cv2.imread(str(root / row[f"{side}_mask"]), cv2.IMREAD_UNCHANGED)
            np.load(root / row[f"{side}_map"])
        json.loads((root / row["scene"]).read_text(encoding="utf-8"))


def loader_rate(items, workers: int, batch_size: int, n_batches: int) -> tuple[float, float]:
    """(items/s over `n_batches` batches after the first, seconds to the first batch)."""
    stream = batch_stream(items, 0, batch_size=batch_size, seed=0, num_workers=workers, collate_fn=collate)
    try:
        started = time.perf_counter()
        next(stream)
        first_s = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(n_batches):
            next(stream)
        return n_batches * batch_size / (time.perf_counter() - started), first_s
    finally:
        stream.close()


def best_of(repeats: int, run) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


if __name__ == "__main__":
    sys.exit(main())
