"""The ``ensemble-synth`` command line: thin click commands over the library."""

from __future__ import annotations

import sys

import click

from ..errors import UserError
from .. import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ensemble-synth")
def cli():
    """Synthetic recordings of small classical ensembles for source separation."""


def _register():
    # Each area adds its commands to the group; imported here so the group is complete.
    from . import render_cmds, room_cmds, corpus_cmds, train_cmds, eval_cmds, bench_cmds  # noqa: F401


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (2 for bad input) instead of raising."""
    _register()
    try:
        cli.main(args=argv, prog_name="ensemble-synth", standalone_mode=False)
    except UserError as exc:
        click.echo(f"error: {exc}", err=True)
        return 2
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
