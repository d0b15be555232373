"""A sampler for per-note recordings (the ``tonejs`` library): notes -> dry mono stems.

Why a numpy sampler and not an SF2 for FluidSynth (both were measured, see
``benchmarks/bench_sampler.py``): FluidSynth would play an SF2 made from these recordings
at its usual speed, but an SF2 cannot choose a different recording for each note
(round-robin), start a legato note past its attack, or tilt the spectrum by velocity other
than through its one resonant low-pass; the loops would have to be baked into the file. The
sampler does all of it in a few vectorised passes per note. Measured on the performed parts
of bach10_like tracks (one core, a loaded 2-core machine, same run): the sampler about 1000x
real time at 44.1 kHz, FluidSynth with FluidR3_GM about 560x, FluidSynth playing an SF2 of
the same recordings about 1500x; at 16 kHz about 2900x, 680x and 3000x.

How a note is played:

- **Recording**: the recordings whose pitch lies within :data:`ROUND_ROBIN_SEMITONES` (or
  the nearest one, when none does) are candidates, weighted ``1 / (1 + |shift|)**2``; the
  one the previous note of the same pitch used is left out when there is another
  (round-robin). The draws come from the part's ``seed`` (recorded in the track spec), so a
  spec renders the same notes from the same recordings.
- **Pitch**: resampled from the chosen recording (4-point cubic Hermite interpolation) by
  the shift, the recording's measured tuning (each recording's mean f0 is measured over its
  steady part, so a recording 40 cents flat plays in tune) and the part's detuning. Vibrato
  is the player's own: nothing is added (MIDI CC 1 is ignored).
- **Level**: each recording is matched to a straight line through its instrument's levels
  over pitch (its own level ±6 dB at most), so neighbouring notes do not jump; velocity
  gives ``40 log10(v / 127)`` dB, the curve of FluidSynth's default modulator (which
  ``performance`` assumes), and CC 11 / CC 7 the same curve over time.
- **Timbre by velocity**: one dynamic was recorded, so softer notes are blended towards a
  one-pole low-pass at :data:`TILT_HZ` (``k = TILT_MAX * (TILT_REF - v) / (TILT_REF - 1)``
  for ``v < TILT_REF``; louder notes get a slight high boost), and their attack is faded in
  over up to :data:`SOFT_ATTACK_S`.
- **Envelopes**: the recorded attack is kept (trimmed where the sound rises above -36 dB of
  its peak, minus 5 ms, and faded in over 2 ms), except that a slow swell (some recordings
  take 0.3-0.8 s to reach their level) is entered so that the note reaches -6 dB of its
  steady level :data:`MAX_RISE_S` after its onset (faded in over 15 ms); after the note-off
  a release of :data:`RELEASE_S` (per family) decays exponentially to zero.
- **Long notes**: each recording loops over its steady part (the loop points are chosen by
  cross-correlation and the end of the loop is crossfaded into its start), so a note may be
  longer than the recording.
- **Legato**: a note that starts while the previous note of the part still sounds (or
  within :data:`LEGATO_GAP_S` of its end) and at least :data:`CHORD_S` after its start
  joins it: the old note fades out and the new one fades in over :data:`LEGATO_S` (equal
  power), starting just before the end of its recorded attack; a repeated pitch is
  re-articulated (its own attack, a shorter crossfade). Notes that start together (chords)
  sound independently.
- **Range**: notes more than :data:`RANGE_EXTENSION` semitones outside the recorded range
  are still played, shifted from the nearest recording, and counted: one warning a part
  with the count, as the soundfont path warns about notes outside an instrument's range.
- **Timing**: onsets and offsets sit on FluidSynth's 64-sample grid, like the FluidSynth
  path, so the performed MIDI written with a track is aligned with both.

Instruments the library has no recordings of (viola, oboe) are not faked by shifting
another instrument: :mod:`.timbre` redraws such a part's source from the rest of its pool
(see :meth:`~.timbre.PartTimbre.sample`). The tenor saxophone is the one stand-in: the
registry lets the alto's recordings (Db3-A5) play it, which covers the tenor parts of the
chorales; lower notes are counted as outside the range.
"""

