"""Performance: a piece in beats -> performed notes in seconds.

Tempo with a smooth rubato curve, held fermatas, per-part onset jitter, dynamics (a
per-part level and a slow shared phrase curve, as MIDI velocity), articulation (note
length) and transposition. Every parameter comes from a resolved spec; per-note jitter
is drawn from the spec's own seed, so the same spec always performs the same way.
"""

from __future__ import annotations

import numpy as np

from .repertoire import BEAT, FERMATA, LENGTH, PITCH, Piece
from .score import END, START, VELOCITY
from .score import PITCH as N_PITCH

GRID = 1.0 / 32  # beats: resolution of the tempo integration
RUBATO_KNOT_BEATS = 4.0
DYNAMICS_KNOT_BEATS = 8.0
BASE_VELOCITY = 80.0
MIN_NOTE_SECONDS = 0.03


def smooth_curve(knots: list[float], spacing: float, beats: np.ndarray) -> np.ndarray:
    """Piecewise-linear curve through knots placed every ``spacing`` beats."""
    if not knots:
        return np.zeros_like(beats)
    positions = np.arange(len(knots)) * spacing
    return np.interp(beats, positions, knots)


def fermata_ends(piece: Piece, window: tuple[float, float]) -> np.ndarray:
    """Beats (inside the window) where a fermata in the top voice ends."""
    top = piece.voices[0]
    marked = top[top[:, FERMATA] > 0]
    ends = marked[:, BEAT] + marked[:, LENGTH]
    return np.unique(ends[(ends > window[0]) & (ends <= window[1])])


def beat_to_seconds(perf: dict, piece: Piece, window: tuple[float, float]):
    """A function mapping score beats (from the window start) to performed seconds."""
    start, end = window
    holds = fermata_ends(piece, window) if perf.get("fermata_beats", 0) > 0 else np.zeros(0)
    extra = float(perf.get("fermata_beats", 0.0))
    span = (end - start) + extra * len(holds) + 8.0
    grid = np.arange(0.0, span + GRID, GRID)
    log_dev = smooth_curve(perf.get("rubato_knots", []), RUBATO_KNOT_BEATS, grid)
    seconds_per_beat = 60.0 / (perf["tempo_bpm"] * np.exp(log_dev))
    elapsed = np.concatenate([[0.0], np.cumsum(seconds_per_beat[:-1] * GRID)])

    def held(beats: np.ndarray) -> np.ndarray:
        # A fermata holds its chord: every later beat moves back by the hold.
        absolute = beats + start
        shifts = extra * np.searchsorted(holds, absolute, side="left")
        return beats + shifts

    def convert(beats: np.ndarray, is_end: bool = False) -> np.ndarray:
        stretched = held(beats)
        if is_end and extra > 0 and len(holds):
            on_hold = np.isin(np.round(beats + start, 6), np.round(holds, 6))
            stretched = stretched + on_hold * extra
        return np.interp(stretched, grid, elapsed)

    return convert


def in_window(voice: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    start, end = window
    keep = (voice[:, BEAT] >= start - 1e-9) & (voice[:, BEAT] < end - 1e-9)
    out = voice[keep].copy()
    out[:, LENGTH] = np.minimum(out[:, LENGTH], end - out[:, BEAT])
    return out


def perform(piece: Piece, parts: list[dict], perf: dict) -> list[np.ndarray]:
    """Performed notes, one (n, 4) array (start s, end s, pitch, velocity) per part.

    ``parts[i]`` holds ``voice`` (index into the piece's voices), ``octave`` (shift),
    ``onset_jitter_ms``, ``level_db`` and ``articulation``; ``perf`` holds ``tempo_bpm``,
    ``rubato_knots``, ``fermata_beats``, ``dynamics_knots_db``, ``transpose``, ``window``
    (start and end beat) and ``seed``.
    """
    rng = np.random.default_rng(int(perf["seed"]))
    window = (float(perf["window"][0]), float(perf["window"][1]))
    to_seconds = beat_to_seconds(perf, piece, window)
    lead_in = float(perf.get("lead_in", 0.1))
    out = []
    for part in parts:
        voice = in_window(piece.voices[part["voice"]], window)
        beats = voice[:, BEAT] - window[0]
        onsets = to_seconds(beats) + lead_in
        ends_full = to_seconds(beats + voice[:, LENGTH], is_end=True) + lead_in
        gaps = np.maximum(ends_full - onsets, MIN_NOTE_SECONDS)
        jitter = rng.normal(0.0, part.get("onset_jitter_ms", 0.0) / 1000.0, len(onsets))
        starts = np.maximum(onsets + jitter, 0.0)
        ends = starts + np.maximum(gaps * part.get("articulation", 1.0), MIN_NOTE_SECONDS)
        curve_db = smooth_curve(perf.get("dynamics_knots_db", []), DYNAMICS_KNOT_BEATS, beats)
        level_db = part.get("level_db", 0.0) + curve_db
        # FluidSynth's default velocity curve is about 40*log10(v/127) dB.
        velocity = np.clip(np.round(BASE_VELOCITY * 10 ** (level_db / 40.0)), 1, 127)
        pitch = voice[:, PITCH] + 12 * part.get("octave", 0) + perf.get("transpose", 0)
        notes = np.zeros((len(voice), 4))
        notes[:, START], notes[:, END], notes[:, N_PITCH], notes[:, VELOCITY] = starts, ends, pitch, velocity
        out.append(notes[np.lexsort((notes[:, N_PITCH], notes[:, START]))])
    return out


EXPRESSION_KNOT_SECONDS = 1.0
EXPRESSION_STEP_SECONDS = 0.04
EXPRESSION_HEADROOM_DB = 4.0  # the curve swells around this much below full expression
CC_MODULATION, CC_EXPRESSION = 1, 11


def controls(part: dict, duration: float) -> np.ndarray | None:
    """MIDI controller events of a part, (m, 3) of time s, controller, value, or None.

    ``vibrato``: CC 1 (modulation, which GM soundfonts route to vibrato depth), held for
    the whole part. ``expression_knots_db``: a smooth per-player swell curve, knots every
    second, sent as CC 11 (expression) every 40 ms.
    """
    events = []
    vibrato = int(round(part.get("vibrato", 0)))
    if vibrato > 0:
        events.append((0.0, CC_MODULATION, min(vibrato, 127)))
    knots = part.get("expression_knots_db", [])
    if knots:
        times = np.arange(0.0, duration + EXPRESSION_STEP_SECONDS, EXPRESSION_STEP_SECONDS)
        curve = smooth_curve(knots, EXPRESSION_KNOT_SECONDS, times) - EXPRESSION_HEADROOM_DB
        values = np.clip(np.round(127 * 10 ** (curve / 40.0)), 1, 127)
        keep = np.concatenate([[True], np.diff(values) != 0])
        events += [(float(t), CC_EXPRESSION, float(v)) for t, v in zip(times[keep], values[keep])]
    return np.array(events, dtype=np.float64) if events else None
