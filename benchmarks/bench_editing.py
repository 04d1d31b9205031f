"""Editing quality: do the editors shift a KNOWN predictor's saliency into held-out masks, and at what cost?

    python benchmarks/bench_editing.py --quick                     # synthetic scenes, every editor, minutes
    python benchmarks/bench_editing.py --editors gazeshiftnet --steps 1200
    python benchmarks/bench_editing.py --data DATASET --quick      # a rendered gazelab dataset (train / test split)

The predictor is known and differentiable: `LuminanceSaliency`, log-softmax of gain × the
Gaussian-blurred luminance (bright regions draw the eye), attached to every editor directly
(no checkpoint) and written as the fixation maps of the synthetic dataset, so GazeShiftNet's mask
curation and the target-map editors' training targets come from the same model that scores them.
Scenes: 3–5 CLEVR-coloured boxes with a shading ramp on a textured grey ground; Y recolours one
box (the pair the paired editors learn from). Each editor trains briefly through its own
`make_dataset` and the project's `Trainer`, then edits every object of the held-out scenes (split
"test": unseen scenes, so unseen masks) except the one the predictor already finds most salient.
Mask editors get the mask; target-map editors get Gatys' local shift of the input's predicted
density, k_sh = +2 on the mask (`models.targets.local_shift`), as the target.

Per editor, against the unedited input in the same run (its own row shows the absolute values the
differences start from): the paper's saliency increase in the mask (GazeShiftNet §4.2, maps
max-normalised; absolute mean and the median relative increase), the change in the share of
fixation density inside the mask (Δp; Gatys §5.3), the share of masks whose Δp > 0, the edit
magnitude mean |edit − input| on [0, 1] images, and where they apply: GazeShiftNet's mean exposures
and, in a table of their own, the share of images at each bound of each of its sharpen, exposure
and contrast per region (`analysis.edit_parameters.parameter_limit_shares`), how much K = 4
samples of one input differ (mean pairwise |s_i − s_j|) as a share of the edit, and GazeShiftNet's
latent recovery mean |z − ENC(p)| as a share of E|z|. A fixed hand edit (foreground +1 stop of
exposure) is the yardstick row. Backbones are random (offline; a luminance predictor needs no
ImageNet features, and the editors' VGG losses only shape realism).
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

from analysis.attention_shift import delta_p_object, relative_saliency_increase, saliency_increase  # noqa: E402
from analysis.edit_parameters import LIMIT_TOLERANCE, parameter_limit_shares  # noqa: E402
from datagen.dataset import Dataset  # noqa: E402
from models.base import SaliencyPredictor, build_model, registry_of  # noqa: E402
from models.editors import gazeshift_ops as ops  # noqa: E402
from models.losses import gaussian_blur  # noqa: E402
from models.targets import local_shift  # noqa: E402
from models.trainer import Trainer  # noqa: E402

# editor: (preset, config overrides, training steps in --quick). Every editor edits at 48×64.
EVAL_SIZE = (48, 64)  # (H, W) for an editor whose config names no training size (HAG)
EDITORS = {
    "gazeshiftnet": ("cpu", {}, 300),
    "fgtransform": ("tiny", {"image_size": (48, 64)}, 150),
    "sagim": ("tiny", {"image_size": (48, 64)}, 150),
    "salggan": ("cpu", {}, 150),
    "cyclegan_sal": ("cpu", {}, 150),
    "bicyclegan_sal": ("cpu", {}, 150),
    "hag": ("tiny", {"field_size": (6, 8)}, 1),  # nothing to train: it optimises each image when editing
}
CLEVR_RGB = ((87, 87, 87), (173, 35, 35), (42, 75, 215), (29, 105, 20), (129, 74, 25), (129, 38, 192),
             (41, 208, 208), (255, 238, 51))
TARGET_SHIFT = 2.0  # k_sh of the target-map editors' targets (Gatys' range is [−4, 4])
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
    parser.add_argument("--quick", action="store_true", help="fewer scenes and steps (minutes on 2 cores)")
    parser.add_argument("--editors", nargs="*", default=None, help=f"names (default: {' '.join(EDITORS)})")
    parser.add_argument("--steps", type=int, default=None, help="training steps for every editor (default: per editor)")
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
    predictor = LuminanceSaliency()
    n_train, n_test = (24, 12) if args.quick else (96, 24)
    scale = 1 if args.quick else 4
    print(f"bench_editing: {'quick' if args.quick else 'full'}, torch {torch.__version__}, {torch.get_num_threads()} "
          f"thread(s), predictor: log-softmax of {predictor.config.gain:g} x blurred luminance; random backbones")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.data or write_scenes(Path(tmp) / "scenes", n_train, n_test, (64, 48), args.seed, predictor)
        for name in names:
            preset, overrides, steps = EDITORS[name]
            overrides = {**overrides, **(args.gazeshiftnet_config if name == "gazeshiftnet" else {})}
            steps = args.steps or steps * scale
            started = time.perf_counter()
            try:
                model = train_editor(name, preset, overrides, data_dir, Path(tmp) / name, predictor, steps, args.seed)
                cases = held_out_cases(data_dir, getattr(model.config, "image_size", EVAL_SIZE), predictor)
                if not rows:
                    rows += reference_rows(cases, predictor)
                steps = steps if model.optimizers() else 0  # HAG: nothing trained, each image optimised
                for direction in getattr(model, "directions", ("increase",)):
                    row = evaluate(model, predictor, cases, direction)
                    row.update(editor=name if direction == "increase" else f"{name} ({direction})", steps=steps)
                    rows.append(row)
            except Exception as exc:  # one editor failing must not hide the others' figures
                print(f"  {name}: FAILED {type(exc).__name__}: {exc}", flush=True)
                continue
            print(f"  {name}: trained {steps} steps, evaluated on {len(cases['images'])} held-out masks "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
    if rows:
        print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


# -- data ---------------------------------------------------------------------------------------------


def write_scenes(root: Path, n_train: int, n_test: int, size: tuple[int, int], seed: int,
                 predictor: LuminanceSaliency) -> Path:
    """A gazelab dataset of box scenes at `size` = (W, H); maps = the predictor's densities."""
    width, height = size
    ds = Dataset.create(root, "bench-editing-scenes", seed=seed, image_size=[width, height])
    rng = np.random.default_rng(seed)
    rows = []
    for index in range(n_train + n_test):
        pair_id = f"{index:06d}"
        ground = rng.normal(0.42, 0.03, (height, width, 1)) + rng.normal(0, 0.015, (height, width, 3))
        boxes = _boxes(rng, width, height)
        colours = [np.array(CLEVR_RGB[int(rng.integers(len(CLEVR_RGB)))]) / 255 for _ in boxes]
        recoloured = int(rng.integers(len(boxes)))
        row = {"pair_id": pair_id, "split": "train" if index < n_train else "test", "source": "clevr",
               "edit_type": "recolor", "n_edited": 1, "scene": f"scenes/{pair_id}.json"}
        for side in ("x", "y"):
            if side == "y":
                colours[recoloured] = np.array(CLEVR_RGB[int(rng.integers(len(CLEVR_RGB)))]) / 255
            image, labels = ground.copy(), np.zeros((height, width), np.uint8)
            for k, ((x0, y0, w, h), colour) in enumerate(zip(boxes, colours, strict=True), start=1):
                shade = np.linspace(1.1, 0.75, h)[:, None, None]  # lit from above, as a rendered box
                image[y0:y0 + h, x0:x0 + w] = colour * shade
                labels[y0:y0 + h, x0:x0 + w] = k
            image = np.clip(image, 0, 1)
            cv2.imwrite(str(root / f"images/{pair_id}_{side}.png"), (image[..., ::-1] * 255).round().astype(np.uint8))
            cv2.imwrite(str(root / f"masks/{pair_id}_{side}.png"), labels)
            with torch.no_grad():
                saved = cv2.imread(str(root / f"images/{pair_id}_{side}.png"))[..., ::-1] / 255.0
                tensor = torch.from_numpy(saved.copy()).float().permute(2, 0, 1)[None]
                density = predictor.density(tensor)[0, 0].numpy().astype(np.float32)
            np.save(root / f"maps/{pair_id}_{side}.npy", density / density.sum())
            row.update({f"{side}_image": f"images/{pair_id}_{side}.png", f"{side}_mask": f"masks/{pair_id}_{side}.png",
                        f"{side}_map": f"maps/{pair_id}_{side}.npy", f"n_observers_{side}": 1})
        objects = [{"id": k, "mask_id": k} for k in range(1, len(boxes) + 1)]
        scene = {"x": {"objects": objects}, "y": {"objects": objects},
                 "edit": {"type": "recolor", "object_ids": [recoloured + 1]}}
        (root / f"scenes/{pair_id}.json").write_text(json.dumps(scene))
        rows.append(row)
    ds.add_pairs(rows)
    return root


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


