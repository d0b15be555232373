"""Repertoire sources: the Bach chorales of music21's corpus, or a folder/glob of MIDI files.

A piece is a list of voices, each an (n, 4) array of start beat, length in beats, MIDI
pitch and a fermata flag, ordered from the highest voice to the lowest.
"""

from __future__ import annotations

import functools
import glob
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from .instruments import escape, quoted
from .score import (
    MAX_NOTE_SECONDS,
    MAX_SCORE_MINUTES,
    check_limit_values,
    check_notes,
    read_midi,
)

BEAT, LENGTH, PITCH, FERMATA = range(4)
MUSIC21_BACH = "music21:bach"


@dataclass
class Piece:
    id: str
    title: str
    voices: list[np.ndarray]
    tempo_bpm: float | None = None  # the score's own tempo, when it has one

    @property
    def beats(self) -> float:
        return max(float((v[:, BEAT] + v[:, LENGTH]).max()) for v in self.voices if len(v))

    def soprano(self) -> np.ndarray:
        return self.voices[0][:, PITCH]


def melody_intervals(pitches: np.ndarray) -> np.ndarray:
    """Interval sequence of a melody with repeated notes merged (transposition-free)."""
    pitches = np.asarray(pitches, dtype=int)
    if len(pitches) == 0:
        return pitches
    keep = np.concatenate([[True], np.diff(pitches) != 0])
    return np.diff(pitches[keep])


def _longest_common_run(a: np.ndarray, b: np.ndarray) -> int:
    if len(a) == 0 or len(b) == 0:
        return 0
    eq = a[:, None] == b[None, :]
    best = 0
    run = np.zeros(len(b) + 1, dtype=int)
    for row in eq:
        run[1:] = np.where(row, run[:-1] + 1, 0)
        best = max(best, int(run.max()))
    return best


def same_melody(a: np.ndarray, b: np.ndarray) -> bool:
    """Two soprano lines are the same tune when a long stretch of their intervals agrees.

    Harmonisations of one chorale tune differ in passing notes and cadences, so the test
    is a common run of intervals covering half of the shorter line (at least 8 intervals).
    """
    ia, ib = melody_intervals(a), melody_intervals(b)
    shorter = min(len(ia), len(ib))
    if shorter < 4:
        return False
    return _longest_common_run(ia, ib) >= max(8, int(0.5 * shorter)) or _longest_common_run(ia, ib) == shorter


# --- music21 Bach chorales -------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def music21_bach_ids() -> tuple[str, ...]:
    """Ids (file stems, e.g. 'bwv255') of the four-part Bach scores in music21's corpus."""
    from music21 import corpus

    paths = corpus.getComposer("bach")
    return tuple(sorted({Path(p).stem for p in paths if str(p).endswith((".mxl", ".xml"))}, key=_natural_key))


