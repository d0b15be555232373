"""Corpus presets (presets/corpora/*.toml): load, fill defaults, validate."""

from __future__ import annotations

import copy
import re
from typing import Any

from .. import distributions as spec
from ..acoustics.mics import load_mics
from ..acoustics.rooms import load_room
from ..acoustics.seating import load_layout
from ..errors import UserError
from ..music import instruments
from ..music.repertoire import MUSIC21_BACH, midi_files
from ..presets import load_preset
from ..synthesis.soundfonts import resolve

SPLITS = ("train", "valid", "test")

DEFAULTS: dict[str, dict[str, Any]] = {
    "tracks": {"train": 8, "valid": 0, "test": 0, "per_room": 4},
    "repertoire": {
        "source": "music21:bach",
        "exclude": [],
        "exclude_melodies": [],
        "part_policy": "fit",
        "excerpt_seconds": 0.0,
    },
    "ensemble": {"layout": "bach10"},
    "performance": {
        "tempo_bpm": 72.0,
        "tempo_factor": 1.0,
        "rubato": 0.0,
        "fermata_beats": 0.0,
        "onset_jitter_ms": 0.0,
        "level_db": 0.0,
        "dynamics_db": 0.0,
        "articulation": 1.0,
        "transpose": 0,
        "vibrato": 0,
        "expression_db": 0.0,
    },
    "timbre": {
        "soundfont": "timgm6mb",
        "programs": {},  # instrument -> the instruments whose GM programs may play its part
        "detune_cents": 0.0,
        "eq_low_db": 0.0,
        "eq_high_db": 0.0,
        "eq_bands": 0,  # random peaking bands per player
        "eq_band_db": 0.0,
        "eq_band_hz": {"loguniform": [150.0, 6000.0]},
        "eq_band_q": 1.0,
    },
    "room": {"enabled": True, "room": "chamber_hall", "mics": "ortf"},
    "mix": {"gain_db": 0.0, "loudness_lufs": -24.0, "peak_ceiling": 0.891},
}

PART_POLICIES = ("skip", "fit")


