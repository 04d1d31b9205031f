"""`gazelab dataset info|validate DIR`."""
import json

import click


@click.group("dataset")
def group() -> None:
    """Inspect and check dataset directories (DESIGN.md §2)."""


@group.command("info")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def info(directory: str, as_json: bool) -> None:
    """Counts by split, source, edit type and observers."""
    from datagen.dataset import Dataset

    summary = Dataset.open(directory).summary()
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(f"{summary['name']}  ({summary['path']})")
    click.echo(f"pairs: {summary['pairs']}")
    for key in ("splits", "sources", "edit_types"):
        counts = ", ".join(f"{k} {v}" for k, v in summary[key].items()) or "none"
        click.echo(f"{key.replace('_', ' ')}: {counts}")
    obs = summary["observers"]
    if obs["sides_with_observers"]:
        click.echo(
            f"maps: {summary['maps']} images with maps; observers per image mean {obs['mean']:.1f}"
            f" (min {obs['min']}, max {obs['max']})"
        )
    else:
        click.echo("maps: none yet (no study exported)")


@group.command("validate")
@click.argument("directory", type=click.Path(file_okay=False))
@click.pass_context
def validate(ctx: click.Context, directory: str) -> None:
    """Check every file against the contract; one line per problem, exit 1 if any."""
    from datagen.dataset import Dataset

    dataset = Dataset.open(directory)
    problems = dataset.validate(progress=len(dataset.pairs) > 200)
    for problem in problems:
        click.echo(str(problem))
    if problems:
        click.echo(f"{len(problems)} problem(s) in {directory}", err=True)
        ctx.exit(1)
    click.echo(f"ok: {len(dataset.pairs)} pairs in {directory} follow the dataset contract")