def _natural_key(text: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


@functools.lru_cache(maxsize=512)
def load_music21_bach(piece_id: str) -> Piece:
    from music21 import corpus, expressions

    try:
        score = corpus.parse(f"bach/{piece_id}")
    except Exception as exc:
        raise UserError(f"music21 corpus: cannot parse bach/{piece_id} ({exc})") from None
    voices = []
    for part in score.parts:
        rows = []
        part.stripTies(inPlace=True)  # in place: a copy costs more than the parse (idempotent)
        for note in part.flatten().notes:
            fermata = any(isinstance(e, expressions.Fermata) for e in note.expressions)
            pitches = [note.pitch.midi] if note.isNote else [max(p.midi for p in note.pitches)]
            for pitch in pitches:
                rows.append((float(note.offset), float(note.duration.quarterLength), pitch, float(fermata)))
        if rows:
            voices.append(np.array(rows, dtype=np.float64))
    voices.sort(key=lambda v: -float(np.mean(v[:, PITCH])))
    title = score.metadata.title if score.metadata and score.metadata.title else piece_id
    return Piece(f"bach/{piece_id}", str(title), voices)


# --- MIDI files -------------------------------------------------------------------------


def midi_files(pattern: str) -> tuple[str, ...]:
    """The MIDI files of a folder (recursively, by suffix) or of a glob pattern (files only)."""
    path = Path(pattern).expanduser()
    try:
        if path.is_dir():
            files = [str(p) for p in sorted(path.rglob("*")) if p.suffix.lower() in (".mid", ".midi") and p.is_file()]
        else:
            files = sorted(f for f in glob.glob(os.path.expanduser(pattern), recursive=True) if os.path.isfile(f))
    except OSError as exc:
        raise UserError(f"{escape(pattern)}: cannot list MIDI files ({exc.strerror or exc})") from None
    if not files:
        raise UserError(f"{escape(pattern)}: no MIDI files found")
    return tuple(files)


@functools.lru_cache(maxsize=512)
def load_midi_piece(
    path: str,
    max_minutes: float = MAX_SCORE_MINUTES,
    max_note_seconds: float = MAX_NOTE_SECONDS,
) -> Piece:
    """A MIDI file as a piece in beats (drum tracks skipped), voices sorted high to low.

    The limits of :func:`~ensemble_synth.music.score.load_midi` apply, in seconds at the
    piece's own (first) tempo, the one corpora perform it at: a corrupt file that asks for
    hours is refused here, naming the file and voice, before any excerpt is drawn.
    """
    check_limit_values(max_minutes, max_note_seconds, ("max_minutes", "max_note_seconds"))
    midi, _ = read_midi(path, max_minutes, options=None)
    shown = escape(path)
    voices = []
    names = []
    for track in midi.instruments:
        if track.is_drum or not track.notes:
            continue
        rows = []
        for n in sorted(track.notes, key=lambda n: (n.start, n.pitch)):
            on = midi.time_to_tick(n.start) / midi.resolution
            off = midi.time_to_tick(n.end) / midi.resolution
            rows.append((on, off - on, n.pitch, 0.0))
        voices.append(np.array(rows, dtype=np.float64))
        names.append(f"{shown}: part {len(voices)} ({quoted(track.name)})")
    if not voices:
        if any(t.is_drum and t.notes for t in midi.instruments):
            raise UserError(f"{shown}: only drum parts, no voices")
        raise UserError(f"{shown}: the score has no notes")
    tempi = midi.get_tempo_changes()[1]
    tempo = float(tempi[0]) if len(tempi) else 120.0
    for voice, where in zip(voices, names):
        start = voice[:, BEAT] * (60.0 / tempo)
        seconds = np.stack([start, start + voice[:, LENGTH] * (60.0 / tempo), voice[:, PITCH], voice[:, FERMATA]], axis=1)
        check_notes(seconds, where, max_minutes, max_note_seconds, options=None)
    order = sorted(range(len(voices)), key=lambda i: -float(np.mean(voices[i][:, PITCH])))
    return Piece(path, Path(path).stem, [voices[i] for i in order], tempo)


# --- sources ----------------------------------------------------------------------------


class Repertoire:
    """The pieces a corpus draws from, after exclusions (by id/title and by melody)."""

    def __init__(self, source: str, exclude: list[str] | None = None, exclude_melodies: list[str] | None = None):
        self.source = source
        if source == MUSIC21_BACH:
            self.ids = list(music21_bach_ids())
            self._load = lambda pid: load_music21_bach(pid)
        elif source.startswith("midi:"):
            self.ids = list(midi_files(source[len("midi:"):]))
            self._load = load_midi_piece
        else:
            raise UserError(f"unknown repertoire source '{source}' (known: {MUSIC21_BACH}, midi:PATH_OR_GLOB)")
        self.exclude = [e.lower() for e in (exclude or [])]
        self.ids = [pid for pid in self.ids if not self._excluded_by_name(pid)]
        self.melodies = []
        for pattern in exclude_melodies or []:
            for path in midi_files(pattern):
                self.melodies.append((path, load_midi_piece(path).soprano()))
        if not self.ids:
            raise UserError(f"repertoire '{source}': no pieces left after exclusions")

    def _excluded_by_name(self, pid: str) -> bool:
        """Matches the id ('bwv48.3', a MIDI path), 'bach/<id>' (as in metadata), or a file's name."""
        names = {pid.lower(), f"bach/{pid}".lower(), Path(pid).name.lower()}
        if Path(pid).suffix.lower() in (".mid", ".midi"):
            names.add(Path(pid).stem.lower())  # not for music21 ids: 'bwv48.3' has no suffix
        return any(e in names for e in self.exclude)

    def load(self, pid: str) -> Piece:
        return self._load(pid)

    def melody_exclusion(self, piece: Piece) -> str | None:
        """The excluded score whose tune this piece shares, if any."""
        for path, melody in self.melodies:
            if same_melody(piece.soprano(), melody):
                return path
        return None

    def excluded_by_melody(self) -> list[str]:
        """Every candidate whose soprano matches an excluded melody (parses all candidates)."""
        return [pid for pid in self.ids if self.melody_exclusion(self.load(pid))]
