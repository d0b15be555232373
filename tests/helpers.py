"""Small builders shared by the tests (real MIDI files written with pretty_midi)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

REAL = Path(__file__).resolve().parents[2] / "shared" / "real"
BACH10 = REAL / "bach10"
BACH10_01_MIDI = BACH10 / "01-AchGottundHerr" / "01-AchGottundHerr.mid"


def write_midi(path: Path, parts: list[tuple[str, int, list[tuple[float, float, int]]]], drum: bool = False) -> Path:
    """parts: (track name, GM program 0-based, [(start, end, pitch), ...])."""
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(initial_tempo=120)
    for name, program, notes in parts:
        inst = pretty_midi.Instrument(program=program, name=name, is_drum=drum)
        for start, end, pitch in notes:
            inst.notes.append(pretty_midi.Note(velocity=90, pitch=pitch, start=start, end=end))
        midi.instruments.append(inst)
    midi.write(str(path))
    return path


def fundamental(signal: np.ndarray, sample_rate: int, fmin: float = 50.0, fmax: float = 2000.0) -> float:
    """Fundamental frequency by autocorrelation with parabolic interpolation."""
    x = signal - signal.mean()
    spectrum = np.fft.rfft(x, 2 * len(x))
    ac = np.fft.irfft(np.abs(spectrum) ** 2)[: len(x)]
    lo, hi = int(sample_rate / fmax), int(sample_rate / fmin)
    lag = lo + int(np.argmax(ac[lo:hi]))
    a, b, c = ac[lag - 1], ac[lag], ac[lag + 1]
    lag = lag + 0.5 * (a - c) / (a - 2 * b + c)
    return sample_rate / lag
