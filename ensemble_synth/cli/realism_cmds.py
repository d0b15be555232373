"""The ``realism`` command: where a synthetic corpus and real recordings differ."""

from __future__ import annotations

from pathlib import Path

import click

from ..evaluation.realism import realism_report
from .group import cli


@cli.command()
@click.argument("corpus")
@click.option("--real", "real", required=True, help="Real recordings: bach10:PATH, urmp:PATH or folder:PATH.")
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--max-tracks", type=int, default=40, show_default=True,
              help="Analyse at most this many tracks of each set (evenly spread over it).")
@click.option("--pyin-seconds", type=float, default=20.0, show_default=True,
              help="Seconds of each stem given to the f0 tracker (the slow part).")
@click.option("--max-seconds", type=float, default=60.0, show_default=True,
              help="Analyse the first this many seconds of each stem.")
@click.option("--dry/--no-dry", "dry", default=None,
              help="Also analyse the corpus's dry stems [default: when it has them].")
@click.option("--jobs", "-j", type=int, default=1, show_default=True, help="Tracks analysed side by side.")
@click.option("--overwrite", is_flag=True, help="Replace the output folder if it exists.")
def realism(corpus, real, out_dir, max_tracks, pyin_seconds, max_seconds, dry, jobs, overwrite):
    """Compare the stems of CORPUS (a corpus folder, or KIND:PATH) with real recordings.

    Per instrument, side by side: long-term average spectrum, spectral centroid and
    flatness, attack times, vibrato rate and depth, note loudness and dynamic range,
    reverberation (decay after notes, direct-to-reverberant proxy) and level balance.
    Writes report.md, report.json and one PNG a statistic into OUT.
    """
    realism_report(corpus, real, out_dir, max_tracks=max_tracks, overwrite=overwrite, dry=dry, jobs=jobs,
                   pyin_seconds=pyin_seconds, max_seconds=max_seconds, log=lambda m: click.echo(m, err=True))
    click.echo((Path(out_dir) / "report.md").read_text())