from __future__ import annotations

import functools
import json
import os
import re
import warnings
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf

from ..errors import UserError
from ..music import instruments
from ..music.score import END, PITCH, START, VELOCITY, check_notes
from . import sample_library
from .sample_library import SamplePackage

ANALYSIS_VERSION = 3
GRID = 64  # FluidSynth's block: events on the same grid as the FluidSynth path
ROUND_ROBIN_SEMITONES = 2
RANGE_EXTENSION = 2  # semitones beyond the lowest/highest recording that still count as in range
CHORD_S = 0.05
LEGATO_GAP_S = 0.01
LEGATO_S = 0.06
REPEAT_S = 0.025
ONSET_FADE_S = 0.002
MAX_RISE_S = 0.08  # at most this long from a (non-legato) note-on to -6 dB of the steady level
CUT_ATTACK_FADE_S = 0.015  # the fade-in where a slow swell was shortened
SOFT_ATTACK_S = 0.04
RELEASE_S = {"strings": 0.30, "woodwinds": 0.15, "brass": 0.20}
TILT_HZ = 1500.0
TILT_REF = 96.0  # velocity that plays the recording as it is
TILT_MAX = 0.6
TILT_LOUD = 0.15  # high boost at velocity 127
LEVEL_DB = -18.0  # RMS of a steady note at velocity 127
MAX_LEVEL_CORRECTION_DB = 6.0
MAX_BODY_S = 8.0  # of each recording kept in memory after the attack (the loop lies within)
LOOP_MAX_S = 2.5
LOOP_MIN_S = 0.25
LOOP_FADE_S = 0.12
LOOP_LEVEL_DB = 1.0  # the level at the loop's two ends may differ this much
LOOP_SPREAD_DB = 4.0  # and vary this much inside it
ONSET_DB = -36.0
TAIL_DB = -9.0  # the steady part ends where the level falls this far below its median

_NOTE_NAME = re.compile(r"^([A-G])(s|#|b)?(-?\d+)(?:\s*v(\d+))?$")
_STEPS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


class SampleRangeWarning(UserWarning):
    """Notes of a part outside the sampled range of its recordings (played shifted, counted)."""


def note_pitch(stem: str) -> int | None:
    """``"As3"`` -> 58, ``"F2 v2"`` -> 41 (a second take); None for a name that is no note."""
    m = _NOTE_NAME.match(stem)
    if m is None:
        return None
    accidental = {"s": 1, "#": 1, "b": -1}.get(m.group(2) or "", 0)
    return 12 * (int(m.group(3)) + 1) + _STEPS[m.group(1)] + accidental


# --- analysis: where each recording's attack, steady part and loop are, and its tuning ---------


def _frames_rms(x: np.ndarray, hop: int) -> np.ndarray:
    n = len(x) // hop
    return np.sqrt(np.mean(x[: n * hop].reshape(n, hop) ** 2, axis=1)) if n else np.zeros(0)


