"""Recovery: do the saliency predictors learn a KNOWN saliency model from simulated observers?

    python benchmarks/bench_recovery.py --quick          # synthetic scenes, both predictors, <~15 min on 2 cores
    python benchmarks/bench_recovery.py                  # more scenes and steps
    python benchmarks/bench_recovery.py --render --quick # Blender-rendered CLEVR pairs instead (bpy; slow)

Scenes: by default synthesised in numpy (CLEVR's colours, three shapes drawn as a square, a
shaded disc and a capped cylinder, matte or metal with a highlight, large or small, on a
textured ground), each a pair X / Y where Y recolours one object; with --render, CLEVR pairs
rendered by datagen (`datagen.pipeline.generate`). The known saliency of every image is the
simulated participants' model, `studyweb.simulate.popout_density` (objects weighted by how
rare their colour, shape and material are in the scene, and by size, plus a centre bias).
Observers click from it (`sample_clicks`, 5–15 clicks each, as the simulated BubbleView
participants do) and their clicks make the fixation maps (`analysis.fixations.fixation_map`,
σ = BubbleView's 25 px scaled to the image width, as `studyweb.maps`) that the predictors train
on, through `models.runs.train` on the gazelab dataset dir written here.

Scored on the X images of held-out scenes (split "test"; X and Y of one scene are near copies,
which would flatter the shuffle), against the generating density (CC) and held-out clicks
(NSS), beside the two controls of `analysis.controls` (a centre Gaussian; the shuffle: each
prediction against another image's density) and the noise of the training signal (each held-out
image's own fixation map against its density). Backbones are random
(no ImageNet weights offline; DESIGN.md §4) and every line says so. The last line is the
headline for the best predictor: `recovery CC=… centre=… shuffle=…` (mean CC over held-out images).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.controls import control_verdicts, with_controls  # noqa: E402
from analysis.fixations import fixation_map  # noqa: E402
from analysis.metrics import cc  # noqa: E402
from datadir import Dataset, PairWriter  # noqa: E402
from studyweb.simulate import popout_density, sample_clicks  # noqa: E402

CLEVR_COLOURS = {"gray": (87, 87, 87), "red": (173, 35, 35), "blue": (42, 75, 215), "green": (29, 105, 20),
                 "brown": (129, 74, 25), "purple": (129, 38, 192), "cyan": (41, 208, 208), "yellow": (255, 238, 51)}
SHAPES = ("cube", "sphere", "cylinder")
MATERIALS = ("rubber", "metal")
SIZES = {"large": 0.075, "small": 0.045}  # object half-extent as a fraction of the image width
CLICKS_PER_OBSERVER = (5, 15)  # studyweb.simulate.run_participant's default
# (pairs for training, held-out pairs, observers per image, training steps per model) per mode
MODES = {"quick": (200, 24, 15, {"salgan": 800, "salg_detector": 1000}),
         "full": (600, 48, 15, {"salgan": 3000, "salg_detector": 3000})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer scenes and steps (at most ~15 min on 2 cores)")
    parser.add_argument("--render", action="store_true", help="render CLEVR pairs with Blender (bpy) instead")
    parser.add_argument("--size", default="96x72", help="image WxH in pixels [96x72]")
    parser.add_argument("--models", nargs="*", default=["salgan", "salg_detector"])
    parser.add_argument("--preset", default="cpu", help="the models' preset [cpu]")
    parser.add_argument("--steps", type=int, default=None, help="training steps for every model [the mode's]")
    parser.add_argument("--pairs", type=int, default=None, help="training pairs [the mode's]")
    parser.add_argument("--test-pairs", type=int, default=None, help="held-out pairs [the mode's]")
    parser.add_argument("--observers", type=int, default=None, help="simulated observers per image [15]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="keep the dataset and runs here [a temp dir]")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    width, height = (int(v) for v in args.size.lower().split("x"))
    n_train, n_test, observers, steps = MODES["quick" if args.quick else "full"]
    n_train, n_test = args.pairs or n_train, args.test_pairs or n_test
    if n_test < 2:
        raise SystemExit(f"--test-pairs {n_test}: the shuffle control needs at least 2 held-out pairs")
    observers = args.observers or observers
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    print(f"recovery benchmark: {'rendered' if args.render else 'synthetic'} scenes {width}x{height}, "
          f"{n_train} training + {n_test} held-out pairs, {observers} simulated observers per image, "
          f"{torch.get_num_threads()} torch threads; random backbones (no ImageNet weights offline)")
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        data_dir = root / "dataset"
        start = time.perf_counter()
        if args.render:
            truth = render_dataset(data_dir, n_train + n_test, n_test, (width, height), args.seed)
        else:
            truth = synthetic_dataset(data_dir, n_train, n_test, (width, height), args.seed)
        held_out = simulate_observers(data_dir, truth, observers, args.seed)
        print(f"data: {len(truth)} images with known densities in {time.perf_counter() - start:.1f} s; "
              f"one image's own fixation map ({observers} observers) vs its density: CC {held_out['map_cc']:.3f} "
              "(held-out mean; a predictor averages over many images' maps and can do better)")
        results = {}
        for name in args.models:
            results[name] = train_and_score(name, data_dir, root / "runs" / name, args.preset,
                                            args.steps or steps.get(name, 600), held_out, args.seed)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    best = max(results, key=lambda n: results[n]["cc"])
    start = "from a random VGG16 backbone" if results[best]["random_backbone"] else "from scratch"
    print(f"best: {best} ({results[best]['steps']} steps {start}); whole benchmark {time.perf_counter() - began:.0f} s")
    print(f"recovery CC={results[best]['cc']:.2f} centre={results[best]['centre_cc']:.2f} "
          f"shuffle={results[best]['shuffle_cc']:.2f}")


# ---------------------------------------------------------------- scenes


def synthetic_dataset(data_dir: Path, n_train: int, n_test: int, size: tuple[int, int], seed: int) -> dict:
    """Write `n_train` + `n_test` synthetic pairs (split train / test) into a new gazelab dataset
    at `data_dir`; returns {(pair_id, side): (scene side, split)} for the observers."""
    dataset = Dataset.create(data_dir, "recovery-synthetic", seed=seed, image_size=list(size),
                             generator="bench_recovery")
    writer = PairWriter(data_dir)
    rng = np.random.default_rng(seed)
    rows, truth = [], {}
    for index in range(n_train + n_test):
        pair_id = f"{index:06d}"
        split = "train" if index < n_train else "test"
        scene_x = random_scene(rng, size)
        scene_y = recoloured(scene_x, rng)
        row = {"pair_id": pair_id, "split": split, "source": "clevr", "edit_type": "recolor", "n_edited": 1}
        ground = textured_ground(rng, size)
        for side, scene in (("x", scene_x), ("y", scene_y)):
            image, mask = draw_scene(ground, scene)
            row[f"{side}_image"] = writer.image(pair_id, side, image)
            row[f"{side}_mask"] = writer.mask(pair_id, side, mask)
            truth[(pair_id, side)] = (scene, split)
        edit = {"type": "recolor", "object_ids": [scene_y["edited"]]}
        row["scene"] = writer.scene(pair_id, {"x": scene_x, "y": scene_y, "edit": edit, "seed": seed,
                                              "image_size": list(size)})
        rows.append(row)
    dataset.add_pairs(rows)
    return truth


def random_scene(rng: np.random.Generator, size: tuple[int, int]) -> dict:
    """3–6 objects with CLEVR's keys (shape, color, material, size, pixel_coords [x, y, depth],
    id, mask_id), placed without overlap; colours drawn from a few per scene so that some repeat
    and the pop-out weights differ."""
    width, height = size
    n_objects = int(rng.integers(3, 7))
    palette = rng.choice(list(CLEVR_COLOURS), size=int(rng.integers(2, 5)), replace=False)
    objects: list[dict] = []
    for _ in range(200):
        if len(objects) == n_objects:
            break
        size_name = "large" if rng.random() < 0.4 else "small"
        radius = SIZES[size_name] * width
        x = float(rng.uniform(radius + 1, width - radius - 1))
        y = float(rng.uniform(radius + 1, height - radius - 1))
        if any(np.hypot(x - o["pixel_coords"][0], y - o["pixel_coords"][1]) < radius + o["radius_px"] + 2
               for o in objects):
            continue
        k = len(objects) + 1
        objects.append({"id": k, "mask_id": k, "shape": str(rng.choice(SHAPES)), "color": str(rng.choice(palette)),
                        "material": str(rng.choice(MATERIALS, p=(0.7, 0.3))), "size": size_name,
                        "pixel_coords": [x, y, float(height - y)], "radius_px": radius})
    return {"objects": objects}


def recoloured(scene: dict, rng: np.random.Generator) -> dict:
    """A copy of `scene` with one object in another colour (a CLEVR 'recolor' edit); its id in "edited"."""
    objects = [dict(o) for o in scene["objects"]]
    target = objects[int(rng.integers(len(objects)))]
    target["color"] = str(rng.choice([c for c in CLEVR_COLOURS if c != target["color"]]))
    return {"objects": objects, "edited": target["id"]}


def textured_ground(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) float32 ground in [0, 255]: a grey floor with a soft gradient and blotchy texture."""
    width, height = size
    noise = cv2.GaussianBlur(rng.normal(0, 1, (height, width)).astype(np.float32), (0, 0), 2.0)
    fine = rng.normal(0, 4, (height, width)).astype(np.float32)
    ys = np.linspace(-1, 1, height, dtype=np.float32)[:, None]
    base = 128 + 14 * ys + 18 * noise / max(float(noise.std()), 1e-6) + fine
    tint = rng.uniform(-8, 8, 3).astype(np.float32)
    return np.clip(base[..., None] + tint, 0, 255).astype(np.float32)


