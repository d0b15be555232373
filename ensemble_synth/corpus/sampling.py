"""Sampling: a corpus preset and a seed -> one fully resolved track spec per track.

``sample_track`` turns a preset and a seed into a ``metadata.json``-ready dict in which
every random choice is written down (rendering it is :mod:`.rendering`'s job).
"""

from __future__ import annotations

import json

import numpy as np

from .. import distributions as spec
from ..acoustics.scene import sample_scene
from ..acoustics.seating import load_layout
from ..errors import UserError
from ..music import instruments
from ..music.performance import (
    DYNAMICS_KNOT_BEATS,
    EXPRESSION_KNOT_SECONDS,
    RUBATO_KNOT_BEATS,
    in_window,
)
from ..music.repertoire import (
    MUSIC21_BACH,
    PITCH,
    Piece,
    Repertoire,
    load_midi_piece,
    load_music21_bach,
)
from ..music.score import part_name
from ..synthesis.soundfonts import resolve as resolve_soundfont
from . import augment as augment_mod
from .preset import SPLITS, draw_preset, resolve_preset

SPEC_VERSION = 1
MAX_SOURCE_TRIES = 200
MAX_WINDOW_TRIES = 50


# --- sampling -----------------------------------------------------------------------------


def plan(preset: dict) -> list[tuple[str, int, int]]:
    """(split, index in split, room group) for every track, in corpus order."""
    per_room = preset["tracks"]["per_room"]
    out = []
    for split in SPLITS:
        for i in range(preset["tracks"][split]):
            out.append((split, i, i // per_room))
    return out


def track_id(preset: dict, split: str, index: int) -> str:
    return f"{preset['name']}-{split}-{index:05d}"


def ensemble_for_group(preset: dict, seed: int, split: str, group: int) -> tuple[str | dict, list[str]]:
    """The layout preset (name or inline table) and its instruments for a room group."""

    rng = spec.child_rng(seed, "ensemble", split, group)
    layout = draw_preset(preset["ensemble"]["layout"], rng, "[ensemble] layout")
    loaded = load_layout(layout)
    names = [instruments.get(n).name for n in loaded["instruments"]]
    return layout, names


def scene_for_group(preset: dict, seed: int, split: str, group: int, layout, names: list[str]):
    """The room, seating and microphones shared by the tracks of one room group."""

    room = preset["room"]
    if not room.get("enabled", True):
        return None, {"room": "none", "mics": "none"}
    rng = spec.child_rng(seed, "scene", split, group)
    room_choice = draw_preset(room["room"], rng, "[room] room")
    mics_choice = draw_preset(room["mics"], rng, "[room] mics")
    scene = sample_scene(room_choice, layout, mics_choice, names, rng)
    return scene, {"room": _preset_label(room_choice), "mics": _preset_label(mics_choice)}


def _preset_label(choice) -> str:
    return choice if isinstance(choice, str) else str(choice.get("name", "custom"))


def assign_voices(piece: Piece, names: list[str], policy: str) -> list[int] | None:
    """Which voice of the piece each instrument plays, or None when the piece does not fit.

    ``skip``: the piece must have exactly as many voices as the ensemble has parts.
    ``fit``: with fewer parts, keep the outer voices and the highest inner ones; with more
    parts, the extra instruments double voices from the bottom up (octave-shifted later).
    """
    n_voices, n_parts = len(piece.voices), len(names)
    if n_voices == n_parts:
        return list(range(n_parts))
    if policy == "skip" or n_voices == 0:
        return None
    if n_parts < n_voices:
        if n_parts == 1:
            return [0]
        return sorted([*range(n_parts - 1), n_voices - 1])
    # More parts than voices: spread the voices over the parts, high to low.
    return [min(n_voices - 1, int(i * n_voices / n_parts)) for i in range(n_parts)]


def octave_to_fit(pitches: np.ndarray, instrument: str, transpose: int = 0) -> int:
    """The octave shift that puts most of a voice inside the instrument's range."""
    inst = instruments.get(instrument)
    best, best_out = 0, None
    for octave in (0, -1, 1, -2, 2):
        shifted = pitches + 12 * octave + transpose
        outside = int(np.count_nonzero((shifted < inst.low) | (shifted > inst.high)))
        if best_out is None or outside < best_out:
            best, best_out = octave, outside
    return best


def load_piece(source: dict) -> Piece:
    if source["kind"] == "music21":
        return load_music21_bach(source["id"].split("/", 1)[1])
    return load_midi_piece(source["id"])


def _choose_piece(repertoire: Repertoire, names: list[str], policy: str, rng: np.random.Generator):
    for _ in range(MAX_SOURCE_TRIES):
        pid = repertoire.ids[int(rng.integers(len(repertoire.ids)))]
        piece = repertoire.load(pid)
        if repertoire.melody_exclusion(piece):
            continue
        voices = assign_voices(piece, names, policy)
        if voices is not None:
            return piece, voices
    raise UserError(
        f"repertoire '{repertoire.source}': no piece fits a {len(names)}-part ensemble "
        f"({', '.join(names)}) with part_policy '{policy}' after {MAX_SOURCE_TRIES} draws"
    )


def _draw_transpose(preset_value, piece: Piece, voices: list[int], names: list[str], octaves: list[int], rng) -> int:
    """A transposition drawn from the preset, kept only if it adds no out-of-range notes."""
    wanted = int(round(spec.draw(preset_value, rng, "[performance] transpose")))

    def outside(t: int) -> int:
        total = 0
        for v, name, octave in zip(voices, names, octaves):
            inst = instruments.get(name)
            p = piece.voices[v][:, PITCH] + 12 * octave + t
            total += int(np.count_nonzero((p < inst.low) | (p > inst.high)))
        return total

    return wanted if outside(wanted) <= outside(0) else 0


def sample_track(
    preset: str | dict,
    split: str,
    index: int,
    seed: int,
    repertoire: Repertoire | None = None,
    augmentations=(),
    scene=None,
) -> dict:
    """Draw every random choice of one track; returns the JSON-safe track spec.

    ``scene``: the (scene, labels) pair of the track's room group, when the caller has
    sampled it already (tracks of one group share it).
    """
    preset = resolve_preset(preset) if not isinstance(preset, dict) or "_source" not in preset else preset
    augmentations = augment_mod.check(augmentations)
    rep_cfg = preset["repertoire"]
    repertoire = repertoire or Repertoire(rep_cfg["source"], rep_cfg["exclude"], rep_cfg["exclude_melodies"])
    group = index // preset["tracks"]["per_room"]
    layout, names = ensemble_for_group(preset, seed, split, group)
    if scene is None:
        scene = scene_for_group(preset, seed, split, group, layout, names)
    scene, scene_labels = scene

    rng = spec.child_rng(seed, "track", split, index)
    rng_source, rng_perf, rng_timbre, rng_mix, rng_aug = rng.spawn(5)

    piece, voices = _choose_piece(repertoire, names, rep_cfg["part_policy"], rng_source)
    perf_cfg = preset["performance"]
    tempo = piece.tempo_bpm if piece.tempo_bpm is not None else spec.draw(perf_cfg["tempo_bpm"], rng_perf, "tempo_bpm")
    tempo = float(tempo) * float(spec.draw(perf_cfg["tempo_factor"], rng_perf, "tempo_factor"))
    total_beats = piece.beats
    excerpt_seconds = float(rep_cfg["excerpt_seconds"])
    if excerpt_seconds > 0:
        length = max(1.0, round(excerpt_seconds * tempo / 60.0))
        last_start = max(0.0, np.floor(total_beats - length))
        for _ in range(MAX_WINDOW_TRIES):  # every part must have notes in its excerpt
            start = float(rng_source.integers(0, int(last_start) + 1))
            window = [start, min(total_beats, start + length)]
            if all(len(in_window(piece.voices[v], window)) for v in voices):
                break
        else:
            raise UserError(
                f"{piece.id}: no {excerpt_seconds:g} s excerpt in which every part has notes "
                f"({MAX_WINDOW_TRIES} tries); use longer excerpts or other pieces"
            )
    else:
        window = [0.0, total_beats]
    span = window[1] - window[0]
    octaves = [octave_to_fit(piece.voices[v][:, PITCH], name) for v, name in zip(voices, names)]
    transpose = _draw_transpose(perf_cfg["transpose"], piece, voices, names, octaves, rng_perf)
    rubato = float(spec.draw(perf_cfg["rubato"], rng_perf, "rubato"))
    dynamics = float(spec.draw(perf_cfg["dynamics_db"], rng_perf, "dynamics_db"))
    performance = {
        "tempo_bpm": tempo,
        "window": window,
        "transpose": transpose,
        "fermata_beats": float(spec.draw(perf_cfg["fermata_beats"], rng_perf, "fermata_beats")),
        "rubato_knots": [float(x) for x in rng_perf.normal(0, rubato, int(span / RUBATO_KNOT_BEATS) + 3)] if rubato > 0 else [],
        "dynamics_knots_db": [float(x) for x in rng_perf.normal(0, dynamics, int(span / DYNAMICS_KNOT_BEATS) + 3)] if dynamics > 0 else [],
        "seed": int(rng_perf.integers(0, 2**31 - 1)),
    }

    timbre_cfg, mix_cfg = preset["timbre"], preset["mix"]
    # Drawn from their own stream so that presets without them keep their other draws.
    rng_expression = spec.child_rng(seed, "expression", split, index)
    rng_timbre_extra = spec.child_rng(seed, "timbre_extra", split, index)
    seconds = span * 60.0 / tempo + 2.0
    parts = []
    for i, (name, voice, octave) in enumerate(zip(names, voices, octaves), 1):
        inst = instruments.get(name)
        font = resolve_soundfont(spec.draw(timbre_cfg["soundfont"], rng_timbre, "soundfont"))
        parts.append(
            {
                "name": part_name(i, name),
                "instrument": name,
                "voice": voice,
                "octave": octave,
                "soundfont": font.name,
                "soundfont_file": font.path.name,
                "program": inst.program,
                "detune_cents": float(spec.draw(timbre_cfg["detune_cents"], rng_timbre, "detune_cents")),
                "eq_low_db": float(spec.draw(timbre_cfg["eq_low_db"], rng_timbre, "eq_low_db")),
                "eq_high_db": float(spec.draw(timbre_cfg["eq_high_db"], rng_timbre, "eq_high_db")),
                "onset_jitter_ms": float(spec.draw(perf_cfg["onset_jitter_ms"], rng_perf, "onset_jitter_ms")),
                "level_db": float(spec.draw(perf_cfg["level_db"], rng_perf, "level_db")),
                "articulation": float(spec.draw(perf_cfg["articulation"], rng_perf, "articulation")),
                "gain_db": float(spec.draw(mix_cfg["gain_db"], rng_mix, "gain_db")),
            }
        )
        _draw_timbre_extras(parts[-1], timbre_cfg, rng_timbre_extra)
        vibrato = int(round(spec.draw(perf_cfg["vibrato"], rng_expression, "vibrato")))
        expression = float(spec.draw(perf_cfg["expression_db"], rng_expression, "expression_db"))
        if vibrato > 0:
            parts[-1]["vibrato"] = vibrato
        if expression > 0:
            parts[-1]["expression_knots_db"] = [
                float(x) for x in rng_expression.normal(0, expression, int(seconds / EXPRESSION_KNOT_SECONDS) + 3)
            ]
    context = {"instruments": names, "sample_rate": preset["sample_rate"], "split": split}
    aug_records = [
        {"name": a.name, "stage": a.stage, "class": augment_mod.reference(a), "params": a.sample(rng_aug, context)}
        for a in augmentations
    ]
    source_kind = "music21" if repertoire.source == MUSIC21_BACH else "midi"
    track = {
        "spec_version": SPEC_VERSION,
        "track_id": track_id(preset, split, index),
        "split": split,
        "index": index,
        "room_group": group,
        "corpus": preset["name"],
        "root_seed": int(seed),
        "sample_rate": preset["sample_rate"],
        "source": {"kind": source_kind, "id": piece.id, "title": piece.title},
        "ensemble": layout if isinstance(layout, str) else layout.get("name", "custom"),
        "performance": performance,
        "parts": parts,
        "room": scene_labels,
        "scene": scene.to_dict() if scene is not None else None,
        "mix": {
            "loudness_lufs": float(spec.draw(mix_cfg["loudness_lufs"], rng_mix, "loudness_lufs")),
            "peak_ceiling": float(mix_cfg["peak_ceiling"]),
        },
        "augmentations": aug_records,
    }
    # Exactly what metadata.json will hold (tuples become lists), so a spec in memory and
    # the same spec read back from disk are equal and render the same.
    return json.loads(json.dumps(track))


def _draw_timbre_extras(part: dict, timbre_cfg: dict, rng: np.random.Generator) -> None:
    """Program substitution and random peaking bands; recorded only when the preset asks for them."""
    pool = timbre_cfg["programs"].get(part["instrument"])
    if pool is not None:
        player = instruments.get(spec.draw(pool, rng, f"programs {part['instrument']}"))
        part["program"] = player.program
        part["program_instrument"] = player.name
    bands = int(round(spec.draw(timbre_cfg["eq_bands"], rng, "eq_bands")))
    if bands > 0:
        part["eq_peaks"] = [
            {
                "hz": float(spec.draw(timbre_cfg["eq_band_hz"], rng, "eq_band_hz")),
                "db": float(spec.draw(timbre_cfg["eq_band_db"], rng, "eq_band_db")),
                "q": float(spec.draw(timbre_cfg["eq_band_q"], rng, "eq_band_q")),
            }
            for _ in range(bands)
        ]
