"""The soundfont registry (soundfonts.txt) and the resolver that finds fonts on disk."""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..presets import project_file

DEFAULT_SOUNDFONT = "timgm6mb"
SYSTEM_DIRS = ("/usr/share/sounds/sf2", "/usr/share/sounds/sf3", "/usr/share/soundfonts", "/usr/local/share/soundfonts")


@dataclass(frozen=True)
class SoundfontEntry:
    name: str
    file: str
    source: str
    licence: str
    sha256: str | None

    def how_to_get(self) -> str:
        kind, _, what = self.source.partition(":")
        if kind == "debian":
            return f"apt-get install {what}"
        if kind == "pypi":
            return f"pip install {what}"
        return f"download from {self.source}"


@functools.lru_cache(maxsize=1)
def registry() -> dict[str, SoundfontEntry]:
    path = project_file("soundfonts.txt")
    entries = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        if len(fields) != 5:
            raise UserError(f"{path}:{number}: expected 5 columns (name file source licence sha256), got {len(fields)}")
        name, file, source, licence, sha = fields
        entries[name] = SoundfontEntry(name, file, source, licence, None if sha == "-" else sha)
    return entries


def search_path() -> list[Path]:
    dirs = [Path(p) for p in os.environ.get("ENSEMBLE_SYNTH_SOUNDFONT_PATH", "").split(os.pathsep) if p]
    dirs += [Path(d) for d in SYSTEM_DIRS]
    dirs.append(Path.home() / ".local" / "share" / "soundfonts")
    try:
        import pretty_midi

        dirs.append(Path(pretty_midi.__file__).parent)
    except ImportError:  # pragma: no cover - pretty_midi is a dependency
        pass
    return dirs


def find_file(file_name: str) -> Path | None:
    for folder in search_path():
        candidate = folder / file_name
        if candidate.is_file():
            return candidate
    return None


@dataclass(frozen=True)
class Soundfont:
    """A soundfont resolved to a file on disk."""

    name: str
    path: Path

    @property
    def sha256(self) -> str:
        return file_sha256(str(self.path))


@functools.lru_cache(maxsize=None)
def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve(name_or_path: str | os.PathLike | None = None) -> Soundfont:
    """A registry name (``fluidr3_gm``) or a path to an .sf2/.sf3 file -> Soundfont."""
    text = str(name_or_path) if name_or_path is not None else DEFAULT_SOUNDFONT
    entries = registry()
    if text in entries:
        entry = entries[text]
        found = find_file(entry.file)
        if found is None:
            looked = ", ".join(str(d) for d in search_path())
            raise UserError(
                f"soundfont '{text}' ({entry.file}) not found; looked in {looked}; "
                f"install it with `{entry.how_to_get()}` or set ENSEMBLE_SYNTH_SOUNDFONT_PATH"
            )
        return Soundfont(text, found)
    path = Path(text).expanduser()
    if path.suffix.lower() in (".sf2", ".sf3") or os.sep in text:
        if not path.is_file():
            raise UserError(f"{path}: soundfont file not found")
        return Soundfont(path.stem, path)
    raise UserError(f"unknown soundfont '{text}' (known: {', '.join(entries)}; or give a path to an .sf2/.sf3 file)")
