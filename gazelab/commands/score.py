"""`gazelab score`: saliency metrics of predicted maps against ground-truth maps and fixations."""
from __future__ import annotations

from pathlib import Path

import click

MAP_METRICS = ("cc", "sim", "kld")
FIXATION_METRICS = ("nss", "auc_judd", "auc_borji", "sauc")


@click.command("score")
@click.option("--pred", "pred_dir", required=True, type=click.Path(file_okay=False, exists=True),
              help="Folder of predicted saliency maps (.npy or images), matched to --gt by file stem.")
@click.option("--gt", "gt_dir", required=True, type=click.Path(file_okay=False, exists=True),
              help="Folder of ground-truth fixation maps (.npy densities or 8-bit PNGs).")
@click.option("--fixations", "fixations_csv", type=click.Path(dir_okay=False, exists=True),
              help="CSV with columns image, x, y (image matched by stem); enables NSS and the AUCs.")
@click.option("--baseline", "baseline_path", type=click.Path(dir_okay=False, exists=True),
              help="Baseline density (e.g. a centre bias) for information gain.")
@click.option("--metrics", default=None,
              help="Comma-separated metrics (default: every metric the inputs allow).")
@click.option("--skip-missing", is_flag=True, help="Score the stems present in both folders; warn about the rest.")
@click.option("--seed", default=0, show_default=True, help="Seed for AUC-Borji's random negatives.")
@click.option("--controls/--no-controls", default=True, show_default=True,
              help="Also score a centre bias and the other-image shuffle on the same images (OUT.controls.csv)"
                   " and say whether the predictor beats them.")
@click.option("--out", "out_csv", required=True, type=click.Path(dir_okay=False), help="Output CSV, one row per image.")
def command(pred_dir, gt_dir, fixations_csv, baseline_path, metrics, skip_missing, seed, controls, out_csv) -> None:
    """Score every prediction against its ground truth; writes one row per image and prints the means."""
    import numpy as np

    from analysis import metrics as metric_fns
    from analysis.scoring import score_many
    from analysis.fixations import fixation_points_from_csv
    from datadir.maps import load_map

    preds, gts = _maps_by_stem(Path(pred_dir), "--pred"), _maps_by_stem(Path(gt_dir), "--gt")
    only_pred, only_gt = sorted(set(preds) - set(gts)), sorted(set(gts) - set(preds))
    if (only_pred or only_gt) and not skip_missing:
        raise click.UsageError(
            f"no counterpart for {_names(only_pred)} in --gt and for {_names(only_gt)} in --pred"
            " (use --skip-missing to score the rest)"
        )
    for name in only_pred + only_gt:
        click.echo(f"warning: skipping {name}: no counterpart", err=True)
    stems = sorted(set(preds) & set(gts))
    if not stems:
        raise click.UsageError(f"no file stems in common between {pred_dir} and {gt_dir}")

    points = {}
    if fixations_csv:
        points = {Path(name).stem: xy for name, xy in fixation_points_from_csv(fixations_csv).items()}
        lacking = [stem for stem in stems if stem not in points]
        if lacking:
            raise click.UsageError(f"--fixations has no fixations for {_names(lacking)}")
    available = list(MAP_METRICS) + (list(FIXATION_METRICS) if points else [])
    if points and baseline_path:
        available.append("info_gain")
    chosen = available if metrics is None else [m.strip() for m in metrics.split(",") if m.strip()]
    unknown = [m for m in chosen if m not in metric_fns.METRICS]
    if unknown:
        raise click.UsageError(f"unknown metrics {unknown}; expected some of {sorted(metric_fns.METRICS)}")
    impossible = [m for m in chosen if m not in available]
    if impossible:
        needs = "--fixations" if not points else "--baseline"
        raise click.UsageError(f"metrics {impossible} need {needs}")

    baseline = load_map(baseline_path) if baseline_path else None
    items = []
    for stem in stems:
        items.append({
            "name": stem,
            # A dataset's maps are PAIRID_x / PAIRID_y: the two sides of a pair are one scene for the shuffle.
            "scene": stem[:-2] if stem.endswith(("_x", "_y")) else stem,
            "pred": load_map(preds[stem]),
            "gt_map": load_map(gts[stem]),
            "fixations": points.get(stem),
        })
    table = score_many(items, metrics=chosen, baseline=baseline, rng=np.random.default_rng(seed))
    out = Path(out_csv)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    table.to_csv(tmp, index=False)
    tmp.replace(out)
    means = ", ".join(f"{m} {table[m].mean():.4f}" for m in chosen)
    click.echo(f"scored {len(table)} images -> {out}")
    click.echo(f"mean: {means}")
    if controls and len(items) >= 2:
        from analysis.controls import control_verdicts, with_controls

        checked = [m for m in chosen if m != "info_gain"]  # the controls have no baseline of their own
        control_table = with_controls(items, metrics=checked, rng=np.random.default_rng(seed))
        control_out = out.with_name(f"{out.stem}.controls.csv")
        control_table.to_csv(control_out, index=False)
        click.echo(f"controls (centre bias, other scenes' maps) -> {control_out}")
        for line in control_verdicts(control_table):
            click.echo(f"  {line}")


def _maps_by_stem(folder: Path, option: str) -> dict[str, Path]:
    from datadir import MAP_SUFFIXES, find_images

    try:
        # a stem's exact .npy density wins over its 8-bit image (predict and datasets write both)
        found = find_images(folder, MAP_SUFFIXES, what=option)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    if not found:
        raise click.UsageError(f"{option} folder {folder} holds no maps ({', '.join(MAP_SUFFIXES)})")
    return found


def _names(names: list[str]) -> str:
    if not names:
        return "nothing"
    shown = ", ".join(names[:5])
    return shown + (f" and {len(names) - 5} more" if len(names) > 5 else "")
