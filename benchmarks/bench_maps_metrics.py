"""Benchmark fixation maps and saliency metrics on random data, against in-process baselines.

    python benchmarks/bench_maps_metrics.py                # 500 maps of 480x640
    python benchmarks/bench_maps_metrics.py --n-maps 20    # quick

One run, one set of random data (each map has 50-200 fixations, partly clustered):
(a) `analysis.fixations.fixation_map` against scipy.ndimage.gaussian_filter on the same count
    image (np.add.at), same sigma, zero padding, kernel cut at 4 sigma: ratio scipy / ours.
(b) each metric's total time over all maps, and all of them beside a numpy baseline (a float64
    sum of each prediction and of its ground truth); AUC-Judd and AUC-Borji also against a plain
    loop over thresholds written as MIT's MATLAB code does it (speed-up = loop / ours), and
    the largest difference between the two results.
(c) all eight metrics on all maps in one `score_many` call.
(d) each `analysis.attention_shift` metric per image (fixation map as before, prediction as
    after, a random rectangle as the mask), against a plain numpy pass over the same two maps
    (ratio = metric / numpy reference).
(e) each `analysis.fidelity` image distance (L1, MSE, PSNR, SSIM) per uint8 RGB image pair of
    the map size, and `gazelab evaluate`'s whole per-image pass (`analysis.eval_pairs.pair_metrics`
    with maps), against a plain numpy mean absolute difference of the same two images.
A summary ends the run: the two timed goals of issue 20 (all eight metrics on 500 maps of 480x640
in <= 10 s; the per-image evaluation pass in <= 100 ms), each beside its numpy baseline of the same
run. The goals hold for an idle 2-core machine; on a busy one, compare the ratios to the baseline
(DESIGN.md §6), which the load slows alike.
"""
from __future__ import annotations

import argparse
import sys
import time

import cv2
import numpy as np
from scipy import ndimage
from tqdm import tqdm

from analysis import attention_shift as ash
from analysis import fixations as fx
from analysis import metrics as mt
from analysis import scoring