def held_out_cases(data_dir: Path, size_hw, predictor: LuminanceSaliency) -> dict[str, torch.Tensor]:
    """Every object (area 1–50 %) of the held-out X images but the most salient one, at `size_hw`.

    Returns {"images": (N, 3, H, W) in [0, 1], "masks": (N, 1, H, W) {0, 1}, "before": (N, 1, H, W) density}.
    """
    ds = Dataset.open(data_dir)
    pairs = ds.pairs
    split = "test" if (pairs["split"] == "test").any() else "val"
    rows = pairs[pairs["split"] == split]
    if rows.empty:
        raise ValueError(f"{data_dir} has no test or val rows to evaluate on; expected held-out scenes")
    height, width = int(size_hw[0]), int(size_hw[1])
    images, masks = [], []
    for _, row in rows.iterrows():
        if not isinstance(row["x_mask"], str) or not row["x_mask"]:
            continue
        bgr = cv2.imread(str(Path(data_dir) / row["x_image"]), cv2.IMREAD_COLOR)
        image = cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA)[..., ::-1] / 255.0
        labels = cv2.resize(cv2.imread(str(Path(data_dir) / row["x_mask"]), cv2.IMREAD_UNCHANGED), (width, height),
                            interpolation=cv2.INTER_NEAREST)
        tensor = torch.from_numpy(image.copy()).float().permute(2, 0, 1)
        with torch.no_grad():
            density = predictor.density(tensor[None])[0, 0].numpy()
        ids = [k for k in np.unique(labels) if k > 0 and 0.01 <= (labels == k).mean() <= 0.5]
        if len(ids) < 2:
            continue
        most = max(ids, key=lambda k: density[labels == k].mean())
        for k in ids:
            if k != most:
                images.append(tensor)
                masks.append(torch.from_numpy((labels == k).astype(np.float32))[None])
    if not images:
        raise ValueError(f"no held-out object in split {split!r} of {data_dir}: each image needs >= 2 objects "
                         "covering 1-50 % of it")
    images_t, masks_t = torch.stack(images), torch.stack(masks)
    with torch.no_grad():
        before = predictor.density(images_t)
    return {"images": images_t, "masks": masks_t, "before": before}


