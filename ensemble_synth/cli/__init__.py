"""The ``ensemble-synth`` command line: thin click commands over the library."""

from __future__ import annotations

import errno
import sys

import click

from ..errors import UserError
from ..fileio import os_error_message
from . import adapt_cmds, bench_cmds, corpus_cmds, eval_cmds, realism_cmds, render_cmds, room_cmds, train_cmds  # noqa: F401  (they register their commands)
from .group import cli

__all__ = ["cli", "main"]

# File-system failures that name no file (a full disk mid-write) but are still the
# user's environment, not a bug: one line, not a traceback.
_FILE_SYSTEM_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO}


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (2 for bad input) instead of raising.

    Every failure the user can act on is one line on stderr, ``error: <what>: <problem>``:
    a :class:`UserError`, a usage error of click's (a bad option value, a missing
    argument), and an ``OSError`` that names its file (an output directory that cannot be
    written, a path that is a file).
    """
    try:
        cli.main(args=argv, prog_name="ensemble-synth", standalone_mode=False)
    except UserError as exc:
        click.echo(f"error: {exc}", err=True)
        return 2
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.exceptions.NoArgsIsHelpError as exc:  # the bare group: its help, as click prints it
        exc.show()
        return exc.exit_code
    except click.ClickException as exc:
        click.echo(f"error: {_one_line(_click_message(exc))}", err=True)
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except OSError as exc:
        if exc.filename is None and exc.errno not in _FILE_SYSTEM_ERRNOS:
            raise
        click.echo(f"error: {_one_line(os_error_message(exc))}", err=True)
        return 2
    return 0


def _click_message(exc: click.ClickException) -> str:
    """``-o/--out: Directory 'x' is a file.`` for a bad value; click's own words otherwise."""
    if isinstance(exc, click.BadParameter) and not isinstance(exc, click.MissingParameter):
        hint = _param_hint(exc)
        if hint:
            return f"{hint}: {exc.message}"
    return exc.format_message()


def _param_hint(exc: click.BadParameter) -> str | None:
    if exc.param_hint is not None:
        return exc.param_hint if isinstance(exc.param_hint, str) else "/".join(exc.param_hint)
    if isinstance(exc.param, click.Option):
        return "/".join(exc.param.opts)
    if exc.param is not None:
        return exc.param.human_readable_name
    return None


def _one_line(text: str) -> str:
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
