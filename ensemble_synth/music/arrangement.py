"""Arrangement: which piece an ensemble plays, which voice each player takes, the excerpt.

The repertoire stage of a track: draw the source where the preset gives a choice of them,
then a piece of it that fits the line-up (``part_policy``), give each instrument a voice and
the octave that puts it in the instrument's range, and cut an excerpt in which every part
has notes. :class:`Arrangement` is the drawn result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import distributions
from ..errors import UserError
from ..schema import Key
from . import instruments
from .performance import in_window
from .repertoire import (
    MUSIC21_SOURCES,
    PITCH,
    Piece,
    Repertoire,
    load_midi_piece,
    load_music21,
)

PART_POLICIES = ("skip", "fit")
MAX_SOURCE_TRIES = 200
MAX_WINDOW_TRIES = 50

# The [repertoire] table of a corpus preset.
REPERTOIRE_KEYS = {
    # one source, or a choice among sources drawn per track ({choice = [...], weights = [...]})
    "source": Key("music21:bach", "name"),
    "exclude": Key([], "list", random=False),
    "exclude_melodies": Key([], "list", random=False),
    "part_policy": Key("fit", "name", random=False),
    "excerpt_seconds": Key(0.0, "number", low=0.0, high=3600.0, random=False, unit="s (0: whole pieces)"),
}


@dataclass(frozen=True)
class Arrangement:
    """A drawn piece, the voice and octave of each part, and the excerpt window in beats.

    ``repertoire``: the source the piece came from ('music21:bach', 'midi:...');
    ``drawn``: whether that source was drawn from a choice of sources.
    """

    piece: Piece
    voices: tuple[int, ...]
    octaves: tuple[int, ...]
    window: tuple[float, float]
    repertoire: str
    drawn: bool = False

    def source(self) -> dict:
        """The ``source`` record of a track spec: enough to load the piece again (:func:`load_piece`).

        A source drawn from a choice is named in it too (``repertoire``); a corpus of one
        source records what it always did.
        """
        kind = "music21" if self.repertoire in MUSIC21_SOURCES else "midi"
        record = {"kind": kind, "id": self.piece.id, "title": self.piece.title}
        if self.drawn:
            record["repertoire"] = self.repertoire
        return record


def assign_voices(piece: Piece, names: list[str], policy: str) -> list[int] | None:
    """Which voice of the piece each instrument plays, or None when the piece does not fit.

    ``skip``: the piece must have exactly as many voices as the ensemble has parts.
    ``fit``: with fewer parts, keep the outer voices and the highest inner ones; with more
    parts, the extra instruments double voices from the bottom up (octave-shifted later).
    """
    n_voices, n_parts = len(piece.voices), len(names)
    if n_voices == n_parts:
        return list(range(n_parts))
    if policy == "skip" or n_voices == 0:
        return None
    if n_parts < n_voices:
        if n_parts == 1:
            return [0]
        return sorted([*range(n_parts - 1), n_voices - 1])
    # More parts than voices: spread the voices over the parts, high to low.
    return [min(n_voices - 1, int(i * n_voices / n_parts)) for i in range(n_parts)]


def notes_outside(pitches: np.ndarray, instrument: str) -> int:
    inst = instruments.get(instrument)
    return int(np.count_nonzero((pitches < inst.low) | (pitches > inst.high)))


def octave_to_fit(pitches: np.ndarray, instrument: str, transpose: int = 0) -> int:
    """The octave shift that puts most of a voice inside the instrument's range."""
    best, best_out = 0, None
    for octave in (0, -1, 1, -2, 2):
        outside = notes_outside(pitches + 12 * octave + transpose, instrument)
        if best_out is None or outside < best_out:
            best, best_out = octave, outside
    return best


def load_piece(source: dict) -> Piece:
    """The piece a track spec's ``source`` record names."""
    if source["kind"] == "music21":
        return load_music21(source["id"])
    return load_midi_piece(source["id"])


def choose_piece(repertoire: Repertoire, names: list[str], policy: str, rng: np.random.Generator):
    """A piece that fits the line-up and its voice per part, drawn from ``rng``."""
    tried: set[str] = set()  # a piece that did not fit will not fit when drawn again
    for _ in range(MAX_SOURCE_TRIES):
        if len(tried) == len(repertoire.ids):
            break
        pid = repertoire.ids[int(rng.integers(len(repertoire.ids)))]
        if pid in tried:
            continue
        tried.add(pid)
        piece = repertoire.load(pid)
        if repertoire.melody_exclusion(piece):
            continue
        voices = assign_voices(piece, names, policy)
        if voices is not None:
            return piece, voices
    raise UserError(
        f"repertoire '{repertoire.source}': no piece fits a {len(names)}-part ensemble "
        f"({', '.join(names)}) with part_policy '{policy}' ({len(tried)} of its {len(repertoire.ids)} pieces tried)"
    )


def fitting_piece(repertoire: Repertoire, names: list[str], policy: str) -> str | None:
    """The first piece of the source, in its order, that fits the line-up; None if none does
    (every piece is then loaded once)."""
    for pid in repertoire.ids:
        if assign_voices(repertoire.load(pid), names, policy) is not None:
            return pid
    return None


def sample_window(piece: Piece, voices: list[int], excerpt_seconds: float, tempo_bpm: float,
                  rng: np.random.Generator) -> tuple[float, float]:
    """An excerpt (start and end beat) of about ``excerpt_seconds`` in which every part has notes."""
    total_beats = piece.beats
    if excerpt_seconds <= 0:
        return (0.0, total_beats)
    length = max(1.0, round(excerpt_seconds * tempo_bpm / 60.0))
    last_start = max(0.0, np.floor(total_beats - length))
    for _ in range(MAX_WINDOW_TRIES):
        start = float(rng.integers(0, int(last_start) + 1))
        window = (start, min(total_beats, start + length))
        if all(len(in_window(piece.voices[v], window)) for v in voices):
            return window
    raise UserError(
        f"{piece.id}: no {excerpt_seconds:g} s excerpt in which every part has notes "
        f"({MAX_WINDOW_TRIES} tries); use longer excerpts or other pieces"
    )


def draw_transpose(value, piece: Piece, voices, names, octaves, rng: np.random.Generator) -> int:
    """A transposition drawn from ``value``, kept only if it adds no out-of-range notes."""
    wanted = int(round(distributions.draw(value, rng, "[performance] transpose")))

    def outside(t: int) -> int:
        return sum(notes_outside(piece.voices[v][:, PITCH] + 12 * octave + t, name)
                   for v, name, octave in zip(voices, names, octaves))

    return wanted if outside(wanted) <= outside(0) else 0
