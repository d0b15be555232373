"""Scores: MIDI files -> parts mapped to instruments (notes as arrays)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import UserError
from . import instruments

# Note array columns.
START, END, PITCH, VELOCITY = range(4)


@dataclass
class Part:
    """One player's line: notes as an (n, 4) float array of start s, end s, pitch, velocity."""

    name: str
    instrument: str
    notes: np.ndarray
    source: str = ""  # the track name or voice it came from

    @property
    def end_time(self) -> float:
        return float(self.notes[:, END].max()) if len(self.notes) else 0.0

    def with_notes(self, notes: np.ndarray) -> "Part":
        return replace(self, notes=notes)


@dataclass
class Score:
    parts: list[Part]
    source: str
    warnings: list[str] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return max((p.end_time for p in self.parts), default=0.0)

    @property
    def instruments(self) -> list[str]:
        return [p.instrument for p in self.parts]


def part_name(index: int, instrument: str) -> str:
    """Part names are 1-based and keep two violins apart: 1_violin, 2_violin."""
    return f"{index}_{instrument}"


def notes_array(notes) -> np.ndarray:
    """pretty_midi notes -> sorted (n, 4) array."""
    arr = np.array([(n.start, n.end, n.pitch, n.velocity) for n in notes], dtype=np.float64).reshape(-1, 4)
    order = np.lexsort((arr[:, PITCH], arr[:, START]))
    return arr[order]


def parse_part_mapping(items) -> dict[int, str]:
    """``["1=violin", "3=vc"]`` -> {1: "violin", 3: "cello"} (1-based part numbers)."""
    mapping = {}
    for item in items or ():
        number, sep, name = str(item).partition("=")
        if not sep or not number.strip().isdigit():
            raise UserError(f"--part {item}: expected N=INSTRUMENT, e.g. 1=violin")
        mapping[int(number)] = instruments.get(name.strip()).name
    return mapping


def _read_midi(path: Path):
    import pretty_midi

    if not path.is_file():
        raise UserError(f"{path}: file not found")
    try:
        return pretty_midi.PrettyMIDI(str(path))
    except Exception as exc:  # pretty_midi/mido raise many types for corrupt files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path}: not a readable MIDI file ({reason})") from None


def _guess_instrument(track) -> str | None:
    inst = instruments.from_track_name(track.name or "")
    if inst is None:
        inst = instruments.from_program(track.program)
    return inst.name if inst else None


def load_midi(
    path: str | os.PathLike,
    part_instruments: dict[int, str] | None = None,
    ensemble: list[str] | None = None,
) -> Score:
    """Read a MIDI score; each non-drum track with notes becomes a part.

    Instruments come from ``part_instruments`` (1-based), else the track name, else the
    General MIDI program, else ``ensemble`` (one instrument per part, in order).
    """
    path = Path(path)
    midi = _read_midi(path)
    warnings = []
    tracks = []
    for number, track in enumerate(midi.instruments, 1):
        if not track.notes:
            continue
        if track.is_drum:
            warnings.append(f"{path}: skipped drum track {number} ('{track.name}')")
            continue
        tracks.append(track)
    if not tracks:
        if any(t.is_drum and t.notes for t in midi.instruments):
            raise UserError(f"{path}: only drum parts, nothing to render")
        raise UserError(f"{path}: the score has no notes")
    part_instruments = part_instruments or {}
    for number in part_instruments:
        if not 1 <= number <= len(tracks):
            raise UserError(f"{path}: --part {number}: the score has {len(tracks)} parts")
    if ensemble is not None and len(ensemble) != len(tracks):
        raise UserError(f"{path}: the score has {len(tracks)} parts but the ensemble has {len(ensemble)} instruments")
    parts = []
    for index, track in enumerate(tracks, 1):
        name = part_instruments.get(index)
        if name is not None:
            name = instruments.get(name).name
        if name is None and ensemble is not None:
            name = instruments.get(ensemble[index - 1]).name
        if name is None:
            name = _guess_instrument(track)
        if name is None:
            raise UserError(
                f"{path}: part {index} ('{track.name}', program {track.program}) has no known instrument; "
                f"map it with --part {index}=INSTRUMENT or --ensemble"
            )
        parts.append(Part(part_name(index, name), name, notes_array(track.notes), track.name or f"track {index}"))
    warnings += range_warnings(parts, str(path))
    return Score(parts, str(path), warnings)


def range_warnings(parts: list[Part], source: str) -> list[str]:
    out = []
    for part in parts:
        inst = instruments.get(part.instrument)
        pitches = part.notes[:, PITCH]
        outside = int(np.count_nonzero((pitches < inst.low) | (pitches > inst.high)))
        if outside:
            out.append(f"{source}: part {part.name}: {outside} notes outside the {inst.name}'s range {inst.low}-{inst.high}")
    return out