def measure_f0(x: np.ndarray, sample_rate: int, f0_guess: float, search_cents: float = 150.0) -> float:
    """Mean fundamental (Hz) of a sustained tone within ``search_cents`` of ``f0_guess``.

    Per frame (at least three periods, hop half a frame), the lag that minimises the
    squared difference between the frame and its delayed copy (YIN's difference function,
    through the FFT), refined by parabolic interpolation; then the mean, in cents, of the
    frames within 50 cents of their median (vibrato averages out). NaN when no frame fits.
    """
    lag_lo = sample_rate / (f0_guess * 2 ** (search_cents / 1200))
    lag_hi = sample_rate / (f0_guess * 2 ** (-search_cents / 1200))
    tau_max = int(np.ceil(lag_hi)) + 2
    window = 1 << int(np.ceil(np.log2(max(3 * tau_max, 2048))))
    hop = window // 2
    starts = np.arange(0, len(x) - window - tau_max, hop)
    if len(starts) == 0:
        return float("nan")
    nfft = 1 << int(np.ceil(np.log2(2 * window + tau_max)))
    index = starts[:, None] + np.arange(window + tau_max)[None, :]
    frames = x[index]
    head = frames[:, :window]
    spec_long = np.fft.rfft(frames, nfft, axis=1)
    spec_head = np.fft.rfft(head, nfft, axis=1)
    cross = np.fft.irfft(spec_long * np.conj(spec_head), nfft, axis=1)[:, :tau_max + 1]
    energy = np.concatenate([np.zeros((len(frames), 1)), np.cumsum(frames ** 2, axis=1)], axis=1)
    taus = np.arange(tau_max + 1)
    e_head = energy[:, window][:, None]
    e_shift = energy[:, taus + window] - energy[:, taus]
    diff = e_head + e_shift - 2 * cross
    lo, hi = int(np.floor(lag_lo)), int(np.ceil(lag_hi))
    part = diff[:, lo:hi + 1]
    j = np.clip(np.argmin(part, axis=1) + lo, 1, tau_max - 1)
    rows = np.arange(len(frames))
    a, b, c = diff[rows, j - 1], diff[rows, j], diff[rows, j + 1]
    den = a - 2 * b + c
    lag = j + np.where(den > 0, 0.5 * (a - c) / np.where(den > 0, den, 1.0), 0.0)
    valid = (b < 0.5 * e_head[:, 0]) & (lag > lag_lo * 0.98) & (lag < lag_hi * 1.02)
    if not valid.any():
        return float("nan")
    cents = 1200 * np.log2(sample_rate / lag[valid] / f0_guess)
    keep = np.abs(cents - np.median(cents)) < 50
    return float(f0_guess * 2 ** (np.mean(cents[keep]) / 1200))


def _best_loop_start(x: np.ndarray, target: int, loop_end: int, search: int, window: int) -> tuple[int, float]:
    """The loop start near ``target`` whose neighbourhood best matches the loop end's
    (normalised cross-correlation), and that correlation."""
    ref = x[loop_end - window: loop_end]
    lo, hi = max(target - search, window), min(target + search, loop_end - window)
    if hi <= lo:
        return target, 0.0
    region = x[lo - window: hi]
    corr = np.correlate(region, ref, mode="valid")  # corr[j]: region[j : j + window] . ref
    energy = np.convolve(region ** 2, np.ones(window), mode="valid")
    score = corr / np.sqrt(energy * float(ref @ ref) + 1e-20)
    j = int(np.argmax(score))
    return lo + j, float(score[j])


def _steady_loop(env: np.ndarray, hop: int, lo: int, hi: int, sample_rate: int) -> tuple[int, int]:
    """(start, end) sample positions of a loop in ``[lo, hi]`` (see :func:`analyse`)."""
    smooth = np.convolve(env, np.ones(10) / 10, mode="same")
    db = 20 * np.log10(smooth + 1e-12)
    first, last = lo // hop, hi // hop
    best, best_score = None, np.inf
    for seconds in (LOOP_MAX_S, 2.0, 1.6, 1.2, 0.9, 0.6, 0.4, LOOP_MIN_S):
        frames = int(seconds * sample_rate / hop)
        ends = np.arange(last, first + frames - 1, -5)
        if len(ends) == 0:
            continue
        starts = ends - frames
        mismatch = np.abs(db[ends] - db[starts])
        windows = np.lib.stride_tricks.sliding_window_view(db, frames + 1)[starts]
        spread = windows.max(axis=1) - windows.min(axis=1)
        score = mismatch + 0.25 * spread
        ok = (mismatch <= LOOP_LEVEL_DB) & (spread <= LOOP_SPREAD_DB)
        if ok.any():
            i = int(np.argmin(np.where(ok, score, np.inf)))
            return int(starts[i]) * hop, int(ends[i]) * hop
        i = int(np.argmin(score))
        if score[i] < best_score:
            best, best_score = (int(starts[i]) * hop, int(ends[i]) * hop), float(score[i])
    if best is None:
        return lo, hi
    return best


