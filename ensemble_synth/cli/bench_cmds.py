"""`evaluate` and `bench` commands."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import UserError
from ..evaluation.datasets import load_dataset
from ..evaluation.metrics import METRICS
from ..evaluation.model_scoring import evaluate_model
from ..evaluation.report import write_report
from ..fileio import atomic_directory
from ..synth_vs_real import BASE_PRESET, OUTPUTS, URMP_PRESET, VARIANTS, run_bench
from .group import cli
from .separation_options import separation_options


@cli.command()
@click.option("--model", "model_path", required=True, type=click.Path(), help="A model.pt (or run directory).")
@click.option("--dataset", required=True, help="bach10:PATH, urmp:PATH or folder:PATH.")
@click.option("--segment", type=float, default=None, help="Cut tracks into segments of this many seconds.")
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False))
@click.option("--sdr-only", is_flag=True, help="Only SDR (and SI-SDR), no filter projections: much faster.")
@click.option("--device", default="auto", show_default=True)
@separation_options
def evaluate(model_path, dataset, segment, out_dir, sdr_only, device, shifts, consistency):
    """Separate every track of a dataset with a trained model and score it."""
    from ..separation import load_separator

    separator = load_separator(model_path, device=device, shifts=shifts, consistency=consistency)
    tracks = load_dataset(dataset, segment=segment)
    if not tracks:
        raise UserError(f"{dataset}: no tracks")
    results = evaluate_model(separator, tracks, metrics=("SDR",) if sdr_only else METRICS, progress=True)
    with atomic_directory(out_dir) as tmp:
        paths = write_report(results, tmp, title=f"{Path(model_path).parent.name} on {dataset}")
        summary_name = paths["summary_md"].name
    click.echo((Path(out_dir) / summary_name).read_text())


@cli.command()
@click.option("--real", "real", multiple=True, required=True,
              help="Real data set: bach10:PATH, urmp:PATH, folder:PATH (repeatable). Pieces of several line-ups "
              "are benchmarked line-up by line-up.")
@click.option("--budget", default="smoke", show_default=True, type=click.Choice(["smoke", "small", "full"]))
@click.option("--causal", is_flag=True, help="Train causal models (cLN, no look-ahead).")
@click.option("--preset", default=None,
              help="Corpus preset (name or TOML) whose synthesis the variants switch off part by part "
              f"[default: {BASE_PRESET} for the Bach10 line-up, {URMP_PRESET} for any other].")
@click.option("--model", default=None, help="Model preset (name or TOML) in place of the budget's.")
@click.option("--variants", default=",".join(VARIANTS), show_default=True)
@click.option("--segment", type=float, default=None,
              help="Score the real pieces in segments of this many seconds (the study's 15) instead of whole.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--jobs", "-j", type=int, default=None, help="Worker processes: corpus generation, and models trained side by side [default: one per core]. "
              "The cores are shared among one command's workers: two benches run at once each use them all "
              "(give each --jobs 1 and expect both to be slower than one after the other).")
@click.option("--score-informed", is_flag=True, help="Also adapt each variant's model to every real piece's score "
              "(`adapt`, the budget's renditions and minutes per piece) and report it apart from the blind rows.")
@click.option("--outputs", default="voices", show_default=True, type=click.Choice(OUTPUTS),
              help="voices: one model per line-up, its outputs the parts in part order; targets: one target model "
              "(the instrument against the rest) per instrument, results in results-targets.*.")
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False))
def bench(real, budget, causal, preset, model, variants, segment, seed, jobs, score_informed, outputs, out_dir):
    """Train on synthetic corpora variant by variant, score on real recordings.

    A real set of several line-ups (URMP) gets corpora and models per line-up and a table per
    line-up, per piece and overall."""
    import os

    run_bench(list(real), out_dir, budget=budget, causal=causal, seed=seed,
              variants=[v.strip() for v in variants.split(",") if v.strip()],
              jobs=jobs or os.cpu_count() or 1, log=lambda m: click.echo(m, err=True), preset=preset, model=model,
              score_informed_pieces=score_informed, segment=segment, outputs=outputs)
    click.echo((Path(out_dir) / ("results.md" if outputs == "voices" else f"results-{outputs}.md")).read_text())
