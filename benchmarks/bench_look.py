"""Benchmark how renders look against CLEVR, per engine: rubber and metal colours, floor, clipped pixels.

    python benchmarks/bench_look.py                      # 320x240, 16 samples, 4 chart shifts, 2 pairs
    python benchmarks/bench_look.py --quick              # 160x120, 8 samples, 1 shift, 1 pair
    python benchmarks/bench_look.py --engines CYCLES --pairs 0 --sheets out/look

For each engine (Cycles, EEVEE, Workbench by default):
(a) the colour chart (`datagen.blender.look.chart_scene`: one large object per CLEVR colour at
    CLEVR's default camera and lights), in rubber and in metal, rendered at `--shifts` shifts so
    that each colour stands at several positions; metal a second time with the metal set-up it
    had before (`BEFORE_METAL`, sRGB converted to linear) unless --no-before. Per colour: the
    median over its objects of each object's median colour (mask eroded by 2 px: no edge pixels;
    the median ignores small highlights), CLEVR's render of the same objects
    (`look.CLEVR_RENDERS`, same positions, same measure), the listed sRGB colour, and CIEDE2000
    between them. The target for both materials is CLEVR's renders, not the listed colours
    ("CLEVR↔listed" shows how far CLEVR's own renders are from those).
(b) `--pairs` sampled pairs through the pipeline (`datagen.pipeline.generate`: jittered camera
    and lights, random objects, the worker that real datasets use): floor brightness of every
    image (mean grey of floor pixels in the top and bottom tenth of the rows and overall), the
    share of pixels with a channel at 255, and the rubber objects' colours by name (against the
    listed colours: CLEVR's renders are charted at fixed positions only).
With --sheets DIR: the pipeline's contact sheet of each engine's pairs (`datagen.preview`) and
the chart renders, as DIR/sheet_ENGINE.png and DIR/chart_MATERIAL_ENGINE.png.
Reference figures are CLEVR's own (printed at the end): ΔE00 below ~5 reads as the same colour at
a glance, a floor like CLEVR's and < 1 % clipped pixels. Nothing here is timed.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

ENGINES = ("CYCLES", "BLENDER_EEVEE", "BLENDER_WORKBENCH")
# CLEVR's example images (clevr-dataset-gen images/img1-8.png, 320x240; no masks, so whole rows):
# top band 102-106, bottom band 134-147, at most 0.1 % of pixels clipped. CLEVR's
# base_scene.blend rendered by bpy 5.0.1 with spheres and its Object Index pass: 104/141/120.
CLEVR_FLOOR = (104.0, 141.0, 120.0)
# The metal of commit be0bb19 and before: Principled metallic, base colour = the sRGB colour
# converted to linear (red (173, 35, 35) → 0.42, 0.017, 0.017), rendered beside today's metal.
BEFORE_METAL = {"metal": {"kind": "metal", "roughness": 0.2, "metallic": 1.0, "clevr_color": 0.0, "color_scale": 1.0}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    parser.add_argument("--width", type=int, default=None, help="default 320 (160 with --quick)")
    parser.add_argument("--height", type=int, default=None, help="default 240 (120 with --quick)")
    parser.add_argument("--samples", type=int, default=None, help="default 16 (8 with --quick)")
    parser.add_argument("--shifts", type=int, default=None, help="chart positions per colour, 1-8; default 4 (1 with --quick)")
    parser.add_argument("--pairs", type=int, default=None, help="sampled pairs per engine, 0 for none; default 2 (1 with --quick)")
    parser.add_argument("--seed", type=int, default=0, help="the sampled pairs' dataset seed")
    parser.add_argument("--no-before", action="store_true", help="skip the metal chart with the set-up from before")
    parser.add_argument("--sheets", type=Path, default=None, help="write contact sheets and chart renders here")
    parser.add_argument("--quick", action="store_true", help="small, few samples, one shift, one pair")
    args = parser.parse_args(argv)
    width = args.width or (160 if args.quick else 320)
    height = args.height or (120 if args.quick else 240)
    samples = args.samples or (8 if args.quick else 16)
    shifts = args.shifts or (1 if args.quick else 4)
    pairs = args.pairs if args.pairs is not None else (1 if args.quick else 2)
    if min(width, height) < 64 or samples < 1 or not 1 <= shifts <= 8 or pairs < 0:
        parser.error("need --width/--height >= 64, --samples >= 1, --shifts in 1-8, --pairs >= 0")

    # Importing the renderer fails here, with bpy's own message, when Blender is not installed.
    from datagen.blender.renderer import Renderer, RenderSettings

    charts = 2 * shifts + (0 if args.no_before else shifts)
    print(f"{width}x{height}, {samples} samples, {charts} chart renders ({shifts} shift(s)), {pairs} sampled pair(s) per engine")
    summary = []
    with tempfile.TemporaryDirectory(prefix="bench_look_") as folder:
        for engine in args.engines:
            print(f"\n== {engine}")
            settings = RenderSettings(engine=engine, samples=samples, seed=0)
            out = Path(folder) / engine
            with Renderer(settings) as renderer:
                rubber = chart_figures(renderer, (width, height), shifts, out, "rubber")
                metal = chart_figures(renderer, (width, height), shifts, out, "metal")
                before = None if args.no_before else chart_figures(renderer, (width, height), shifts, out, "metal", BEFORE_METAL)
            for material, (colors, images), old in (("rubber", rubber, None), ("metal", metal, before)):
                errors = print_colors(f"(a) chart, {material}", colors, material, before=old[0] if old else None)
                print_images(f"(a) chart, {material}", images)
                summary.append((engine, material, errors))
            if pairs:
                dataset = Path(folder) / f"ds_{engine}"
                sampled_colors, sampled_images = sampled_figures(dataset, engine, pairs, (width, height), samples, args.seed)
                print_colors("(b) sampled pairs, rubber", sampled_colors, None)
                print_images("(b) sampled pairs", sampled_images)
            if args.sheets:
                args.sheets.mkdir(parents=True, exist_ok=True)
                for material in ("rubber", "metal"):
                    shutil.copy(out / f"chart_{material}_0.png", args.sheets / f"chart_{material}_{engine}.png")
                if pairs:
                    from datagen.preview import contact_sheet

                    contact_sheet(dataset, args.sheets / f"sheet_{engine}.png", n_pairs=pairs)
    print("\nΔE00 of the chart colours (mean, worst over the colours):")
    for engine, material, errors in summary:
        print(f"  {engine:17s} {material:6s} {_errors_line(errors)}")
    print(f"CLEVR's floor: top {CLEVR_FLOOR[0]:.0f}, bottom {CLEVR_FLOOR[1]:.0f}, mean {CLEVR_FLOOR[2]:.0f};"
          " clipped <= 0.1 % (its images/img1-8.png); target: ΔE00 to CLEVR's renders small, floor like CLEVR's,"
          " clipped < 1 %")
    if args.sheets:
        print(f"sheets and chart renders: {args.sheets}")
    return 0


def chart_figures(renderer, size: tuple[int, int], shifts: int, folder: Path, material: str, materials=None):
    """Render the `material` chart at shifts 0, 8/shifts, …, with `materials` overriding the
    renderer's; return ({colour: [(median rgb, listed rgb, position index)]}, [image figures])."""
    from datagen.blender.look import CHART_LAYOUT, chart_position, chart_scene
    from datagen.placement import CLEVR_LIGHTS
    from datagen.properties import Properties

    colors: dict[str, list] = {}
    images = []
    step = len(CHART_LAYOUT) // shifts
    tag = material if materials is None else f"{material}_before"
    for k in range(shifts):
        scene = chart_scene(Properties.clevr().colors, CLEVR_LIGHTS, size, shift=k * step, material=material)
        image_path, mask_path = folder / f"chart_{tag}_{k}.png", folder / f"chart_{tag}_{k}_mask.png"
        renderer.render(scene, image_path, mask_path, materials=materials)
        objects = [(o.mask_id, o.color, o.rgb, chart_position(o)) for o in scene.objects]
        found, figures = measure(image_path, mask_path, objects)
        for name, entry in found:
            colors.setdefault(name, []).append(entry)
        images.append(figures)
    return colors, images


