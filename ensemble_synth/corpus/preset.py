"""Corpus presets (presets/corpora/*.toml): load, fill defaults, validate."""

from __future__ import annotations

import copy
import re
from typing import Any

from .. import distributions
from ..acoustics.mics import load_mics
from ..acoustics.rooms import load_room
from ..acoustics.seating import load_layout
from ..errors import UserError
from ..music import instruments
from ..music.arrangement import PART_POLICIES, REPERTOIRE_KEYS
from ..music.performance import PERFORMANCE_KEYS
from ..music.repertoire import KNOWN_SOURCES, MUSIC21_SOURCES, midi_files
from ..presets import load_preset
from ..schema import Key, check_table, defaults
from ..synthesis.timbre import TIMBRE_KEYS, check_envelope, resolve_source
from . import augment as augment_mod
from .mixing import MIX_KEYS, check_balance
from .noise import NOISE_KEYS

SPLITS = ("train", "valid", "test")

TRACKS_KEYS = {
    "train": Key(8, "integer", low=0, high=10_000_000, random=False),
    "valid": Key(0, "integer", low=0, high=10_000_000, random=False),
    "test": Key(0, "integer", low=0, high=10_000_000, random=False),
    "per_room": Key(4, "integer", low=1, high=10_000_000, random=False, unit="(tracks sharing a room)"),
}
ENSEMBLE_TABLE_KEYS = {"layout": Key("bach10", "any")}
ROOM_TABLE_KEYS = {
    "enabled": Key(True, "bool", random=False),
    "room": Key("chamber_hall", "any"),
    "mics": Key("ortf", "any"),
}
# The audio formats a corpus is written in (corpus/format.py owns their files): float32 WAV or 24-bit FLAC.
AUDIO_FORMATS = ("wav", "flac")
WRITE_KEYS = {"dry": Key(False, "bool", random=False), "midi": Key(False, "bool", random=False),
              "format": Key(AUDIO_FORMATS[0], "name", random=False)}

# Each table of a corpus preset and who owns its keys.
TABLES = {
    "tracks": TRACKS_KEYS,
    "repertoire": REPERTOIRE_KEYS,
    "ensemble": ENSEMBLE_TABLE_KEYS,
    "performance": PERFORMANCE_KEYS,
    "timbre": TIMBRE_KEYS,
    "room": ROOM_TABLE_KEYS,
    "mix": MIX_KEYS,
}
DEFAULTS: dict[str, dict[str, Any]] = {table: defaults(keys) for table, keys in TABLES.items()}
TOP_LEVEL = ("name", "description", "sample_rate", "write", "augment", "noise")


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
    """A corpus preset with defaults filled in and every value checked (a resolved preset is returned as is)."""
    if isinstance(name_or_dict, dict) and name_or_dict.get("_resolved"):
        return name_or_dict
    raw = load_preset("corpora", name_or_dict)
    source = raw.get("_source", "<preset>")
    raw.pop("_resolved", None)
    unknown = sorted(set(raw) - set(DEFAULTS) - set(TOP_LEVEL) - {"_source"})
    if unknown:
        raise UserError(f"{source}: unknown key(s) {', '.join(unknown)} (known: {', '.join([*TOP_LEVEL, *DEFAULTS])})")
    preset = merge({"name": "corpus", "description": "", "sample_rate": 44100, "write": defaults(WRITE_KEYS)}, DEFAULTS)
    preset = merge(preset, raw)
    validate(preset, source)
    preset["_resolved"] = True
    return preset


