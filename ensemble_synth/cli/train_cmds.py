"""``train`` and ``separate``: the bundled ConvTasNet from the command line."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import UserError
from ..fileio import atomic_directory, check_output_dir, read_wav, write_wav
from ..separation import require_torch
from ..separation.score_roll import notes_from_midi
from .group import cli
from .separation_options import separation_options


@cli.command()
@click.argument("corpus_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("-o", "--output", "run_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Run directory: model.pt (best), last.pt, metrics.csv, config.toml.")
@click.option("--model", "model", default="small", show_default=True,
              help="Model preset name (presets/models/) or a TOML file.")
@click.option("--target", default=None, help="Train target-vs-accompaniment for this instrument "
              "(default: one output per part of the corpus's single ensemble).")
@click.option("--max-minutes", type=float, default=None, help="Wall-clock budget; the best model so far is kept.")
@click.option("--max-steps", type=int, default=None, help="Stop after this many optimiser steps.")
@click.option("--epochs", type=int, default=None, help="Override the preset's number of epochs.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--resume", is_flag=True, help="Continue the run in RUN_DIR from its last.pt.")
@click.option("--quiet", is_flag=True, help="No progress bar or epoch lines.")
def train(corpus_dir, run_dir, model, target, max_minutes, max_steps, epochs, device, seed, resume, quiet):
    """Train a ConvTasNet on a generated corpus."""
    if max_steps is not None and max_steps < 1:
        raise UserError(f"--max-steps = {max_steps}: must be at least 1")
    if max_minutes is not None and not max_minutes >= 0:
        raise UserError(f"--max-minutes = {max_minutes}: must be 0 or more (0 trains a single step)")
    if epochs is not None and epochs < 1:
        raise UserError(f"--epochs = {epochs}: must be at least 1")
    require_torch()
    from ..separation import train as train_model

    best = train_model(corpus_dir, run_dir, model=model, target=target, max_minutes=max_minutes,
                       max_steps=max_steps, epochs=epochs, device=device, seed=seed,
                       progress=not quiet, resume=resume)
    click.echo(f"best model: {best}")


@cli.command()
@click.argument("mix", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--model", "model_path", required=True, type=click.Path(path_type=Path),
              help="A trained model.pt (or its run directory).")
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--chunk-seconds", type=float, default=10.0, show_default=True,
              help="Length of the pieces the model sees at once (bounds memory).")
@click.option("--adapt-channels", is_flag=True,
              help="Run a mono model on each channel of a stereo file (or a stereo model on a mono file).")
@click.option("--notes", "notes_files", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="A score-conditioned model's input: one MIDI file per output, in output order, holding that "
              "part's notes aligned to MIX (repeat the option; a corpus track's midi/<part>.mid files are such).")
@separation_options
@click.option("--overwrite", is_flag=True, help="Replace OUT_DIR if it exists.")
def separate(mix, model_path, out_dir, device, chunk_seconds, adapt_channels, notes_files, shifts, consistency,
             overwrite):
    """Separate MIX into one WAV per model output, at MIX's sample rate."""
    require_torch()
    from ..separation import load_separator
    from ..separation.inference import check_chunking, check_mixture

    check_chunking(chunk_seconds, chunk_option="--chunk-seconds")
    if not mix.is_file():
        raise UserError(f"{mix}: file not found")
    try:
        audio, rate = read_wav(mix)
    except Exception as exc:  # soundfile's errors for unreadable files vary by version
        raise UserError(f"{mix}: cannot read audio: {' '.join(str(exc).split())[:200] or type(exc).__name__}") from None
    check_mixture(audio, rate, str(mix))
    for path in notes_files:
        if not path.is_file():
            raise UserError(f"{path}: file not found")
    notes = [notes_from_midi(path) for path in notes_files] or None  # an unreadable file is one line naming it
    check_output_dir(out_dir, overwrite=overwrite)  # before the work, not after it
    separator = load_separator(model_path, device=device, shifts=shifts, consistency=consistency)
    if notes is not None and not separator.conditioned:
        raise UserError(f"--notes: {model_path} is not score-conditioned; it separates from the audio alone")
    outputs = separator.separate(audio, rate, chunk_seconds=chunk_seconds, adapt_channels=adapt_channels,
                                 name=str(mix), notes=notes)
    with atomic_directory(out_dir, overwrite=overwrite) as tmp:
        for name, signal in outputs.items():
            write_wav(tmp / f"{name}.wav", signal, rate)
    click.echo(f"wrote {len(outputs)} file(s) to {out_dir}: {', '.join(outputs)}")
