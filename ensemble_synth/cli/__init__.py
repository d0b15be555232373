"""The ``ensemble-synth`` command line: thin click commands over the library."""

from __future__ import annotations

import sys

import click

from ..errors import UserError
from . import bench_cmds, corpus_cmds, eval_cmds, render_cmds, room_cmds, train_cmds  # noqa: F401  (they register their commands)
from .group import cli

__all__ = ["cli", "main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (2 for bad input) instead of raising."""
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
