"""Editing quality: do the editors move attention into held-out masks further than a fixed edit of the same size?

    python benchmarks/bench_editing.py --quick                     # synthetic scenes, every editor, <~15 min on 2 cores
    python benchmarks/bench_editing.py --editors gazeshiftnet --steps 1200
    python benchmarks/bench_editing.py --data DATASET --quick      # a rendered gazelab dataset (train / test split)

Two predictors of one attention rule, "bright draws the eye":
- the training predictor, `LuminanceSaliency` (log-softmax of gain × the Gaussian-blurred
  luminance), known and differentiable, attached to every editor directly (no checkpoint) and
  written as the fixation maps of the editors' training scenes, so GazeShiftNet's mask curation
  and the target-map editors' targets come from it too;
- the measuring predictor, SalG-GAN's saliency detector (`salg_detector`, its "cpu" preset at
  48×64: dense blocks, ASPP, deconvolutions, trained from scratch in KL) trained on the rule's maps
  of other scenes (another seed; objects and ground spread over ±1.5 / ±1 stops of brightness, so
  that brightness edits stay within what it has seen). SalGAN's "cpu" preset was tried first and
  left: 600 steps reached CC 0.75 with the rule and a fifth of its Δp for a +3-stop edit. Every
  Δp, Δsal, "hit" and "above" is the measuring predictor's: an editor that exploits the quirks of
  the model it was optimised against gains nothing there. "Δp train" beside it is the training predictor's (what
  the editor optimised). The measurer's CC with the rule, on the held-out inputs and on the fixed
  edits, is printed first: it says how far the measurer is a model of the same rule.
Scenes: 3–5 CLEVR-coloured boxes with a shading ramp on a textured grey ground; Y recolours one
box (the pair the paired editors learn from). Each editor trains briefly through its own
`make_dataset` and the project's `Trainer`, then edits every object of the held-out scenes (split
"test": unseen scenes, so unseen masks) except the one the rule already finds most salient. Mask
editors get the mask; target-map editors get Gatys' local shift of the input's rule density,
k_sh = ±2 on the mask (`models.targets.local_shift`), as the target.

The yardstick is the strongest simple edit (`_editing_references.py`): fixed edits, one knob at one
strength for every image — foreground exposure, contrast and saturation, background exposure — on
a grid of strengths, blended as GazeShiftNet blends. Edit size = mean |edit − input| on [0, 1]
images. Per held-out case (image and mask), the frontier of its fixed edits
(`analysis.edit_frontier`): the most Δp in the asked direction any of them reaches at that size or
less, linear between its points. Per editor row:
- above: the share of cases whose (size, Δp) lies strictly above their own case's frontier, made of
  the grid's edits of that case and, per knob, its edit of exactly the editor's size there (a line
  search along the case's path, the edit then made and measured), so the frontier at the editor's
  size never rests on an interpolated gain: with the grid alone, a fixed edit between two grid
  strengths scored "above" for a third of the cases under the learned measurer;
- the row under it, "fixed: <knob> <strength>": the best fixed edit of the editor's mean size or
  less (a line search along each knob's strengths for that mean |edit − input|, the knob and
  strength with the most mean Δp up to there), applied and scored as the editor is;
- bg SSIM: `analysis.fidelity.ssim_map` of the edit against the input (uint8), averaged outside the
  mask; C2ST: `analysis.realism.realism_c2st` accuracy of edited against unedited images, one mask
  per held-out scene (so no scene is on both sides of the classifier's split), 0.5 = indistinguishable;
- Δp and its median relative change (Gatys §5.3), hit = the share of cases moved in the asked
  direction, Δp train, Δsal max (GazeShiftNet §4.2), the edit size, GazeShiftNet's mean exposures,
  its parameters at their limits (`analysis.edit_parameters.parameter_limit_shares`, a table of its
  own), how much K = 4 samples of one input differ (mean pairwise |s_i − s_j|) as a share of the edit,
  and GazeShiftNet's latent recovery mean |z − ENC(p)| as a share of E|z|.
Directions: a decrease row (GazeShiftNet's decrease head) asks for Δp < 0; its frontier, above,
hit and reference use −Δp as the gain, and Δp is printed signed. Δsal is not a share of attention:
it is the mean over the mask of max-normalised maps, after − before, and an edit that flattens the
map lowers its peak and so raises every max-normalised value, the mask's too, while the mask's
share of the density can fall: a background at GazeShiftNet's contrast −1 (highlights down, the
large ground up) gives Δsal +0.093 and Δp −0.003 on the test's toy scenes, as a decrease row once
showed Δsal +0.104 beside Δp −0.005. It is printed for comparison with the paper; Δp is the
measure. Backbones are random (offline; a luminance rule needs no ImageNet features, and the
editors' VGG losses only shape realism).

The last lines, one per editor row: `editing <editor> above_frontier=<share> bg_ssim=<mean> c2st=<accuracy>`
(<editor> = name/decrease for a decrease row).
"""
from __future__ import annotations