def sampled_figures(dataset: Path, engine: str, pairs: int, size: tuple[int, int], samples: int, seed: int):
    """Render `pairs` sampled pairs into `dataset`; return the same figures as `chart_figures` for rubber objects."""
    from datadir import Dataset
    from datagen.generator_config import GeneratorConfig
    from datagen.pipeline import generate

    config = GeneratorConfig.from_options(pairs, width=size[0], height=size[1], samples=samples, seed=seed, engine=engine)
    generate(dataset, config, workers=1, progress=False)
    opened = Dataset.open(dataset)
    colors: dict[str, list] = {}
    images = []
    for row in opened.pairs.to_dict("records"):
        scene = json.loads((opened.path / row["scene"]).read_text(encoding="utf-8"))
        for side in ("x", "y"):
            objects = [(o["mask_id"], o["color"], tuple(o["rgb"]), None) for o in scene[side]["objects"] if o["material"] == "rubber"]
            found, figures = measure(opened.path / row[f"{side}_image"], opened.path / row[f"{side}_mask"], objects)
            for name, entry in found:
                colors.setdefault(name, []).append(entry)
            images.append(figures)
    return colors, images


def measure(image_path: Path, mask_path: Path, objects):
    """([(colour, (median rgb, listed rgb, position))] for `objects` = [(mask_id, colour, listed rgb,
    chart position or None)], (floor, clipped share))."""
    import cv2

    from datagen.blender.look import clipped_share, floor_brightness, object_colors

    rgb = cv2.cvtColor(cv2.imread(str(image_path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    mask = cv2.imread(str(mask_path), cv2.IMREAD_UNCHANGED)
    medians = object_colors(rgb, mask)
    # A small object far away may have no interior left after the erosion: it is skipped.
    found = [(name, (medians[mask_id], listed, position)) for mask_id, name, listed, position in objects if mask_id in medians]
    return found, (floor_brightness(rgb, mask), clipped_share(rgb))


def print_colors(title: str, colors: dict[str, list], material: str | None, before: dict[str, list] | None = None) -> dict[str, list]:
    """One line per colour: the median of the per-object medians beside CLEVR's render of the same
    objects (`material` charts; None: no reference) and the listed colour; returns the ΔE00 lists
    {"to CLEVR", "before to CLEVR", "to listed", "CLEVR to listed"} (empty where not measured)."""
    from datagen.blender.look import clevr_reference, delta_e_2000, srgb_to_lab

    def de(a, b) -> float:
        return delta_e_2000(srgb_to_lab(a), srgb_to_lab(b))

    print(f"{title} colours (median of {sum(len(v) for v in colors.values())} object medians):")
    errors: dict[str, list] = {"to CLEVR": [], "before to CLEVR": [], "to listed": [], "CLEVR to listed": []}
    for name, entries in sorted(colors.items()):
        median = np.median([e[0] for e in entries], axis=0)
        listed = np.array(entries[0][1], float)
        errors["to listed"].append(de(median, listed))
        line = f"  {name:7s} n={len(entries):2d}  ours {_rgb(median)}"
        if material is not None:
            clevr = clevr_reference(material, name, [e[2] for e in entries])
            errors["to CLEVR"].append(de(median, clevr))
            errors["CLEVR to listed"].append(de(clevr, listed))
            line += f"  CLEVR {_rgb(clevr)}  ΔE00 {errors['to CLEVR'][-1]:4.1f}"
            if before and name in before:
                old = np.median([e[0] for e in before[name]], axis=0)
                errors["before to CLEVR"].append(de(old, clevr))
                line += f" (before {_rgb(old)} {errors['before to CLEVR'][-1]:4.1f})"
        line += f"  listed {_rgb(listed)}  ours↔listed {errors['to listed'][-1]:4.1f}"
        if material is not None:
            line += f"  CLEVR↔listed {errors['CLEVR to listed'][-1]:4.1f}"
        print(line)
    if colors:
        print(f"  {_errors_line(errors)}")
    return errors


def print_images(title: str, images: list) -> None:
    floors = [f for f, _ in images]
    clipped = [c for _, c in images]
    print(f"{title} images ({len(images)}): floor top {statistics.mean(f.top for f in floors):.0f}"
          f" bottom {statistics.mean(f.bottom for f in floors):.0f} mean {statistics.mean(f.mean for f in floors):.0f}"
          f" (0-255, mean over images; bottom ranges {min(f.bottom for f in floors):.0f}-{max(f.bottom for f in floors):.0f});"
          f" clipped {100 * statistics.mean(clipped):.2f} % mean, {100 * max(clipped):.2f} % worst")


def _errors_line(errors: dict[str, list]) -> str:
    """One line with the mean and worst of each non-empty ΔE00 list."""
    names = {"to CLEVR": "to CLEVR's renders", "before to CLEVR": "before", "to listed": "ours to listed",
             "CLEVR to listed": "CLEVR's renders to listed"}
    parts = [f"{names[key]} {np.mean(values):.1f} / {max(values):.1f}" for key, values in errors.items() if values]
    return "ΔE00 mean / worst: " + " · ".join(parts)


def _rgb(values) -> str:
    return "(" + ", ".join(f"{v:3.0f}" for v in values) + ")"


if __name__ == "__main__":
    sys.exit(main())
