"""Commands of the room area: spatialize, rir, plan."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click
import numpy as np

from ..acoustics.capture import mixdown
from ..acoustics.capture import spatialize as run_spatialize
from ..acoustics.plans import plot_plan
from ..acoustics.rir_cache import RirCache
from ..acoustics.rir_simulation import SIMULATOR_VERSION, measure_rt60, simulate_rirs
from ..acoustics.scene import sample_scene
from ..acoustics.seating import load_layout
from ..errors import UserError
from ..fileio import (
    atomic_directory,
    check_output_dir,
    check_output_file,
    read_wav,
    write_json_atomic,
    write_wav,
)
from ..music import instruments
from ..presets import get_key
from .group import cli

DEFAULT_MICS = "decca_tree_spots"


def _scene_options(f):
    f = click.option("--seed", type=int, default=0, show_default=True, help="Seed for every random choice.")(f)
    f = click.option("--mics", "mics", default=DEFAULT_MICS, show_default=True, help="Mic preset name or TOML.")(f)
    f = click.option("--layout", required=True, help="Ensemble layout preset name or TOML.")(f)
    f = click.option("--room", required=True, help="Room preset name or TOML.")(f)
    return f


def read_stems(stems_dir: Path) -> tuple[list[dict], np.ndarray, int]:
    """Dry stems as `render` writes them: (parts [{name, instrument}], audio (P, N), sample rate)."""
    if not stems_dir.is_dir():
        raise UserError(f"{stems_dir}: stems directory not found")
    meta_path = stems_dir / "metadata.json"
    if meta_path.is_file():
        try:
            parts = json.loads(meta_path.read_text())["parts"]
            parts = [{"name": str(p["name"]), "instrument": str(p["instrument"])} for p in parts]
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(f"{meta_path}: expected a 'parts' list of objects with 'name' and 'instrument' ({exc})") from None
    else:
        parts = []
        numbered = [(re.fullmatch(r"(\d+)_(.+)", p.stem), p) for p in stems_dir.glob("*.wav")]
        for match, path in sorted(((m, p) for m, p in numbered if m), key=lambda mp: int(mp[0].group(1))):
            parts.append({"name": path.stem, "instrument": match.group(2)})
    if not parts:
        raise UserError(f"{stems_dir}: no stems found (expected <index>_<instrument>.wav files or metadata.json)")
    audio, rates = [], set()
    for part in parts:
        path = stems_dir / f"{part['name']}.wav"
        if not path.is_file():
            raise UserError(f"{path}: stem listed in metadata.json is missing")
        try:
            data, sr = read_wav(path)
        except RuntimeError as exc:
            raise UserError(f"{path}: cannot read as WAV ({exc})") from None
        if data.shape[0] != 1:
            raise UserError(f"{path}: dry stems must be mono, this one has {data.shape[0]} channels")
        audio.append(data[0])
        rates.add(sr)
    if len(rates) != 1:
        raise UserError(f"{stems_dir}: stems have different sample rates {sorted(rates)}")
    n = max(len(a) for a in audio)
    dry = np.zeros((len(audio), n), dtype=np.float32)
    for i, a in enumerate(audio):
        dry[i, : len(a)] = a
    return parts, dry, rates.pop()


def _instruments(parts: list[dict]) -> list[str]:

    return [instruments.get(p["instrument"]).name for p in parts]


@cli.command()
@click.argument("stems_dir", type=click.Path(path_type=Path))
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(path_type=Path), help="Output directory.")
@_scene_options
@click.option("--cache", "cache_dir", type=click.Path(path_type=Path), default=None, help="RIR cache directory.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output directory.")
def spatialize(stems_dir, out_dir, room, layout, mics, seed, cache_dir, overwrite):
    """Place dry stems in a room: write mix.wav, stems/<part>.wav (images) and metadata.json."""

    check_output_dir(out_dir, overwrite=overwrite)  # before the room is simulated
    if cache_dir:
        check_output_dir(cache_dir, fill=True)
    parts, dry, sample_rate = read_stems(stems_dir)
    scene = sample_scene(room, layout, mics, _instruments(parts), np.random.default_rng(seed))
    images = run_spatialize(dry, scene, sample_rate, RirCache(cache_dir) if cache_dir else None)
    mix = mixdown(images)
    with atomic_directory(out_dir, overwrite=overwrite) as tmp:
        (tmp / "stems").mkdir()
        for part, image in zip(parts, images):
            write_wav(tmp / "stems" / f"{part['name']}.wav", image, sample_rate)
        write_wav(tmp / "mix.wav", mix, sample_rate)
        write_json_atomic(tmp / "metadata.json", {
            "sample_rate": sample_rate,
            "seed": seed,
            "presets": {"room": str(room), "layout": str(layout), "mics": str(mics)},
            "parts": [{"name": p["name"], "instrument": inst} for p, inst in zip(parts, _instruments(parts))],
            "scene": scene.to_dict(),
        })
    click.echo(f"{out_dir}: {len(parts)} parts, {images.shape[1]} channels, {images.shape[2] / sample_rate:.2f} s, "
               f"room {scene.room.name} RT60 {scene.room.rt60:.2f} s")


def _layout_scene(room, layout, mics, seed):

    preset = load_layout(layout)
    names = get_key(preset, "instruments", list, preset.get("_source", "layout"))
    return sample_scene(room, preset, mics, names, np.random.default_rng(seed))


@cli.command()
@_scene_options
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(path_type=Path), help="Output directory.")
@click.option("--sample-rate", type=int, default=44100, show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace an existing output directory.")
def rir(room, layout, mics, seed, out_dir, sample_rate, overwrite):
    """Write the impulse responses <part>__<mic>.wav of a scene, with rirs.json beside them."""

    if sample_rate < 8000:
        raise UserError(f"--sample-rate {sample_rate}: must be at least 8000 Hz")
    check_output_dir(out_dir, overwrite=overwrite)  # before the room is simulated
    scene = _layout_scene(room, layout, mics, seed)
    rirs = simulate_rirs(scene, sample_rate)
    files = []
    with atomic_directory(out_dir, overwrite=overwrite) as tmp:
        for s, player in enumerate(scene.players):
            for m, mic in enumerate(scene.mics):
                name = f"{player.name}__{mic.name}.wav"
                write_wav(tmp / name, rirs[s, m], sample_rate)
                files.append({"file": name, "part": player.name, "mic": mic.name,
                              "rt60_measured": round(measure_rt60(rirs[s, m], sample_rate), 4)})
        write_json_atomic(tmp / "rirs.json", {"sample_rate": sample_rate, "simulator": SIMULATOR_VERSION,
                                              "seed": seed, "files": files, "scene": scene.to_dict()})
    click.echo(f"{out_dir}: {len(files)} impulse responses, {rirs.shape[-1] / sample_rate:.2f} s each, "
               f"RT60 asked {scene.room.rt60:.2f} s, measured (median) {np.median([f['rt60_measured'] for f in files]):.2f} s")


@cli.command()
@_scene_options
@click.option("-o", "--output", "out_path", required=True, type=click.Path(path_type=Path), help="PNG file.")
@click.option("--overwrite", is_flag=True, help="Replace an existing PNG file.")
def plan(room, layout, mics, seed, out_path, overwrite):
    """Draw the floor plan: room, players, microphones and their aim."""

    check_output_file(out_path, overwrite=overwrite)
    scene = _layout_scene(room, layout, mics, seed)
    plot_plan(scene, out_path)
    click.echo(f"{out_path}: plan of {len(scene.players)} players and {len(scene.mics)} microphones")