def merge(base: dict, override: dict) -> dict:
    """Deep merge of preset tables (override wins)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def resolve_preset(name_or_dict: str | dict) -> dict:
    """A corpus preset with defaults filled in and every value checked."""
    raw = load_preset("corpora", name_or_dict)
    source = raw.get("_source", "<preset>")
    unknown = sorted(set(raw) - set(DEFAULTS) - {"name", "description", "sample_rate", "_source", "write"})
    if unknown:
        raise UserError(f"{source}: unknown key(s) {', '.join(unknown)} (known: name, description, sample_rate, write, {', '.join(DEFAULTS)})")
    preset = merge({"name": "corpus", "description": "", "sample_rate": 44100, "write": {"dry": False, "midi": False}}, DEFAULTS)
    preset = merge(preset, raw)
    validate(preset, source)
    return preset


def validate(preset: dict, source: str) -> None:
    for table in DEFAULTS:
        if not isinstance(preset[table], dict):
            raise UserError(f"{source}: [{table}] must be a table")
        extra = sorted(set(preset[table]) - set(DEFAULTS[table]))
        # room, layout and mic tables may be inlined as whole preset tables
        if extra and table not in ("room", "ensemble"):
            raise UserError(f"{source}: [{table}] unknown key(s) {', '.join(extra)} (known: {', '.join(DEFAULTS[table])})")
    if not isinstance(preset["name"], str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", preset["name"]):
        raise UserError(f"{source}: key 'name': expected a name of letters, digits, '_', '-' or '.', got {preset['name']!r}")
    write = preset["write"]
    if not isinstance(write, dict) or set(write) - {"dry", "midi"} or not all(isinstance(v, bool) for v in write.values()):
        raise UserError(f"{source}: [write] expected keys dry and midi, true or false, got {write!r}")
    if not isinstance(preset["sample_rate"], int) or not 8000 <= preset["sample_rate"] <= 96000:
        raise UserError(f"{source}: key 'sample_rate': expected an integer 8000-96000, got {preset['sample_rate']!r}")
    tracks = preset["tracks"]
    for key in (*SPLITS, "per_room"):
        value = tracks[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 0 or (key == "per_room" and value < 1):
            raise UserError(f"{source}: [tracks] key '{key}': expected a non-negative integer, got {value!r}")
    rep = preset["repertoire"]
    if rep["part_policy"] not in PART_POLICIES:
        raise UserError(f"{source}: [repertoire] key 'part_policy': expected one of {', '.join(PART_POLICIES)}, got {rep['part_policy']!r}")
    for key in ("exclude", "exclude_melodies"):
        if not isinstance(rep[key], list):
            raise UserError(f"{source}: [repertoire] key '{key}': expected a list, got {rep[key]!r}")
    for table in ("performance", "timbre", "mix"):
        for key, value in preset[table].items():
            where = f"{source}: [{table}] key '{key}'"
            if (table, key) == ("timbre", "programs"):
                check_programs(value, where)
                continue
            spec.check(value, where)
            if (table, key) != ("timbre", "soundfont"):
                bad = [v for v in possible_values(value) if not _is_number(v)]
                if bad:
                    raise UserError(f"{where}: expected a number or a distribution of numbers, got {bad[0]!r}")
    for table, key in (("ensemble", "layout"), ("room", "room"), ("room", "mics")):
        if not is_inline_table(preset[table][key]):
            spec.check(preset[table][key], f"{source}: [{table}] key '{key}'")
    if not isinstance(preset["room"].get("enabled", True), bool):
        raise UserError(f"{source}: [room] key 'enabled': expected true or false")
    check_references(preset, source)


def check_programs(value, where: str) -> None:
    """[timbre] programs: a table from instrument to a choice of instrument names (the names
    themselves are checked with the other references)."""
    if not isinstance(value, dict):
        raise UserError(f"{where}: expected a table from instrument to instruments, got {value!r}")
    for inst, choice in value.items():
        spec.check(choice, f"{where} {inst}")
        bad = [v for v in possible_values(choice) if not isinstance(v, str)]
        if bad:
            raise UserError(f"{where} {inst}: expected instrument names, got {bad[0]!r}")


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def is_inline_table(value) -> bool:
    """A layout, room or mic preset written inline (a table that is not a distribution)."""
    return isinstance(value, dict) and not any(k in spec.DISTRIBUTIONS for k in value)


def draw_preset(value, rng, where: str):
    """Draw a preset choice: a name, an inline table, or a distribution over them."""
    return value if is_inline_table(value) else spec.draw(value, rng, where)


def possible_values(value) -> list:
    """What a fixed value or distribution can give (for a range: its two ends)."""
    if is_inline_table(value):
        return [value]
    if isinstance(value, dict):
        return list(next(value[k] for k in value if k in spec.DISTRIBUTIONS))
    return list(value) if isinstance(value, list) else [value]


def check_references(preset: dict, source: str) -> None:
    """Every named layout, instrument, room, mic setup, soundfont and score must exist.

    Checked before anything is written, so a typo fails at once with the file and the key,
    not in a worker halfway through a corpus.
    """

    def layout_ok(choice):
        names = load_layout(choice).get("instruments")
        if not isinstance(names, list) or not names:
            raise UserError(f"layout {choice if isinstance(choice, str) else 'inline'}: 'instruments' must be a non-empty list")
        for name in names:
            instruments.get(name)

    checks = [("ensemble", "layout", layout_ok), ("timbre", "soundfont", resolve)]
    if preset["room"].get("enabled", True):
        checks += [("room", "room", load_room), ("room", "mics", load_mics)]
    for table, key, loader in checks:
        for choice in possible_values(preset[table][key]):
            try:
                loader(choice)
            except UserError as exc:
                raise UserError(f"{source}: [{table}] key '{key}': {exc}") from None
    for inst, choice in preset["timbre"]["programs"].items():
        for name in [inst, *possible_values(choice)]:
            try:
                instruments.get(name)
            except UserError as exc:
                raise UserError(f"{source}: [timbre] key 'programs' {inst}: {exc}") from None
    rep = preset["repertoire"]
    try:
        if not isinstance(rep["source"], str) or not (rep["source"] == MUSIC21_BACH or rep["source"].startswith("midi:")):
            raise UserError(f"expected '{MUSIC21_BACH}' or 'midi:PATH_OR_GLOB', got {rep['source']!r}")
        if rep["source"].startswith("midi:"):
            midi_files(rep["source"][len("midi:"):])
    except UserError as exc:
        raise UserError(f"{source}: [repertoire] key 'source': {exc}") from None
    for pattern in rep["exclude_melodies"]:
        try:
            midi_files(pattern)
        except UserError as exc:
            raise UserError(f"{source}: [repertoire] key 'exclude_melodies': {exc}") from None


def public(preset: dict) -> dict:
    """The preset without private keys (what corpus.toml records)."""
    return {k: v for k, v in preset.items() if not k.startswith("_")}
