"""Versions of the package and the libraries that shape the audio, for metadata."""

from __future__ import annotations

import functools
from importlib import metadata

from ._version import __version__


def _dist_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def fluidsynth_library_version() -> str | None:
    try:
        import ctypes

        import fluidsynth

        get = fluidsynth._fl.fluid_version_str
        get.restype = ctypes.c_char_p
        return get().decode()
    except Exception:  # pragma: no cover - older libraries lack the call
        return None


@functools.lru_cache(maxsize=1)
def versions() -> dict[str, str | None]:
    out = {"ensemble_synth": __version__, "fluidsynth": fluidsynth_library_version()}
    for dist in ("pyfluidsynth", "pretty_midi", "pyroomacoustics", "numpy", "scipy", "soundfile"):
        out[dist] = _dist_version(dist)
    return out
