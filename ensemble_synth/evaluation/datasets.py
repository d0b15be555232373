"""Real recordings with isolated stems, loaded from the layouts people have on disk.

``load_dataset("KIND:PATH")`` with KIND one of:

- ``bach10``: Bach10's native layout, one folder a piece holding
  ``NN-Name-{violin,clarinet,saxphone,bassoon}.wav``. The mixture is always the sum of
  the stems (some supplied mixes clip).
- ``urmp``: URMP's native layout, one folder a piece holding
  ``AuSep_<part>_<inst>_<NN>_<Title>.wav`` stems (``AuMix_*``, ``Sco_*`` are not needed).
- ``folder``: our corpus layout, ``<track>/mix.wav`` + ``<track>/stems/<part>.wav`` with
  parts named ``<n>_<instrument>``; PATH may also be a corpus root with split folders
  (train/valid/test) or a ``manifest.csv``.

PATH may be the dataset root or a single piece's folder. Every track comes back as a
:class:`Recording` with float32 stems (parts, channels, samples), optionally resampled and
cut into fixed-length segments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf

from ..corpus import format as corpus_format
from ..corpus.preset import SPLITS
from ..errors import UserError
from ..fileio import read_wav
from ..music import instruments
from ..music.score import part_name

KINDS = ("bach10", "urmp", "folder")
BACH10_PARTS = (("violin", "violin"), ("clarinet", "clarinet"), ("saxphone", "tenor_saxophone"), ("bassoon", "bassoon"))

_URMP_STEM = re.compile(r"^AuSep_(\d+)_([a-z]+)_(\d+)_(.+)\.wav$", re.IGNORECASE)
_PART_NAME = re.compile(r"^(\d+)_(.+)$")


@dataclass
class Recording:
    """One recording: aligned stems of every part.

    stems: float32 (n_parts, channels, n_samples); parts: names like "1_violin" in score
    order; instruments: canonical instrument names, one per part.
    """

    name: str
    parts: list[str]
    instruments: list[str]
    stems: np.ndarray
    sample_rate: int
    score: Path | None = None  # the piece's score (MIDI) where the data set ships one

    @property
    def mixture(self) -> np.ndarray:
        """(channels, n_samples): the sum of the stems."""
        return self.stems.sum(axis=0)

    @property
    def duration(self) -> float:
        return self.stems.shape[-1] / self.sample_rate


def load_dataset(spec: str, sample_rate: int | None = None, segment: float | None = None) -> list[Recording]:
    """Load every track of ``"KIND:PATH"``, resampled to ``sample_rate`` and cut into
    ``segment``-second pieces if given (named ``<track>_segNN``; a trailing remainder
    shorter than a segment is dropped, a track shorter than one segment is kept whole)."""
    kind, sep, path = spec.partition(":")
    if not sep or kind.lower() not in KINDS:
        raise UserError(f"dataset '{spec}': expected KIND:PATH with KIND one of {', '.join(KINDS)}")
    root = Path(path).expanduser()
    if not root.is_dir():
        raise UserError(f"{root}: dataset folder not found")
    if segment is not None and segment <= 0:
        raise UserError(f"segment length must be positive, got {segment}")
    loader = {"bach10": load_bach10, "urmp": load_urmp, "folder": load_folder}[kind.lower()]
    tracks = loader(root)
    if not tracks:
        raise UserError(f"{root}: no {kind} tracks found")
    if sample_rate is not None:
        tracks = [resample_track(t, sample_rate) for t in tracks]
    if segment is not None:
        tracks = [seg for t in tracks for seg in segment_track(t, segment)]
    return tracks


# -- Bach10 ----------------------------------------------------------------------------


def load_bach10(root: Path) -> list[Recording]:
    """Bach10 pieces under ``root`` (or ``root`` itself if it is a piece folder)."""
    pieces = [root] if _is_bach10_piece(root) else sorted(p for p in root.iterdir() if _is_bach10_piece(p))
    return [_load_bach10_piece(p) for p in pieces]


def _is_bach10_piece(folder: Path) -> bool:
    return folder.is_dir() and any(folder.glob(f"{folder.name}-*.wav"))


def _load_bach10_piece(folder: Path) -> Recording:
    paths = [folder / f"{folder.name}-{spelling}.wav" for spelling, _ in BACH10_PARTS]
    names = [part_name(i, canonical) for i, (_, canonical) in enumerate(BACH10_PARTS, 1)]
    stems, sr = _read_stems(paths)
    score = folder / f"{folder.name}.mid"
    return Recording(folder.name, names, [c for _, c in BACH10_PARTS], stems, sr, score if score.is_file() else None)


# -- URMP ------------------------------------------------------------------------------


def load_urmp(root: Path) -> list[Recording]:
    """URMP pieces under ``root`` (or ``root`` itself if it holds AuSep stems)."""
    pieces = [root] if _urmp_stems(root) else sorted(p for p in root.iterdir() if p.is_dir() and _urmp_stems(p))
    return [_load_urmp_piece(p) for p in pieces]


def _urmp_stems(folder: Path) -> list[tuple[int, str, Path]]:
    found = []
    for path in folder.glob("AuSep_*.wav"):
        match = _URMP_STEM.match(path.name)
        if match is None:
            raise UserError(f"{path}: not a URMP stem name (expected AuSep_<part>_<inst>_<NN>_<Title>.wav)")
        found.append((int(match.group(1)), match.group(2).lower(), path))
    return sorted(found)


def _load_urmp_piece(folder: Path) -> Recording:
    found = _urmp_stems(folder)
    numbers = [n for n, _, _ in found]
    if numbers != list(range(1, len(found) + 1)):
        missing = sorted(set(range(1, max(numbers) + 1)) - set(numbers))
        raise UserError(f"{folder}: URMP stems for parts {missing} are missing (found parts {numbers})")
    names, insts = [], []
    for number, abbrev, path in found:
        inst = instruments.find(abbrev)
        if inst is None:
            raise UserError(f"{path}: unknown URMP instrument '{abbrev}'")
        names.append(part_name(number, inst.name))
        insts.append(inst.name)
    stems, sr = _read_stems([p for _, _, p in found])
    return Recording(folder.name, names, insts, stems, sr, next(iter(sorted(folder.glob("Sco_*.mid"))), None))


# -- our corpus layout -----------------------------------------------------------------


def load_folder(root: Path) -> list[Recording]:
    """Tracks in our layout: a track folder, a folder of tracks, or a corpus root."""
    return [_load_track_folder(d) for d in _track_folders(root)]


def _track_folders(root: Path) -> list[Path]:
    if (root / corpus_format.STEMS).is_dir():
        return [root]
    if corpus_format.is_corpus(root):
        folders = []
        for entry in corpus_format.read_manifest(root):
            if not (entry.folder / corpus_format.STEMS).is_dir():
                raise UserError(f"{root / corpus_format.MANIFEST}: track '{entry.track_id}' is listed but "
                                f"{entry.folder / corpus_format.STEMS} is missing")
            folders.append(entry.folder)
        return folders
    splits = [root / s for s in SPLITS if (root / s).is_dir()]
    parents = splits or [root]
    return [d for parent in parents for d in sorted(parent.iterdir()) if (d / corpus_format.STEMS).is_dir()]


def _load_track_folder(folder: Path) -> Recording:
    stem_paths = corpus_format.stem_files(folder)  # WAV or FLAC
    if not stem_paths:
        raise UserError(f"{folder / 'stems'}: no stem files (WAV or FLAC)")
    stem_paths.sort(key=_part_sort_key)
    names, insts = [], []
    for path in stem_paths:
        match = _PART_NAME.match(path.stem)
        label = match.group(2) if match else path.stem
        inst = instruments.find(label) or instruments.from_track_name(label)
        if inst is None:
            raise UserError(f"{path}: cannot tell the instrument from the file name (name stems <n>_<instrument>.wav)")
        names.append(path.stem)
        insts.append(inst.name)
    stems, sr = _read_stems(stem_paths)
    mix = corpus_format.mix_file(folder)
    if mix.is_file():
        info = sf.info(str(mix))
        if info.samplerate != sr or info.frames != stems.shape[-1]:
            raise UserError(
                f"{mix}: {info.frames} samples at {info.samplerate} Hz, but the stems have "
                f"{stems.shape[-1]} samples at {sr} Hz"
            )
    return Recording(folder.name, names, insts, stems, sr)


def _part_sort_key(path: Path):
    match = _PART_NAME.match(path.stem)
    return (0, int(match.group(1)), path.stem) if match else (1, 0, path.stem)


# -- shared ----------------------------------------------------------------------------


def _read_stems(paths: list[Path]) -> tuple[np.ndarray, int]:
    """Read stems that must agree in sample rate, length and channel count."""
    audio, rate, first = [], None, None
    for path in paths:
        if not path.is_file():
            raise UserError(f"{path}: stem file is missing")
        try:
            data, sr = read_wav(path)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise UserError(f"{path}: cannot read audio ({exc})") from None
        if rate is None:
            rate, first = sr, (path, data.shape)
        elif sr != rate:
            raise UserError(f"{path}: sample rate {sr} Hz differs from {rate} Hz of {first[0].name}")
        elif data.shape != first[1]:
            raise UserError(
                f"{path}: {data.shape[1]} samples x {data.shape[0]} channels differs from "
                f"{first[1][1]} x {first[1][0]} of {first[0].name}"
            )
        audio.append(data)
    return np.stack(audio).astype(np.float32, copy=False), int(rate)


def resample_track(track: Recording, sample_rate: int) -> Recording:
    """The track at another sample rate (polyphase, scipy.signal.resample_poly)."""
    if track.sample_rate == sample_rate:
        return track
    from scipy.signal import resample_poly

    g = gcd(int(sample_rate), track.sample_rate)
    stems = resample_poly(track.stems, sample_rate // g, track.sample_rate // g, axis=-1).astype(np.float32)
    return Recording(track.name, list(track.parts), list(track.instruments), stems, int(sample_rate), track.score)


def segment_track(track: Recording, seconds: float) -> list[Recording]:
    """Consecutive ``seconds``-long pieces named ``<name>_segNN``; see :func:`load_dataset`."""
    length = int(round(seconds * track.sample_rate))
    n = track.stems.shape[-1]
    count = max(1, n // length)
    return [
        Recording(
            f"{track.name}_seg{i:02d}",
            list(track.parts),
            list(track.instruments),
            np.ascontiguousarray(track.stems[..., i * length : (i + 1) * length if n >= length else n]),
            track.sample_rate,
            track.score,
        )
        for i in range(count)
    ]
