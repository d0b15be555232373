"""Preset files (TOML) under ``presets/<kind>/``: find, list, load, validate."""

from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path
from typing import Any

from .errors import UserError

KINDS = ("rooms", "ensembles", "mics", "corpora", "models")


def project_root_candidates() -> list[Path]:
    here = Path(__file__).resolve().parent
    return [here.parent, Path(sys.prefix) / "share" / "ensemble_synth"]


def install_folders(env_var: str, cache_name: str) -> list[Path]:
    """Where an installed asset is looked for: the folders of ``$env_var`` (colon separated;
    installers write to the first), then ``~/.cache/ensemble_synth/<cache_name>``."""
    dirs = [Path(p).expanduser() for p in os.environ.get(env_var, "").split(os.pathsep) if p]
    return dirs + [Path.home() / ".cache" / "ensemble_synth" / cache_name]


def presets_root() -> Path:
    """The presets folder: $ENSEMBLE_SYNTH_PRESETS, else the one beside the package."""
    env = os.environ.get("ENSEMBLE_SYNTH_PRESETS")
    if env:
        return Path(env)
    for root in project_root_candidates():
        if (root / "presets").is_dir():
            return root / "presets"
    raise UserError("presets folder not found; set ENSEMBLE_SYNTH_PRESETS to the project's presets/ directory")


def project_file(name: str) -> Path:
    """A top-level data file of the project (e.g. soundfonts.txt)."""
    for root in project_root_candidates():
        if (root / name).is_file():
            return root / name
    raise UserError(f"{name}: project data file not found beside the package")


def list_presets(kind: str) -> list[str]:
    folder = presets_root() / kind
    return sorted(p.stem for p in folder.glob("*.toml"))


def preset_path(kind: str, name_or_path: str | os.PathLike) -> Path:
    """Resolve a preset name (``chamber_hall``) or a path to a TOML file."""
    text = str(name_or_path)
    candidate = Path(text)
    if text.endswith(".toml") or candidate.is_file():
        if not candidate.is_file():
            raise UserError(f"{candidate}: preset file not found")
        return candidate
    path = presets_root() / kind / f"{text}.toml"
    if not path.is_file():
        known = ", ".join(list_presets(kind)) or "none"
        raise UserError(f"unknown {kind[:-1]} preset '{text}' (known: {known})")
    return path


def read_toml(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: malformed TOML: {exc}") from None


def load_preset(kind: str, name_or_path: str | os.PathLike | dict) -> dict[str, Any]:
    """Load a preset as a dict; ``_source`` records the file it came from.

    An already-loaded dict (a table inlined in another preset) is returned as a copy.
    """
    if isinstance(name_or_path, dict):
        data = dict(name_or_path)
        data.setdefault("_source", f"inline {kind[:-1]}")
        return data
    path = preset_path(kind, name_or_path)
    data = read_toml(path)
    data["_source"] = str(path)
    return data


_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", list: "a list", dict: "a table", bool: "true or false"}


def get_key(table: dict, key: str, expected: type | tuple, source: str, default: Any = ...) -> Any:
    """Read ``table[key]`` and check its type; errors name the file, the key and what was expected."""
    if key not in table:
        if default is ...:
            raise UserError(f"{source}: missing key '{key}'")
        return default
    value = table[key]
    types = expected if isinstance(expected, tuple) else (expected,)
    if float in types and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        want = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types)
        raise UserError(f"{source}: key '{key}': expected {want}, got {value!r}")
    return value