def analyse(x: np.ndarray, sample_rate: int, pitch: int) -> dict:
    """Sample positions (at ``sample_rate``) of one recording's attack start, attack end,
    loop start and end and loop crossfade; its tuning (cents) and steady level (dB RMS)."""
    hop = sample_rate // 100
    env = _frames_rms(x, hop)
    if len(env) < 30 or env.max() <= 0:
        raise ValueError("too short or silent")
    peak = env.max()
    active = np.nonzero(env > peak * 10 ** (ONSET_DB / 20))[0]
    first, last = int(active[0]), int(active[-1])
    level = float(np.median(env[first:last + 1]))
    start = max(0, first * hop - int(0.005 * sample_rate))
    half = np.nonzero(env[first:last + 1] >= level * 10 ** (-6 / 20))[0]
    rise = (first + int(half[0])) * hop if len(half) else first * hop
    loud = np.nonzero(env[first:last + 1] >= level * 10 ** (-3 / 20))[0]
    attack_end_frame = first + int(loud[0]) if len(loud) else first
    attack_end_frame = int(np.clip(attack_end_frame, first + 3, first + 50))
    sustained = np.nonzero(env[first:last + 1] >= level * 10 ** (TAIL_DB / 20))[0]
    end_frame = first + int(sustained[-1]) + 1 if len(sustained) else last + 1
    attack_end = attack_end_frame * hop
    end = min(end_frame * hop, len(x) - int(0.01 * sample_rate), start + int((MAX_BODY_S + 0.5) * sample_rate))
    end = max(end, attack_end + int(2 * LOOP_MIN_S * sample_rate))
    end = min(end, len(x) - 4)
    # Tuning and level over the steady part.
    a = attack_end + int(0.1 * sample_rate)
    b = min(end - int(0.1 * sample_rate), a + int(3.0 * sample_rate))
    segment = x[a:b] if b - a > sample_rate // 4 else x[attack_end:end]
    f0_nominal = 440.0 * 2 ** ((pitch - 69) / 12)
    f0 = measure_f0(segment, sample_rate, f0_nominal)
    cents = 1200 * np.log2(f0 / f0_nominal) if np.isfinite(f0) else 0.0
    level_db = 20 * np.log10(np.sqrt(np.mean(x[attack_end:end] ** 2)) + 1e-12)
    # The loop: the longest (at most LOOP_MAX_S) stretch of the steady part whose level at
    # both ends matches and that does not swell or fade much (many recordings fade over their
    # length); its start where the waveform best matches the loop's end.
    loop_start_guess, loop_end = _steady_loop(env, hop, attack_end + int(0.1 * sample_rate), end - int(0.05 * sample_rate),
                                              sample_rate)
    window = int(0.02 * sample_rate)
    loop_start, corr = _best_loop_start(x, loop_start_guess, loop_end, int(0.015 * sample_rate), window)
    fade = int(min(LOOP_FADE_S * sample_rate, (loop_end - loop_start) / 3, loop_start - start - 1))
    return {"start": int(start), "rise": int(max(rise, start)), "attack_end": int(attack_end), "loop_start": int(loop_start),
            "loop_end": int(loop_end), "loop_fade": int(fade), "loop_corr": round(corr, 4),
            "cents": round(float(cents), 2), "level_db": round(float(level_db), 3)}


def _read(path: Path) -> tuple[np.ndarray, int]:
    try:
        x, sr = sf.read(str(path), dtype="float64", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise UserError(f"{path}: cannot read this recording ({exc})") from None
    return x.mean(axis=1), int(sr)


def _analyses(folder: Path, files: list[Path]) -> dict[str, dict]:
    """Per-file analyses, cached beside the recordings (when the folder is writable)."""
    cache = folder / f".ensemble_synth-analysis-v{ANALYSIS_VERSION}.json"
    try:
        stored = json.loads(cache.read_text())
        if sorted(stored) == sorted(f.name for f in files):
            return stored
    except (OSError, ValueError):
        pass
    out = {}
    for path in files:
        x, sr = _read(path)
        try:
            out[path.name] = {"sample_rate": sr, **analyse(x, sr, note_pitch(path.stem))}
        except ValueError as exc:
            raise UserError(f"{path}: cannot use this recording ({exc})") from None
    try:
        tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(out, sort_keys=True, indent=0))
        tmp.replace(cache)
    except OSError:
        pass
    return out


