"""Subcommand groups whose commands arrive with later parts (evaluation, reports)."""
import click


@click.group("evaluate")
def evaluate() -> None:
    """Score edited images and saliency predictions."""


@click.group("report")
def report() -> None:
    """Reproduce the papers' tables and plots from scores and studies."""


GROUPS = [evaluate, report]
