"""`gazelab evaluate --workers N`: pairs scored per second with 1 and 2 worker processes.

    python benchmarks/bench_evaluate.py [--pairs 24] [--size 96x72] [--workers 1 2]

The data: box scenes written through `datadir.PairWriter` (`--pairs` test pairs at `--size`). The
methods: HAG (the training-free editor; every output is a run of its optimisation under a 2-step
SalG-GAN detector) and the unedited input, scored with that detector as predictor and LPIPS on its
test-only random weights (no downloads here), FID and C2ST off: the per-pair work the workers share.
The baseline is the same evaluation in one process, measured in the same run; each row prints its
pairs/s and the ratio to it. Start-up (spawning workers, loading the editor in each) is included:
that is what a user waits for.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datadir import Dataset, PairWriter  # noqa: E402
from gazelab.evaluation import evaluate, parse_methods  # noqa: E402
from models.runs import train  # noqa: E402


def box_dataset(root: Path, n_pairs: int, size: tuple[int, int], seed: int = 0) -> Path:
    """n_pairs test pairs (and 2 training pairs for the detector) of coloured boxes; Y recolours box 1."""
    width, height = size
    dataset = Dataset.create(root, "bench-evaluate", seed=seed, image_size=[width, height])
    writer, rng, rows = PairWriter(root), np.random.default_rng(seed), []
    for index in range(n_pairs + 2):
        pair_id = f"{index:06d}"
        image = np.full((height, width, 3), 120, np.uint8)
        mask = np.zeros((height, width), np.uint8)
        for k in (1, 2):
            x0, y0 = int(rng.integers(0, width * 3 // 4)), int(rng.integers(0, height * 3 // 4))
            image[y0:y0 + height // 5, x0:x0 + width // 5] = rng.integers(30, 230, 3)
            mask[y0:y0 + height // 5, x0:x0 + width // 5] = k
        y = image.copy()
        y[mask == 1] = rng.integers(30, 230, 3)
        ys, xs = np.mgrid[0:height, 0:width]
        centre = np.argwhere(mask == 1).mean(axis=0) if (mask == 1).any() else (height / 2, width / 2)
        target = np.exp(-((ys - centre[0]) ** 2 + (xs - centre[1]) ** 2) / (2 * (width / 10) ** 2)) + 1e-4
        objects = [{"id": k, "mask_id": k} for k in (1, 2)]
        rows.append(writer.write(pair_id, split="test" if index >= 2 else "train", source="clevr",
                                 edit_type="recolor", n_edited=1, images={"x": image, "y": y},
                                 masks={"x": mask, "y": mask}, maps={"x": np.ones((height, width)), "y": target},
                                 scene={"x": {"objects": objects}, "y": {"objects": objects},
                                        "edit": {"type": "recolor", "object_ids": [1]}},
                                 n_observers_x=5, n_observers_y=5))
    dataset.add_pairs(rows)
    return root


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=96)
    parser.add_argument("--size", default="160x120", help="W x H of the images")
    parser.add_argument("--workers", type=int, nargs="+", default=[2])
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = box_dataset(root / "data", args.pairs, (width, height))
        quiet = {"device": "cpu", "progress": False, "echo": lambda line: None}
        detector = train("predictor", "salg_detector", data, root / "det", preset="tiny", steps=2, batch_size=2,
                         **quiet)["checkpoint"]
        editor = train("editor", "hag", data, root / "hag", preset="tiny", predictor_ckpt=detector, **quiet)
        methods = parse_methods([f"hag={editor['checkpoint']}"])
        print(f"evaluate: {args.pairs} test pairs at {width}x{height}, HAG + input, predictor salg_detector (tiny), "
              "LPIPS random test weights, no FID/C2ST, CPU")
        rates = {}
        for workers in [1, *[w for w in args.workers if w != 1]]:
            start = time.perf_counter()
            evaluate(data, methods, root / f"eval-{workers}", predictor=detector, device="cpu", fid=False,
                     c2st=False, progress=False, workers=workers, _random_weights_for_tests=True)
            seconds = time.perf_counter() - start
            rates[workers] = 2 * args.pairs / seconds  # two methods scored on every pair
            print(f"  workers {workers}: {seconds:6.1f} s, {rates[workers]:6.2f} pair-scores/s, "
                  f"{rates[workers] / rates[1]:.2f}x the 1-process baseline")
    return 0


if __name__ == "__main__":
    sys.exit(main())
