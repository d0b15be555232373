"""Real recordings with isolated stems, loaded from the layouts people have on disk.

``load_dataset("KIND:PATH")`` with KIND one of:

- ``bach10``: Bach10's native layout, one folder a piece holding
  ``NN-Name-{violin,clarinet,saxphone,bassoon}.wav``. The mixture is always the sum of
  the stems (some supplied mixes clip). The note annotations ``NN-Name-GTNotes.mat`` are
  attached as ``notes`` (as URMP's, one ``(n, 3)`` array a part) where present.
- ``urmp``: URMP's native layout, one folder a piece holding
  ``AuSep_<part>_<inst>_<NN>_<Title>.wav`` stems at the native rate (48 kHz), with the
  per-part ``Notes_<part>_<inst>_<NN>_<Title>.txt`` (onset s, pitch Hz, duration s) and
  ``F0s_<part>_<inst>_<NN>_<Title>.txt`` (time s, f0 Hz) annotations attached where present;
  an ``AuMix_*.wav`` only has its length checked against the stems (the mixture is the sum
  of the stems), and ``Sco_*.mid`` is the piece's score.
- ``folder``: our corpus layout, ``<track>/mix.wav`` + ``<track>/stems/<part>.wav`` with
  parts named ``<n>_<instrument>``; PATH may also be a corpus root with split folders
  (train/valid/test) or a ``manifest.csv``.

PATH may be the dataset root or a single piece's folder. Every track comes back as a
:class:`Recording` with float32 stems (parts, channels, samples), optionally resampled and
cut into fixed-length segments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf

from ..corpus import format as corpus_format
from ..corpus.preset import SPLITS
from ..errors import UserError
from ..fileio import read_wav
from ..music import instruments
from ..music.instruments import quoted
from ..music.score import part_name
from ..separation.score_roll import midi_to_hz

KINDS = ("bach10", "urmp", "folder")
BACH10_PARTS = (("violin", "violin"), ("clarinet", "clarinet"), ("saxphone", "tenor_saxophone"), ("bassoon", "bassoon"))

_URMP_STEM = re.compile(r"^AuSep_(\d+)_([a-z]+)_(\d+)_(.+)\.wav$", re.IGNORECASE)
_URMP_ANNOTATION = re.compile(r"^(Notes|F0s)_(\d+)_([a-z]+)_(\d+)_(.+)\.txt$", re.IGNORECASE)
URMP_NOTE_COLUMNS = ("onset_s", "pitch_hz", "duration_s")
URMP_F0_COLUMNS = ("time_s", "f0_hz")
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
    # URMP (and Bach10 notes) annotations, one entry a part (None where that part has no file); None
    # when the data set has none. notes[i]: (n, 3) onset s, pitch Hz, duration s; f0s[i]: (n, 2) time s, f0 Hz
    notes: list | None = None
    f0s: list | None = None
    path: Path | None = None  # the folder the recording was loaded from, where the loader records it
    title: str | None = None  # the piece's title, where the data set names it (URMP: <Title>)

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
    notes_file = folder / f"{folder.name}-GTNotes.mat"
    notes = read_bach10_notes(notes_file) if notes_file.is_file() else None
    return Recording(folder.name, names, [c for _, c in BACH10_PARTS], stems, sr, score if score.is_file() else None,
                     notes=notes)


BACH10_HOP_S = 0.010  # GTNotes frames: 10 ms hop, 46 ms window, frame 1 centred at 23 ms
BACH10_FIRST_CENTRE_S = 0.023


def read_bach10_notes(path: Path) -> list[np.ndarray]:
    """Bach10's ``-GTNotes.mat`` as one ``(n, 3)`` array a part (onset s, pitch Hz, duration s),
    parts in score order (violin, clarinet, saxophone, bassoon).

    The file (MATLAB v5) holds ``GTNotes``: a cell per part, each a cell per note, each a
    ``(2, k)`` array of 1-based frame numbers (10 ms hop) and the MIDI pitch at each frame. A
    note spans its frames (each centre +-5 ms); its pitch is the median of its frames' pitches.
    A file that does not read, or holds anything else, is refused with one line naming it.
    """
    from scipy.io import loadmat

    try:
        cells = loadmat(str(path))["GTNotes"]
    except Exception as exc:  # scipy raises many types for a foreign or truncated file
        kind = "no GTNotes variable" if isinstance(exc, KeyError) else type(exc).__name__
        raise UserError(f"{path}: not a readable Bach10 GTNotes file ({kind})") from None
    if cells.dtype != object or cells.size != len(BACH10_PARTS):
        raise UserError(f"{path}: GTNotes holds {cells.size} entries, expected a cell per part "
                        f"({len(BACH10_PARTS)})")
    parts = []
    for index, part in enumerate(cells.reshape(-1), 1):
        rows = []
        for number, note in enumerate(np.asarray(part, dtype=object).reshape(-1), 1):
            note = np.asarray(note)
            where = f"{path}: part {index} note {number}"
            if note.ndim != 2 or note.shape[0] != 2 or note.shape[1] < 1 or not np.issubdtype(note.dtype, np.number):
                raise UserError(f"{where}: expected a 2 x k array of frames and pitches, got shape {note.shape}")
            frames, pitches = note[0].astype(np.float64), note[1].astype(np.float64)
            if not (np.isfinite(frames).all() and np.isfinite(pitches).all()) or frames.min() < 1 \
                    or (np.diff(frames) <= 0).any() or not 0 < np.median(pitches) < 128:
                raise UserError(f"{where}: frames must be increasing numbers from 1 and pitches MIDI numbers")
            onset = BACH10_FIRST_CENTRE_S + (frames[0] - 1) * BACH10_HOP_S - BACH10_HOP_S / 2
            rows.append((onset, float(midi_to_hz(np.median(pitches))), (frames[-1] - frames[0] + 1) * BACH10_HOP_S))
        parts.append(np.array(rows, dtype=np.float64).reshape(-1, 3))
    return parts


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
    notes, f0s = _urmp_annotations(folder, [p for _, _, p in found])
    stems, sr = _read_stems([p for _, _, p in found])
    _check_urmp_mix(folder, stems, sr)
    title = _URMP_STEM.match(found[0][2].name).group(4)
    return Recording(folder.name, names, insts, stems, sr, next(iter(sorted(folder.glob("Sco_*.mid"))), None),
                     notes=notes, f0s=f0s, path=folder, title=title)


def _urmp_annotations(folder: Path, stem_paths: list[Path]) -> tuple[list | None, list | None]:
    """The Notes_ and F0s_ files of each part (None where a part has none; None, None
    when the piece has none). A file that belongs to no stem, or a malformed one, is refused."""
    suffixes = {path.name[len("AuSep_"):-len(".wav")].lower(): i for i, path in enumerate(stem_paths)}
    notes: list = [None] * len(stem_paths)
    f0s: list = [None] * len(stem_paths)
    for path in sorted([*folder.glob("Notes_*.txt"), *folder.glob("F0s_*.txt")]):
        match = _URMP_ANNOTATION.match(path.name)
        kind = path.name.split("_", 1)[0]
        part = suffixes.get(path.name[len(kind) + 1:-len(".txt")].lower()) if match else None
        if part is None:
            expected = ", ".join(f"{kind}_{p.name[len('AuSep_'):-len('.wav')]}.txt" for p in stem_paths)
            raise UserError(f"{path}: URMP annotation for no stem of the piece (expected one of {expected})")
        if kind.lower() == "notes":
            notes[part] = read_urmp_annotation(path, URMP_NOTE_COLUMNS)
        else:
            f0s[part] = read_urmp_annotation(path, URMP_F0_COLUMNS)
    return (notes if any(n is not None for n in notes) else None,
            f0s if any(f is not None for f in f0s) else None)


def read_urmp_annotation(path: Path, columns: tuple[str, ...]) -> np.ndarray:
    """A URMP annotation file as an (n, len(columns)) float64 array.

    Whitespace-separated numbers, one row a line; blank lines are skipped. A line with
    another number of columns, a value that is not a finite number, a negative time or
    duration, a note pitch that is not positive, a negative f0 or times that go back are
    refused naming the file and the line.
    """
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not a text file (byte {exc.start} is not UTF-8)") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror or exc})") from None
    rows, last_time = [], -np.inf
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path}: line {number}"
        if len(fields) != len(columns):
            raise UserError(f"{where}: expected {len(columns)} numbers ({', '.join(columns)}), got {len(fields)}")
        try:
            values = [float(f) for f in fields]
        except ValueError:
            bad = next(f for f in fields if not _is_float(f))
            raise UserError(f"{where}: {quoted(bad)} is not a number") from None
        if not all(np.isfinite(values)):
            raise UserError(f"{where}: values must be finite, got {' '.join(fields)}")
        time_value, value = values[0], values[1]
        if time_value < 0:
            raise UserError(f"{where}: {columns[0]} {time_value:g} is negative")
        if columns == URMP_NOTE_COLUMNS:
            if value <= 0:
                raise UserError(f"{where}: pitch_hz {value:g} must be positive")
            if values[2] < 0:
                raise UserError(f"{where}: duration_s {values[2]:g} is negative")
        else:
            if value < 0:
                raise UserError(f"{where}: f0_hz {value:g} is negative (0 marks an unvoiced frame)")
            if time_value < last_time:
                raise UserError(f"{where}: time_s {time_value:g} comes before the previous line's {last_time:g}")
            last_time = time_value
        rows.append(values)
    return np.array(rows, dtype=np.float64).reshape(-1, len(columns))


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _check_urmp_mix(folder: Path, stems: np.ndarray, sample_rate: int) -> None:
    """A supplied AuMix_*.wav must match the stems' rate and length (it is not used)."""
    for mix in sorted(folder.glob("AuMix_*.wav")):
        try:
            info = sf.info(str(mix))
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise UserError(f"{mix}: cannot read audio ({exc})") from None
        if info.samplerate != sample_rate or info.frames != stems.shape[-1]:
            raise UserError(f"{mix}: {info.frames} samples at {info.samplerate} Hz, but the stems have "
                            f"{stems.shape[-1]} samples at {sample_rate} Hz")


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
    """The track at another sample rate (polyphase, scipy.signal.resample_poly); annotations,
    in seconds, are unchanged."""
    if track.sample_rate == sample_rate:
        return track
    from scipy.signal import resample_poly

    g = gcd(int(sample_rate), track.sample_rate)
    stems = resample_poly(track.stems, sample_rate // g, track.sample_rate // g, axis=-1).astype(np.float32)
    return replace(track, parts=list(track.parts), instruments=list(track.instruments), stems=stems,
                   sample_rate=int(sample_rate))


def segment_track(track: Recording, seconds: float) -> list[Recording]:
    """Consecutive ``seconds``-long pieces named ``<name>_segNN``; see :func:`load_dataset`.

    Annotations follow: a segment keeps the notes that start in it and the f0 frames in it,
    with times from the segment's start."""
    length = round(seconds * track.sample_rate)
    n = track.stems.shape[-1]
    count = max(1, n // length)
    out = []
    for i in range(count):
        start, stop = i * length, ((i + 1) * length if n >= length else n)
        window = (start / track.sample_rate, stop / track.sample_rate)
        out.append(replace(
            track,
            name=f"{track.name}_seg{i:02d}",
            parts=list(track.parts),
            instruments=list(track.instruments),
            stems=np.ascontiguousarray(track.stems[..., start:stop]),
            notes=_cut_annotations(track.notes, window),
            f0s=_cut_annotations(track.f0s, window),
        ))
    return out


def _cut_annotations(per_part: list | None, window: tuple[float, float]) -> list | None:
    if per_part is None:
        return None
    start, stop = window
    out = []
    for rows in per_part:
        if rows is None:
            out.append(None)
            continue
        keep = rows[(rows[:, 0] >= start) & (rows[:, 0] < stop)].copy()
        keep[:, 0] -= start
        out.append(keep)
    return out