def draw_scene(ground: np.ndarray, scene: dict) -> tuple[np.ndarray, np.ndarray]:
    """The scene's objects drawn on `ground`, back to front: (RGB uint8 image, uint8 mask of mask_ids)."""
    image = ground.copy()
    height, width = image.shape[:2]
    mask = np.zeros((height, width), np.uint8)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
    for obj in sorted(scene["objects"], key=lambda o: o["pixel_coords"][1]):
        x, y = obj["pixel_coords"][:2]
        r = obj["radius_px"]
        dx, dy = (xs - x) / r, (ys - y) / r
        if obj["shape"] == "cube":
            inside = (np.abs(dx) <= 0.85) & (np.abs(dy) <= 0.85)
            shade = np.where(dy < -0.35, 1.25, 1.0 - 0.15 * dx)  # a lit top face
        elif obj["shape"] == "sphere":
            inside = dx**2 + dy**2 <= 1.0
            shade = 1.15 - 0.45 * np.sqrt((dx + 0.35) ** 2 + (dy + 0.35) ** 2)
        else:  # cylinder: a body with a lighter elliptical cap
            cap = dx**2 + ((dy + 0.55) / 0.35) ** 2 <= 1.0
            inside = ((np.abs(dx) <= 0.8) & (np.abs(dy + 0.1) <= 0.75)) | cap
            shade = np.where(cap, 1.3, 1.0 - 0.25 * np.abs(dx))
        colour = np.asarray(CLEVR_COLOURS[obj["color"]], np.float32)
        pixels = colour * shade[..., None]
        if obj["material"] == "metal":  # a sharp highlight and darker rims
            highlight = np.exp(-((dx + 0.3) ** 2 + (dy + 0.3) ** 2) / 0.03)[..., None]
            pixels = pixels * (0.75 + 0.25 * shade[..., None]) + 230 * highlight
        image[inside] = pixels[inside]
        mask[inside] = obj["mask_id"]
    return np.clip(image, 0, 255).astype(np.uint8), mask