# MIT's sAUC draws its negatives from the fixations of this many other images.
N_OTHER_IMAGES = 10
# Issue 20's goals on an idle 2-core machine: all eight metrics (score_many) on 500 maps of
# 480x640, and the per-image evaluation pass (pair_metrics) on 480x640 images.
GOAL_METRICS_S_PER_500_MAPS = 10.0
GOAL_PAIR_METRICS_MS = 100.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-maps", type=int, default=500)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--sigma-px", type=float, default=19.0, help="SALICON: 19 px at 640x480")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="time each call this often, keep the fastest")
    args = parser.parse_args(argv)
    if args.n_maps < 2 or args.height < 8 or args.width < 8 or args.sigma_px <= 0 or args.repeat < 1:
        parser.error("need --n-maps >= 2, --height and --width >= 8, --sigma-px > 0 and --repeat >= 1")
    repeat = args.repeat
    shape = (args.height, args.width)
    rng = np.random.default_rng(args.seed)

    points = [_random_fixations(rng, shape) for _ in range(args.n_maps)]
    preds = [_random_prediction(rng, p, shape, args.sigma_px) for p in tqdm(points, desc="data", leave=False)]
    binary = [_binary_map(p, shape) for p in points]
    others = [
        np.concatenate([points[j] for j in rng.choice(np.delete(np.arange(args.n_maps), i),
                                                       min(N_OTHER_IMAGES, args.n_maps - 1), replace=False)])
        for i in range(args.n_maps)
    ]
    baseline = _centre_bias(shape)
    n_fix = np.array([len(p) for p in points])
    print(f"{args.n_maps} maps of {args.height}x{args.width}, {n_fix.min()}-{n_fix.max()} fixations "
          f"(mean {n_fix.mean():.0f}), sigma {args.sigma_px:g} px, seed {args.seed}; "
          f"each call timed {repeat}x, fastest kept")

    # (a) fixation maps
    gts, t_ours = _timed(lambda p: fx.fixation_map(p, shape, args.sigma_px), points, "fixation_map", repeat)
    scipy_maps, t_scipy = _timed(lambda p: _scipy_fixation_map(p, shape, args.sigma_px), points, "scipy", repeat)
    worst = max(float(np.abs(a - b).max() / a.max()) for a, b in zip(gts, scipy_maps))
    del scipy_maps
    print("\n(a) fixation maps from points")
    _table(["method", "total s", "ms / map"], [
        ["analysis.fixations.fixation_map", f"{t_ours:.3f}", f"{1e3 * t_ours / args.n_maps:.2f}"],
        ["np.add.at + ndimage.gaussian_filter", f"{t_scipy:.3f}", f"{1e3 * t_scipy / args.n_maps:.2f}"],
    ])
    print(f"    ratio scipy / ours: {t_scipy / t_ours:.2f}x   largest |difference| / max: {worst:.2e}")

    # (b) each metric over all maps
    calls = {
        "nss": lambda i: mt.nss(preds[i], points[i]),
        "cc": lambda i: mt.cc(preds[i], gts[i]),
        "sim": lambda i: mt.sim(preds[i], gts[i]),
        "kld": lambda i: mt.kld(preds[i], gts[i]),
        "auc_judd": lambda i: mt.auc_judd(preds[i], points[i]),
        "auc_borji": lambda i: mt.auc_borji(preds[i], points[i], rng=args.seed + i),
        "sauc": lambda i: mt.sauc(preds[i], points[i], others[i], rng=args.seed + i),
        "info_gain": lambda i: mt.info_gain(preds[i], baseline, points[i]),
    }
    loops = {
        "auc_judd": lambda i: auc_judd_loop(preds[i], binary[i]),
        "auc_borji": lambda i: auc_borji_loop(preds[i], binary[i], rng=args.seed + i),
    }
    indices = list(range(args.n_maps))
    _, t_numpy = _timed(lambda i: numpy_reference(preds[i], gts[i]), indices, "numpy", repeat)
    rows, means = [], {}
    for name, call in calls.items():
        values, seconds = _timed(call, indices, name, repeat)
        means[name] = float(np.mean(values))
        row = [name, f"{seconds:.3f}", f"{1e3 * seconds / args.n_maps:.2f}", "", "", ""]
        if name in loops:
            reference, loop_seconds = _timed(loops[name], indices, name + " loop", repeat)
            row[3:] = [f"{loop_seconds:.3f}", f"{loop_seconds / seconds:.1f}x",
                       f"{np.abs(np.subtract(values, reference)).max():.1e}"]
        rows.append(row)
    print(f"\n(b) metrics, total over {args.n_maps} maps (loop = per-threshold reference as in MIT's code)")
    _table(["metric", "ours s", "ms / map", "loop s", "speed-up", "max |diff|"], rows)
    t_each = sum(float(r[1]) for r in rows)
    print(f"    all {len(rows)}: {t_each:.2f} s, {t_each / t_numpy:.0f}x the numpy baseline "
          f"(a float64 sum of each map and of its ground truth: {t_numpy:.3f} s)")

    # (c) everything in one pass
    items = [(f"map{i:04d}", preds[i], gts[i], points[i]) for i in indices]
    (table,), seconds = _timed(
        lambda _: scoring.score_many(items, metrics=tuple(mt.METRICS), baseline=baseline, rng=args.seed),
        [None], "score_many", repeat)
    print(f"\n(c) score_many, all {len(mt.METRICS)} metrics on {args.n_maps} maps in one pass "
          f"(sAUC negatives: all other maps' fixations; fastest of {repeat} passes)")
    print(f"    total {seconds:.2f} s, {1e3 * seconds / args.n_maps:.1f} ms / map")
    _table(["metric", "mean (b)", "mean (c)"],
           [[m, f"{means[m]:.4f}", f"{table[m].mean():.4f}"] for m in mt.METRICS])
    t_all = seconds

    # (d) attention-shift metrics
    attention_shift_section(gts, preds, shape, rng, repeat)
    # (e) image distances and the evaluation's per-image pass
    t_pair, t_pair_numpy = image_distance_section(gts, preds, shape, rng, repeat, n_images=min(args.n_maps, 50))

    area = args.height * args.width / (480 * 640)
    goal_s, goal_ms = GOAL_METRICS_S_PER_500_MAPS * args.n_maps / 500 * area, GOAL_PAIR_METRICS_MS * area
    print(f"\nsummary ({args.height}x{args.width}; goals for an idle 2-core machine, scaled to this run's map count "
          "and size; ratio = time / the numpy baseline of this run)")
    _table(["what", "time", "goal", "met", "x numpy", "numpy baseline"], [
        [f"all {len(mt.METRICS)} metrics on {args.n_maps} maps (c)", f"{t_all:.2f} s", f"<= {goal_s:.2f} s",
         "yes" if t_all <= goal_s else "no", f"{t_all / t_numpy:.0f}x", f"{t_numpy:.3f} s (float64 sums of the maps)"],
        ["per-image evaluation pass (e)", f"{t_pair:.1f} ms", f"<= {goal_ms:.0f} ms",
         "yes" if t_pair <= goal_ms else "no", f"{t_pair / t_pair_numpy:.1f}x",
         f"{t_pair_numpy:.2f} ms (mean |a - b| in [0, 1])"],
    ])
    return 0


