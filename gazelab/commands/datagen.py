"""`gazelab datagen ...`: render paired CLEVR-style datasets, import photos, preview."""
from __future__ import annotations

import click


@click.group("datagen")
def group() -> None:
    """Generate paired datasets (Blender renders, photo pairs) and look at them."""


@group.command("import-pairs")
@click.option("--x-dir", required=True, type=click.Path(file_okay=False, exists=True), help="Photos before the edit.")
@click.option("--y-dir", required=True, type=click.Path(file_okay=False, exists=True), help="Photos after, same stems.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Dataset directory (created or extended).")
@click.option("--splits", default="0.94,0.03,0.03", show_default=True, help="train,val,test fractions.")
@click.option("--seed", default=0, show_default=True, help="Seed of the split assignment.")
def import_pairs(x_dir, y_dir, out, splits, seed) -> None:
    """Import SGIT-R style photo pairs of the same view, matched by file stem (same size required)."""
    from datagen.photos import import_pairs as run

    summary = run(x_dir, y_dir, out, splits=splits, seed=seed)
    click.echo(f"imported {summary.imported} pairs ({summary.skipped} already there) into {summary.path}")


@group.command("import-singles")
@click.option("--images", required=True, type=click.Path(file_okay=False, exists=True), help="Images to edit.")
@click.option("--target-maps", type=click.Path(file_okay=False, exists=True),
              help="Target saliency maps matched by stem (.npy or grey images); stored as densities.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Dataset directory (created or extended).")
@click.option("--splits", default="0,0,1", show_default=True, help="train,val,test fractions (SGIT-C is a test set).")
@click.option("--seed", default=0, show_default=True, help="Seed of the split assignment.")
def import_singles(images, target_maps, out, splits, seed) -> None:
    """Import SGIT-C style single images, optionally with target maps."""
    from datagen.photos import import_singles as run

    summary = run(images, out, target_maps=target_maps, splits=splits, seed=seed)
    click.echo(f"imported {summary.imported} images ({summary.skipped} already there) into {summary.path}")


@group.command("preview")
@click.argument("directory", type=click.Path(file_okay=False, exists=True))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Contact sheet PNG to write.")
@click.option("--pairs", "n_pairs", default=12, show_default=True, type=click.IntRange(1), help="How many pairs.")
@click.option("--columns", default=2, show_default=True, type=click.IntRange(1), help="Pairs per row.")
def preview(directory, out, n_pairs, columns) -> None:
    """A contact sheet of pairs: X and Y with masks overlaid, the edit written under each."""
    from datagen.preview import contact_sheet

    path = contact_sheet(directory, out, n_pairs=n_pairs, columns=columns)
    click.echo(f"wrote {path}")
