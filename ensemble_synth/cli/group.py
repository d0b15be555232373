"""The click group every command module adds its commands to."""

from __future__ import annotations

import click

from .._version import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ensemble-synth")
def cli():
    """Synthetic recordings of small classical ensembles for source separation."""
