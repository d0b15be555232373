"""The on-disk corpus format: one module owns it.

```
corpus/
  corpus.toml            resolved preset, root seed, versions, soundfonts
  manifest.csv           one row a track (MANIFEST_COLUMNS)
  <split>/<track_id>/mix.wav, stems/<part>.wav, dry/<part>.wav, midi/<part>.mid, metadata.json
```

Every reader and writer of that layout goes through here: the paths, the manifest schema
(written by :func:`write_manifest`, read by :func:`read_manifest`), ``corpus.toml``, and
writing a track folder atomically (built under a temporary name, renamed when complete).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tomli_w

from ..errors import UserError
from ..fileio import write_json_atomic, write_text_atomic, write_wav
from ..synthesis.fluid_renderer import FLUID_BUFSIZE
from ..synthesis.soundfonts import resolve as resolve_soundfont
from ..versions import versions
from . import augment as augment_mod
from .preset import SPLITS, public

MANIFEST_COLUMNS = (
    "track_id", "split", "path", "duration", "sample_rate", "channels", "ensemble",
    "parts", "instruments", "room", "rt60", "mics", "source",
)
# 2: the chord after a fermata waits for the hold (version 1 started it at the hold's start).
# Recorded in every track spec and in corpus.toml: a corpus is resumed only by the version that began it.
SPEC_VERSION = 2
TMP_PREFIX = ".tmp-"  # track folders being written
CORPUS_RECORD = "corpus.toml"
MANIFEST = "manifest.csv"
STEMS, DRY, MIDI = "stems", "dry", "midi"
MIX, METADATA, DRY_RUN_SPEC = "mix.wav", "metadata.json", "spec.json"


def write_performed_midi(path: Path, notes: np.ndarray, program: int, sample_rate: int) -> None:
    """The performed notes of a part, at the times FluidSynth played them."""
    import pretty_midi

    grid = FLUID_BUFSIZE / sample_rate
    midi = pretty_midi.PrettyMIDI(resolution=960, initial_tempo=120.0)
    inst = pretty_midi.Instrument(program=int(program))
    for start, end, pitch, velocity in notes:
        on = round(start / grid) * grid
        off = max(on + grid, round(end / grid) * grid)
        inst.notes.append(pretty_midi.Note(int(velocity), int(pitch), float(on), float(off)))
    midi.instruments.append(inst)
    buffer = io.BytesIO()
    midi.write(buffer)
    path.write_bytes(buffer.getvalue())


def write_track(rendered, track_dir: Path, write_dry: bool = False, write_midi: bool = False) -> dict:
    """Write a rendered track into ``track_dir`` atomically; returns its metadata."""
    sr = int(rendered.spec["sample_rate"])
    tmp = track_dir.parent / f"{TMP_PREFIX}{track_dir.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / STEMS).mkdir(parents=True)
    try:
        write_wav(tmp / MIX, rendered.mix, sr)
        for name, image in zip(rendered.part_names, rendered.images):
            write_wav(tmp / STEMS / f"{name}.wav", image, sr)
        if write_dry:
            (tmp / DRY).mkdir()
            for name, stem in zip(rendered.part_names, rendered.dry):
                write_wav(tmp / DRY / f"{name}.wav", stem, sr)
        if write_midi:
            (tmp / MIDI).mkdir()
            for part, notes in zip(rendered.spec["parts"], rendered.notes):
                write_performed_midi(tmp / MIDI / f"{part['name']}.mid", notes, part["program"], sr)
        meta = rendered.metadata()
        write_json_atomic(tmp / METADATA, meta)
        if track_dir.exists():  # a dry run's spec.json, or an older render: replace it whole
            old = track_dir.parent / f"{TMP_PREFIX}old-{track_dir.name}-{os.getpid()}"
            os.replace(track_dir, old)
            try:
                os.replace(tmp, track_dir)
            except BaseException:
                os.replace(old, track_dir)  # the old folder goes back where it was
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, track_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta


def corpus_record(preset: dict, seed: int, augmentations=()) -> dict:
    record = {"seed": int(seed), "spec_version": SPEC_VERSION, "preset": public(preset)}
    if augmentations:  # custom augmentations are part of what makes the corpus
        record["augmentations"] = [augment_mod.describe(a) for a in augmentations]
    return record


def check_or_write_corpus_toml(out_dir: Path, preset: dict, seed: int, augmentations=()) -> None:
    path = out_dir / CORPUS_RECORD
    record = corpus_record(preset, seed, augmentations)
    if path.exists():
        try:
            existing = tomllib.loads(path.read_text())
        except Exception:
            raise UserError(f"{path}: unreadable corpus record; remove it or use another output directory") from None
        old = {k: existing.get(k, 1 if k == "spec_version" else None) for k in ("seed", "spec_version", "preset", "augmentations")
               if k in existing or k == "spec_version"}
        new = json.loads(json.dumps(record))
        if old != new:
            raise UserError(
                f"{out_dir}: holds a corpus of another preset or seed ({_first_difference(old, new)}; see {path}); "
                "use another output directory, or remove it to start over"
            )
        return
    if out_dir.exists() and any(p for p in out_dir.iterdir() if not p.name.startswith(".")):
        raise UserError(f"{out_dir}: exists, is not empty and is not a corpus; use another output directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    soundfonts = _soundfont_versions(preset)
    text = tomli_w.dumps({**record, "versions": {k: v or "" for k, v in versions().items()}, "soundfonts": soundfonts})
    write_text_atomic(path, text)


def _first_difference(old, new, where: str = "") -> str:
    """The first key whose value differs, e.g. "seed: 0 there, 1 here"."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                return _first_difference(old.get(key), new.get(key), f"{where}.{key}" if where else key)
    return f"{where}: {old!r} there, {new!r} here"