# -- training and scoring -----------------------------------------------------------------------------


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


def evaluate(model, predictor: LuminanceSaliency, cases: dict, direction: str = "increase") -> dict:
    """Scores of `model`'s edits of the held-out cases (see the module docstring)."""
    images, masks, before = cases["images"], cases["masks"], cases["before"]
    options = set(inspect.signature(model.edit).parameters)
    extra = {"direction": direction} if "direction" in options else {}
    if "seed" in options:
        extra["seed"] = 0
    if model.guidance == "mask":
        guidance = masks
    else:
        shift = TARGET_SHIFT if direction == "increase" else -TARGET_SHIFT
        sigma = 0.02 * max(images.shape[-2:])
        guidance = torch.stack([torch.from_numpy(local_shift(b[0].double().numpy(), m[0].numpy() > 0, shift, sigma))
                                for b, m in zip(before, masks, strict=True)])[:, None].float()
    with torch.no_grad():
        edited = model.edit(images, guidance, **extra).clamp(0, 1)
        after = predictor.density(edited)
    row = scores(images, masks, before, edited, after)
    if "samples" in options and getattr(getattr(model, "config", None), "z_dim", 1) != 0:
        with torch.no_grad():
            many = model.edit(images, guidance, **{**extra, "seed": 1, "samples": SAMPLES})
        pairs = [(i, j) for i in range(SAMPLES) for j in range(i + 1, SAMPLES)]
        spread = sum(float((many[:, i] - many[:, j]).abs().mean()) for i, j in pairs) / len(pairs)
        row["sample_spread"] = spread
        row["sample_share"] = spread / max(float((many - images[:, None]).abs().mean()), 1e-12)
    if hasattr(model, "parameters_for"):
        z = _codes(model, len(images))
        with torch.no_grad():
            params = model.parameters_for(images, masks, direction, z=z)
            row["limit_shares"] = limit_shares(params)
            row["exposure_fg"] = float(params["fg"]["exposure"].mean())
            row["exposure_bg"] = float(params["bg"]["exposure"].mean())
            if z is not None:
                recovered = model.recover_latent(images, masks, z, direction)
                row["latent_share"] = float((recovered - z).abs().mean() / z.abs().mean())
    return row


