"""`gazelab evaluate` (score every method's edits on a dataset split) and `gazelab report` (one
self-contained HTML page of the papers' tables, figures and provenance)."""
from __future__ import annotations

import click


@click.command("evaluate")
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False, exists=True),
              help="The gazelab dataset whose pairs the methods edit.")
@click.option("--methods", "method_args", multiple=True, metavar="NAME=CKPT|NAME=DIR",
              help="A trained editor's checkpoint (run here) or a folder of its outputs <pair_id>.png (scored "
                   "as they are). Repeat for several methods.")
@click.option("--runs", "runs_dir", default=None, type=click.Path(file_okay=False, exists=True),
              help="Also every editor run under this folder (*/checkpoints/last.pt), named by its folder: "
                   "one command for every trained editor or a whole sweep.")
@click.option("--predictor", "predictor_ckpt", default=None, type=click.Path(dir_okay=False, exists=True),
              help="Saliency predictor checkpoint that measures the attention-shift metrics (without it only "
                   "image metrics are scored).")
@click.option("--split", default="test", show_default=True,
              help="Split to score (train, val, test), or 'all' for every pair.")
@click.option("--samples", default=1, show_default=True, type=click.IntRange(1),
              help="Outputs per input for the diversity scores (editors that sample styles).")
@click.option("--lpips-net", type=click.Choice(["alex", "vgg"]), default="alex", show_default=True)
@click.option("--local-ds-region", type=click.Choice(["attention-boxes", "edited-box"]), default="attention-boxes",
              show_default=True, help="Where the local diversity score is measured: SalG-GAN's attention boxes B_a "
                                      "(its paper's; needs --predictor) or the edited objects' bounding box.")
@click.option("--fid/--no-fid", default=True, show_default=True, help="FID of each method's outputs.")
@click.option("--c2st/--no-c2st", default=True, show_default=True,
              help="Realism C2ST: the held-out accuracy of a small CNN trained to tell each method's outputs from "
                   "the unedited inputs (0.5 = indistinguishable); seconds per method on the CPU.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1),
              help="Score each method's pairs in this many processes (each runs the editor and predictor on its "
                   "shard); the per-image files and tables are the same as with one.")
@click.option("--ray-address", default=None, metavar="ADDRESS|local",
              help="Run the --workers shards as Ray tasks on this cluster ('local': a local Ray instance).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Evaluation folder (an existing one is continued).")
def evaluate_command(data_dir, method_args, runs_dir, predictor_ckpt, split, samples, lpips_net, local_ds_region, fid,
                     c2st, device, workers, ray_address, out_dir) -> None:
    """Run or read each method's edits of a dataset split and score them all the same way."""
    from gazelab.evaluation import evaluate, parse_methods

    if runs_dir:
        from models.runs import discover_editor_runs

        method_args = [*method_args, *discover_editor_runs(runs_dir)]
    methods = parse_methods(method_args)
    if not methods:
        raise click.UsageError("give at least one method: --methods NAME=CKPT (or NAME=DIR) or --runs DIR")
    record = evaluate(data_dir, methods, out_dir, predictor=predictor_ckpt, split=split, device=device,
                      samples=samples, fid=fid, c2st=c2st, lpips_net=lpips_net, local_ds_region=local_ds_region,
                      workers=workers, ray_address=ray_address, echo=click.echo)
    for line in record.get("predictor_check", {}).get("verdicts", []):
        click.echo(f"  predictor check: {line}")
    click.echo(f"per-image metrics: {out_dir}/per_image.csv; means: {out_dir}/summary.csv")
    click.echo(f"next: gazelab report --eval {out_dir} --out REPORT_DIR")


@click.command("report")
@click.option("--eval", "eval_dir", required=True, type=click.Path(file_okay=False, exists=True),
              help="An evaluation folder written by `gazelab evaluate`.")
@click.option("--study", "studies", multiple=True, type=click.Path(file_okay=False, exists=True),
              help="A study export folder (`gazelab study export EXP --csv DIR`) on the evaluated images; repeatable.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Report folder.")
def report_command(eval_dir, studies, out_dir) -> None:
    """Write one self-contained HTML page: the papers' tables, figures, study statistics, provenance."""
    from analysis.report import build_report

    path = build_report(eval_dir, out_dir, studies=studies)
    click.echo(f"report: {path}")


COMMANDS = [evaluate_command, report_command]
