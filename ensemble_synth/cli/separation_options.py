"""The options every command that separates with a trained model shares."""

from __future__ import annotations

import click

from ..separation.config import DEFAULT_SHIFTS


def separation_options(command):
    """``--shifts`` and ``--consistency/--no-consistency``, passed on as ``shifts`` and ``consistency``."""
    command = click.option("--consistency/--no-consistency", default=True, show_default=True,
                           help="Make the separated parts sum to the mixture (each takes an equal share of "
                           "what they miss).")(command)
    return click.option("--shifts", type=click.IntRange(min=1), default=DEFAULT_SHIFTS, show_default=True,
                        help="Separate the mixture this many times, delayed by fractions of the model's hop, "
                        "and average (1: once; each pass costs one separation).")(command)