import argparse
import inspect
import json
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.edit_parameters import LIMIT_TOLERANCE, parameter_limit_shares  # noqa: E402
from analysis.fidelity import ssim_map  # noqa: E402
from analysis.realism import realism_c2st  # noqa: E402
from benchmarks._editing_references import (DIRECTION_SIGN, FIXED_KNOBS, best_fixed_at, case_measures,  # noqa: E402
                                            fixed_edit, fixed_edit_grid, matched_frontiers, per_case_above)
from datadir import Dataset, PairWriter  # noqa: E402
from models.base import SaliencyPredictor, build_model, registry_of  # noqa: E402
from models.editors import gazeshift_ops as ops  # noqa: E402
from models.losses import gaussian_blur  # noqa: E402
from models.targets import local_shift  # noqa: E402
from models.trainer import Trainer  # noqa: E402

# editor: (preset, config overrides, training steps in --quick). Every editor edits at EVAL_SIZE.
EVAL_SIZE = (48, 64)  # (H, W) of the held-out cases and their fixed-edit frontier
EDITORS = {
    "gazeshiftnet": ("cpu", {}, 300),
    "fgtransform": ("tiny", {"image_size": EVAL_SIZE}, 150),
    "sagim": ("tiny", {"image_size": EVAL_SIZE}, 150),
    "salggan": ("cpu", {}, 150),
    "cyclegan_sal": ("cpu", {}, 150),
    "bicyclegan_sal": ("cpu", {}, 150),
    "hag": ("tiny", {"field_size": (6, 8)}, 1),  # nothing to train: it optimises each image when editing
}
# (editors' training pairs, held-out pairs, measurer's pairs, measurer's steps) per mode
MODES = {"quick": (24, 24, 120, 500), "full": (96, 48, 300, 2000)}
MEASURER = ("salg_detector", "cpu", {"input_size": EVAL_SIZE, "batch_size": 8})  # name, preset, overrides
MEASURER_BRIGHTNESS = (1.5, 1.0)  # ± stops of the measurer's scenes' objects and ground
CLEVR_RGB = ((87, 87, 87), (173, 35, 35), (42, 75, 215), (29, 105, 20), (129, 74, 25), (129, 38, 192),
             (41, 208, 208), (255, 238, 51))
TARGET_SHIFT = 2.0  # |k_sh| of the target-map editors' targets (Gatys' range is [−4, 4])
# GazeShiftNet's bounded parameters: tanh-saturated at ± these. Curve knots are left out: each curve
# is normalised by its knots' sum, so a knot at a bound is no extreme edit by itself.
PARAMETER_LIMITS = {"sharpen": ops.SHARPEN_RANGE, "exposure": ops.EXPOSURE_RANGE, "contrast": ops.CONTRAST_RANGE}
SAMPLES = 4


@dataclass
class LuminanceSaliencyConfig:
    input_size: tuple[int, int] | None = None  # any size: the map is computed at the image's own
    gain: float = 4.0  # logits per unit of luminance: a white region draws e^4 ≈ 55× a black one's density
    blur_frac: float = 1 / 32  # σ of the luminance blur, fraction of the longer image side