def limit_shares(params: dict[str, dict[str, torch.Tensor]]) -> list[dict]:
    """One row per region and bounded parameter of GazeShiftNet (`parameter_limit_shares`): never averaged."""
    names = [(region, name) for region in ("fg", "bg") for name in PARAMETER_LIMITS]
    values = {f"{region}.{name}": params[region][name].detach().cpu().double().numpy() for region, name in names}
    limits = {f"{region}.{name}": (-PARAMETER_LIMITS[name], PARAMETER_LIMITS[name]) for region, name in names}
    return parameter_limit_shares(values, limits).to_dict("records")


def scores(images, masks, before, edited, after) -> dict:
    """Mean (and median for ratios) of the attention-shift metrics over the cases, and the edit size."""
    absolute, relative, dp, dp_rel = [], [], [], []
    for b, a, m in zip(before[:, 0].numpy(), after[:, 0].numpy(), masks[:, 0].numpy() > 0, strict=True):
        absolute.append(saliency_increase(b, a, m))
        relative.append(relative_saliency_increase(b, a, m))
        change, ratio = delta_p_object(b, a, m)
        dp.append(change)
        dp_rel.append(ratio)
    return {"sal_abs": float(np.mean(absolute)), "sal_rel_median": float(np.nanmedian(relative)),
            "dp": float(np.mean(dp)), "dp_rel_median": float(np.nanmedian(dp_rel)),
            "share_up": float(np.mean(np.array(dp) > 0)), "edit_size": float((edited - images).abs().mean())}


def reference_rows(cases: dict, predictor: LuminanceSaliency) -> list[dict]:
    """The unedited input (its absolute p(mask) and max-normalised saliency in the mask) and a fixed
    hand edit: the foreground one stop brighter, the background unchanged."""
    images, masks, before = cases["images"], cases["masks"], cases["before"]
    p_mask = (before * masks).flatten(1).sum(1)
    peak = before.flatten(1).amax(1)
    in_mask = (before * masks).flatten(1).sum(1) / masks.flatten(1).sum(1) / peak
    unedited = {"editor": "input (unedited)", "p_mask": float(p_mask.mean()), "sal_mask": float(in_mask.mean()),
                "edit_size": 0.0}
    knots = 8
    fg = ops.identity_parameters(len(images), knots)
    fg["exposure"] = torch.ones(len(images))
    with torch.no_grad():
        edited = ops.apply_parameters(images, masks, {"fg": fg, "bg": ops.identity_parameters(len(images), knots)})
        after = predictor.density(edited)
    fixed = {"editor": "fixed edit: fg +1 stop", **scores(images, masks, before, edited, after)}
    return [unedited, fixed]


def _codes(model, batch: int) -> torch.Tensor | None:
    z_dim = getattr(model.config, "z_dim", 0)
    return torch.randn(batch, z_dim, generator=torch.Generator().manual_seed(2)) if z_dim else None


def print_table(rows: list[dict]) -> None:
    columns = [("editor", "editor", "{}", 26), ("steps", "steps", "{}", 5),
               ("sal_abs", "Δsal abs", "{:+.3f}", 9), ("sal_rel_median", "Δsal rel", "{:+.2f}", 9),
               ("dp", "Δp(mask)", "{:+.3f}", 9), ("dp_rel_median", "Δp rel", "{:+.2f}", 7),
               ("share_up", "p up", "{:.2f}", 5), ("edit_size", "|edit-in|", "{:.3f}", 9),
               ("exposure", "stops fg/bg", "{}", 11),
               ("sample_share", "spread/edit", "{:.2f}", 11),
               ("latent_share", "L_r/E|z|", "{:.2f}", 8)]
    print("  ".join(title.rjust(width) if key != "editor" else title.ljust(width) for key, title, _, width in columns))
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
    print(f"unedited input: p(mask) = {base['p_mask']:.3f} of the fixation density, saliency in the mask = "
          f"{base['sal_mask']:.3f} of the map's peak; every Δ is edit − input on the same images. stops fg/bg: "
          "GazeShiftNet's mean exposures; spread/edit: mean |s_i − s_j| over 4 samples / "
          "mean |s − input|; L_r/E|z|: mean |z − ENC(p)| / mean |z| (1 = z not recovered).")
    print_limit_shares(rows)


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