def auc_judd_loop(saliency_map, fixation_map) -> float:
    """MIT AUC_Judd.m (without jitter) as written there: one pass over the map per threshold."""
    s = np.asarray(saliency_map, np.float64)
    s = ((s - s.min()) / (s.max() - s.min())).ravel()
    s_fix = s[fixation_map.ravel() > 0]
    n_fix, n_pix = len(s_fix), len(s)
    tp, fp = np.zeros(n_fix + 2), np.zeros(n_fix + 2)
    tp[-1] = fp[-1] = 1.0
    for i, thresh in enumerate(np.sort(s_fix)[::-1], start=1):
        above = np.sum(s >= thresh)
        tp[i] = i / n_fix
        fp[i] = (above - i) / (n_pix - n_fix)
    return float(np.sum(np.diff(fp) * (tp[1:] + tp[:-1]) / 2))


def auc_borji_loop(saliency_map, fixation_map, n_splits=100, step=0.1, rng=None) -> float:
    """MIT AUC_Borji.m as written there: loops over splits and thresholds. Draws its random
    pixels with the same call as `analysis.metrics.auc_borji`, so the results agree."""
    s = np.asarray(saliency_map, np.float64)
    s = ((s - s.min()) / (s.max() - s.min())).ravel()
    s_fix = s[fixation_map.ravel() > 0]
    n_fix = len(s_fix)
    random_values = s[np.random.default_rng(rng).integers(0, len(s), size=(n_splits, n_fix))]
    aucs = []
    for cur in random_values:
        top = max(s_fix.max(), cur.max())
        thresholds = step * np.arange(int(np.floor(top / step + 1e-9)), -1, -1)
        tp, fp = np.zeros(len(thresholds) + 2), np.zeros(len(thresholds) + 2)
        tp[-1] = fp[-1] = 1.0
        for i, thresh in enumerate(thresholds, start=1):
            tp[i] = np.sum(s_fix >= thresh) / n_fix
            fp[i] = np.sum(cur >= thresh) / n_fix
        aucs.append(np.sum(np.diff(fp) * (tp[1:] + tp[:-1]) / 2))
    return float(np.mean(aucs))


def _scipy_fixation_map(points, shape, sigma_px) -> np.ndarray:
    counts = np.zeros(shape, np.float32)
    inside = (points[:, 0] < shape[1]) & (points[:, 1] < shape[0])
    np.add.at(counts, (points[inside, 1].astype(np.intp), points[inside, 0].astype(np.intp)), 1.0)
    blurred = ndimage.gaussian_filter(counts, sigma_px, mode="constant", truncate=4.0)
    return blurred / blurred.sum(dtype=np.float64)


def _random_fixations(rng, shape) -> np.ndarray:
    """50-200 (x, y) points: two thirds around 1-4 random centres, the rest uniform."""
    height, width = shape
    n = int(rng.integers(50, 201))
    n_clustered = 2 * n // 3
    centres = rng.random((int(rng.integers(1, 5)), 2)) * [width, height]
    clustered = centres[rng.integers(0, len(centres), n_clustered)] + rng.normal(0, 0.06 * width, (n_clustered, 2))
    points = np.concatenate([clustered, rng.random((n - n_clustered, 2)) * [width, height]])
    return np.clip(points, 0, np.nextafter([width, height], 0))


