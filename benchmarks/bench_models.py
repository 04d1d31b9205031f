"""Training steps/s and inference ms per image of every predictor and editor.

    python benchmarks/bench_models.py                      # CPU, tiny presets
    python benchmarks/bench_models.py --device cuda --preset paper   # a GPU node, bf16

Each model trains on its own `make_dataset` items from a synthetic scene dataset (rectangles
with masks and peaked fixation maps, written to a temporary dataset dir), so the real data
path is timed too. Baseline, measured in the same run on the same batch: torchvision's VGG16
feature stack forward + backward (training) and forward (inference) — the ratio says how many
"VGG16 passes" a model costs, which carries over between machines. Backbones are random
(speed does not depend on the weights), and every line says so.

On CUDA the paper-resolution extras run too: GazeShiftNet applied to a 3840×2160 image and
FGTransform at 512×512 (its paper: 117 ms on a GTX 1080), both under bf16 autocast.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datadir import Dataset, PairWriter  # noqa: E402
from models.base import build_model, import_models  # noqa: E402
from models.arrays import collate  # noqa: E402
from models.registry import EDITORS, PREDICTORS  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--preset", default="tiny", help="tiny (CPU) or paper")
    parser.add_argument("--steps", type=int, default=5, help="timed training steps per model")
    parser.add_argument("--repeats", type=int, default=5, help="timed inference calls per model")
    parser.add_argument("--models", nargs="*", default=None, help="names to run (default: all)")
    parser.add_argument("--predictor", default="salgan", help="the predictor editors train with")
    parser.add_argument("--skip-extras", action="store_true", help="no 4K / 512² GPU extras")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    device = torch.device(args.device)
    bf16 = device.type == "cuda"
    import_models()
    names = [("predictor", n) for n in PREDICTORS.names() if n != "center_bias"] + [("editor", n) for n in EDITORS.names()]
    if args.models:
        names = [(k, n) for k, n in names if n in args.models]
    print(f"device {device} ({_device_name(device)}), preset {args.preset}, bf16 {bf16}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; random backbones (speed only)")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind, name in names:
            try:
                results.append(bench_model(kind, name, args, device, bf16, Path(tmp)))
            except Exception as exc:  # one model failing must not hide the others' figures
                print(f"{kind} {name}: FAILED {type(exc).__name__}: {exc}")
                results.append({"kind": kind, "name": name, "error": str(exc)})
        if device.type == "cuda" and not args.skip_extras:
            results += paper_extras(device, args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


def bench_model(kind: str, name: str, args, device: torch.device, bf16: bool, tmp: Path) -> dict:
    model = build_model(kind, name, args.preset, _random_backbone(kind, name))
    if kind == "editor":
        predictor = build_model("predictor", args.predictor, args.preset, _random_backbone("predictor", args.predictor))
        model.attach_predictor(predictor)
    size = _training_size(model)
    data_dir = tmp / f"{name}-{size[0]}x{size[1]}"
    if not data_dir.exists():
        write_scene_dataset(data_dir, n_pairs=4, size=(size[1], size[0]))
    model.to(device).train()
    data = model.make_dataset(data_dir, "train")
    batch_size = int(getattr(model.config, "batch_size", 1))
    batch = _to(collate([data[i % len(data)] for i in range(batch_size)]), device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else nullcontext()
    with autocast:
        step_s = _time(lambda: model.train_step(batch), args.steps, device)
    images = batch[_image_key(batch)]
    base_train_s, base_infer_s = vgg16_baseline(images, device, bf16, args.steps, args.repeats)
    model.eval()
    with torch.no_grad(), autocast:
        if kind == "predictor":
            infer_s = _time(lambda: model.log_density(images[:1]), args.repeats, device)
        else:
            guidance = _guidance(model, images[:1])
            infer_s = _time(lambda: model.edit(images[:1], guidance), args.repeats, device)
    row = {"kind": kind, "name": name, "size_hw": list(size), "batch": batch_size,
           "train_steps_per_s": 1 / step_s, "train_ratio_vs_vgg16": step_s / base_train_s,
           "infer_ms_per_image": 1000 * infer_s, "infer_ratio_vs_vgg16": infer_s / base_infer_s}
    print(f"{kind:9s} {name:14s} {size[1]}x{size[0]} batch {batch_size}: train {row['train_steps_per_s']:.2f} steps/s "
          f"({row['train_ratio_vs_vgg16']:.2f}x a VGG16 fwd+bwd), inference {row['infer_ms_per_image']:.1f} ms/image "
          f"({row['infer_ratio_vs_vgg16']:.2f}x a VGG16 forward)")
    return row


def vgg16_baseline(images: torch.Tensor, device, bf16: bool, steps: int, repeats: int) -> tuple[float, float]:
    """Seconds of torchvision's VGG16 conv1_1 … relu5_3 (no last pool, as SalGAN's encoder) forward +
    backward on `images`, and forward on one image."""
    from torchvision.models import vgg16

    net = vgg16().features[:-1].to(device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else nullcontext()

    def train_step():
        net.zero_grad(set_to_none=True)
        with autocast:
            out = net(images.float())
        out.float().mean().backward()

    train_s = _time(train_step, steps, device)
    with torch.no_grad(), autocast:
        infer_s = _time(lambda: net(images[:1].float()), repeats, device)
    return train_s, infer_s


def paper_extras(device: torch.device, args) -> list[dict]:
    """GazeShiftNet on a 4K image and FGTransform at 512×512, paper presets, bf16."""
    rows = []
    autocast = torch.autocast("cuda", dtype=torch.bfloat16)
    for name, (height, width), note in (("gazeshiftnet", (2160, 3840), "4K image"),
                                        ("fgtransform", (512, 512), "paper: 117 ms on a GTX 1080")):
        if name not in EDITORS:
            continue
        model = build_model("editor", name, "paper", _random_backbone("editor", name)).to(device).eval()
        image = torch.rand(1, 3, height, width, device=device)
        guidance = _guidance(model, image)
        torch.cuda.reset_peak_memory_stats(device)
        with torch.no_grad(), autocast:
            seconds = _time(lambda: model.edit(image, guidance), args.repeats, device)
        peak = torch.cuda.max_memory_allocated(device) / 2**30
        print(f"editor    {name:14s} {width}x{height} paper preset, bf16: {1000 * seconds:.1f} ms/image, "
              f"peak {peak:.2f} GiB ({note})")
        rows.append({"kind": "editor", "name": name, "size_hw": [height, width], "infer_ms_per_image": 1000 * seconds,
                     "peak_gib": peak, "note": note})
    return rows


def write_scene_dataset(root: Path, n_pairs: int, size: tuple[int, int]) -> Path:
    """A valid dataset of coloured rectangles (masks, peaked maps) at `size` = (W, H)."""
    width, height = size
    ds = Dataset.create(root, "bench-scenes", seed=0)
    writer = PairWriter(root)
    rng = np.random.default_rng(0)
    rows = []
    for index in range(n_pairs):
        pair_id = f"{index:06d}"
        boxes = []
        for k in range(3):
            w, h = int(width * rng.uniform(0.15, 0.25)), int(height * rng.uniform(0.15, 0.25))
            boxes.append((int(width * (0.05 + 0.3 * k)), int(rng.integers(0, height - h)), w, h))
        row = {"pair_id": pair_id, "split": "train", "source": "clevr", "edit_type": "recolor", "n_edited": 1}
        for side in ("x", "y"):
            image = np.full((height, width, 3), 110, np.uint8)
            mask = np.zeros((height, width), np.uint8)
            for k, (x0, y0, w, h) in enumerate(boxes, start=1):
                image[y0:y0 + h, x0:x0 + w] = rng.integers(20, 255, 3)
                mask[y0:y0 + h, x0:x0 + w] = k
            # The colours were drawn as BGR (as cv2.imwrite wrote them): the same file bytes as before.
            row[f"{side}_image"] = writer.image(pair_id, side, image[..., ::-1])
            row[f"{side}_mask"] = writer.mask(pair_id, side, mask)
            x0, y0, w, h = boxes[int(rng.integers(0, 3))]
            ys, xs = np.mgrid[0:height, 0:width]
            sigma = max(width, height) / 20
            density = np.exp(-((xs - x0 - w / 2) ** 2 + (ys - y0 - h / 2) ** 2) / (2 * sigma**2)) + 1e-4
            row[f"{side}_map"] = writer.map(pair_id, side, density, png=False)
            row[f"n_observers_{side}"] = 7
        objects = [{"id": k, "mask_id": k} for k in range(1, 4)]
        row["scene"] = writer.scene(pair_id, {"x": {"objects": objects}, "y": {"objects": objects},
                                              "edit": {"type": "recolor", "object_ids": [1]}})
        rows.append(row)
    ds.add_pairs(rows)
    return root


def _random_backbone(kind: str, name: str) -> dict:
    """Config overrides for a random VGG backbone, for models that have one."""
    import dataclasses

    from models.base import registry_of

    fields = {f.name for f in dataclasses.fields(registry_of(kind).get(name).Config)}
    return {"backbone_weights": "random"} if "backbone_weights" in fields else {}


def _training_size(model) -> tuple[int, int]:
    """(H, W) the model trains at, from its config (input_size / image_size / train_size)."""
    for field in ("input_size", "image_size", "train_size"):
        value = getattr(model.config, field, None)
        if value is not None:
            if isinstance(value, int):
                return value, value
            return int(value[0]), int(value[1])
    return 64, 64


def _image_key(batch: dict) -> str:
    for key in ("x", "image", "images"):
        if key in batch:
            return key
    raise KeyError(f"no image key in the training batch (keys {sorted(batch)})")


def _guidance(model, images: torch.Tensor) -> torch.Tensor:
    """A centred box mask, or a density peaked on it, at the images' size."""
    _, _, height, width = images.shape
    mask = torch.zeros(1, 1, height, width, device=images.device)
    mask[..., height // 3: 2 * height // 3, width // 3: 2 * width // 3] = 1
    if model.guidance == "mask":
        return mask
    density = mask + 1e-3
    return density / density.sum()


def _time(function, repeats: int, device: torch.device) -> float:
    """Mean seconds per call over `repeats` calls, after one warm-up call."""
    function()
    _sync(device)
    started = time.perf_counter()
    for _ in range(repeats):
        function()
    _sync(device)
    return (time.perf_counter() - started) / repeats


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _to(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return platform.processor() or platform.machine()


if __name__ == "__main__":
    main()
