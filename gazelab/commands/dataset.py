"""`gazelab dataset info|validate DIR` and `gazelab dataset filter DIR --min-kl X --out NEW`."""
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
    from datadir import Dataset

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
    from datadir import Dataset

    dataset = Dataset.open(directory)
    problems = dataset.validate(progress=len(dataset.pairs) > 200)
    for problem in problems:
        click.echo(str(problem))
    if problems:
        click.echo(f"{len(problems)} problem(s) in {directory}", err=True)
        ctx.exit(1)
    click.echo(f"ok: {len(dataset.pairs)} pairs in {directory} follow the dataset contract")


@group.command("filter")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--min-kl", type=float, required=True,
              help="Keep pairs whose kl_xy (KLD between the X and Y maps, nats) is at least this (SGIT-S: 0.2).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="A new folder.")
def filter_command(directory: str, min_kl: float, out_dir: str) -> None:
    """A new dataset of the pairs whose edit changed where people look (SGIT-S's filter)."""
    from datadir import Dataset
    from datagen.filtering import filter_by_kl

    summary = filter_by_kl(directory, out_dir, min_kl)
    splits = ", ".join(f"{k} {v}" for k, v in summary["splits"].items())
    click.echo(f"kept {summary['kept']} of {summary['total']} pairs with kl_xy >= {min_kl:g} ({splits});"
               f" {summary['below']} below, {summary['without_kl']} without kl_xy (no maps)")
    problems = Dataset.open(summary["out"]).validate()
    if problems:
        raise click.ClickException(f"the filtered dataset has {len(problems)} problem(s); first: {problems[0]}")
    click.echo(f"ok: {summary['out']} follows the dataset contract")
