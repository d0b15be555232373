"""Evaluation commands: ``score`` (two folders of per-source WAVs)."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import UserError
from ..evaluation.report import score_dirs, text_table, write_csv
from ..fileio import write_json_atomic
from .group import cli


@cli.command()
@click.argument("ref_dir", type=click.Path(file_okay=False, path_type=Path))
@click.argument("est_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write museval-style per-frame scores of this track as JSON.")
@click.option("--csv", "csv_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the per-source summary table as CSV.")
@click.option("--window", type=float, default=1.0, show_default=True, help="Window in seconds.")
@click.option("--hop", type=float, default=1.0, show_default=True, help="Hop in seconds.")
@click.option("--sdr-only", is_flag=True, help="Skip ISR, SIR and SAR (much faster).")
def score(ref_dir: Path, est_dir: Path, json_out, csv_out, window: float, hop: float, sdr_only: bool):
    """Score the estimates in EST_DIR against the references in REF_DIR.

    Both folders hold one <name>.wav per source, matched by name. Prints the median over
    1 s frames of SDR, SIR, SAR and ISR (BSSEval v4, museval-compatible), SI-SDR and the
    number of frames with a silent reference, which are left out of the medians.
    """

    if window <= 0 or hop <= 0:
        raise UserError(f"--window and --hop must be positive (got {window}, {hop})")
    metrics = ("SDR",) if sdr_only else ("SDR", "ISR", "SIR", "SAR")
    result = score_dirs(ref_dir, est_dir, window=window, hop=hop, metrics=metrics)
    rows = result.rows()
    columns = ["part", "instrument", *[m for m in ("SDR", "SIR", "SAR", "ISR") if m in metrics], "SI-SDR", "frames", "silent_frames"]
    click.echo(text_table(rows, columns))
    for row in rows:
        if row["silent"]:
            click.echo(f"note: reference {row['part']} is silent throughout; it has no scores")
    if json_out is not None:
        write_json_atomic(json_out, result.to_json())
    if csv_out is not None:
        write_csv(rows, csv_out)