# --- the instrument at a render rate ----------------------------------------------------------


@dataclass
class Zone:
    """One recording at the render rate. ``buf[1:]`` is the recording from its attack start
    to its loop end (crossfade baked in), ``buf[0]`` repeats the first sample and the last
    three continue the loop, so that cubic interpolation never leaves the buffer."""

    file: str
    pitch: int
    cents: float
    gain: float
    buf: np.ndarray  # float32
    rise: int  # where the attack reaches -6 dB of the steady level
    attack_end: int
    loop_start: int
    loop_end: int

    def source(self, last_position: float) -> np.ndarray:
        """A buffer (same layout) long enough to read up to ``last_position``: the loop repeated."""
        if int(last_position) <= self.loop_end:
            return self.buf
        need = int(last_position) + 4
        loop = self.buf[1 + self.loop_start: 1 + self.loop_end]
        reps = -(-(need - self.loop_end) // len(loop))
        return np.concatenate([self.buf[: 1 + self.loop_end], np.tile(loop, reps), loop[:3]])


@dataclass
class SampledInstrument:
    package: SamplePackage
    sample_rate: int
    zones: list[Zone]  # sorted by pitch
    release_s: float

    @property
    def low(self) -> int:
        return self.zones[0].pitch

    @property
    def high(self) -> int:
        return self.zones[-1].pitch

    def in_range(self, pitch: float) -> bool:
        return self.low - RANGE_EXTENSION <= pitch <= self.high + RANGE_EXTENSION


def _bake_loop(data: np.ndarray, loop_start: int, loop_end: int, fade: int, corr: float) -> None:
    """Crossfade the end of the loop into what precedes its start (in place): playing on from
    ``loop_end`` at ``loop_start`` then continues the same waveform."""
    fade = min(fade, loop_start, loop_end - loop_start)
    if fade < 2:
        return
    t = (np.arange(fade) + 0.5) / fade
    if corr >= 0.5:
        fade_in, fade_out = t, 1 - t  # aligned waveforms: equal gain
    else:
        fade_in, fade_out = np.sin(0.5 * np.pi * t), np.cos(0.5 * np.pi * t)  # equal power
    tail = data[loop_end - fade: loop_end].astype(np.float64)
    lead = data[loop_start - fade: loop_start].astype(np.float64)
    data[loop_end - fade: loop_end] = (tail * fade_out + lead * fade_in).astype(np.float32)


@functools.lru_cache(maxsize=32)
def load_instrument(package: SamplePackage, sample_rate: int) -> SampledInstrument:
    """The package's recordings analysed, level-matched, resampled to ``sample_rate`` and
    looped (cached per process)."""
    folder = sample_library.locate(package)
    files = [p for p in sample_library.audio_files(folder) if note_pitch(p.stem) is not None]
    if not files:
        raise UserError(f"{folder}: no recordings named by note (e.g. A4.wav) in sample package {package.package}")
    analyses = _analyses(folder, files)
    # A recording measured a semitone or more off its name is taken for the note it plays
    # (the cello's "As4" is a B4, the clarinet's "Fs6" an F6); the rest is its tuning.
    semitones = {p.name: int(round(analyses[p.name]["cents"] / 100.0)) for p in files}
    pitches = np.array([note_pitch(p.stem) + semitones[p.name] for p in files], dtype=float)
    levels = np.array([analyses[p.name]["level_db"] for p in files])
    if len(files) > 2:
        slope, intercept = np.polyfit(pitches, levels, 1)
    else:
        slope, intercept = 0.0, float(levels.mean())
    fit = slope * pitches + intercept
    correction = np.clip(fit - levels, -MAX_LEVEL_CORRECTION_DB, MAX_LEVEL_CORRECTION_DB) + (LEVEL_DB - fit.mean())
    zones = []
    for path, pitch, gain_db in zip(files, pitches, correction):
        info = analyses[path.name]
        x, sr = _read(path)
        body = x[info["start"]: info["loop_end"]]
        scale = sample_rate / sr
        if sr != sample_rate:
            from scipy.signal import resample_poly  # noqa: I001  (where used: a second at start-up otherwise)

            g = gcd(int(sample_rate), int(sr))
            body = resample_poly(body, sample_rate // g, sr // g)
        pos = {k: int(round((info[k] - info["start"]) * scale)) for k in ("rise", "attack_end", "loop_start")}
        loop_end = len(body)
        fade = int(round(info["loop_fade"] * scale))
        data = body.astype(np.float32)
        _bake_loop(data, pos["loop_start"], loop_end, fade, info["loop_corr"])
        buf = np.concatenate([data[:1], data, data[pos["loop_start"]: pos["loop_start"] + 3]])
        cents = float(info["cents"]) - 100.0 * semitones[path.name]
        zones.append(Zone(path.name, int(pitch), cents, float(10 ** (gain_db / 20)),
                          np.ascontiguousarray(buf, dtype=np.float32), pos["rise"], pos["attack_end"],
                          pos["loop_start"], loop_end))
    zones.sort(key=lambda z: (z.pitch, z.file))
    family = instruments.get(package.recorded).family
    return SampledInstrument(package, int(sample_rate), zones, RELEASE_S.get(family, 0.2))


# --- rendering ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SampledVoice:
    """How one part sounds on the sampler: the package, a fixed detuning, the seed of its
    per-note choices, and optionally a start past the recorded attack (``attack_skip_s``, at
    most to the attack's end) and a scaled release (``release_scale``)."""

    package: SamplePackage
    detune_cents: float = 0.0
    seed: int = 0
    attack_skip_s: float = 0.0
    release_scale: float = 1.0


def grid_samples(seconds: np.ndarray, sample_rate: int) -> np.ndarray:
    """Times in seconds -> sample indices on the :data:`GRID`."""
    return (np.round(np.asarray(seconds, dtype=np.float64) * sample_rate / GRID) * GRID).astype(np.int64)


def _choose_zones(inst: SampledInstrument, pitches: np.ndarray, rng: np.random.Generator) -> list[int]:
    zone_pitch = np.array([z.pitch for z in inst.zones])
    last_for_pitch: dict[int, int] = {}
    chosen = []
    for pitch in pitches:
        pitch = int(pitch)
        distance = np.abs(zone_pitch - pitch)
        span = max(int(distance.min()), ROUND_ROBIN_SEMITONES)
        candidates = np.nonzero(distance <= span)[0]
        weights = 1.0 / (1.0 + distance[candidates]) ** 2
        previous = last_for_pitch.get(pitch)
        if previous is not None and len(candidates) > 1:
            weights = np.where(candidates == previous, 0.0, weights)
        u = rng.random()
        index = int(candidates[min(int(np.searchsorted(np.cumsum(weights) / weights.sum(), u, side="right")),
                                   len(candidates) - 1)])
        last_for_pitch[pitch] = index
        chosen.append(index)
    return chosen


def _joins(on: np.ndarray, off: np.ndarray, pitch: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """For each note (sorted by onset): the note it joins legato (-1: none) and whether that
    is a re-articulated repeat of the same pitch."""
    chord, gap = int(CHORD_S * sample_rate), int(LEGATO_GAP_S * sample_rate)
    joins = np.full(len(on), -1)
    repeat = np.zeros(len(on), dtype=bool)
    taken = np.zeros(len(on), dtype=bool)
    sounding: list[int] = []
    for b in range(len(on)):
        sounding = [a for a in sounding if off[a] + gap >= on[b]]
        candidates = [a for a in sounding if on[a] <= on[b] - chord and not taken[a]]
        if candidates:
            best = min(candidates, key=lambda a: (abs(int(pitch[a]) - int(pitch[b])), -int(on[a]), a))
            joins[b], taken[best] = best, True
            repeat[b] = pitch[best] == pitch[b]
        sounding.append(b)
    return joins, repeat


def _tilt(velocity: float) -> float:
    if velocity < TILT_REF:
        return TILT_MAX * (TILT_REF - velocity) / (TILT_REF - 1.0)
    return -TILT_LOUD * (velocity - TILT_REF) / (127.0 - TILT_REF)


def expression_gain(controls, length: int, sample_rate: int) -> np.ndarray | None:
    """The gain of CC 11 (expression) and CC 7 (volume) over the part, ``(cc / 127)**2`` each
    (FluidSynth's default curves), linear between events; None without such events."""
    if controls is None or not len(controls):
        return None
    controls = np.asarray(controls, dtype=np.float64).reshape(len(controls), -1)
    gain = None
    for number in (7, 11):
        ev = controls[controls[:, 1] == number]
        if not len(ev):
            continue
        t = grid_samples(ev[:, 0], sample_rate).astype(np.float64)
        g = (np.clip(np.round(ev[:, 2]), 0, 127) / 127.0) ** 2
        curve = np.interp(np.arange(length, dtype=np.float64), t, g).astype(np.float32)
        gain = curve if gain is None else gain * curve
    return gain


def out_of_range(notes: np.ndarray, package: SamplePackage, sample_rate: int) -> int:
    """How many notes lie outside the package's sampled range (see :data:`RANGE_EXTENSION`)."""
    inst = load_instrument(package, int(sample_rate))
    pitches = np.asarray(notes)[:, PITCH] if len(notes) else np.zeros(0)
    return int(np.count_nonzero((pitches < inst.low - RANGE_EXTENSION) | (pitches > inst.high + RANGE_EXTENSION)))


def render(notes: np.ndarray, voice: SampledVoice, sample_rate: int, controls=None, where: str = "part") -> np.ndarray:
    """Render one part (notes as in :mod:`~ensemble_synth.music.score`) -> mono float32 with
    its release tail. Warns (:class:`SampleRangeWarning`) with the count of notes outside
    the sampled range."""
    sample_rate = int(sample_rate)
    if not 8000 <= sample_rate <= 192000:
        raise UserError(f"{where}: sample rate {sample_rate}: the sampler renders 8000-192000 Hz")
    notes = np.asarray(notes, dtype=np.float64).reshape(-1, 4) if np.size(notes) else np.zeros((0, 4))
    check_notes(notes, where, options=None)
    if not np.all(np.isfinite(notes[:, [PITCH, VELOCITY]])):
        raise UserError(f"{where}: note pitches and velocities must be finite numbers")
    inst = load_instrument(voice.package, sample_rate)
    if not len(notes):
        return np.zeros(0, dtype=np.float32)
    order = np.lexsort((notes[:, PITCH], notes[:, START]))
    notes = notes[order]
    on = grid_samples(notes[:, START], sample_rate)
    off = np.maximum(grid_samples(notes[:, END], sample_rate), on + GRID)
    pitch = notes[:, PITCH].astype(np.int64)
    velocity = np.clip(np.round(notes[:, VELOCITY]), 1, 127)
    outside = out_of_range(notes, voice.package, sample_rate)
    if outside:
        warnings.warn(f"{where}: {outside} notes outside the sampled range of {voice.package.package} "
                      f"({inst.low - RANGE_EXTENSION}-{inst.high + RANGE_EXTENSION}), shifted from the nearest "
                      f"recording", SampleRangeWarning, stacklevel=2)
    rng = np.random.default_rng(int(voice.seed))
    zones = _choose_zones(inst, pitch, rng)
    joins, repeat = _joins(on, off, pitch, sample_rate)
    legato, rearticulate = int(LEGATO_S * sample_rate), int(REPEAT_S * sample_rate)
    release = int(inst.release_s * voice.release_scale * sample_rate)
    skip = int(voice.attack_skip_s * sample_rate)
    # Where each note stops: its release, or the crossfade into the note that joins it.
    stop = off + release
    fade_out = np.full(len(on), -1)
    for b, a in enumerate(joins):
        if a >= 0:
            fade = rearticulate if repeat[b] else legato
            stop[a] = on[b] + fade
            fade_out[a] = fade
    length = int(stop.max())
    out = np.zeros(length + 1, dtype=np.float32)
    to_filter = np.zeros_like(out)
    filtered = False
    onset_fade = max(int(ONSET_FADE_S * sample_rate), 1)
    cut_fade = max(int(CUT_ATTACK_FADE_S * sample_rate), 1)
    max_rise = int(MAX_RISE_S * sample_rate)
    # The release: an exponential decay (-43 dB at its end) that a square-root ramp takes to zero.
    t = np.arange(release, dtype=np.float64) / max(release, 1)
    decay = (np.exp(-5.0 * t) * np.sqrt(1.0 - t)).astype(np.float32)
    pole = float(np.exp(-2 * np.pi * TILT_HZ / sample_rate))
    for n in range(len(on)):
        zone = inst.zones[zones[n]]
        count = int(stop[n] - on[n])
        ratio = 2.0 ** ((pitch[n] - zone.pitch - zone.cents / 100.0 + voice.detune_cents / 100.0) / 12.0)
        legato_entry = joins[n] >= 0 and not repeat[n]
        if legato_entry:
            first = max(zone.attack_end - legato // 2, 0)
        else:  # a slow swell is shortened to MAX_RISE_S (players articulate chorale notes faster)
            first = max(zone.rise - max_rise, 0)
            if skip:
                first = max(first, min(first + skip, zone.attack_end))
        positions = first + ratio * np.arange(count, dtype=np.float64)
        buf = zone.source(positions[-1])
        index = positions.astype(np.int64)
        frac = (positions - index).astype(np.float32)
        xm1, x0, x1, x2 = buf[index], buf[index + 1], buf[index + 2], buf[index + 3]
        c1 = 0.5 * (x1 - xm1)
        c3 = 1.5 * (x0 - x1) + 0.5 * (x2 - xm1)
        c2 = xm1 - x0 + c1 - c3
        y = ((c3 * frac + c2) * frac + c1) * frac + x0
        # Envelopes: the onset (or the legato fade-in), then the release or the fade into the next note.
        if legato_entry or (joins[n] >= 0 and repeat[n]):
            fade_in = legato if legato_entry else rearticulate
            fade_in = min(fade_in, count)
            y[:fade_in] *= np.sin(0.5 * np.pi * (np.arange(fade_in, dtype=np.float32) + 0.5) / fade_in)
        else:
            attack = (onset_fade if first == 0 else cut_fade) + int(
                SOFT_ATTACK_S * sample_rate * max(0.0, (TILT_REF - velocity[n]) / TILT_REF))
            attack = min(attack, count)
            y[:attack] *= ((np.arange(attack, dtype=np.float32) + 0.5) / attack)
        if fade_out[n] >= 0:
            fade = min(int(fade_out[n]), count)
            y[count - fade:] *= np.cos(0.5 * np.pi * (np.arange(fade, dtype=np.float32) + 0.5) / fade)
        else:
            held = int(off[n] - on[n])
            y[held:] *= decay[: count - held]
        # Velocity: the gain, and the tilt y + k (lowpass(y) - y). The low-pass is linear, so
        # the notes' k-weighted share is summed first and filtered once for the whole part.
        gain = zone.gain * (velocity[n] / 127.0) ** 2
        k = _tilt(velocity[n])
        where = slice(on[n], on[n] + count)
        if abs(k) > 1e-3:
            out[where] += np.float32(gain * (1.0 - k)) * y
            to_filter[where] += np.float32(gain * k) * y
            filtered = True
        else:
            out[where] += np.float32(gain) * y
    if filtered:
        from scipy.signal import lfilter  # where used: a second at start-up otherwise

        out += lfilter([1.0 - pole], [1.0, -pole], to_filter).astype(np.float32)
    gain = expression_gain(controls, len(out), sample_rate)
    if gain is not None:
        out *= gain
    return out