def _random_prediction(rng, points, shape, sigma_px) -> np.ndarray:
    """A float32 map that resembles the fixations: shifted points blurred, plus smooth noise."""
    height, width = shape
    shifted = np.clip(points + rng.normal(0, 0.05 * width, points.shape), 0, np.nextafter([width, height], 0))
    density = fx.fixation_map(shifted, shape, 1.5 * sigma_px)
    noise = cv2.resize(rng.random((6, 8)), (width, height), interpolation=cv2.INTER_CUBIC).clip(0, None)
    return (0.7 * density / density.max() + 0.3 * noise).astype(np.float32)


def _binary_map(points, shape) -> np.ndarray:
    binary = np.zeros(shape, bool)
    binary[points[:, 1].astype(np.intp), points[:, 0].astype(np.intp)] = True
    return binary


def _centre_bias(shape) -> np.ndarray:
    """A Gaussian centre-bias density (sigma a quarter of each side), the info-gain baseline."""
    height, width = shape
    y = (np.arange(height) + 0.5 - height / 2) / (height / 4)
    x = (np.arange(width) + 0.5 - width / 2) / (width / 4)
    bias = np.exp(-0.5 * (y[:, None] ** 2 + x[None, :] ** 2))
    return bias / bias.sum()


def _timed(function, inputs, label, repeat):
    """Results of `function` on each input, and the total over inputs of the fastest of
    `repeat` calls (the least disturbed by other processes, as timeit advises)."""
    results, seconds = [], 0.0
    for value in tqdm(inputs, desc=label, leave=False):
        best = float("inf")
        for _ in range(repeat):
            start = time.perf_counter()
            result = function(value)
            best = min(best, time.perf_counter() - start)
        results.append(result)
        seconds += best
    return results, seconds


def _table(header, rows) -> None:
    widths = [max(len(str(r[c])) for r in [header, *rows]) for c in range(len(header))]
    for line in [header, ["-" * w for w in widths], *rows]:
        print("    " + "  ".join(str(v).ljust(w) if c == 0 else str(v).rjust(w)
                                  for c, (v, w) in enumerate(zip(line, widths))))


def attention_shift_section(befores, afters, shape, rng, repeat) -> None:
    """(d): time each attention-shift metric per image against `numpy_reference` on the same
    pair of maps, in the same run; print ms per image, the ratio and the metric's mean."""
    masks = [_random_rectangle(rng, shape) for _ in befores]
    labels = [_random_labels(rng, shape, mask) for mask in masks]
    calls = {
        "saliency_increase": lambda i: ash.saliency_increase(befores[i], afters[i], masks[i]),
        "relative_saliency_increase": lambda i: ash.relative_saliency_increase(befores[i], afters[i], masks[i]),
        "weighted_fbeta": lambda i: ash.weighted_fbeta(afters[i], masks[i]),
        "cc_to_mask": lambda i: ash.cc_to_mask(afters[i], masks[i]),
        "sagim_c1": lambda i: ash.sagim_c1(befores[i], afters[i], labels[i]),
        "sagim_c2": lambda i: ash.sagim_c2(befores[i], afters[i], labels[i]),
        "delta_p_object": lambda i: ash.delta_p_object(befores[i], afters[i], masks[i])[0],
        "entropy_change": lambda i: ash.entropy_change(befores[i], afters[i]),
        "saliency_kld": lambda i: ash.saliency_kld(befores[i], afters[i]),
    }
    indices = list(range(len(befores)))
    _, t_reference = _timed(lambda i: numpy_reference(befores[i], afters[i]), indices, "numpy", repeat)
    rows = []
    for name, call in calls.items():
        values, seconds = _timed(call, indices, name, repeat)
        rows.append([name, f"{1e3 * seconds / len(indices):.3f}", f"{seconds / t_reference:.1f}x",
                     f"{np.nanmean(np.asarray(values, np.float64)):.4f}"])
    print(f"\n(d) attention-shift metrics per image ({len(indices)} pairs of {shape[0]}x{shape[1]} maps; "
          f"numpy reference: sum of each map, {1e3 * t_reference / len(indices):.3f} ms / image)")
    _table(["metric", "ms / image", "x numpy", "mean"], rows)