class LuminanceSaliency(SaliencyPredictor):
    """(B, 3, H, W) in [0, 1] → (B, 1, H, W) log-density ∝ gain · blur(luminance): known and differentiable."""

    name = "luminance_saliency"
    Config = LuminanceSaliencyConfig

    def __init__(self, config: LuminanceSaliencyConfig | None = None):
        super().__init__()
        self.config = config or LuminanceSaliencyConfig()
        self.weights_info = {"backbone": "none", "random_backbone": False,
                             "note": "analytic benchmark predictor (bench_editing.py)"}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        sigma = self.config.blur_frac * max(images.shape[-2:])
        blurred = gaussian_blur(ops.luminance(images.float()), 2 * math.ceil(3 * sigma) + 1, sigma)
        logits = self.config.gain * blurred
        return torch.log_softmax(logits.flatten(1), 1).view_as(logits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer scenes and steps (<~15 min on 2 cores)")
    parser.add_argument("--editors", nargs="*", default=None, help=f"names (default: {' '.join(EDITORS)})")
    parser.add_argument("--steps", type=int, default=None, help="training steps for every editor (default: per editor)")
    parser.add_argument("--measurer-steps", type=int, default=None,
                        help="training steps of the measuring predictor (default: 500 quick, 2000 full)")
    parser.add_argument("--data", type=Path, default=None, help="a gazelab dataset dir (train + test/val split) "
                        "instead of the synthetic scenes")
    parser.add_argument("--gazeshiftnet-config", type=json.loads, default={},
                        help='JSON overrides of GazeShiftNet\'s preset, e.g. \'{"lambda_latent": 1}\'')
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    names = args.editors or list(EDITORS)
    unknown = sorted(set(names) - set(EDITORS))
    if unknown:
        parser.error(f"unknown editor(s) {unknown}; expected some of {list(EDITORS)}")
    mode = "quick" if args.quick else "full"
    n_train, n_test, measurer_pairs, measurer_steps = MODES[mode]
    measurer_steps = args.measurer_steps or measurer_steps
    rule = LuminanceSaliency()
    scale = 1 if args.quick else 4
    print(f"bench_editing: {mode}, torch {torch.__version__}, {torch.get_num_threads()} thread(s); random backbones\n"
          f"  trains the editors: log-softmax of {rule.config.gain:g} x blurred luminance (LuminanceSaliency)\n"
          f"  measures every edit: {MEASURER[0]} {MEASURER[1]} preset, {measurer_steps} steps on that rule's maps of "
          f"{2 * measurer_pairs} other images", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        data_dir = args.data or write_scenes(Path(tmp) / "box-scenes", n_train, n_test, (64, 48), args.seed, rule)
        measurer = train_measurer(Path(tmp) / "measurer", measurer_pairs, measurer_steps, args.seed, rule)
        cases = held_out_cases(data_dir, EVAL_SIZE, rule, measurer)
        grid = fixed_edit_grid(cases, rule, measurer)
        cc_inputs = case_measures(cases["images"], cases, rule, measurer)["cc"].mean()
        on_edits = np.mean([path["cc"].mean() for path in grid["paths"]])
        print(f"  measurer: CC with the rule {cc_inputs:.2f} on the {len(cases['images'])} held-out inputs, "
              f"{on_edits:.2f} on their fixed edits ({time.perf_counter() - started:.0f} s with the frontier)",
              flush=True)
        rows.append(input_row(cases))
        for name in names:
            preset, overrides, steps = EDITORS[name]
            overrides = {**overrides, **(args.gazeshiftnet_config if name == "gazeshiftnet" else {})}
            steps = args.steps or steps * scale
            started = time.perf_counter()
            try:
                model = train_editor(name, preset, overrides, data_dir, Path(tmp) / name, rule, steps, args.seed)
                size = tuple(getattr(model.config, "image_size", EVAL_SIZE))
                if size != EVAL_SIZE:
                    raise ValueError(f"{name} edits at {size} (H, W); the frontier is at {EVAL_SIZE}, keep image_size")
                steps = steps if model.optimizers() else 0  # HAG: nothing trained, each image optimised
                for direction in getattr(model, "directions", ("increase",)):
                    edited, extra = edit_cases(model, cases, direction)
                    label = name if direction == "increase" else f"{name}/{direction}"
                    row = {"editor": label, "steps": steps, "direction": direction,
                           **score_edit(edited, cases, grid, rule, measurer, direction), **extra}
                    rows += [row, fixed_reference(cases, grid, rule, measurer, direction, row["edit_size"])]
            except Exception as exc:  # one editor failing must not hide the others' figures
                print(f"  {name}: FAILED {type(exc).__name__}: {exc}", flush=True)
                continue
            print(f"  {name}: trained {steps} steps, evaluated on {len(cases['images'])} held-out masks "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
    print_frontier(grid)
    print_table(rows)
    print_limit_shares(rows)
    for row in rows:
        if "direction" in row:
            print(headline(row))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


def headline(row: dict) -> str:
    """The last line of an editor row: `editing <editor> above_frontier=<share> bg_ssim=<mean> c2st=<accuracy>`."""
    return (f"editing {row['editor']} above_frontier={row['above']:.2f} bg_ssim={row['bg_ssim']:.3f} "
            f"c2st={row['c2st']:.2f}")


# -- data ---------------------------------------------------------------------------------------------


def write_scenes(root: Path, n_train: int, n_test: int, size: tuple[int, int], seed: int,
                 predictor: LuminanceSaliency, brightness_stops: tuple[float, float] = (0.0, 0.0)) -> Path:
    """A gazelab dataset of box scenes at `size` = (W, H); maps = the predictor's densities.

    brightness_stops: (objects, ground): each box's colour and each image's ground scaled by 2^u,
    u uniform in ± that many stops (0: the editors' scenes, whose random stream stays as it was)."""
    width, height = size
    ds = Dataset.create(root, "bench-editing-scenes", seed=seed, image_size=[width, height])
    writer = PairWriter(root)
    rng = np.random.default_rng(seed)
    object_stops, ground_stops = brightness_stops
    rows = []
    for index in range(n_train + n_test):
        pair_id = f"{index:06d}"
        ground = rng.normal(0.42, 0.03, (height, width, 1)) + rng.normal(0, 0.015, (height, width, 3))
        if ground_stops:
            ground *= 2 ** rng.uniform(-ground_stops, ground_stops)
        boxes = _boxes(rng, width, height)
        colours = [_colour(rng, object_stops) for _ in boxes]
        recoloured = int(rng.integers(len(boxes)))
        columns, images, masks = {}, {}, {}
        for side in ("x", "y"):
            if side == "y":
                colours[recoloured] = _colour(rng, object_stops)
            image, labels = ground.copy(), np.zeros((height, width), np.uint8)
            for k, ((x0, y0, w, h), colour) in enumerate(zip(boxes, colours, strict=True), start=1):
                shade = np.linspace(1.1, 0.75, h)[:, None, None]  # lit from above, as a rendered box
                image[y0:y0 + h, x0:x0 + w] = colour * shade
                labels[y0:y0 + h, x0:x0 + w] = k
            images[side] = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
            masks[side] = labels
            with torch.no_grad():  # the predictor sees the 8-bit image that is saved
                tensor = torch.from_numpy(images[side] / 255.0).float().permute(2, 0, 1)[None]
                density = predictor.density(tensor)[0, 0].numpy().astype(np.float32)
            columns[f"{side}_map"] = writer.map(pair_id, side, density, png=False)
            columns[f"n_observers_{side}"] = 1
        objects = [{"id": k, "mask_id": k} for k in range(1, len(boxes) + 1)]
        scene = {"x": {"objects": objects}, "y": {"objects": objects},
                 "edit": {"type": "recolor", "object_ids": [recoloured + 1]}}
        row = writer.write(pair_id, split="train" if index < n_train else "test", source="clevr",
                           edit_type="recolor", n_edited=1, images=images, masks=masks, scene=scene, **columns)
        rows.append(row)
    ds.add_pairs(rows)
    return root


def _colour(rng: np.random.Generator, stops: float) -> np.ndarray:
    colour = np.array(CLEVR_RGB[int(rng.integers(len(CLEVR_RGB)))]) / 255
    return colour * 2 ** rng.uniform(-stops, stops) if stops else colour


def _boxes(rng: np.random.Generator, width: int, height: int) -> list[tuple[int, int, int, int]]:
    """3–5 non-overlapping boxes (x0, y0, w, h), each 15–30 % of the image's width and height."""
    boxes: list[tuple[int, int, int, int]] = []
    for _ in range(200):
        if len(boxes) == 5 or (len(boxes) >= 3 and rng.random() < 0.3):
            break
        w, h = int(width * rng.uniform(0.15, 0.3)), int(height * rng.uniform(0.15, 0.3))
        x0, y0 = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
        if all(x0 + w + 1 < a or a + c + 1 < x0 or y0 + h + 1 < b or b + d + 1 < y0 for a, b, c, d in boxes):
            boxes.append((x0, y0, w, h))
    return boxes


def held_out_cases(data_dir: Path, size_hw, rule: LuminanceSaliency, measurer: SaliencyPredictor) -> dict:
    """Every object (area 1–50 %) of the held-out X images but the one the rule finds most salient, at `size_hw`.

    Returns {"images": (N, 3, H, W) in [0, 1], "masks": (N, 1, H, W) {0, 1}, "scene": (N,) index of
    the held-out image, "before": (N, 1, H, W) the measurer's density, "before_rule": the rule's}.
    """
    ds = Dataset.open(data_dir)
    pairs = ds.pairs
    split = "test" if (pairs["split"] == "test").any() else "val"
    rows = pairs[pairs["split"] == split]
    if rows.empty:
        raise ValueError(f"{data_dir} has no test or val rows to evaluate on; expected held-out scenes")
    height, width = int(size_hw[0]), int(size_hw[1])
    images, masks, scenes = [], [], []
    for scene, (_, row) in enumerate(rows.iterrows()):
        if not isinstance(row["x_mask"], str) or not row["x_mask"]:
            continue
        bgr = cv2.imread(str(Path(data_dir) / row["x_image"]), cv2.IMREAD_COLOR)
        image = cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA)[..., ::-1] / 255.0
        labels = cv2.resize(cv2.imread(str(Path(data_dir) / row["x_mask"]), cv2.IMREAD_UNCHANGED), (width, height),
                            interpolation=cv2.INTER_NEAREST)
        tensor = torch.from_numpy(image.copy()).float().permute(2, 0, 1)
        with torch.no_grad():
            density = rule.density(tensor[None])[0, 0].numpy()
        ids = [k for k in np.unique(labels) if k > 0 and 0.01 <= (labels == k).mean() <= 0.5]
        if len(ids) < 2:
            continue
        most = max(ids, key=lambda k: density[labels == k].mean())
        for k in ids:
            if k != most:
                images.append(tensor)
                masks.append(torch.from_numpy((labels == k).astype(np.float32))[None])
                scenes.append(scene)
    if not images:
        raise ValueError(f"no held-out object in split {split!r} of {data_dir}: each image needs >= 2 objects "
                         "covering 1-50 % of it")
    images_t, masks_t = torch.stack(images), torch.stack(masks)
    with torch.no_grad():
        before, before_rule = measurer.density(images_t), rule.density(images_t)
    return {"images": images_t, "masks": masks_t, "scene": np.array(scenes), "before": before,
            "before_rule": before_rule}


# -- training -----------------------------------------------------------------------------------------


def train_measurer(root: Path, pairs: int, steps: int, seed: int, rule: LuminanceSaliency) -> SaliencyPredictor:
    """MEASURER trained `steps` steps on the rule's maps of `pairs` scenes of their own (seed + 1,
    brightness spread by MEASURER_BRIGHTNESS), on CPU; returned in eval mode."""
    data_dir = write_scenes(root / "box-scenes", pairs, 0, (EVAL_SIZE[1], EVAL_SIZE[0]), seed + 1, rule,
                            MEASURER_BRIGHTNESS)
    torch.manual_seed(seed)
    name, preset, overrides = MEASURER
    model = build_model("predictor", name, preset, {**overrides, "max_steps": steps})
    if tuple(model.config.input_size) != EVAL_SIZE:
        raise ValueError(f"the measurer works at {model.config.input_size}, the cases at {EVAL_SIZE} (H, W)")
    Trainer(model, model.make_dataset(data_dir, "train"), out_dir=root / "run", max_steps=steps,
            batch_size=int(model.config.batch_size), device="cpu", seed=seed, progress=False, ckpt_every=steps,
            log_every=max(steps // 10, 1)).train()
    return model.eval()


def train_editor(name: str, preset: str, overrides: dict, data_dir: Path, out_dir: Path,
                 predictor: LuminanceSaliency, steps: int, seed: int):
    """Build `name` (random backbone where it has one), attach the predictor, train `steps` steps on CPU."""
    import dataclasses
    import logging

    fields = {f.name for f in dataclasses.fields(registry_of("editor").get(name).Config)}
    overrides = dict(overrides)
    if "backbone_weights" in fields:
        overrides["backbone_weights"] = "random"
    if "max_steps" in fields:
        overrides["max_steps"] = steps  # learning-rate schedules follow the run's length
    torch.manual_seed(seed)
    model = build_model("editor", name, preset, overrides)
    model.attach_predictor(predictor)
    data = model.make_dataset(data_dir, "train")
    logging.getLogger("models.editors.hag").setLevel(logging.ERROR)  # "nothing to train" is expected
    Trainer(model, data, out_dir=out_dir, max_steps=steps, batch_size=int(getattr(model.config, "batch_size", 1)),
            device="cpu", seed=seed, progress=False, ckpt_every=steps, log_every=max(steps // 10, 1)).train()
    return model.eval()


# -- editing and scoring ------------------------------------------------------------------------------


def edit_cases(model, cases: dict, direction: str = "increase") -> tuple[torch.Tensor, dict]:
    """`model`'s edits of the held-out cases, (N, 3, H, W) in [0, 1], and what the editor itself tells:
    sample spread, GazeShiftNet's exposures, limit shares and latent recovery (module docstring)."""
    images, masks, before = cases["images"], cases["masks"], cases["before_rule"]
    options = set(inspect.signature(model.edit).parameters)
    extra = {"direction": direction} if "direction" in options else {}
    if "seed" in options:
        extra["seed"] = 0
    if model.guidance == "mask":
        guidance = masks
    else:
        shift = TARGET_SHIFT * DIRECTION_SIGN[direction]
        sigma = 0.02 * max(images.shape[-2:])
        guidance = torch.stack([torch.from_numpy(local_shift(b[0].double().numpy(), m[0].numpy() > 0, shift, sigma))
                                for b, m in zip(before, masks, strict=True)])[:, None].float()
    with torch.no_grad():
        edited = model.edit(images, guidance, **extra).clamp(0, 1)
    told: dict = {}
    if "samples" in options and getattr(getattr(model, "config", None), "z_dim", 1) != 0:
        with torch.no_grad():
            many = model.edit(images, guidance, **{**extra, "seed": 1, "samples": SAMPLES})
        pairs = [(i, j) for i in range(SAMPLES) for j in range(i + 1, SAMPLES)]
        spread = sum(float((many[:, i] - many[:, j]).abs().mean()) for i, j in pairs) / len(pairs)
        told["sample_spread"] = spread
        told["sample_share"] = spread / max(float((many - images[:, None]).abs().mean()), 1e-12)
    if hasattr(model, "parameters_for"):
        z = _codes(model, len(images))
        with torch.no_grad():
            params = model.parameters_for(images, masks, direction, z=z)
            told["limit_shares"] = limit_shares(params)
            told["exposure_fg"] = float(params["fg"]["exposure"].mean())
            told["exposure_bg"] = float(params["bg"]["exposure"].mean())
            if z is not None:
                recovered = model.recover_latent(images, masks, z, direction)
                told["latent_share"] = float((recovered - z).abs().mean() / z.abs().mean())
    return edited, told


def score_edit(edited: torch.Tensor, cases: dict, grid: dict, rule, measurer, direction: str,
               compare: bool = True) -> dict:
    """Means over the cases of `case_measures`, hit (the share moved in `direction`), bg SSIM, the C2ST
    and, if `compare`, the share above each case's frontier in `direction` (`matched_frontiers`)."""
    measures = case_measures(edited, cases, rule, measurer)
    gains = DIRECTION_SIGN[direction] * measures["dp"]
    above = None
    if compare:
        frontiers = matched_frontiers(cases, grid, measures["size"], rule, measurer, direction)
        above = float(per_case_above(frontiers, measures["size"], gains).mean())
    edited_u8, inputs_u8 = _uint8(edited), _uint8(cases["images"])
    outside = cases["masks"][:, 0].numpy() == 0
    bg_ssim = [ssim_map(e, x)[o].mean() for e, x, o in zip(edited_u8, inputs_u8, outside, strict=True)]
    first = np.unique(cases["scene"], return_index=True)[1]  # one mask per held-out scene
    realism = realism_c2st([edited_u8[i] for i in first], [inputs_u8[i] for i in first])
    return {"dp": float(measures["dp"].mean()), "dp_rel_median": float(np.nanmedian(measures["dp_rel"])),
            "hit": float((gains > 0).mean()), "edit_size": float(measures["size"].mean()),
            "dp_train": float(measures["dp_train"].mean()), "sal_abs": float(measures["sal"].mean()),
            "above": above, "bg_ssim": float(np.mean(bg_ssim)), "c2st": realism.accuracy,
            "c2st_ci": [realism.ci_low, realism.ci_high], "c2st_n_test": realism.n_test}


def fixed_reference(cases: dict, grid: dict, rule, measurer, direction: str, size: float) -> dict:
    """The best fixed edit of mean size `size` or less in `direction` (`best_fixed_at`), applied and scored."""
    knob, strength, _ = best_fixed_at(grid, size, direction)
    edited = fixed_edit(cases["images"], cases["masks"], knob, strength)
    return {"editor": f"  fixed: {knob} {strength:+.2f}", "knob": knob, "strength": strength,
            **score_edit(edited, cases, grid, rule, measurer, direction, compare=False)}


def input_row(cases: dict) -> dict:
    """The unedited input: p(mask) under the measurer and the rule, and the measurer's max-normalised
    saliency in the mask."""
    before, masks = cases["before"], cases["masks"]
    in_mask = (before * masks).flatten(1).sum(1) / masks.flatten(1).sum(1) / before.flatten(1).amax(1)
    return {"editor": "input (unedited)", "p_mask": float((before * masks).flatten(1).sum(1).mean()),
            "p_mask_rule": float((cases["before_rule"] * masks).flatten(1).sum(1).mean()),
            "sal_mask": float(in_mask.mean()), "edit_size": 0.0}


def limit_shares(params: dict[str, dict[str, torch.Tensor]]) -> list[dict]:
    """One row per region and bounded parameter of GazeShiftNet (`parameter_limit_shares`): never averaged."""
    names = [(region, name) for region in ("fg", "bg") for name in PARAMETER_LIMITS]
    values = {f"{region}.{name}": params[region][name].detach().cpu().double().numpy() for region, name in names}
    limits = {f"{region}.{name}": (-PARAMETER_LIMITS[name], PARAMETER_LIMITS[name]) for region, name in names}
    return parameter_limit_shares(values, limits).to_dict("records")


def _uint8(images: torch.Tensor) -> list[np.ndarray]:
    """(N, 3, H, W) in [0, 1] → N uint8 RGB (H, W, 3) arrays, as an 8-bit PNG would hold them."""
    return list((images.clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8))


def _codes(model, batch: int) -> torch.Tensor | None:
    z_dim = getattr(model.config, "z_dim", 0)
    return torch.randn(batch, z_dim, generator=torch.Generator().manual_seed(2)) if z_dim else None


# -- printing -----------------------------------------------------------------------------------------

FRONTIER_SIZES = (0.005, 0.01, 0.02, 0.03, 0.05, 0.08)  # mean |edit − input| at which the frontier is printed


def print_frontier(grid: dict) -> None:
    """The best fixed edit of each of FRONTIER_SIZES or less, per direction (mean over the cases)."""
    print(f"\nfixed-edit frontier (mean over the held-out cases, Δp under the measurer): the best of "
          f"{', '.join(FIXED_KNOBS)} at each mean |edit − input| or less (exposure in stops)")
    print(f"{'|edit|':>6}  {'increase: Δp':>12}  {'by':22}  {'decrease: Δp':>12}  {'by':22}")
    for size in FRONTIER_SIZES:
        cells = []
        for direction in DIRECTION_SIGN:
            knob, strength, dp = best_fixed_at(grid, size, direction)
            cells += [f"{dp:+.3f}", f"{knob} {strength:+.2f}"]
        print(f"{size:>6.3f}  {cells[0]:>12}  {cells[1]:22}  {cells[2]:>12}  {cells[3]:22}")


def print_table(rows: list[dict]) -> None:
    columns = [("editor", "editor", "{}", 30), ("steps", "steps", "{}", 5),
               ("dp", "Δp", "{:+.3f}", 7), ("dp_rel_median", "Δp rel", "{:+.2f}", 6), ("hit", "hit", "{:.2f}", 4),
               ("edit_size", "|edit|", "{:.3f}", 6), ("above", "above", "{:.2f}", 5),
               ("bg_ssim", "bg SSIM", "{:.3f}", 7), ("c2st", "C2ST", "{:.2f}", 5),
               ("dp_train", "Δp train", "{:+.3f}", 8), ("sal_abs", "Δsal max", "{:+.3f}", 8),
               ("exposure", "stops fg/bg", "{}", 11), ("sample_share", "spread", "{:.2f}", 6),
               ("latent_share", "L_r/E|z|", "{:.2f}", 8)]
    print("\n" + "  ".join(title.rjust(width) if key != "editor" else title.ljust(width)
                           for key, title, _, width in columns))
    for row in rows:
        if "exposure_fg" in row:
            row = {**row, "exposure": f"{row['exposure_fg']:+.1f}/{row['exposure_bg']:+.1f}"}
        cells = []
        for key, _, fmt, width in columns:
            value = row.get(key)
            text = "-" if value is None or (isinstance(value, float) and math.isnan(value)) else fmt.format(value)
            cells.append(text.ljust(width) if key == "editor" else text.rjust(width))
        print("  ".join(cells))
    base = rows[0]
    n_test = next((row["c2st_n_test"] for row in rows if "c2st_n_test" in row), 0)
    print(f"unedited input: p(mask) = {base['p_mask']:.3f} of the measurer's density ({base['p_mask_rule']:.3f} of "
          f"the rule's), its max-normalised saliency in the mask {base['sal_mask']:.3f}. Every Δ is edit − input "
          "on the same images, under the measurer unless marked train. Δp: change of p(mask) (signed; a decrease "
          "row asks for < 0); hit: share of cases moved in the asked direction; above: share of cases above "
          "their own fixed-edit frontier (its edits of their size included); fixed: the best fixed edit of the "
          "row above's mean |edit| or less; bg SSIM outside the mask; C2ST: held-out accuracy of edited vs "
          f"unedited ({n_test} test images, 0.5 = indistinguishable); Δsal max: GazeShiftNet's mean over the "
          "mask of max-normalised maps (rises whenever the map flattens, not a share of attention); stops "
          "fg/bg: GazeShiftNet's mean exposures; spread: mean |s_i − s_j| over 4 samples / mean |s − input|; "
          "L_r/E|z|: mean |z − ENC(p)| / mean |z| (1 = z not recovered).")


def print_limit_shares(rows: list[dict]) -> None:
    """Per editor with bounded parameters, one line per parameter: its share of images at each bound."""
    with_shares = [row for row in rows if row.get("limit_shares")]
    if not with_shares:
        return
    print(f"\nparameters at a limit (within {LIMIT_TOLERANCE:.0%} of the range from a bound; sharpen ±"
          f"{ops.SHARPEN_RANGE:g}, exposure ±{ops.EXPOSURE_RANGE:g} stops, contrast ±{ops.CONTRAST_RANGE:g}; "
          "curve knots left out), share of the held-out images:")
    print(f"{'editor':26}  {'parameter':13}  {'n':>4}  {'at low':>6}  {'at high':>7}  {'at limit':>8}")
    for row in with_shares:
        for share in row["limit_shares"]:
            print(f"{row['editor']:26}  {share['parameter']:13}  {share['n']:>4}  {share['share_at_low']:>6.2f}  "
                  f"{share['share_at_high']:>7.2f}  {share['share_at_limit']:>8.2f}")


if __name__ == "__main__":
    main()
