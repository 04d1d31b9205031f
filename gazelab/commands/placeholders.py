"""Subcommand groups whose commands arrive with later parts (models, reports)."""
import click


@click.group("train")
def train() -> None:
    """Train saliency predictors and saliency-guided editors."""


@click.group("edit")
def edit() -> None:
    """Apply a trained editor to images and target maps."""


@click.group("evaluate")
def evaluate() -> None:
    """Score edited images and saliency predictions."""


@click.group("report")
def report() -> None:
    """Reproduce the papers' tables and plots from scores and studies."""


GROUPS = [train, edit, evaluate, report]
