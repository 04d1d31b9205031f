"""`gazelab datagen ...`: render paired CLEVR-style datasets, import photos, preview."""
from __future__ import annotations

import click


@click.group("datagen")
def group() -> None:
    """Generate paired datasets (Blender renders, photo pairs) and look at them."""


@group.command("render")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Dataset directory (created or resumed).")
@click.option("--pairs", "n_pairs", required=True, type=int, help="Number of pairs (indices 0..N-1).")
@click.option("--width", default=320, show_default=True, help="Image width in pixels.")
@click.option("--height", default=240, show_default=True, help="Image height in pixels.")
@click.option("--samples", default=64, show_default=True, help="Cycles samples per pixel (1-4096).")
@click.option("--seed", default=0, show_default=True, help="Dataset seed: pair i depends only on (seed, i).")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1), help="Local worker processes.")
@click.option("--edit-mix", default="add=1,remove=1,move=1,attribute=1", show_default=True,
              help="Relative weights of edit types (add, remove, move, attribute or recolor/rematerial/resize/reshape).")
@click.option("--objects", default="3-10", show_default=True, help="Objects per scene, as MIN-MAX.")
@click.option("--splits", default="0.94,0.03,0.03", show_default=True, help="train,val,test fractions.")
@click.option("--properties", "properties_file", type=click.Path(dir_okay=False),
              help="JSON/YAML file extending CLEVR's shapes, colours, sizes and materials.")
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda", "optix", "hip"]),
              help="Cycles device; an explicit GPU that is missing is an error (before anything is written),"
                   " never a silent CPU fallback.")
@click.option("--engine", default="CYCLES", show_default=True,
              type=click.Choice(["CYCLES", "BLENDER_EEVEE", "BLENDER_WORKBENCH"]),
              help="Blender render engine. CYCLES renders datasets that look like CLEVR's (floor gradient,"
                   " soft shadows, metal reflections). BLENDER_WORKBENCH is a preview engine: it shades with"
                   " a studio light instead of the scene's lights (no floor gradient, no shadows from the"
                   " scene's lights, no reflections); not for datasets meant to look like CLEVR.")
@click.option("--preview", is_flag=True,
              help="Draft quality for a quick look: at most 8 samples, recorded so in dataset.json and the scene files.")
@click.option("--ray-address", default=None,
              help="Run workers as Ray tasks: 'local' starts a local instance, 'auto' joins a cluster, or an address.")
@click.option("--recycle-every", default=50, show_default=True, type=click.IntRange(1),
              help="Replace a worker process after this many pairs (Blender leaks memory).")
@click.option("--retries", default=2, show_default=True, type=click.IntRange(0), help="Retries of a failed pair.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
def render(ctx, out, n_pairs, width, height, samples, seed, workers, edit_mix, objects, splits, properties_file,
           device, engine, preview, ray_address, recycle_every, retries, quiet) -> None:
    """Render N pairs of CLEVR-style scenes (X, then Y after 1-2 objects are edited) with masks.

    Re-running on the same folder resumes: complete pairs are skipped.
    """
    from datagen.generator_config import GeneratorConfig
    from datagen.pipeline import generate

    config = GeneratorConfig.from_options(
        n_pairs, width=width, height=height, samples=samples, seed=seed, edit_mix=edit_mix, objects=objects,
        splits=splits, properties_file=properties_file, device=device, preview=preview, engine=engine,
    )
    summary = generate(out, config, workers=workers, ray_address=ray_address, recycle_every=recycle_every,
                       retries=retries, progress=not quiet)
    for line in summary.lines():
        click.echo(line)
    if summary.failed:
        ctx.exit(1)


@group.command("import-pairs")
@click.option("--x-dir", required=True, type=click.Path(file_okay=False, exists=True), help="Photos before the edit.")
@click.option("--y-dir", required=True, type=click.Path(file_okay=False, exists=True), help="Photos after, same stems.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Dataset directory (created or extended).")
@click.option("--splits", default="0.94,0.03,0.03", show_default=True, help="train,val,test fractions.")
@click.option("--seed", default=0, show_default=True, help="Seed of the split assignment.")
@click.option("--follow-symlinks", is_flag=True,
              help="Read symlinks that lead out of the source folders (without it they are left out, named).")
def import_pairs(x_dir, y_dir, out, splits, seed, follow_symlinks) -> None:
    """Import SGIT-R style photo pairs of the same view, matched by file stem (same size required).

    All or nothing: a file name that is not UTF-8, a damaged or truncated image, names that differ
    only in case, or a photo whose content changed since it was imported refuse the whole import,
    and a killed import leaves the dataset as it was (the next import completes or discards it).
    Re-running adds new photos and skips those already in with the same content (SHA-256).
    Hidden files are left out, each named.
    """
    from datagen.photos import import_pairs as run

    summary = run(x_dir, y_dir, out, splits=splits, seed=seed, follow_symlinks=follow_symlinks)
    for line in summary.lines("pairs"):
        click.echo(line)


@group.command("import-singles")
@click.option("--images", required=True, type=click.Path(file_okay=False, exists=True), help="Images to edit.")
@click.option("--target-maps", type=click.Path(file_okay=False, exists=True),
              help="Target saliency maps matched by stem (.npy or grey images); stored as densities.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Dataset directory (created or extended).")
@click.option("--splits", default="0,0,1", show_default=True, help="train,val,test fractions (SGIT-C is a test set).")
@click.option("--seed", default=0, show_default=True, help="Seed of the split assignment.")
@click.option("--follow-symlinks", is_flag=True,
              help="Read symlinks that lead out of the source folders (without it they are left out, named).")
def import_singles(images, target_maps, out, splits, seed, follow_symlinks) -> None:
    """Import SGIT-C style single images, optionally with target maps.

    All or nothing, like import-pairs: unreadable names or files, case clashes and changed
    content refuse the whole import; re-running skips images already in with the same content.
    """
    from datagen.photos import import_singles as run

    summary = run(images, out, target_maps=target_maps, splits=splits, seed=seed, follow_symlinks=follow_symlinks)
    for line in summary.lines("images"):
        click.echo(line)


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
