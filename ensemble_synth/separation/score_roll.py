"""The score as a separator's second input: each part's notes as frame-level features.

A roll is float32 ``(parts, FEATURES, frames)`` at ``FRAME_RATE`` frames a second, frame 0
starting at the window's start. Per part and frame: note active (1), pitch class one-hot
(12), pitch as ``(midi - 60) / 24`` (1); all zero where the part rests. Where notes of
one part overlap, the one that started last is the one described.

Notes come in one form whatever their source: an ``(n, 3)`` array per part of onset s,
pitch Hz, duration s (URMP's ``Notes_`` files; Bach10's ``GTNotes.mat`` and a corpus
track's ``midi/<part>.mid`` are read into it). ``None`` for a part means no notes (rests).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from ..corpus.format import MIDI
from ..errors import UserError

FRAME_RATE = 100.0  # roll frames a second (10 ms, Bach10's annotation hop)
FEATURES = 14  # active, 12 pitch classes, pitch
ACTIVE, PITCH = 0, 13  # feature rows; the pitch classes are rows 1..12


def midi_to_hz(pitch) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(pitch, dtype=np.float64) - 69.0) / 12.0)


def hz_to_midi(hz) -> np.ndarray:
    """Nearest MIDI note number of each frequency."""
    return np.rint(69.0 + 12.0 * np.log2(np.asarray(hz, dtype=np.float64) / 440.0)).astype(int)


def frames_for(samples: int, sample_rate: int, frame_rate: float = FRAME_RATE) -> int:
    """Roll frames that cover ``samples`` audio samples (at least one)."""
    return max(1, math.ceil(samples * frame_rate / sample_rate - 1e-9))


def notes_from_midi(path: Path) -> np.ndarray:
    """The notes of a MIDI file (every non-drum track), ``(n, 3)`` onset s, pitch Hz, duration s."""
    import pretty_midi

    try:
        midi = pretty_midi.PrettyMIDI(str(path))
    except Exception as exc:  # mido and pretty_midi raise many types for a damaged file
        raise UserError(f"{path}: not a readable MIDI file ({type(exc).__name__})") from None
    notes = [(n.start, n.pitch, n.end - n.start) for inst in midi.instruments if not inst.is_drum for n in inst.notes]
    rows = np.array(sorted(notes), dtype=np.float64).reshape(-1, 3)
    rows[:, 1] = midi_to_hz(rows[:, 1])
    return rows


def performed_midi(folder: Path, part: str, where: str | None = None) -> Path:
    """A corpus track's ``midi/<part>.mid``; a missing file is refused with one line naming
    ``where`` (the corpus) and saying to generate the corpus with ``--midi``."""
    path = Path(folder) / MIDI / f"{part}.mid"
    if not path.is_file():
        raise UserError(f"{where or folder}: track {Path(folder).name} has no {MIDI}/{part}.mid; a score-conditioned "
                        "model trains on the performed MIDI: generate the corpus with --midi")
    return path


def track_midi_notes(folder: Path, parts: Sequence[str], where: str | None = None) -> list[np.ndarray]:
    """The performed notes of each of ``parts`` from a corpus track's ``midi/<part>.mid``."""
    return [notes_from_midi(performed_midi(folder, part, where)) for part in parts]


def score_roll(notes: Sequence[np.ndarray | None], start_s: float, frames: int,
               frame_rate: float = FRAME_RATE) -> np.ndarray:
    """The roll ``(len(notes), FEATURES, frames)`` of the window of ``frames`` frames from ``start_s``.

    A note sounds in the frames that its span [onset, onset + duration) touches (at least one)."""
    roll = np.zeros((len(notes), FEATURES, frames), dtype=np.float32)
    for part, rows in enumerate(notes):
        if rows is None or len(rows) == 0:
            continue
        rows = np.asarray(rows, dtype=np.float64)
        order = np.argsort(rows[:, 0], kind="stable")  # later onsets overwrite earlier ones
        pitches = hz_to_midi(rows[order, 1])
        onsets = (rows[order, 0] - start_s) * frame_rate
        offsets = (rows[order, 0] + rows[order, 2] - start_s) * frame_rate
        for onset, offset, pitch in zip(onsets, offsets, pitches):
            first = int(math.floor(onset))
            stop = max(first + 1, int(math.ceil(offset)))
            first, stop = max(first, 0), min(stop, frames)
            if first >= stop:
                continue
            roll[part, :, first:stop] = 0.0
            roll[part, ACTIVE, first:stop] = 1.0
            roll[part, 1 + pitch % 12, first:stop] = 1.0
            roll[part, PITCH, first:stop] = (pitch - 60) / 24.0
    return roll
