"""The `gazelab` command line. Subcommands live in gazelab/commands/ and import heavy
packages (bpy, torch, flask) only inside the command that needs them."""
from __future__ import annotations

import logging
import os
import sys

import click

from gazelab import __version__
from gazelab.commands import datagen, dataset, demo, doctor, evaluate, modeling, score, study

# Errors that mean "the user gave something wrong", shown as one line without a traceback.
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, PermissionError)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="gazelab")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """gazelab: paired datasets, attention studies, saliency-guided editors and their metrics."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


cli.add_command(datagen.group)
cli.add_command(dataset.group)
cli.add_command(score.command)
cli.add_command(study.group)
cli.add_command(demo.command)
cli.add_command(doctor.command)
for command in modeling.COMMANDS + evaluate.COMMANDS:
    cli.add_command(command)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: runs the CLI and turns user errors into one line, exit 2."""
    debug = os.environ.get("GAZELAB_DEBUG") == "1"
    try:
        code = cli.main(args=argv, prog_name="gazelab", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
        code = 0
    except click.exceptions.Abort:
        click.echo("gazelab: aborted", err=True)
        code = 130
    except click.ClickException as exc:
        click.echo(f"gazelab: error: {_one_line(exc.format_message())}", err=True)
        code = 2
    except USER_ERRORS as exc:
        if debug:
            raise
        click.echo(f"gazelab: error: {_one_line(str(exc))}", err=True)
        code = 2
    sys.exit(code if isinstance(code, int) else 0)


def _one_line(message: str) -> str:
    return " ".join(message.split())
