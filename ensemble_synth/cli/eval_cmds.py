"""Evaluation commands: ``score`` (two folders of per-source WAVs)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import click

from ..errors import UserError
from ..evaluation.report import csv_text, score_dirs, text_table
from ..fileio import write_text_atomic
from .group import cli


def _check_output_file(path: Path, option: str, overwrite: bool) -> None:
    """Refuse, before any work, an output file that exists (unless ``overwrite``) or cannot be written."""
    if path.is_dir():
        raise UserError(f"{path}: {option} names a folder, not a file")
    if path.exists() and not overwrite:
        raise UserError(f"{path}: {option} output exists (use --overwrite to replace it)")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"{path}: {option}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{path}: {option}: folder {parent} is not writable")


def _write(path: Path, text: str) -> None:
    try:
        write_text_atomic(path, text)
    except OSError as exc:
        raise UserError(f"{path}: cannot write ({exc.strerror or type(exc).__name__})") from None


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
@click.option("--overwrite", is_flag=True, help="Replace the --json and --csv files if they exist.")
def score(ref_dir: Path, est_dir: Path, json_out, csv_out, window: float, hop: float, sdr_only: bool,
          overwrite: bool):
    """Score the estimates in EST_DIR against the references in REF_DIR.

    Both folders hold one <name>.wav per source, matched by name. Prints the median over
    1 s frames of SDR, SIR, SAR and ISR (BSSEval v4, museval-compatible), SI-SDR and the
    number of frames with a silent reference, which are left out of the medians.
    """

    for option, value in (("--window", window), ("--hop", hop)):
        if not (math.isfinite(value) and value > 0):
            raise UserError(f"{option} = {value}: must be a positive number of seconds")
    if json_out is not None and csv_out is not None and json_out.resolve() == csv_out.resolve():
        raise UserError(f"{json_out}: --json and --csv name the same file")
    for option, path in (("--json", json_out), ("--csv", csv_out)):
        if path is not None:
            _check_output_file(path, option, overwrite)
    metrics = ("SDR",) if sdr_only else ("SDR", "ISR", "SIR", "SAR")
    result = score_dirs(ref_dir, est_dir, window=window, hop=hop, metrics=metrics)
    rows = result.rows()
    columns = ["part", "instrument", *[m for m in ("SDR", "SIR", "SAR", "ISR") if m in metrics], "SI-SDR", "frames", "silent_frames"]
    click.echo(text_table(rows, columns))
    for row in rows:
        if row["silent"]:
            click.echo(f"note: reference {row['part']} is silent throughout; it has no scores")
        elif row["silent_estimate"]:
            click.echo(f"note: estimate {row['part']} is silent throughout; its SI-SDR is -inf"
                       + ("" if sdr_only else " and its SIR and SAR are undefined"))
    outputs = []
    if json_out is not None:
        outputs.append((json_out, json.dumps(result.to_json(), indent=2, sort_keys=False) + "\n"))
    if csv_out is not None:
        outputs.append((csv_out, csv_text(rows)))
    for path, text in outputs:
        _write(path, text)
