"""The on-disk corpus format: one module owns it.

```
corpus/
  corpus.toml            resolved preset, root seed, versions, soundfonts
  manifest.csv           one row a track (MANIFEST_COLUMNS)
  card.md, card.png      the corpus card (corpus/card.py)
  <split>/<track_id>/mix.wav, stems/<part>.wav, dry/<part>.wav, midi/<part>.mid, metadata.json
```

Every reader and writer of that layout goes through here: the paths, the manifest schema
(written by :func:`write_manifest`, read by :func:`read_manifest`), ``corpus.toml``, and
writing a track folder atomically (built under a temporary name, renamed when complete).

Audio is float32 WAV (``.wav``, the default) or 24-bit FLAC (``.flac``, ``[write] format =
"flac"``). This module owns the extension: a FLAC corpus records ``format = "flac"`` in
``corpus.toml``'s ``[preset.write]`` and in each ``metadata.json``'s ``rendered``; a WAV corpus
records nothing (its files are those of every corpus made before FLAC existed). Readers ask
:meth:`TrackEntry.stem_path` / :attr:`TrackEntry.mix_path`, or :func:`stem_files` /
:func:`mix_file` for a track folder alone, and get whichever is there.

In a FLAC track the stems are rounded to 24 bits (each sample by at most half a step,
2**-24) and the mix is the integer sum of the rounded stems: decoded, ``mix == sum(stems)``
exactly (as int32, and as float64; as float32 too unless partial sums pass 2.0), and the
mix lies within ``n_parts * 2**-24`` of the float mix a WAV corpus holds.
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

from ..distributions import support
from ..errors import UserError
from ..fileio import (
    PCM24_LSB,
    to_pcm24,
    write_flac,
    write_json_atomic,
    write_text_atomic,
    write_wav,
)
from ..synthesis.fluid_renderer import FLUID_BUFSIZE
from ..synthesis.timbre import source_versions
from ..versions import versions
from . import augment as augment_mod
from .preset import AUDIO_FORMATS as preset_formats
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
MIX, METADATA, DRY_RUN_SPEC = "mix.wav", "metadata.json", "spec.json"  # MIX: a WAV corpus's; see mix_name
CARD, CARD_FIGURE = "card.md", "card.png"

# The audio formats of a corpus and their file extensions; WAV is float32, FLAC 24-bit.
AUDIO_FORMATS = {name: f".{name}" for name in preset_formats}  # {"wav": ".wav", "flac": ".flac"}
DEFAULT_FORMAT = preset_formats[0]


def check_audio_format(value, where: str = "format") -> str:
    if value not in AUDIO_FORMATS:
        raise UserError(f"{where}: expected one of {', '.join(AUDIO_FORMATS)}, got {value!r}")
    return value


def audio_name(stem: str, audio_format: str = DEFAULT_FORMAT) -> str:
    """``<stem>.wav`` or ``<stem>.flac``."""
    return f"{stem}{AUDIO_FORMATS[check_audio_format(audio_format)]}"


def mix_name(audio_format: str = DEFAULT_FORMAT) -> str:
    return audio_name("mix", audio_format)


def find_audio(folder: Path, stem: str, audio_format: str | None = None) -> Path:
    """``folder/<stem>.<ext>``: of ``audio_format`` when known, else whichever exists (the WAV
    path when neither does, for the caller's "not found")."""
    folder = Path(folder)
    if audio_format is not None:
        return folder / audio_name(stem, audio_format)
    for ext in AUDIO_FORMATS.values():
        if (folder / f"{stem}{ext}").is_file():
            return folder / f"{stem}{ext}"
    return folder / audio_name(stem)


def stem_files(track_folder: str | os.PathLike, kind: str = STEMS) -> list[Path]:
    """The stem files of a track folder (``stems/`` or ``dry/``), WAV or FLAC, sorted by name."""
    folder = Path(track_folder) / kind
    return sorted(p for ext in AUDIO_FORMATS.values() for p in folder.glob(f"*{ext}") if not p.name.startswith("."))


def mix_file(track_folder: str | os.PathLike) -> Path:
    """The mix of a track folder, WAV or FLAC (the WAV path when there is none)."""
    return find_audio(Path(track_folder), "mix")


def track_audio_format(meta: dict) -> str:
    """The audio format a track's metadata.json records (WAV when it records none)."""
    return (meta.get("rendered") or {}).get("format", DEFAULT_FORMAT)


def corpus_audio_format(corpus_dir: str | os.PathLike) -> str | None:
    """The audio format ``corpus.toml`` records (WAV when it records none); None without a readable one."""
    try:
        record = tomllib.loads((Path(corpus_dir) / CORPUS_RECORD).read_text())
        value = record["preset"].get("write", {}).get("format", DEFAULT_FORMAT)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return value if value in AUDIO_FORMATS else None


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


def write_track(rendered, track_dir: Path, write_dry: bool = False, write_midi: bool = False,
                audio_format: str = DEFAULT_FORMAT) -> dict:
    """Write a rendered track into ``track_dir`` atomically; returns its metadata.

    ``audio_format``: ``"wav"`` (float32) or ``"flac"`` (24-bit; the mix is the integer sum of
    the rounded stems, see the module's docstring).
    """
    check_audio_format(audio_format, "audio format")
    sr = int(rendered.spec["sample_rate"])
    meta = rendered.metadata()
    if audio_format != DEFAULT_FORMAT:  # a WAV track's metadata stays as it always was
        meta = {**meta, "rendered": {**meta["rendered"], "format": audio_format}}
    tmp = track_dir.parent / f"{TMP_PREFIX}{track_dir.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / STEMS).mkdir(parents=True)
    try:
        if audio_format == "flac":
            _write_flac_audio(rendered, tmp, track_dir, sr, write_dry)
        else:
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


def _write_flac_audio(rendered, folder: Path, track_dir: Path, sr: int, write_dry: bool) -> None:
    """24-bit stems into ``folder`` (the temporary ``track_dir``), and the mix as their exact integer sum."""
    ext = AUDIO_FORMATS["flac"]
    total = np.zeros(rendered.images.shape[1:], dtype=np.int64)
    for name, image in zip(rendered.part_names, rendered.images):
        pcm = to_pcm24(image, str(track_dir / STEMS / f"{name}{ext}"))
        total += pcm
        write_flac(folder / STEMS / f"{name}{ext}", pcm, sr)
    mix = to_pcm24(total * PCM24_LSB, f"{track_dir / mix_name('flac')} (the sum of the 24-bit stems)")
    write_flac(folder / mix_name("flac"), mix, sr)
    if write_dry:
        (folder / DRY).mkdir()
        for name, stem in zip(rendered.part_names, rendered.dry):
            write_flac(folder / DRY / f"{name}{ext}", to_pcm24(stem, str(track_dir / DRY / f"{name}{ext}")), sr)


def corpus_record(preset: dict, seed: int, augmentations=()) -> dict:
    preset = public(preset)
    if preset.get("write", {}).get("format", DEFAULT_FORMAT) == DEFAULT_FORMAT and "format" in preset.get("write", {}):
        # WAV, the default, is not written down: a WAV corpus.toml reads as before FLAC existed.
        preset = {**preset, "write": {k: v for k, v in preset["write"].items() if k != "format"}}
    record = {"seed": int(seed), "spec_version": SPEC_VERSION, "preset": preset}
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
        old, new = _format_written(old), _format_written(new)
        if old != new:
            raise UserError(
                f"{out_dir}: holds a corpus of another preset or seed ({_first_difference(old, new)}; see {path}); "
                "use another output directory, or remove it to start over"
            )
        return
    if out_dir.exists() and any(p for p in out_dir.iterdir() if not p.name.startswith(".")):
        raise UserError(f"{out_dir}: exists, is not empty and is not a corpus; use another output directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    pools = preset["timbre"].get("pools")
    soundfonts = source_versions(preset["timbre"]["soundfont"] if not pools else list(dict.fromkeys(
        name for value in [preset["timbre"]["soundfont"], *pools.values()] for name in support(value))))
    text = tomli_w.dumps({**record, "versions": {k: v or "" for k, v in versions().items()}, "soundfonts": soundfonts})
    write_text_atomic(path, text)


def _format_written(record: dict) -> dict:
    """The record with its audio format spelt out (WAV when it names none), for comparing."""
    preset = record.get("preset")
    if isinstance(preset, dict) and isinstance(preset.get("write", {}), dict):
        write = {"format": DEFAULT_FORMAT, **preset.get("write", {})}
        record = {**record, "preset": {**preset, "write": write}}
    return record


def _first_difference(old, new, where: str = "") -> str:
    """The first key whose value differs, e.g. "seed: 0 there, 1 here"."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                return _first_difference(old.get(key), new.get(key), f"{where}.{key}" if where else key)
    return f"{where}: {old!r} there, {new!r} here"


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
    audio_format: str | None = None  # "wav" or "flac" as corpus.toml records it; None: whichever is there

    def stem_path(self, part: str) -> Path:
        return find_audio(self.folder / STEMS, part, self.audio_format)

    @property
    def mix_path(self) -> Path:
        return find_audio(self.folder, "mix", self.audio_format)


REQUIRED_COLUMNS = ("track_id", "split", "path", "duration", "sample_rate", "channels", "parts", "instruments")


def is_corpus(folder: str | os.PathLike) -> bool:
    return (Path(folder) / MANIFEST).is_file()


def read_manifest(corpus_dir: str | os.PathLike) -> list[TrackEntry]:
    """Every track listed in ``CORPUS/manifest.csv``."""
    corpus_dir = Path(corpus_dir)
    manifest = corpus_dir / MANIFEST
    if not manifest.is_file():
        raise UserError(f"{corpus_dir}: not a corpus (no {MANIFEST})")
    audio_format = corpus_audio_format(corpus_dir)
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
                                         row.get("ensemble", ""), parts, insts, audio_format))
            except (ValueError, TypeError, AttributeError) as exc:
                raise UserError(f"{manifest}: line {line}: {exc}") from None
    if not tracks:
        raise UserError(f"{manifest}: no tracks")
    return tracks
