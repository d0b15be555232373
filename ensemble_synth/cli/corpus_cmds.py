"""`generate`, `render-spec`, `info` and `presets` commands."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import click

from ..corpus import format as corpus_format
from ..corpus.card import CorpusStats, markdown, write_card
from ..corpus.format import write_track
from ..corpus.generation import default_rir_cache
from ..corpus.generation import generate as run
from ..corpus.preset import SPLITS
from ..corpus.rendering import render_track
from ..errors import UserError
from ..fileio import check_output_dir, check_output_file
from ..presets import KINDS, list_presets, load_preset, preset_path
from .group import cli


@cli.command()
@click.option("--preset", required=True, help="Corpus preset name (see `presets list corpora`) or a TOML file.")
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Corpus directory.")
@click.option("--tracks", type=int, default=None, help="Number of training tracks (no valid/test).")
@click.option("--train", type=int, default=None)
@click.option("--valid", type=int, default=None)
@click.option("--test", type=int, default=None)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--jobs", "-j", type=int, default=None, help="Worker processes [default: one per core].")
@click.option("--scheduler", default=None, help="Dask scheduler address (tcp://HOST:PORT) instead of local processes.")
@click.option("--dry-run", is_flag=True, help="Sample and write the track specs only.")
@click.option("--dry/--no-dry", "write_dry", default=None, help="Also write the dry (anechoic) stems.")
@click.option("--midi/--no-midi", "write_midi", default=None, help="Also write the performed MIDI per part.")
@click.option("--rir-cache", type=click.Path(file_okay=False), default=None, help="RIR cache folder [default: ~/.cache/ensemble_synth/rirs].")
@click.option("--format", "audio_format", type=click.Choice(list(corpus_format.AUDIO_FORMATS)), default=None,
              help="Audio files: float32 WAV or 24-bit FLAC [default: the preset's [write] format, else wav].")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def generate(preset, out_dir, tracks, train, valid, test, seed, jobs, scheduler, dry_run, write_dry, write_midi, rir_cache,
             audio_format, quiet):
    """Generate (or complete) a synthetic corpus from a preset; ends with its card (card.md, card.png)."""
    import os

    if tracks is not None and any(v is not None for v in (train, valid, test)):
        raise UserError("--tracks cannot be combined with --train/--valid/--test")
    sizes = {"train": tracks, "valid": 0, "test": 0} if tracks is not None else {"train": train, "valid": valid, "test": test}
    check_output_dir(out_dir, fill=True)
    _check_same_extras(Path(out_dir), write_dry, write_midi)
    try:
        check_output_dir(rir_cache or default_rir_cache(), fill=True)
    except UserError as exc:
        raise UserError(f"{exc} (the RIR cache; choose another with --rir-cache)") from None
    summary = run(
        preset, out_dir, seed=seed, tracks=sizes, jobs=jobs or os.cpu_count() or 1, scheduler=scheduler,
        dry_run=dry_run, write_dry=write_dry, write_midi=write_midi, rir_cache=rir_cache, progress=not quiet,
        audio_format=audio_format,
    )
    click.echo(summary.line() if not dry_run else f"{out_dir}: {summary.tracks} track specs sampled (dry run)")


def _check_same_extras(out_dir: Path, write_dry: bool | None, write_midi: bool | None) -> None:
    """Refuse to mix tracks with and without dry stems (or MIDI) in one corpus.

    A corpus's finished tracks are never rendered again, so ``--dry`` on a corpus made
    without dry stems would add them to new tracks only (or, on a finished corpus, to none).
    """
    record_path = out_dir / corpus_format.CORPUS_RECORD
    try:
        record = tomllib.loads(record_path.read_text())
        written = record["preset"]["write"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # no corpus there yet, or one that generate itself refuses
    finished = [meta.parent for split in SPLITS for meta in (out_dir / split).glob(f"*/{corpus_format.METADATA}")
                if not meta.parent.name.startswith(".")]
    if not finished:
        return
    complete = (out_dir / corpus_format.MANIFEST).is_file()
    for flag, asked, folder, what in (("dry", write_dry, corpus_format.DRY, "dry stems"),
                                      ("midi", write_midi, corpus_format.MIDI, "MIDI")):
        want = bool(written.get(flag, False)) if asked is None else asked
        have = [(track / folder).is_dir() for track in finished]
        if want and not all(have):
            raise UserError(f"{out_dir}: this corpus was made without {what} ({have.count(False)} of {len(have)} "
                            f"tracks have no {folder}/) and its tracks are not rendered again; "
                            f"use a new output directory for a corpus with {what}")
        if not want and any(have) and not complete:
            raise UserError(f"{out_dir}: this corpus was made with {what}; pass --{flag} to complete it "
                            f"(or use a new output directory)")


@cli.command("render-spec")
@click.argument("metadata", type=click.Path(dir_okay=False))
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False))
@click.option("--dry/--no-dry", "write_dry", default=False)
@click.option("--midi/--no-midi", "write_midi", default=False)
@click.option("--format", "audio_format", type=click.Choice(list(corpus_format.AUDIO_FORMATS)), default=None,
              help="Audio files [default: the format the metadata records, else wav].")
@click.option("--overwrite", is_flag=True)
def render_spec(metadata, out_dir, write_dry, write_midi, audio_format, overwrite):
    """Re-render one track from its metadata.json (bit-identical to the corpus copy)."""

    path = Path(metadata)
    try:
        track = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(track, dict) or "parts" not in track or "performance" not in track:
        raise UserError(f"{path}: not a track spec (no 'parts' and 'performance')")
    if audio_format is None:
        audio_format = corpus_format.track_audio_format(track)
        if audio_format not in corpus_format.AUDIO_FORMATS:
            raise UserError(f"{path}: unknown audio format {audio_format!r} in 'rendered'")
    track.pop("rendered", None)
    out = check_output_dir(out_dir, overwrite=overwrite)
    rendered = render_track(track)
    out.parent.mkdir(parents=True, exist_ok=True)
    # replaces what is there only once the new one is whole
    meta = write_track(rendered, out, write_dry, write_midi, audio_format)
    click.echo(f"{out}: {len(meta['parts'])} stems, {meta['rendered']['duration']:.1f} s")


@cli.command()
@click.argument("corpus", type=click.Path(file_okay=False))
@click.option("-o", "--out", "out_file", type=click.Path(dir_okay=False), default=None,
              help="Write the card here (Markdown) with its figure beside it (.png); default: print the Markdown.")
@click.option("--overwrite", is_flag=True, help="Replace an existing card.")
def info(corpus, out_file, overwrite):
    """Summarise a corpus: hours per split and instrument, line-ups, rooms, mics, loudness, soundfonts."""
    if out_file is None:
        click.echo(markdown(CorpusStats(corpus)), nl=False)
        return
    path = Path(out_file)
    if path.suffix.lower() == ".png":
        raise UserError(f"{path}: give the Markdown file (the figure is written beside it as .png)")
    check_output_file(path, overwrite=overwrite)
    check_output_file(path.with_suffix(".png"), overwrite=overwrite)
    written = write_card(corpus, path)  # reads the whole corpus before writing anything
    click.echo(f"{written}: corpus card ({written.with_suffix('.png').name} beside it)")


@cli.group()
def presets():
    """List and show presets (rooms, ensembles, mics, corpora, models)."""


@presets.command("list")
@click.argument("kind", required=False)
def presets_list(kind):
    """List presets of one KIND, or of all kinds."""

    if kind is not None and kind not in KINDS:
        raise UserError(f"unknown preset kind '{kind}' (known: {', '.join(KINDS)})")
    for k in [kind] if kind else KINDS:
        click.echo(f"{k}:")
        for name in list_presets(k):
            description = load_preset(k, name).get("description", "")
            click.echo(f"  {name:24s} {description[:90]}")


@presets.command("show")
@click.argument("name")
@click.option("--kind", default=None, help="Preset kind, when a name exists in several.")
def presets_show(name, kind):
    """Print a preset's TOML."""

    kinds = [kind] if kind else [k for k in KINDS if name in list_presets(k)]
    if not kinds:
        raise UserError(f"unknown preset '{name}' (see `ensemble-synth presets list`)")
    if len(kinds) > 1:
        raise UserError(f"preset '{name}' exists as {', '.join(kinds)}; choose with --kind")
    click.echo(preset_path(kinds[0], name).read_text(), nl=False)
