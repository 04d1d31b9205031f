"""The pairs an evaluation scores, read from a dataset dir, and the per-image metrics of one output.

`read_pairs` gives each pair's input X, ground-truth Y (when the pair has one), the object masks,
the region the edit concerns and the target map; `pair_metrics` scores one method's output of one
pair with every metric its inputs allow, and says which it could not compute and why. Nothing
here needs torch: the saliency maps come in as arrays (a predictor's, or human maps).

The region ("mask" of the attention-shift metrics) is the union of the edited objects' pixels in X
and in Y (scene edit `object_ids`, mapped to each side's `mask_id`): where a moved, recoloured,
added or removed object is. Per-image metric columns (units in `METRIC_INFO`) are empty where a
metric does not apply; a pair never gets a made-up value.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from analysis import attention_shift as shift
from analysis import fidelity
from datadir import Dataset
from datadir.maps import load_map

# column -> (what it is, better direction: "higher" / "lower" / None). The report's tables use these.
METRIC_INFO = {
    "l1_x": ("mean |output - X|, [0, 1] (edit size)", None),
    "mse_x": ("mean squared difference to X, [0, 1] (SaGIM's MSE)", None),
    "ssim_x_bg": ("SSIM to X, background (outside the edited objects)", "higher"),
    "ssim_x_fg": ("SSIM to X, foreground (the edited objects)", None),
    "l1_x_bg": ("mean |output - X| outside the edited objects, [0, 1]", "lower"),
    "l1_x_fg": ("mean |output - X| inside the edited objects, [0, 1] (edit size there)", None),
    "lpips_x": ("LPIPS to X, full image", "lower"),
    "lpips_x_bg": ("LPIPS to X, background (outside the edited objects)", "lower"),
    "lpips_x_fg": ("LPIPS to X, foreground (the edited objects)", None),
    "l1_y": ("mean |output - Y| to the ground truth, [0, 1]", "lower"),
    "psnr_y": ("PSNR to the ground truth Y, dB", "higher"),
    "ssim_y": ("SSIM to the ground truth Y", "higher"),
    "sal_increase": ("saliency increase in the region, max-normalised maps", "higher"),
    "sal_increase_rel": ("relative saliency increase in the region", "higher"),
    "wfbeta": ("weighted F-beta of the output's map to the region", "higher"),
    "cc_mask": ("CC of the output's map and the region", "higher"),
    "dp_obj": ("change in the probability to fixate the region (Gatys)", "higher"),
    "dp_obj_rel": ("relative change in the probability to fixate the region", "higher"),
    "p_obj_x": ("probability to fixate the region in X (Gatys' p_obj of the original)", None),
    "entropy_change_bits": ("change of fixation entropy, bits", None),
    "kld_target": ("saliency KLD, target map || output's map, nats", "lower"),
    "sagim_c1": ("SaGIM C1: least salient object of X now above the most salient", "higher"),
    "sagim_c2": ("SaGIM C2: least salient object rose and the most salient fell", "higher"),
    "lpips_diversity": ("diversity score: LPIPS between samples of one input", "higher"),
    "lpips_local_diversity": ("local DS: LPIPS between samples inside the region's box", "higher"),
    "seconds": ("run time per image, s", "lower"),
}


REGION_FIDELITY = ("ssim_x_bg", "ssim_x_fg", "l1_x_bg", "l1_x_fg")


@dataclass
class PairInputs:
    """One pair: images (H, W, 3) uint8 RGB as stored; labels int arrays (0 background); maps densities."""

    pair_id: str
    source: str
    edit_type: str
    x: np.ndarray
    y: np.ndarray | None
    x_labels: np.ndarray | None
    region: np.ndarray | None  # bool (H, W): the edited objects' pixels, None if unknown or empty
    region_note: str | None  # why there is no region
    target: np.ndarray | None  # the Y fixation map (density), the target of target-map editors
    x_human: np.ndarray | None  # the human fixation map of X, when a study made one


def read_pairs(data_dir, split: str | None, pair_ids=None) -> list[PairInputs]:
    """Every non-`single` pair of `split` (None: all) in the dataset at `data_dir`, sorted by id
    (only those in `pair_ids` when given: one shard of an evaluation). ValueError naming the
    splits there are when `split` has no pairs."""
    dataset = Dataset.open(data_dir)
    table = dataset.pairs
    table = table[table["source"] != "single"]
    chosen = table if split is None else table[table["split"] == split]
    if chosen.empty:
        counts = table["split"].value_counts().to_dict()
        raise ValueError(f"dataset {dataset.path} has no pairs of split {split!r} (it has {counts or 'none'}); "
                         "choose another --split, or --split all to score every pair")
    if pair_ids is not None:
        chosen = chosen[chosen["pair_id"].isin(set(pair_ids))]
    return [_read_pair(dataset.path, row) for row in chosen.sort_values("pair_id").to_dict("records")]


def read_rgb(path) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB (the metrics' convention); ValueError if it cannot be read."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot read image {path}: missing or not an image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def pair_metrics(pair: PairInputs, output: np.ndarray, before=None, after=None) -> tuple[dict, dict]:
    """The per-image metrics of `output` ((H, W, 3) uint8 RGB, as saved) for `pair`.

    before / after: saliency maps (densities, the image's shape) of X and of the output, from one
    predictor or from human maps; without them only the image distances are scored. Returns
    (values, skipped): skipped maps a metric to the reason it was not computed for this pair.
    """
    if output.shape != pair.x.shape:
        raise ValueError(f"the output for pair {pair.pair_id} is {output.shape[1]}×{output.shape[0]} (W×H); "
                         f"expected the input's {pair.x.shape[1]}×{pair.x.shape[0]}")
    values: dict[str, float] = {"l1_x": fidelity.l1(output, pair.x), "mse_x": fidelity.mse(output, pair.x)}
    skipped: dict[str, str] = {}
    if pair.region is not None:
        values.update(region_fidelity(output, pair.x, pair.region, skipped))
    else:
        skipped.update(dict.fromkeys(REGION_FIDELITY, pair.region_note or "no region"))
    if pair.y is not None:
        values.update(l1_y=fidelity.l1(output, pair.y), psnr_y=fidelity.psnr(output, pair.y),
                      ssim_y=fidelity.ssim(output, pair.y))
    else:
        skipped.update(dict.fromkeys(("l1_y", "psnr_y", "ssim_y"), "no ground-truth Y"))
    if before is None or after is None:
        return values, skipped
    values["entropy_change_bits"] = shift.entropy_change(before, after)
    if pair.region is not None:
        increase = shift.relative_saliency_increase(before, after, pair.region)
        change, relative = shift.delta_p_object(before, after, pair.region)
        values.update(sal_increase=shift.saliency_increase(before, after, pair.region), sal_increase_rel=increase,
                      wfbeta=shift.weighted_fbeta(after, pair.region), cc_mask=shift.cc_to_mask(after, pair.region),
                      dp_obj=change, dp_obj_rel=relative, p_obj_x=shift.fixation_probability(before, pair.region))
    else:
        skipped.update(dict.fromkeys(("sal_increase", "sal_increase_rel", "wfbeta", "cc_mask", "dp_obj",
                                      "dp_obj_rel", "p_obj_x"), pair.region_note or "no region"))
    if pair.target is not None:
        values["kld_target"] = shift.saliency_kld(pair.target, after)
    else:
        skipped["kld_target"] = "no target map (the pair has no Y fixation map)"
    n_objects = 0 if pair.x_labels is None else len(np.unique(pair.x_labels[pair.x_labels > 0]))
    if n_objects >= 2:
        try:
            values.update(sagim_c1=float(shift.sagim_c1(before, after, pair.x_labels)),
                          sagim_c2=float(shift.sagim_c2(before, after, pair.x_labels)))
        except ValueError as exc:  # every object equally salient in X: no O_high / O_low
            skipped.update(sagim_c1=str(exc), sagim_c2=str(exc))
    else:
        skipped.update(dict.fromkeys(("sagim_c1", "sagim_c2"), f"X has {n_objects} object(s); C1/C2 need 2"))
    return values, skipped


def region_fidelity(output: np.ndarray, x: np.ndarray, region: np.ndarray, skipped: dict | None = None) -> dict:
    """SSIM and L1 of `output` to the input `x` (uint8 RGB, one size) inside the edited region
    (bool (H, W): fg) and outside it (bg): {ssim_x_bg, ssim_x_fg, l1_x_bg, l1_x_fg}.

    SSIM: `fidelity.ssim_map` (one map per image) averaged over the side's pixels, those within 5 px
    of the image border included (their windows reflected at the edge, as scikit-image's full map),
    so a region at the border is not lost; a pixel near the region's outline has a window that
    reaches 5 px across it. L1: mean |output - x| / 255 over the side's pixels and channels. A side
    without pixels (a region covering the whole image) is left out and named in `skipped`."""
    similarity = fidelity.ssim_map(output, x)  # checks the images
    region = np.asarray(region, bool)
    if region.shape != similarity.shape:
        raise ValueError(f"region has shape {region.shape}; expected the image's {similarity.shape}")
    channels = cv2.absdiff(output, x)
    difference = channels[..., 0].astype(np.uint16)  # the sum over channels, 0-765 (10x np.sum(axis=2)'s speed)
    difference += channels[..., 1]
    difference += channels[..., 2]
    values = {}
    for side, inside in (("bg", ~region), ("fg", region)):
        count = int(inside.sum())
        if count == 0:
            if skipped is not None:
                why = "the edited objects cover the whole image" if side == "bg" else "empty region"
                skipped.update({f"ssim_x_{side}": why, f"l1_x_{side}": why})
            continue
        values[f"ssim_x_{side}"] = float(similarity[inside].mean())
        values[f"l1_x_{side}"] = float(difference[inside].sum(dtype=np.int64)) / (count * 3 * 255.0)
    return values


def pixel_digest(image: np.ndarray) -> str:
    """SHA-256 of an image's pixels (uint8 RGB (H, W, 3)) and size, hex: the same for the same
    picture whatever file format or encoder stored it. Evaluations and study exports record it,
    so a report can tell when a study showed other images than those evaluated under a name."""
    array = np.ascontiguousarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"pixel_digest needs a uint8 RGB image (H, W, 3), got {array.dtype} {array.shape}")
    return hashlib.sha256(f"{array.shape[0]}x{array.shape[1]}x3:".encode() + array.tobytes()).hexdigest()


def region_box(region: np.ndarray) -> tuple[int, int, int, int]:
    """The bounding box (x0, y0, x1, y1) in pixels of a boolean region (SalG-GAN's local DS box)."""
    rows, cols = np.nonzero(region)
    return int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1


def resize_density(density: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A density resized bilinearly to `shape` = (H, W) and renormalised to sum 1."""
    values = np.asarray(density, np.float64)
    if values.shape != tuple(shape):
        values = cv2.resize(values, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    values = np.clip(values, 0, None)
    return values / values.sum()


# ---------------------------------------------------------------- helpers


def _read_pair(root: Path, row: dict) -> PairInputs:
    pair_id = str(row["pair_id"])
    x = read_rgb(root / row["x_image"])
    y = read_rgb(root / row["y_image"]) if row.get("y_image") else None
    if y is not None and y.shape != x.shape:
        raise ValueError(f"pair {pair_id}: Y is {y.shape[1]}×{y.shape[0]} but X {x.shape[1]}×{x.shape[0]} (W×H); "
                         "expected one size")
    x_labels = _labels(root, row.get("x_mask"), x.shape[:2], pair_id)
    y_labels = _labels(root, row.get("y_mask"), x.shape[:2], pair_id)
    region, note = _edited_region(root, row, x_labels, y_labels)
    target = _density(root, row.get("y_map"), x.shape[:2], pair_id) if row.get("y_image") else None
    x_human = _density(root, row.get("x_map"), x.shape[:2], pair_id)
    return PairInputs(pair_id, str(row["source"]), str(row["edit_type"]), x, y, x_labels, region, note, target,
                      x_human)


def _labels(root: Path, relative, shape, pair_id: str) -> np.ndarray | None:
    if not relative:
        return None
    labels = cv2.imread(str(root / relative), cv2.IMREAD_UNCHANGED)
    if labels is None or labels.ndim != 2 or labels.shape != shape:
        got = "unreadable" if labels is None else f"shape {labels.shape}"
        raise ValueError(f"pair {pair_id}: mask {relative} is {got}; expected a label image of shape {shape}")
    return labels.astype(np.int64)


def _density(root: Path, relative, shape, pair_id: str) -> np.ndarray | None:
    if not relative:
        return None
    path = root / relative
    npy = path.with_suffix(".npy")
    values = load_map(npy if npy.is_file() else path)
    if values.shape != shape:
        raise ValueError(f"pair {pair_id}: map {relative} has shape {values.shape}; expected the image's {shape}")
    if values.sum() <= 0:
        raise ValueError(f"pair {pair_id}: map {relative} is all zeros; expected a fixation density")
    return values / values.sum()


def _edited_region(root: Path, row: dict, x_labels, y_labels) -> tuple[np.ndarray | None, str | None]:
    if x_labels is None and y_labels is None:
        return None, "no object masks"
    scene_path = root / row["scene"] if row.get("scene") else None
    if scene_path is None or not scene_path.is_file():
        return None, "no scene file naming the edited objects"
    scene = json.loads(scene_path.read_text())
    edited = set((scene.get("edit") or {}).get("object_ids", []))
    if not edited:
        return None, "the scene's edit names no objects"
    region = np.zeros((x_labels if x_labels is not None else y_labels).shape, bool)
    for side, labels in (("x", x_labels), ("y", y_labels)):
        objects = (scene.get(side) or {}).get("objects", [])
        ids = [o["mask_id"] for o in objects if o.get("id") in edited and o.get("mask_id")]
        if labels is not None and ids:
            region |= np.isin(labels, ids)
    if not region.any():
        return None, "empty mask: the edited objects cover no pixel"
    return region, None
