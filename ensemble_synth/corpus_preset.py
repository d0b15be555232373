"""Corpus presets (presets/corpora/*.toml): load, fill defaults, validate."""

from __future__ import annotations

import copy
from typing import Any

from . import spec
from .errors import UserError
from .presets import load_preset

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
    },
    "timbre": {"soundfont": "timgm6mb", "detune_cents": 0.0, "eq_low_db": 0.0, "eq_high_db": 0.0},
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
    if isinstance(name_or_dict, dict):
        raw = copy.deepcopy(name_or_dict)
        raw.setdefault("_source", "<dict>")
    else:
        raw = load_preset("corpora", name_or_dict)
    source = raw.get("_source", "<preset>")
    unknown = sorted(set(raw) - set(DEFAULTS) - {"name", "description", "sample_rate", "_source", "write"})
    if unknown:
        raise UserError(f"{source}: unknown key(s) {', '.join(unknown)} (known: name, description, sample_rate, write, {', '.join(DEFAULTS)})")
    preset = merge({"name": "corpus", "description": "", "sample_rate": 44100, "write": {"dry": False, "midi": False}}, {})
    preset = merge(preset, {k: v for k, v in DEFAULTS.items()})
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
            spec.check(value, f"{source}: [{table}] key '{key}'")
    for key in ("layout",):
        spec.check(preset["ensemble"][key], f"{source}: [ensemble] key '{key}'")
    if not isinstance(preset["room"].get("enabled", True), bool):
        raise UserError(f"{source}: [room] key 'enabled': expected true or false")


def public(preset: dict) -> dict:
    """The preset without private keys (what corpus.toml records)."""
    return {k: v for k, v in preset.items() if not k.startswith("_")}