def validate(preset: dict, source: str) -> None:
    for table, keys in TABLES.items():
        extra = {"timbre": ("envelope", "pools"), "mix": ("balance",)}.get(table, ())
        check_table(preset[table], keys, f"{source}: [{table}]", extra=extra)
    check_balance(preset["mix"], f"{source}: [mix]")
    if "envelope" in preset["timbre"]:  # optional: presets without it keep their corpus.toml as it was
        preset["timbre"]["envelope"] = check_envelope(preset["timbre"]["envelope"], f"{source}: [timbre.envelope]")
    check_table(preset["write"], WRITE_KEYS, f"{source}: [write]")
    if preset["write"].get("format", AUDIO_FORMATS[0]) not in AUDIO_FORMATS:
        raise UserError(f"{source}: [write] key 'format': expected one of {', '.join(AUDIO_FORMATS)}, "
                        f"got {preset['write']['format']!r}")
    if not isinstance(preset["name"], str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", preset["name"]):
        raise UserError(f"{source}: key 'name': expected a name of letters, digits, '_', '-' or '.', got {preset['name']!r}")
    if not isinstance(preset["sample_rate"], int) or not 8000 <= preset["sample_rate"] <= 96000:
        raise UserError(f"{source}: key 'sample_rate': expected an integer 8000-96000, got {preset['sample_rate']!r}")
    rep = preset["repertoire"]
    if rep["part_policy"] not in PART_POLICIES:
        raise UserError(f"{source}: [repertoire] key 'part_policy': expected one of {', '.join(PART_POLICIES)}, got {rep['part_policy']!r}")
    check_programs(preset["timbre"]["programs"], f"{source}: [timbre] key 'programs'")
    if "pools" in preset["timbre"]:  # optional: presets without it keep their corpus.toml as it was
        preset["timbre"]["pools"] = check_pools(preset["timbre"]["pools"], f"{source}: [timbre.pools]")
    for table, key in (("ensemble", "layout"), ("room", "room"), ("room", "mics")):
        if not is_inline_table(preset[table][key]):
            distributions.check(preset[table][key], f"{source}: [{table}] key '{key}'")
    if "augment" in preset:
        augment_mod.from_preset(preset["augment"], source)
    if "noise" in preset:  # optional: presets without it keep their corpus.toml as it was
        preset["noise"] = check_table(preset["noise"], NOISE_KEYS, f"{source}: [noise]")
    check_references(preset, source)


def check_programs(value, where: str) -> None:
    """[timbre] programs: a table from instrument to a choice of instrument names (the names
    themselves are checked with the other references)."""
    _check_name_choices(value, where, "a table from instrument to instruments", "instrument names")


def _check_name_choices(value, where: str, table: str, names: str) -> None:
    """A table from instrument to a distribution over names (strings)."""
    if not isinstance(value, dict):
        raise UserError(f"{where}: expected {table}, got {value!r}")
    for inst, choice in value.items():
        distributions.check(choice, f"{where} {inst}")
        bad = [v for v in distributions.support(choice) if not isinstance(v, str)]
        if bad:
            raise UserError(f"{where} {inst}: expected {names}, got {bad[0]!r}")


def check_pools(value, where: str) -> dict:
    """[timbre.pools]: a table from instrument to a source pool (as ``soundfont``), keyed by
    canonical instrument name (the sources are checked with the other references)."""
    _check_name_choices(value, where, "a table from instrument to a choice of sources", "source names")
    out = {}
    for inst, choice in value.items():
        try:
            out[instruments.get(inst).name] = choice
        except UserError as exc:
            raise UserError(f"{where}: {exc}") from None
    return out


def is_inline_table(value) -> bool:
    """A layout, room or mic preset written inline (a table that is not a distribution)."""
    return isinstance(value, dict) and not any(k in distributions.DISTRIBUTIONS for k in value)


def draw_preset(value, rng, where: str):
    """Draw a preset choice: a name, an inline table, or a distribution over them."""
    return value if is_inline_table(value) else distributions.draw(value, rng, where)


def check_references(preset: dict, source: str) -> None:
    """Every named layout, instrument, room, mic setup, soundfont and score must exist.

    Checked before anything is written, so a typo fails at once with the file and the key,
    not in a worker halfway through a corpus.
    """

    checks = [("ensemble", "layout", load_layout), ("timbre", "soundfont", resolve_source)]
    if preset["room"].get("enabled", True):
        checks += [("room", "room", load_room), ("room", "mics", load_mics)]
    for table, key, loader in checks:
        for choice in distributions.support(preset[table][key]):
            try:
                loader(choice)
            except UserError as exc:
                raise UserError(f"{source}: [{table}] key '{key}': {exc}") from None
    for inst, choice in preset["timbre"].get("pools", {}).items():
        for name in distributions.support(choice):
            try:
                resolve_source(name)
            except UserError as exc:
                raise UserError(f"{source}: [timbre.pools] {inst}: {exc}") from None
    for inst, choice in preset["timbre"]["programs"].items():
        for name in [inst, *distributions.support(choice)]:
            try:
                instruments.get(name)
            except UserError as exc:
                raise UserError(f"{source}: [timbre] key 'programs' {inst}: {exc}") from None
    rep = preset["repertoire"]
    try:
        for name in distributions.support(rep["source"]):  # one source, or each of a choice
            if not isinstance(name, str) or not (name in MUSIC21_SOURCES or name.startswith("midi:")):
                raise UserError(f"expected one of {KNOWN_SOURCES}, got {name!r}")
            if name.startswith("midi:"):
                midi_files(name[len("midi:"):])
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