def image_distance_section(befores, afters, shape, rng, repeat, n_images: int) -> tuple[float, float]:
    """(e): `analysis.fidelity` per image pair and `pair_metrics` (every per-image metric of an
    evaluation, maps included) on uint8 RGB images (the metrics' convention) against a plain numpy
    mean |a - b| of the same images in [0, 1]. Returns (pair_metrics, numpy) in ms per image."""
    from analysis import fidelity
    from analysis.eval_pairs import PairInputs, pair_metrics

    images = [rng.integers(0, 256, (*shape, 3), dtype=np.uint8) for _ in range(n_images)]
    edits = [np.clip(np.round(image + rng.normal(0, 12.0, image.shape)), 0, 255).astype(np.uint8) for image in images]
    masks = [_random_rectangle(rng, shape) for _ in images]
    pairs = [PairInputs(str(i), "clevr", "recolor", images[i], images[(i + 1) % n_images],
                        _random_labels(rng, shape, masks[i]), masks[i], None, befores[i] / befores[i].sum(), None)
             for i in range(n_images)]
    indices = list(range(n_images))
    _, t_reference = _timed(lambda i: float(np.abs(edits[i] / 255.0 - images[i] / 255.0).mean()), indices, "numpy",
                            repeat)
    calls = {
        "l1": lambda i: fidelity.l1(edits[i], images[i]),
        "mse": lambda i: fidelity.mse(edits[i], images[i]),
        "psnr": lambda i: fidelity.psnr(edits[i], images[i]),
        "ssim": lambda i: fidelity.ssim(edits[i], images[i]),
        "pair_metrics (all)": lambda i: len(pair_metrics(pairs[i], edits[i], befores[i], afters[i])[0]),
    }
    rows, ms_per_image = [], {}
    for name, call in calls.items():
        values, seconds = _timed(call, indices, name, repeat)
        ms_per_image[name] = 1e3 * seconds / n_images
        rows.append([name, f"{1e3 * seconds / n_images:.3f}", f"{seconds / t_reference:.1f}x",
                     f"{np.mean(np.asarray(values, np.float64)):.4f}"])
    print(f"\n(e) image distances per image pair ({n_images} uint8 RGB pairs of {shape[0]}x{shape[1]}; numpy "
          f"reference: mean |a - b| in [0, 1], {1e3 * t_reference / n_images:.3f} ms / image)")
    _table(["metric", "ms / image", "x numpy", "mean (pair_metrics: metrics per image)"], rows)
    return ms_per_image["pair_metrics (all)"], 1e3 * t_reference / n_images


def numpy_reference(before, after) -> float:
    """The plain numpy baseline of (d): one float64 sum over each of the two maps."""
    return float(np.sum(before, dtype=np.float64) + np.sum(after, dtype=np.float64))


def _random_rectangle(rng, shape) -> np.ndarray:
    """A boolean mask: a rectangle a sixth to a third of each side, anywhere in the image."""
    height, width = shape
    h, w = int(rng.integers(height // 6, height // 3 + 1)), int(rng.integers(width // 6, width // 3 + 1))
    top, left = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
    mask = np.zeros(shape, bool)
    mask[top:top + h, left:left + w] = True
    return mask


def _random_labels(rng, shape, mask) -> np.ndarray:
    """Object ids: two random rectangles (2, 3), then `mask` on top as object 1; redrawn until
    at least two objects stay visible (SaGIM's C1 and C2 need two)."""
    while True:
        labels = np.zeros(shape, np.uint8)
        for object_id in (2, 3):
            labels[_random_rectangle(rng, shape)] = object_id
        labels[mask] = 1
        if np.unique(labels[labels > 0]).size >= 2:
            return labels


if __name__ == "__main__":
    sys.exit(main())