def render_dataset(data_dir: Path, n_pairs: int, n_test: int, size: tuple[int, int], seed: int) -> dict:
    """CLEVR pairs rendered by datagen (Blender) into `data_dir`; the last `n_test` become the test split."""
    from datagen.generator_config import GeneratorConfig
    from datagen.pipeline import generate

    width, height = size
    config = GeneratorConfig.from_options(n_pairs, width=width, height=height, samples=16, seed=seed,
                                          objects="3-6", splits="1,0,0")
    summary = generate(data_dir, config, workers=max(1, (os.cpu_count() or 1) // 2))
    if summary.failed:
        raise RuntimeError(f"{len(summary.failed)} pair(s) failed to render")
    dataset = Dataset.open(data_dir)
    pair_ids = sorted(dataset.pairs["pair_id"])
    test = set(pair_ids[-n_test:])
    dataset.update_pairs([{"pair_id": p, "split": "test" if p in test else "train"} for p in pair_ids])
    truth = {}
    for pair_id in pair_ids:
        scene = json.loads(dataset.path_of(pair_id, "scene").read_text())
        for side in ("x", "y"):
            truth[(pair_id, side)] = (scene[side], "test" if pair_id in test else "train")
    return truth


# ---------------------------------------------------------------- observers and maps


def simulate_observers(data_dir: Path, truth: dict, observers: int, seed: int) -> dict:
    """Clicks of `observers` simulated participants per image from its pop-out density; writes
    the fixation maps (.npy density, .png) and clicks into the dataset and fills pairs.csv.

    Returns the held-out (test) X images: {"items": [{name, image, density, clicks}], "map_cc": mean
    CC of their own fixation maps with their densities (how noisy one image's map is)}.
    """
    dataset = Dataset.open(data_dir)
    writer = PairWriter(data_dir)
    rng = np.random.default_rng(seed + 1)
    updates: dict[str, dict] = {}
    items, map_cc = [], []
    for (pair_id, side), (scene, split) in sorted(truth.items()):
        image_path = dataset.path_of(pair_id, "image", side)
        height, width = cv2.imread(str(image_path)).shape[:2]
        density = popout_density(scene, (width, height))
        clicks = [dict(c, participant_id=f"sim{p:03d}") for p in range(observers)
                  for c in sample_clicks(density, int(rng.integers(*CLICKS_PER_OBSERVER, endpoint=True)), rng)]
        points = np.array([[c["x"], c["y"]] for c in clicks])
        fixations = fixation_map(points, (height, width), 25.0 * width / 640.0)
        map_file = writer.map(pair_id, side, fixations, png=True)
        # Rounded as the file always held them: pixels to 1/1000, times to 0.1 ms.
        writer.fixations(pair_id, side, pd.DataFrame(clicks, columns=["participant_id", "x", "y", "t_ms"])
                         .round({"x": 3, "y": 3, "t_ms": 1}))
        updates.setdefault(pair_id, {"pair_id": pair_id}).update(
            {f"{side}_map": map_file, f"n_observers_{side}": observers})
        if split == "test" and side == "x":  # one side per pair: X and Y of a scene are near copies
            image = cv2.cvtColor(cv2.imread(str(image_path)), cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
            items.append({"name": f"{pair_id}_{side}", "image": image, "density": density, "clicks": points})
            map_cc.append(cc(fixations, density))
    dataset.update_pairs(list(updates.values()))
    return {"items": items, "map_cc": float(np.mean(map_cc))}


# ---------------------------------------------------------------- training and scoring


def train_and_score(name: str, data_dir: Path, out_dir: Path, preset: str, steps: int, held_out: dict,
                    seed: int) -> dict:
    """Train predictor `name` on the training split, score it on the held-out images; prints a
    table of CC and NSS beside the controls and their verdicts, returns the means."""
    from models.runs import load_saliency_function, train

    start = time.perf_counter()
    run = train("predictor", name, data_dir, out_dir, preset=preset, overrides={"backbone_weights": "random"},
                steps=steps, device="cpu", seed=seed, progress=False, bf16=False, echo=lambda line: None)
    seconds = time.perf_counter() - start
    predict, _, weights_info = load_saliency_function(run["checkpoint"], "cpu")
    items = [{"name": item["name"], "pred": predict(item["image"]), "gt_map": item["density"],
              "fixations": item["clicks"]} for item in held_out["items"]]
    table = with_controls(items, metrics=["cc", "nss"], rng=seed)
    means = table.groupby("model")[["cc", "nss"]].mean()
    random_backbone = bool(weights_info.get("random_backbone"))
    print(f"\n{name} ({preset} preset, {steps} steps in {seconds:.0f} s, "
          f"{'random VGG16 backbone, trained' if random_backbone else 'from scratch'}), "
          f"{len(items)} held-out images:")
    print(f"  {'':24s} {'CC':>6s} {'NSS':>6s}")
    for model, label in (("predictor", name), ("centre_bias", "centre bias"), ("shuffle", "shuffle (other images)")):
        print(f"  {label:24s} {means.loc[model, 'cc']:6.3f} {means.loc[model, 'nss']:6.3f}")
    for line in control_verdicts(table):
        print(f"  {line}")
    return {"steps": steps, "seconds": seconds, "random_backbone": random_backbone,
            "cc": float(means.loc["predictor", "cc"]), "nss": float(means.loc["predictor", "nss"]),
            "centre_cc": float(means.loc["centre_bias", "cc"]), "centre_nss": float(means.loc["centre_bias", "nss"]),
            "shuffle_cc": float(means.loc["shuffle", "cc"]), "shuffle_nss": float(means.loc["shuffle", "nss"]),
            "map_cc": held_out["map_cc"]}


if __name__ == "__main__":
    main()