def _soundfont_versions(preset: dict) -> dict:
    value = preset["timbre"]["soundfont"]
    names = value if isinstance(value, list) else value.get("choice", [value]) if isinstance(value, dict) else [value]
    out = {}
    for name in names:
        font = resolve_soundfont(name)
        out[font.name] = {"file": font.path.name, "sha256": font.sha256}
    return out


def clean_temporaries(out_dir: Path) -> None:
    """Remove what a killed run left half-written: track folders, corpus.toml or manifest."""
    for leftover in out_dir.glob(".*.tmp*"):
        if leftover.is_file():
            leftover.unlink()
    for split in SPLITS:
        folder = out_dir / split
        if folder.is_dir():
            for tmp in folder.glob(f"{TMP_PREFIX}*"):
                shutil.rmtree(tmp, ignore_errors=True)


def manifest_row(meta: dict) -> dict:
    scene = meta.get("scene") or {}
    room = scene.get("room") or {}
    return {
        "track_id": meta["track_id"],
        "split": meta["split"],
        "path": track_path(meta["split"], meta["track_id"]),
        "duration": f"{meta['rendered']['duration']:.3f}",
        "sample_rate": meta["sample_rate"],
        "channels": meta["rendered"]["channels"],
        "ensemble": meta["ensemble"],
        "parts": ";".join(p["name"] for p in meta["parts"]),
        "instruments": ";".join(p["instrument"] for p in meta["parts"]),
        "room": meta["room"]["room"],
        "rt60": f"{room['rt60']:.3f}" if room else "",
        "mics": meta["room"]["mics"],
        "source": meta["source"]["id"],
    }


def write_manifest(out_dir: Path, metas: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for meta in metas:
        writer.writerow(manifest_row(meta))
    write_text_atomic(out_dir / MANIFEST, buffer.getvalue())




def track_path(split: str, track_id: str) -> str:
    """A track folder relative to the corpus root."""
    return f"{split}/{track_id}"


@dataclass(frozen=True)
class TrackEntry:
    """One manifest row: where a track is and what it holds."""

    track_id: str
    split: str
    folder: Path
    duration: float
    sample_rate: int
    channels: int
    ensemble: str
    parts: tuple[str, ...]
    instruments: tuple[str, ...]

    def stem_path(self, part: str) -> Path:
        return self.folder / STEMS / f"{part}.wav"

    @property
    def mix_path(self) -> Path:
        return self.folder / MIX


REQUIRED_COLUMNS = ("track_id", "split", "path", "duration", "sample_rate", "channels", "parts", "instruments")


def is_corpus(folder: str | os.PathLike) -> bool:
    return (Path(folder) / MANIFEST).is_file()


def read_manifest(corpus_dir: str | os.PathLike) -> list[TrackEntry]:
    """Every track listed in ``CORPUS/manifest.csv``."""
    corpus_dir = Path(corpus_dir)
    manifest = corpus_dir / MANIFEST
    if not manifest.is_file():
        raise UserError(f"{corpus_dir}: not a corpus (no {MANIFEST})")
    with open(manifest, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise UserError(f"{manifest}: missing column(s) {', '.join(missing)}")
        tracks = []
        for line, row in enumerate(reader, start=2):
            try:
                parts = tuple(row["parts"].split(";"))
                insts = tuple(row["instruments"].split(";"))
                if len(parts) != len(insts):
                    raise ValueError("parts and instruments differ in length")
                tracks.append(TrackEntry(row["track_id"], row["split"], corpus_dir / row["path"],
                                         float(row["duration"]), int(row["sample_rate"]), int(row["channels"]),
                                         row.get("ensemble", ""), parts, insts))
            except (ValueError, TypeError, AttributeError) as exc:
                raise UserError(f"{manifest}: line {line}: {exc}") from None
    if not tracks:
        raise UserError(f"{manifest}: no tracks")
    return tracks
