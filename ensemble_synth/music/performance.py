"""Performance: a piece in beats -> performed notes in seconds.

Tempo with a smooth rubato curve, held fermatas, per-part onset jitter, dynamics (a
per-part level and a slow shared phrase curve, as MIDI velocity), articulation (note
length) and transposition. Every parameter comes from a resolved spec; per-note jitter
is drawn from the spec's own seed, so the same spec always performs the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..distributions import draw
from ..schema import Key
from .repertoire import BEAT, FERMATA, LENGTH, PITCH, Piece
from .score import END, START, VELOCITY
from .score import PITCH as N_PITCH

GRID = 1.0 / 32  # beats: resolution of the tempo integration
RUBATO_KNOT_BEATS = 4.0
DYNAMICS_KNOT_BEATS = 8.0
BASE_VELOCITY = 80.0
MIN_NOTE_SECONDS = 0.03
EXPRESSION_KNOT_SECONDS = 1.0
EXPRESSION_STEP_SECONDS = 0.04
EXPRESSION_HEADROOM_DB = 4.0  # the curve swells around this much below full expression
CC_MODULATION, CC_EXPRESSION = 1, 11

# The [performance] table of a corpus preset: a distribution or a fixed value each.
PERFORMANCE_KEYS = {
    "tempo_bpm": Key(72.0, low=10.0, high=400.0, unit="bpm"),
    "tempo_factor": Key(1.0, low=0.1, high=10.0),
    "rubato": Key(0.0, low=0.0, high=1.0, unit="(std of log tempo)"),
    "fermata_beats": Key(0.0, low=0.0, high=16.0, unit="beats"),
    "onset_jitter_ms": Key(0.0, low=0.0, high=500.0, unit="ms"),
    "level_db": Key(0.0, low=-40.0, high=40.0, unit="dB"),
    "dynamics_db": Key(0.0, low=0.0, high=40.0, unit="dB"),
    "articulation": Key(1.0, low=0.0, high=2.0, open_low=True, unit="(fraction of the note length)"),
    "transpose": Key(0, "integer", low=-24, high=24, unit="semitones"),
    "vibrato": Key(0, "number", low=0, high=127, unit="(MIDI CC 1)"),
    "expression_db": Key(0.0, low=0.0, high=40.0, unit="dB"),
}


@dataclass(frozen=True)
class PerformanceSpec:
    """The performance shared by all parts of a track (``metadata.json``'s ``performance``)."""

    tempo_bpm: float
    window: tuple[float, float]
    transpose: int
    fermata_beats: float
    rubato_knots: tuple[float, ...]
    dynamics_knots_db: tuple[float, ...]
    seed: int  # per-note jitter

    def to_dict(self) -> dict:
        return {"tempo_bpm": self.tempo_bpm, "window": list(self.window), "transpose": self.transpose,
                "fermata_beats": self.fermata_beats, "rubato_knots": list(self.rubato_knots),
                "dynamics_knots_db": list(self.dynamics_knots_db), "seed": self.seed}

    @classmethod
    def sample(cls, config: dict, rng: np.random.Generator, tempo_bpm: float, window, transpose: int) -> "PerformanceSpec":
        """Draw the curves and the holds; tempo, window and transposition are drawn before (they
        decide the excerpt)."""
        span = window[1] - window[0]
        rubato = float(draw(config["rubato"], rng, "rubato"))
        dynamics = float(draw(config["dynamics_db"], rng, "dynamics_db"))
        fermata = float(draw(config["fermata_beats"], rng, "fermata_beats"))
        rubato_knots = [float(x) for x in rng.normal(0, rubato, int(span / RUBATO_KNOT_BEATS) + 3)] if rubato > 0 else []
        dynamics_knots = ([float(x) for x in rng.normal(0, dynamics, int(span / DYNAMICS_KNOT_BEATS) + 3)]
                          if dynamics > 0 else [])
        return cls(tempo_bpm, tuple(window), transpose, fermata, tuple(rubato_knots), tuple(dynamics_knots),
                   int(rng.integers(0, 2**31 - 1)))


def sample_tempo(config: dict, score_tempo: float | None, rng: np.random.Generator) -> float:
    """The track's tempo: the score's own (or one drawn) times a drawn factor."""
    tempo = score_tempo if score_tempo is not None else draw(config["tempo_bpm"], rng, "tempo_bpm")
    return float(tempo) * float(draw(config["tempo_factor"], rng, "tempo_factor"))


@dataclass(frozen=True)
class PartPerformance:
    """How one player performs: timing, level, note length, vibrato and a swell curve."""

    onset_jitter_ms: float
    level_db: float
    articulation: float
    vibrato: int = 0
    expression_knots_db: tuple[float, ...] = ()

    def timing(self) -> dict:
        return {"onset_jitter_ms": self.onset_jitter_ms, "level_db": self.level_db, "articulation": self.articulation}

    def expression(self) -> dict:
        """Recorded only when used, so specs of presets without them stay as they were."""
        out: dict = {}
        if self.vibrato > 0:
            out["vibrato"] = self.vibrato
        if self.expression_knots_db:
            out["expression_knots_db"] = list(self.expression_knots_db)
        return out

    @classmethod
    def sample(cls, config: dict, rng: np.random.Generator, rng_expression: np.random.Generator,
               seconds: float) -> "PartPerformance":
        """``rng`` draws the timing and level, ``rng_expression`` vibrato and swells over ``seconds``."""
        jitter = float(draw(config["onset_jitter_ms"], rng, "onset_jitter_ms"))
        level = float(draw(config["level_db"], rng, "level_db"))
        articulation = float(draw(config["articulation"], rng, "articulation"))
        vibrato = int(round(draw(config["vibrato"], rng_expression, "vibrato")))
        expression = float(draw(config["expression_db"], rng_expression, "expression_db"))
        knots = ([float(x) for x in rng_expression.normal(0, expression, int(seconds / EXPRESSION_KNOT_SECONDS) + 3)]
                 if expression > 0 else [])
        return cls(jitter, level, articulation, vibrato, tuple(knots))


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


def beat_to_seconds(perf: dict, piece: Piece, window: tuple[float, float], onsets_after_holds: bool = True):
    """A function mapping score beats (from the window start) to performed seconds."""
    start, end = window
    holds = fermata_ends(piece, window) if perf.get("fermata_beats", 0) > 0 else np.zeros(0)
    extra = float(perf.get("fermata_beats", 0.0))
    span = (end - start) + extra * len(holds) + 8.0
    grid = np.arange(0.0, span + GRID, GRID)
    log_dev = smooth_curve(perf.get("rubato_knots", []), RUBATO_KNOT_BEATS, grid)
    seconds_per_beat = 60.0 / (perf["tempo_bpm"] * np.exp(log_dev))
    elapsed = np.concatenate([[0.0], np.cumsum(seconds_per_beat[:-1] * GRID)])

    def held(beats: np.ndarray, side: str) -> np.ndarray:
        # A fermata holds its chord: every later beat moves back by the hold. An onset at the
        # hold's end (the next chord) counts it ("right"); a note ending there is the held one.
        # Track specs of version 1 counted it for neither (the next chord came in early).
        absolute = np.round(beats + start, 6)
        return beats + extra * np.searchsorted(np.round(holds, 6), absolute, side=side)

    def convert(beats: np.ndarray, is_end: bool = False) -> np.ndarray:
        stretched = held(beats, "right" if onsets_after_holds and not is_end else "left")
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


def perform(piece: Piece, parts: list[dict], perf: dict, onsets_after_holds: bool = True) -> list[np.ndarray]:
    """Performed notes, one (n, 4) array (start s, end s, pitch, velocity) per part.

    ``parts[i]`` holds ``voice`` (index into the piece's voices), ``octave`` (shift),
    ``onset_jitter_ms``, ``level_db`` and ``articulation``; ``perf`` holds ``tempo_bpm``,
    ``rubato_knots``, ``fermata_beats``, ``dynamics_knots_db``, ``transpose``, ``window``
    (start and end beat) and ``seed``. ``onsets_after_holds=False`` renders version-1 specs
    as they were rendered (the chord after a fermata started at the hold's start).
    """
    rng = np.random.default_rng(int(perf["seed"]))
    window = (float(perf["window"][0]), float(perf["window"][1]))
    to_seconds = beat_to_seconds(perf, piece, window, onsets_after_holds)
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
