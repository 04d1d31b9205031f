"""`gazelab demo`: the main job on embedded defaults, small and quick."""
from __future__ import annotations

from pathlib import Path

import click

DEMO_PAIRS = 4
DEMO_SIZE = (160, 120)
DEMO_SAMPLES = 16


@click.command("demo")
@click.option("--out", default="demo_output", show_default=True, type=click.Path(file_okay=False),
              help="Where the demo writes its dataset and contact sheet.")
@click.option("--pairs", "n_pairs", default=DEMO_PAIRS, show_default=True, type=click.IntRange(1))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1))
def command(out, n_pairs, workers) -> None:
    """Render a small paired dataset, validate it and draw a contact sheet of it."""
    from datagen.dataset import Dataset
    from datagen.generator_config import GeneratorConfig
    from datagen.pipeline import generate
    from datagen.preview import contact_sheet

    out = Path(out)
    dataset_dir = out / "dataset"
    width, height = DEMO_SIZE
    click.echo(f"[1/3] rendering {n_pairs} pairs at {width}x{height}, {DEMO_SAMPLES} samples into {dataset_dir}")
    config = GeneratorConfig.from_options(n_pairs, width=width, height=height, samples=DEMO_SAMPLES, seed=0)
    summary = generate(dataset_dir, config, workers=workers)
    for line in summary.lines():
        click.echo(f"      {line}")
    click.echo("[2/3] validating the dataset")
    problems = Dataset.open(dataset_dir).validate()
    for problem in problems:
        click.echo(f"      {problem}")
    if problems or summary.failed:
        raise click.ClickException(f"the demo dataset has {len(problems)} problem(s) and {len(summary.failed)} failed pair(s)")
    click.echo("      ok")
    sheet = contact_sheet(dataset_dir, out / "contact_sheet.png", n_pairs=n_pairs)
    click.echo(f"[3/3] contact sheet: {sheet}")
    click.echo(f"Done. The dataset is in {dataset_dir} (pairs.csv, images/, masks/, scenes/).")
    click.echo(f"Look at it: open {sheet}, or run `gazelab dataset info {dataset_dir}`.")
