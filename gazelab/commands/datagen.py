"""`gazelab datagen ...`: render paired CLEVR-style datasets, import photos, preview."""
import click


@click.group("datagen")
def group() -> None:
    """Generate paired datasets (Blender renders, photo pairs) and look at them."""
