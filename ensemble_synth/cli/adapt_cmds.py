"""`adapt`: fine-tune a separator on synthetic renditions of the score of the piece to separate."""

from __future__ import annotations

import os
from pathlib import Path

import click

from ..adaptation import BASE_PRESET, DEFAULT_MINUTES, DEFAULT_RENDITIONS, adapt as run_adapt
from ..music.score import parse_part_mapping
from .group import cli
from .render_cmds import ensemble_instruments


@cli.command()
@click.argument("score", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Run folder: renditions/, training/, model.pt, adapt.json.")
@click.option("--model", "model", default=None, type=click.Path(path_type=Path),
              help="The general model to start from (a model.pt); without it a model is trained from scratch.")
@click.option("--part", "parts", multiple=True, metavar="N=INSTRUMENT", help="Map part N (1-based) of the score to an instrument.")
@click.option("--ensemble", default=None, help="Ensemble preset or comma list giving the instruments of the parts in order.")
@click.option("--renditions", default=DEFAULT_RENDITIONS, show_default=True, type=int, help="Synthetic performances to render.")
@click.option("--minutes", default=DEFAULT_MINUTES, show_default=True, type=float, help="Wall-clock budget of the fine-tuning.")
@click.option("--preset", "base_preset", default=BASE_PRESET, show_default=True,
              help="Corpus preset whose timbre pools, rooms and mix the renditions use.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--jobs", "-j", type=int, default=None, help="Processes rendering the renditions [default: one per core].")
@click.option("--score-conditioned", is_flag=True,
              help="Fine-tune a model that also reads the score's notes (renditions written with MIDI); it "
                   "separates with the recording's notes aligned to its audio (Bach10 -GTNotes.mat, URMP Notes_).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def adapt(score, out_dir, model, parts, ensemble, renditions, minutes, base_preset, seed, jobs, score_conditioned, quiet):
    """Adapt a separator to one piece: render renditions of its SCORE (MIDI) and fine-tune on them."""
    best = run_adapt(score, out_dir, model=model, ensemble=ensemble_instruments(ensemble), parts=parse_part_mapping(parts),
                     renditions=renditions, minutes=minutes, seed=seed, base_preset=base_preset,
                     jobs=jobs or os.cpu_count() or 1, progress=not quiet, log=(lambda *a: None) if quiet else click.echo,
                     condition_on_score=score_conditioned)
    click.echo(f"{best}: adapted to {score.name}")
