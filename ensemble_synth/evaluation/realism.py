"""Where a synthetic corpus and real recordings differ: the realism report.

Both sets are analysed the same way, per part stem (the synthetic stems are the parts as
the microphones captured them; a corpus made with ``--dry`` is also analysed from its
anechoic stems, labelled ``synthetic_dry``), and pooled per instrument. Every stem is
averaged to mono, resampled to one analysis rate (the lower of the two sets' rates, at most
32 kHz) and cut to its first ``max_seconds``. The statistics:

- ``ltas``: long-term average spectrum in third-octave bands over the active frames,
  normalised per stem to 0 dB in all (so it compares spectral shape, not level); the
  distance is the mean absolute difference of the two sets' mean curves in dB.
- ``centroid`` (Hz) and ``flatness`` (dB) of the STFT frames of active signal.
- ``attack``: onset (librosa onset detection, backtracked) to the point where a 10 ms RMS
  envelope reaches 90 % of the note's peak amplitude (the peak within 0.5 s and before the
  next onset), in ms, for notes that rise by 6 dB or more.
- ``vibrato_rate`` (Hz) and ``vibrato_depth`` (cents, half the peak-to-peak swing of a
  sinusoid of the same power): f0 from ``librosa.pyin`` (voicing and octave) refined by
  ``librosa.yin``'s interpolated estimate, at 16 kHz on ``pyin_seconds`` from the first
  active frame, cut into sustained notes (>= 0.5 s without a jump); per note, the cents
  around the note's trend, its modulation spectrum peak in 3-9 Hz (rate) and the power
  in that band (depth). The rate is defined for every sustained note; where the depth is
  a few cents (no vibrato) it is the rate of noise, so read it together with the depth
  (the report gives the share of notes with depth >= 10 cents).
- ``note_loudness``: each note's peak frame level (dB) minus the stem's median note
  level; ``dynamic_range``: 5-95 percentile range of the active frame RMS levels (dB),
  per 10 s chunk so that pieces of different lengths compare; ``background``: the level of
  the quietest 2 % of those frames relative to the 95th percentile (dB, per 10 s chunk,
  clipped at -100 dB), where rests show the noise floor, leakage or a reverberant tail
  (synthetic stems are digitally silent between notes).
- ``decay_rt`` (s): the reverberation time implied by the slope of the envelope (dB/s,
  times 60) where the signal falls freely by 15 dB or more after a note ends;
  ``drr`` (dB): energy in the first 50 ms after an onset over the energy 50-300 ms after,
  for notes that last 300 ms or more (a direct-to-reverberant proxy).
- ``level_balance`` (dB): each part's energy relative to the mixture's (the sum of the
  parts), per 10 s chunk.

For a corpus, each part's stem is also filed under the sound that played it (``by_source``:
the soundfont or sample library and the instrument whose program or recordings played the
part, e.g. ``tonejs:clarinet`` or ``fluidr3_gm:viola``, from the track's metadata), and each
of those is compared with the real recordings of the part's instrument: which source makes a
statistic differ.

Each distribution's distance is the Wasserstein distance (scipy) in the statistic's unit.
Where the real set holds two or more recordings, the report also gives the real
piece-to-piece spread (each real recording against the others, averaged) and the ratio of
the synthetic distance to it: a ratio well above 1 is a difference larger than real
recordings show among themselves, and the statistics are ranked by it.

Memory is bounded by one track: tracks are loaded, analysed and dropped one at a time
(``jobs`` worker processes at a time), and each stem keeps at most ``max_frames`` frames.
"""

from __future__ import annotations

import concurrent.futures as cf
import io
import json
import math
import multiprocessing
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm


class _OnFirstUse:
    """A module imported on first attribute access: librosa (numba) and scipy.signal/stats
    cost seconds, which every command of the CLI would pay at start-up otherwise."""

    def __init__(self, name: str):
        self._name, self._module = name, None

    def __getattr__(self, attr: str):
        if self._module is None:
            import importlib

            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)


librosa = _OnFirstUse("librosa")
_signal = _OnFirstUse("scipy.signal")
_stats = _OnFirstUse("scipy.stats")

from .._version import __version__
from ..corpus import format as corpus_format
from ..errors import UserError
from ..fileio import (
    atomic_directory,
    check_output_dir,
    write_bytes_atomic,
    write_json_atomic,
    write_text_atomic,
)
from ..music import instruments as catalogue
from ..synthesis.timbre import played_by
from ..workers import die_with_parent
from . import datasets

SYNTHETIC, SYNTHETIC_DRY, REAL = "synthetic", "synthetic_dry", "real"
SET_LABELS = {SYNTHETIC: "synthetic (stems as captured)", SYNTHETIC_DRY: "synthetic (dry stems)", REAL: "real"}
SET_COLOURS = {SYNTHETIC: "tab:blue", SYNTHETIC_DRY: "tab:green", REAL: "tab:red"}

MAX_RATE = 32000  # analysis rate cap (third-octave bands to 12.5 kHz)
PYIN_RATE = 16000
ACTIVE_DB = 30.0  # a frame is active within this many dB of the stem's 95th percentile level
CHUNK_SECONDS = 10.0
VIBRATO_BAND = (3.0, 9.0)
VIBRATO_PRESENT_CENTS = 10.0
MIN_NOTE_SECONDS = 0.5
ATTACK_REACH_DB = 20 * math.log10(0.9)  # 90 % of the peak amplitude
F0_HOP_SECONDS = 0.01


@dataclass(frozen=True)
class Statistic:
    name: str
    title: str
    unit: str
    what: str


STATISTICS = (
    Statistic("ltas", "Long-term average spectrum (third-octave bands, level-normalised)", "dB",
              "mean |difference| of the mean band levels"),
    Statistic("centroid", "Spectral centroid of active frames", "Hz", "Wasserstein"),
    Statistic("flatness", "Spectral flatness of active frames", "dB", "Wasserstein"),
    Statistic("attack", "Note attack time (onset to 90 % of the peak amplitude)", "ms", "Wasserstein"),
    Statistic("vibrato_rate", "Vibrato rate (f0 modulation peak, 3-9 Hz)", "Hz", "Wasserstein"),
    Statistic("vibrato_depth", "Vibrato depth (3-9 Hz f0 modulation)", "cents", "Wasserstein"),
    Statistic("note_loudness", "Note loudness around the stem's median note", "dB", "Wasserstein"),
    Statistic("dynamic_range", "Dynamic range (5-95 % of active frame RMS, per 10 s)", "dB", "Wasserstein"),
    Statistic("background", "Quietest frames re the loud ones (2nd vs 95th percentile, per 10 s)", "dB",
              "Wasserstein"),
    Statistic("decay_rt", "Reverberation time from free decays after notes", "s", "Wasserstein"),
    Statistic("drr", "Direct-to-reverberant proxy (0-50 ms over 50-300 ms after onsets)", "dB", "Wasserstein"),
    Statistic("level_balance", "Part level relative to the mixture (per 10 s)", "dB", "Wasserstein"),
)
STAT_NAMES = tuple(s.name for s in STATISTICS)
BY_NAME = {s.name: s for s in STATISTICS}


@dataclass(frozen=True)
class AnalysisConfig:
    """How much of each stem is analysed, and at which rates."""

    sample_rate: int = MAX_RATE  # set to the lower of the two sets' rates (capped) by realism_report
    pyin_rate: int = PYIN_RATE
    pyin_seconds: float = 20.0
    max_seconds: float = 60.0
    max_frames: int = 2000

    def __post_init__(self):
        for name in ("pyin_seconds", "max_seconds"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise UserError(f"{name} = {value}: must be a positive number of seconds")
        if self.max_frames < 1:
            raise UserError(f"max_frames = {self.max_frames}: must be at least 1")


# -- the analysed sets -------------------------------------------------------------------


@dataclass
class SetStatistics:
    """Per instrument and statistic, one float32 array of values per analysed track
    (for ``ltas``: one row of band levels per stem)."""

    label: str
    source: str
    tracks: list[str] = field(default_factory=list)
    values: dict[str, dict[str, list[np.ndarray]]] = field(default_factory=dict)
    bands_hz: np.ndarray | None = None
    by_source: dict[str, SetStatistics] = field(default_factory=dict)  # instrument -> a set per sound source

    def add(self, instrument: str, track_values: dict[str, np.ndarray]) -> None:
        per_stat = self.values.setdefault(instrument, {name: [] for name in STAT_NAMES})
        for name, value in track_values.items():
            per_stat[name].append(np.asarray(value, dtype=np.float32))

    def pooled(self, instrument: str, stat: str, exclude: int | None = None) -> np.ndarray:
        arrays = [a for i, a in enumerate(self.values.get(instrument, {}).get(stat, [])) if i != exclude]
        if stat == "ltas":
            rows = [a for a in arrays if a.size]
            return np.stack(rows) if rows else np.zeros((0, 0), np.float32)
        return np.concatenate(arrays) if arrays else np.zeros(0, np.float32)

    @property
    def instruments(self) -> list[str]:
        return list(self.values)


# -- per-stem statistics -----------------------------------------------------------------


def third_octave_bands(sample_rate: int) -> np.ndarray:
    """Exact third-octave centres (1000 * 2**(k/3)) from 50 Hz up to the last band whose
    upper edge is below the Nyquist frequency (and 12.5 kHz nominal)."""
    centres = 1000.0 * 2.0 ** (np.arange(-13, 12) / 3.0)  # 50 Hz ... 12.5 kHz nominal
    return centres[centres * 2 ** (1 / 6) < sample_rate / 2]


def _frame_db(power: np.ndarray) -> np.ndarray:
    return 10.0 * np.log10(np.maximum(power, 1e-20))


def _active(level_db: np.ndarray) -> np.ndarray:
    if level_db.size == 0:
        return np.zeros(0, bool)
    top = np.percentile(level_db, 95)
    return (level_db > top - ACTIVE_DB) & (level_db > -100.0)


def _cap(values: np.ndarray, limit: int) -> np.ndarray:
    """At most ``limit`` values, evenly strided (deterministic)."""
    if values.size <= limit:
        return values
    return values[np.linspace(0, values.size - 1, limit).round().astype(int)]


def _envelope_db(x: np.ndarray, sr: int, window: float, hop: float) -> tuple[np.ndarray, float]:
    """RMS envelope in dB: ``window``-second boxes every ``hop`` seconds; returns (dB, hop in s)."""
    win = max(1, round(window * sr))
    step = max(1, round(hop * sr))
    if x.size < win:
        return np.zeros(0), step / sr
    csum = np.concatenate([[0.0], np.cumsum(x.astype(np.float64) ** 2)])
    starts = np.arange(0, x.size - win + 1, step)
    power = (csum[starts + win] - csum[starts]) / win
    return _frame_db(power), step / sr


def spectral_statistics(x: np.ndarray, sr: int, bands: np.ndarray, max_frames: int) -> dict[str, np.ndarray]:
    """LTAS band levels (one row), centroid (Hz) and flatness (dB) of active frames."""
    n_fft = int(2 ** round(math.log2(0.128 * sr)))
    hop = n_fft // 4
    empty = {"ltas": np.zeros(0, np.float32), "centroid": np.zeros(0), "flatness": np.zeros(0)}
    if x.size < n_fft:
        return empty
    mag = np.abs(librosa.stft(x, n_fft=n_fft, hop_length=hop, center=False))
    power = mag.astype(np.float64) ** 2
    active = _active(_frame_db(power.sum(axis=0)))
    if not active.any():
        return empty
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    mean_power = power[:, active].mean(axis=1)
    edges_lo, edges_hi = bands * 2 ** (-1 / 6), bands * 2 ** (1 / 6)
    band_power = np.array([mean_power[(freqs >= lo) & (freqs < hi)].sum() for lo, hi in zip(edges_lo, edges_hi)])
    band_db = _frame_db(band_power) - _frame_db(np.array([band_power.sum()]))[0]
    frames = _cap(np.flatnonzero(active), max_frames)
    sub = mag[:, frames]
    centroid = librosa.feature.spectral_centroid(S=sub, sr=sr, n_fft=n_fft)[0]
    flatness = librosa.feature.spectral_flatness(S=sub)[0]
    return {"ltas": band_db, "centroid": centroid, "flatness": _frame_db(flatness)}


def onset_times(x: np.ndarray, sr: int) -> np.ndarray:
    """Note onsets (s): librosa's spectral-flux onsets, backtracked to the preceding minimum
    of the RMS energy (the start of the rise)."""
    hop = max(1, sr // 100)
    if x.size < 4 * hop:
        return np.zeros(0)
    frames = librosa.onset.onset_detect(y=x, sr=sr, hop_length=hop, units="frames")
    if frames.size == 0:
        return np.zeros(0)
    rms = librosa.feature.rms(y=x, frame_length=2 * hop, hop_length=hop)[0]
    frames = np.unique(librosa.onset.onset_backtrack(frames, rms))
    return librosa.frames_to_time(frames, sr=sr, hop_length=hop)


def note_statistics(x: np.ndarray, sr: int, onsets: np.ndarray) -> dict[str, np.ndarray]:
    """attack (ms), drr (dB), note_loudness (dB), dynamic_range and background (dB) of one stem."""
    fine, fine_hop = _envelope_db(x, sr, 0.010, 0.0025)
    frame, frame_hop = _envelope_db(x, sr, 0.064, 0.016)
    out = {k: np.zeros(0) for k in ("attack", "drr", "note_loudness", "dynamic_range", "background")}
    if fine.size == 0 or frame.size == 0:
        return out
    fine_floor = np.percentile(fine, 95) - ACTIVE_DB
    duration = x.size / sr
    ends = np.append(onsets[1:], duration)
    attacks, drrs, levels = [], [], []
    energy = np.concatenate([[0.0], np.cumsum(x.astype(np.float64) ** 2)])

    def segment_energy(t0, t1):
        a, b = round(t0 * sr), min(x.size, round(t1 * sr))
        return energy[b] - energy[a] if b > a else 0.0

    for t0, t1 in zip(onsets, ends):
        i0 = int(t0 / fine_hop)
        i1 = min(fine.size, int(min(t1, t0 + 0.5) / fine_hop))
        if i1 - i0 < 2:
            continue
        window = fine[i0:i1]
        peak = window.max()
        if peak < fine_floor:
            continue
        if peak - window[0] >= 6.0:
            reach = int(np.argmax(window >= peak + ATTACK_REACH_DB))
            attacks.append(1000.0 * reach * fine_hop)
        if t1 - t0 >= 0.3:
            direct, late = segment_energy(t0, t0 + 0.05), segment_energy(t0 + 0.05, t0 + 0.3)
            if direct > 0 and late > 0:
                drrs.append(10 * math.log10(direct / late))
        j0, j1 = int(t0 / frame_hop), min(frame.size, math.ceil(t1 / frame_hop))
        if j1 > j0:
            levels.append(frame[j0:j1].max())
    levels = np.array(levels)
    levels = levels[levels >= np.percentile(frame, 95) - ACTIVE_DB] if levels.size else levels
    out["attack"] = np.array(attacks)
    out["drr"] = np.array(drrs)
    out["note_loudness"] = levels - np.median(levels) if levels.size else levels
    out["dynamic_range"], out["background"] = dynamic_ranges(frame, frame_hop)
    return out


def dynamic_ranges(frame_db: np.ndarray, hop: float) -> tuple[np.ndarray, np.ndarray]:
    """Per CHUNK_SECONDS chunk (a shorter stem is one chunk): the 5-95 percentile range of
    the active frame levels (chunks with under a third of their frames active are skipped),
    and the 2nd percentile of all frame levels re the stem's 95th (clipped at -100 dB)."""
    active = _active(frame_db)
    top = np.percentile(frame_db, 95)
    per_chunk = max(1, round(CHUNK_SECONDS / hop))
    ranges, quiet = [], []
    for start in range(0, max(1, frame_db.size - per_chunk // 2), per_chunk):
        levels, mask = frame_db[start:start + per_chunk], active[start:start + per_chunk]
        quiet.append(max(-100.0, float(np.percentile(levels, 2)) - top))
        if mask.sum() >= max(8, mask.size // 3):
            lo, hi = np.percentile(levels[mask], [5, 95])
            ranges.append(hi - lo)
    return np.array(ranges), np.array(quiet)


def decay_times(x: np.ndarray, sr: int, min_drop: float = 15.0) -> np.ndarray:
    """Reverberation times (s) from free decays: where the 10 ms envelope falls by
    ``min_drop`` dB or more from a note level without rising again by 3 dB, the slope of
    a line fitted from 3 dB below the start to the lowest point (at most 33 dB below)."""
    env, hop = _envelope_db(x, sr, 0.020, F0_HOP_SECONDS)
    if env.size < 20:
        return np.zeros(0)
    env = np.convolve(env, np.ones(3) / 3, mode="same")
    top, floor = np.percentile(env, 95), np.percentile(env, 2)
    out = []
    i, n = 1, env.size
    while i < n - 1:
        if not (env[i] >= top - 25.0 and env[i] >= env[i - 1] and env[i] > env[i + 1]):
            i += 1
            continue
        j, low, low_at = i + 1, env[i + 1], i + 1
        while j < n and env[j] < low + 3.0 and env[j] > floor + 3.0:
            if env[j] < low:
                low, low_at = env[j], j
            j += 1
        drop = env[i] - low
        if drop >= min_drop:
            seg = env[i:low_at + 1]
            start = int(np.argmax(seg <= env[i] - 3.0))
            stop = int(np.argmax(seg <= env[i] - 33.0)) if (seg <= env[i] - 33.0).any() else seg.size - 1
            y = seg[start:stop + 1]
            if y.size >= 5:
                t = np.arange(y.size) * hop
                slope, intercept = np.polyfit(t, y, 1)
                resid = y - (slope * t + intercept)
                r2 = 1.0 - resid.var() / max(y.var(), 1e-12)
                if slope < 0 and r2 >= 0.9:
                    rt = -60.0 / slope
                    if 0.05 <= rt <= 12.0:
                        out.append(rt)
        i = max(j, i + 1)
    return np.array(out)


def f0_track(x: np.ndarray, sr: int, fmin: float, fmax: float) -> tuple[np.ndarray, np.ndarray]:
    """(f0 Hz, usable mask) at F0_HOP_SECONDS: pyin's voicing and coarse pitch (20-cent
    bins), refined by yin's interpolated estimate where the two agree within 35 cents."""
    hop = round(F0_HOP_SECONDS * sr)
    # two periods of fmin and no more: a longer frame averages the f0 over part of a
    # vibrato cycle (a 64 ms frame shows 6 Hz vibrato at 80 % of its depth)
    frame_length = math.ceil(2.05 * sr / fmin)
    if x.size < frame_length:
        return np.zeros(0), np.zeros(0, bool)
    coarse, voiced, _ = librosa.pyin(x, fmin=fmin, fmax=fmax, sr=sr, frame_length=frame_length, hop_length=hop,
                                     resolution=0.2)
    fine = librosa.yin(x, fmin=fmin, fmax=fmax, sr=sr, frame_length=frame_length, hop_length=hop)
    n = min(coarse.size, fine.size)
    coarse, voiced, fine = coarse[:n], voiced[:n], fine[:n]
    ok = voiced & np.isfinite(coarse) & np.isfinite(fine) & (fine > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        agree = np.abs(1200 * np.log2(fine / np.where(ok, coarse, 1.0))) < 35.0
    return fine, ok & agree


def vibrato_statistics(f0: np.ndarray, usable: np.ndarray, hop: float = F0_HOP_SECONDS) -> dict[str, np.ndarray]:
    """vibrato_rate (Hz) and vibrato_depth (cents) per sustained note of an f0 track."""
    rates, depths = [], []
    if f0.size == 0:
        return {"vibrato_rate": np.zeros(0), "vibrato_depth": np.zeros(0)}
    cents = np.where(usable, 1200 * np.log2(np.where(usable, f0, 1.0) / 440.0), 0.0)
    jump = np.zeros(cents.size, bool)
    jump[1:] = np.abs(np.diff(cents)) > 70.0  # a new note (or an octave slip)
    starts = usable & (jump | ~np.concatenate([[False], usable[:-1]]))
    ids = np.where(usable, np.cumsum(starts), 0)
    trim, min_len = 3, round(MIN_NOTE_SECONDS / hop)  # 30 ms off each end: the transitions
    for note in range(1, int(ids.max()) + 1 if ids.size else 1):
        frames = np.flatnonzero(ids == note)
        seg = cents[frames[0] + trim:frames[-1] + 1 - trim]
        if seg.size >= min_len:
            rate, depth = _modulation(seg, hop)
            rates.append(rate)
            depths.append(depth)
    return {"vibrato_rate": np.array(rates), "vibrato_depth": np.array(depths)}


def _modulation(cents: np.ndarray, hop: float) -> tuple[float, float]:
    """Peak rate (Hz) of the 3-9 Hz modulation of a note's cents around its quadratic
    trend, and its depth: sqrt(2) times the RMS of that band (cents)."""
    t = np.arange(cents.size) * hop
    trend = np.polyval(np.polyfit(t, cents, 2), t)
    dev = cents - trend
    n = dev.size
    spectrum = np.fft.rfft(dev)
    freqs = np.fft.rfftfreq(n, hop)
    band = (freqs >= VIBRATO_BAND[0]) & (freqs <= VIBRATO_BAND[1])
    band_rms = math.sqrt(2.0 * float(np.sum(np.abs(spectrum[band]) ** 2))) / n
    padded = max(1024, int(2 ** math.ceil(math.log2(4 * n))))
    fine = np.abs(np.fft.rfft(dev * np.hanning(n), padded))
    fine_freqs = np.fft.rfftfreq(padded, hop)
    fine_band = (fine_freqs >= VIBRATO_BAND[0]) & (fine_freqs <= VIBRATO_BAND[1])
    rate = float(fine_freqs[fine_band][np.argmax(fine[fine_band])])
    return rate, math.sqrt(2.0) * band_rms


def pitch_range(instrument: str) -> tuple[float, float]:
    """f0 search range: the instrument's catalogue range widened by 3 semitones."""
    inst = catalogue.find(instrument)
    low, high = (inst.low, inst.high) if inst is not None else (28, 100)
    return float(librosa.midi_to_hz(max(24, low - 3))), float(librosa.midi_to_hz(min(108, high + 3)))


def stem_statistics(x: np.ndarray, sr: int, instrument: str, cfg: AnalysisConfig) -> dict[str, np.ndarray]:
    """Every statistic but level_balance of one mono stem at the analysis rate."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    out = spectral_statistics(x, sr, third_octave_bands(sr), cfg.max_frames)
    onsets = onset_times(x, sr)
    out.update(note_statistics(x, sr, onsets))
    out["decay_rt"] = decay_times(x, sr)
    # f0 on pyin_seconds from the first active frame, at the pyin rate
    env, hop = _envelope_db(x, sr, 0.064, 0.016)
    first = int(np.argmax(_active(env)) * hop * sr) if env.size else 0
    excerpt = x[first:first + int(cfg.pyin_seconds * sr)]
    excerpt = _resample(excerpt, sr, min(cfg.pyin_rate, sr))
    fmin, fmax = pitch_range(instrument)
    fmax = min(fmax, 0.45 * min(cfg.pyin_rate, sr) / 2)
    f0, usable = f0_track(excerpt, min(cfg.pyin_rate, sr), fmin, fmax)
    out.update(vibrato_statistics(f0, usable))
    return {k: _cap(np.asarray(v, dtype=np.float32), cfg.max_frames) if k != "ltas" else np.asarray(v, np.float32)
            for k, v in out.items()}


def level_balance(parts: np.ndarray, sr: int) -> np.ndarray:
    """(parts, chunks): each part's energy over the mixture's in dB, per CHUNK_SECONDS chunk."""
    mix = parts.sum(axis=0)
    step = int(CHUNK_SECONDS * sr)
    out = []
    for start in range(0, max(1, parts.shape[-1] - step // 2), step):
        e_mix = float(np.sum(mix[start:start + step].astype(np.float64) ** 2))
        e_parts = np.sum(parts[:, start:start + step].astype(np.float64) ** 2, axis=1)
        if e_mix > 0:
            out.append(_frame_db(e_parts) - 10 * math.log10(e_mix))
    return np.array(out).T if out else np.zeros((parts.shape[0], 0))


def _resample(x: np.ndarray, rate: int, target: int) -> np.ndarray:
    if rate == target:
        return x
    g = gcd(int(rate), int(target))
    return _signal.resample_poly(x, target // g, rate // g, axis=-1).astype(np.float32)


def track_statistics(parts: np.ndarray, rate: int, instruments: list[str], cfg: AnalysisConfig) -> list[dict]:
    """Per part, every statistic of one track: ``parts`` (n_parts, channels, samples) at
    ``rate``, averaged to mono, resampled to the analysis rate and cut to max_seconds."""
    mono = parts.mean(axis=1)[:, : int(cfg.max_seconds * rate)]
    mono = _resample(mono, rate, cfg.sample_rate)
    balance = level_balance(mono, cfg.sample_rate)
    out = []
    for i, inst in enumerate(instruments):
        stats = stem_statistics(mono[i], cfg.sample_rate, inst, cfg)
        stats["level_balance"] = balance[i].astype(np.float32)
        out.append(stats)
    return out


# -- sources: corpora and real data sets, one track at a time ------------------------------


@dataclass(frozen=True)
class TrackSource:
    """Where one track is and how to load it."""

    name: str
    kind: str  # "corpus", "bach10", "urmp", "folder"
    path: Path
    parts: tuple[str, ...] = ()
    instruments: tuple[str, ...] = ()
    sounds: tuple[str, ...] = ()  # corpus tracks: per part "soundfont:instrument that played it"


def track_sounds(folder: Path) -> tuple[str, ...]:
    """Per part of a corpus track, the sound that played it (see the module docstring); empty
    when the track's metadata cannot say."""
    try:
        parts = json.loads((folder / corpus_format.METADATA).read_text())["parts"]
        return tuple(f"{p['soundfont']}:{played_by(p)}" for p in parts)
    except (OSError, ValueError, KeyError, TypeError):
        return ()


def _audio_file(folder: Path, part: str) -> Path | None:
    for ext in (".wav", ".flac"):
        if (folder / f"{part}{ext}").is_file():
            return folder / f"{part}{ext}"
    return None


def _read(path: Path) -> tuple[np.ndarray, int]:
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # noqa: BLE001  (soundfile raises several types for unreadable files)
        raise UserError(f"{path}: cannot read audio ({' '.join(str(exc).split())})") from None
    if data.shape[0] == 0:
        raise UserError(f"{path}: the file holds no samples")
    if not np.isfinite(data).all():
        raise UserError(f"{path}: holds NaN or infinite samples")
    return np.ascontiguousarray(data.T), int(sr)


def _read_parts(folder: Path, parts: tuple[str, ...]) -> tuple[np.ndarray, int]:
    audio, rate = [], None
    for part in parts:
        path = _audio_file(folder, part)
        if path is None:
            raise UserError(f"{folder / part}.wav: stem file is missing")
        data, sr = _read(path)
        if rate is not None and sr != rate:
            raise UserError(f"{path}: sample rate {sr} Hz differs from the track's other stems ({rate} Hz)")
        rate = sr
        audio.append(data)
    n = min(a.shape[-1] for a in audio)
    channels = min(a.shape[0] for a in audio)
    return np.stack([a[:channels, :n] for a in audio]), int(rate)


def load_track(source: TrackSource, dry: bool = False) -> tuple[list[str], np.ndarray, int]:
    """(instruments, stems (parts, channels, samples), rate) of one track; ``dry``: the
    anechoic stems of a corpus track."""
    if source.kind == "corpus":
        folder = source.path / (corpus_format.DRY if dry else corpus_format.STEMS)
        stems, rate = _read_parts(folder, source.parts)
        return list(source.instruments), stems, rate
    track = datasets.load_dataset(f"{source.kind}:{source.path}")[0]
    return list(track.instruments), track.stems, track.sample_rate


def open_sources(spec: str | os.PathLike, max_tracks: int | None = None, what: str = "corpus") -> list[TrackSource]:
    """The tracks of a corpus folder (or ``folder:PATH``), or of ``KIND:PATH`` (bach10,
    urmp), evenly spread over the set when there are more than ``max_tracks``."""
    text = os.fspath(spec)
    kind, sep, path = text.partition(":")
    if sep and kind.lower() in datasets.KINDS:
        kind, root = kind.lower(), Path(path).expanduser()
    elif sep and not Path(text).exists() and len(kind) > 1:
        raise UserError(f"{what} '{text}': unknown dataset kind '{kind}' (expected a corpus folder or "
                        f"KIND:PATH with KIND one of {', '.join(datasets.KINDS)})")
    else:
        kind, root = "folder", Path(text).expanduser()
    if not root.is_dir():
        raise UserError(f"{root}: {what} folder not found")
    if kind == "folder":
        if corpus_format.is_corpus(root):
            sources = [TrackSource(e.track_id, "corpus", e.folder, tuple(e.parts), tuple(e.instruments))
                       for e in corpus_format.read_manifest(root)]
            # the metadata of the selected tracks only: the sound of each part, for by_source
            sources = [replace(t, sounds=track_sounds(t.path)) for t in _spread(sources, max_tracks)]
        else:
            folders = datasets._track_folders(root)
            if not folders:
                raise UserError(f"{root}: not a corpus (no {corpus_format.MANIFEST}) and no track folders with stems/")
            sources = [TrackSource(f.name, "folder", f) for f in folders]
    elif kind == "bach10":
        pieces = [root] if datasets._is_bach10_piece(root) else sorted(
            p for p in root.iterdir() if datasets._is_bach10_piece(p))
        sources = [TrackSource(p.name, kind, p) for p in pieces]
    else:  # urmp
        pieces = [root] if datasets._urmp_stems(root) else sorted(
            p for p in root.iterdir() if p.is_dir() and datasets._urmp_stems(p))
        sources = [TrackSource(p.name, kind, p) for p in pieces]
    if not sources:
        raise UserError(f"{root}: no {kind} tracks found")
    return _spread(sources, max_tracks)


def _spread(sources: list[TrackSource], max_tracks: int | None) -> list[TrackSource]:
    """At most ``max_tracks`` of ``sources``, evenly spread over them."""
    if max_tracks is not None and len(sources) > max_tracks:
        picks = np.unique(np.linspace(0, len(sources) - 1, max_tracks).round().astype(int))
        sources = [sources[i] for i in picks]
    return sources


def has_dry(sources: list[TrackSource]) -> bool:
    return all(s.kind == "corpus" and (s.path / corpus_format.DRY).is_dir() for s in sources)


def probe_rate(source: TrackSource) -> int:
    """The sample rate of a track, from one file's header."""
    if source.kind == "corpus":
        path = _audio_file(source.path / corpus_format.STEMS, source.parts[0])
    else:
        candidates = sorted(source.path.rglob("*.wav")) + sorted(source.path.rglob("*.flac"))
        path = candidates[0] if candidates else None
    if path is None:
        raise UserError(f"{source.path}: no audio files")
    try:
        return int(sf.info(str(path)).samplerate)
    except Exception as exc:  # noqa: BLE001  (as in _read)
        raise UserError(f"{path}: cannot read audio ({' '.join(str(exc).split())})") from None


def _analyse(task: tuple[TrackSource, bool, AnalysisConfig]) -> tuple[list[str], list[dict]]:
    source, dry, cfg = task
    insts, stems, rate = load_track(source, dry=dry)
    return insts, track_statistics(stems, rate, insts, cfg)


def collect(sources: list[TrackSource], label: str, cfg: AnalysisConfig, dry: bool = False, jobs: int = 1,
            progress: bool = True, source_name: str = "") -> SetStatistics:
    """Analyse every track of ``sources`` (one at a time per worker) into a SetStatistics."""
    result = SetStatistics(label, source_name, bands_hz=third_octave_bands(cfg.sample_rate))
    tasks = [(s, dry, cfg) for s in sources]
    bar = tqdm(total=len(tasks), desc=f"realism: {label}", unit="track", disable=not progress)
    try:
        if jobs <= 1 or len(tasks) <= 1:
            results = map(_analyse, tasks)
            for source, (insts, stats) in zip(sources, results):
                _add(result, source, insts, stats)
                bar.update()
        else:
            with _pool(jobs) as pool:
                for source, (insts, stats) in zip(sources, pool.map(_analyse, tasks)):
                    _add(result, source, insts, stats)
                    bar.update()
    finally:
        bar.close()
    return result


def _add(result: SetStatistics, source: TrackSource, insts: list[str], stats: list[dict]) -> None:
    result.tracks.append(source.name)
    if len(source.sounds) == len(insts):
        for inst, sound, values in zip(insts, source.sounds, stats):
            result.by_source.setdefault(inst, SetStatistics(result.label, sound)).add(sound, values)
    # one entry per track and instrument: an instrument that plays two parts pools them
    per_inst: dict[str, list[dict]] = {}
    for inst, values in zip(insts, stats):
        per_inst.setdefault(inst, []).append(values)
    for inst, items in per_inst.items():
        merged = {}
        for name in STAT_NAMES:
            arrays = [v[name] for v in items]
            if name == "ltas":
                rows = [a for a in arrays if a.size]
                merged[name] = np.mean(rows, axis=0) if rows else np.zeros(0, np.float32)
            else:
                merged[name] = np.concatenate(arrays)
        result.add(inst, merged)


def _pool(jobs: int) -> cf.ProcessPoolExecutor:
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    return cf.ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context(method),
                                  initializer=die_with_parent, initargs=(os.getpid(),))


# -- distances -----------------------------------------------------------------------------


def distance(stat: str, a: np.ndarray, b: np.ndarray) -> float:
    """The distance of one statistic between two sets' pooled values (NaN where either is empty)."""
    if stat == "ltas":
        if a.size == 0 or b.size == 0 or a.shape[1] != b.shape[1]:
            return math.nan
        return float(np.mean(np.abs(a.mean(axis=0) - b.mean(axis=0))))
    if a.size == 0 or b.size == 0:
        return math.nan
    return float(_stats.wasserstein_distance(a, b))


def compare(a: SetStatistics, b: SetStatistics) -> dict[str, dict[str, float]]:
    """{statistic: {instrument: distance}} over the instruments of ``b`` (NaN where ``a`` lacks one)."""
    return {stat: {inst: distance(stat, a.pooled(inst, stat), b.pooled(inst, stat)) for inst in b.instruments}
            for stat in STAT_NAMES}


def piece_spread(real: SetStatistics) -> dict[str, dict[str, float]]:
    """How far real recordings are from each other: each track against all the others,
    averaged (NaN with fewer than two tracks)."""
    out = {}
    for stat in STAT_NAMES:
        out[stat] = {}
        for inst in real.instruments:
            n = len(real.values[inst][stat])
            values = []
            for i in range(n):
                one = real.values[inst][stat][i]
                one = one[None, :] if stat == "ltas" and one.size else one
                values.append(distance(stat, one, real.pooled(inst, stat, exclude=i)))
            finite = [v for v in values if math.isfinite(v)]
            out[stat][inst] = float(np.mean(finite)) if n >= 2 and finite else math.nan
    return out


def summarize(values: np.ndarray) -> dict:
    if values.size == 0:
        return {"n": 0, "median": None, "p10": None, "p90": None, "std": None}
    p10, med, p90 = np.percentile(values, [10, 50, 90])
    return {"n": int(values.size), "median": _num(med), "p10": _num(p10), "p90": _num(p90), "std": _num(values.std())}


def _num(value) -> float | None:
    value = float(value)
    return round(value, 4) if math.isfinite(value) else None


# -- the report ----------------------------------------------------------------------------


def realism_report(corpus: str | os.PathLike, real: str, out_dir: str | os.PathLike, *, max_tracks: int = 40,
                   overwrite: bool = False, dry: bool | None = None, jobs: int = 1, pyin_seconds: float = 20.0,
                   max_seconds: float = 60.0, progress: bool = True,
                   log: Callable[[str], None] | None = None) -> dict:
    """Compare ``corpus`` (a corpus folder, or ``KIND:PATH``) with ``real`` (``KIND:PATH``)
    and write report.md, report.json and one PNG a statistic into ``out_dir``.

    ``dry``: also analyse the corpus's dry stems (default: when every selected track has
    them). Returns the JSON report.
    """
    log = log or (lambda message: None)
    if max_tracks is not None and max_tracks < 1:
        raise UserError(f"--max-tracks {max_tracks}: must be at least 1")
    if jobs < 1:
        raise UserError(f"--jobs {jobs}: must be at least 1")
    check_output_dir(out_dir, overwrite=overwrite)
    synth_sources = open_sources(corpus, max_tracks, what="corpus")
    real_sources = open_sources(real, max_tracks, what="real data set")
    if dry is None:
        dry = has_dry(synth_sources)
    elif dry and not has_dry(synth_sources):
        raise UserError(f"{corpus}: has no dry stems (generate it with --dry)")
    rate = min(MAX_RATE, probe_rate(synth_sources[0]), probe_rate(real_sources[0]))
    cfg = AnalysisConfig(sample_rate=rate, pyin_seconds=pyin_seconds, max_seconds=max_seconds)
    log(f"realism: {len(synth_sources)} synthetic and {len(real_sources)} real tracks at {rate} Hz"
        + (" (and the dry stems)" if dry else ""))
    sets = {REAL: collect(real_sources, REAL, cfg, jobs=jobs, progress=progress, source_name=str(real))}
    sets[SYNTHETIC] = collect(synth_sources, SYNTHETIC, cfg, jobs=jobs, progress=progress, source_name=str(corpus))
    if dry:
        sets[SYNTHETIC_DRY] = collect(synth_sources, SYNTHETIC_DRY, cfg, dry=True, jobs=jobs, progress=progress,
                                      source_name=str(corpus))
    report = build_report(sets, cfg)
    with atomic_directory(out_dir, overwrite=overwrite) as tmp:
        write_report(report, sets, tmp)
    return report


def build_report(sets: dict[str, SetStatistics], cfg: AnalysisConfig) -> dict:
    """The JSON report: distances, real piece-to-piece spread, ratios, summaries, ranking."""
    real = sets[REAL]
    compared = [k for k in (SYNTHETIC, SYNTHETIC_DRY) if k in sets]
    instruments = real.instruments
    spread = piece_spread(real)
    distances = {k: compare(sets[k], real) for k in compared}
    table = {}
    for stat in STAT_NAMES:
        table[stat] = {}
        for inst in instruments:
            row = {k: _num(distances[k][stat][inst]) for k in compared}
            row["real_spread"] = _num(spread[stat][inst])
            for k in compared:
                d, s = distances[k][stat][inst], spread[stat][inst]
                row[f"{k}_ratio"] = _num(d / s) if math.isfinite(d) and math.isfinite(s) and s > 0 else None
            table[stat][inst] = row
    summaries = {stat: {inst: {k: summarize(sets[k].pooled(inst, stat)) for k in sets}
                        for inst in instruments} for stat in STAT_NAMES if stat != "ltas"}
    vibrato_share = {inst: {k: _share(sets[k].pooled(inst, "vibrato_depth")) for k in sets} for inst in instruments}
    ltas = {"bands_hz": [round(float(b), 1) for b in real.bands_hz],
            "mean_db": {inst: {k: [_num(v) for v in (sets[k].pooled(inst, "ltas").mean(axis=0)
                                                   if sets[k].pooled(inst, "ltas").size else [])]
                               for k in sets} for inst in instruments}}
    ranking = []
    for stat in STAT_NAMES:
        ratios = [table[stat][i].get(f"{SYNTHETIC}_ratio") for i in instruments]
        ratios = [r for r in ratios if r is not None]
        ranking.append({"statistic": stat, "median_ratio": _num(np.median(ratios)) if ratios else None,
                        "max_ratio": _num(max(ratios)) if ratios else None})
    ranking.sort(key=lambda r: -(r["median_ratio"] if r["median_ratio"] is not None else -1.0))
    own = sets.get(SYNTHETIC_DRY) or sets.get(SYNTHETIC)  # a source's own sound: the dry stems where there are
    by_source = {stat: {inst: {sound: {"distance": _num(distance(stat, per.pooled(sound, stat), real.pooled(inst, stat))),
                                       **({} if stat == "ltas" else summarize(per.pooled(sound, stat)))}
                               for sound in per.instruments}
                        for inst, per in own.by_source.items() if inst in instruments}
                 for stat in STAT_NAMES} if own is not None else {}
    return {
        "ensemble_synth": __version__,
        "sets": {k: {"label": SET_LABELS[k], "source": s.source, "tracks": s.tracks} for k, s in sets.items()},
        "analysis": asdict(cfg),
        "statistics": {s.name: {"title": s.title, "unit": s.unit, "distance": s.what} for s in STATISTICS},
        "instruments": instruments,
        "distances": table,
        "summaries": summaries,
        "vibrato_share": vibrato_share,
        "ltas": ltas,
        "ranking": ranking,
        "by_source": {"set": own.label if own is not None else None, "statistics": by_source},
    }


def _share(depths: np.ndarray) -> float | None:
    return _num(np.mean(depths >= VIBRATO_PRESENT_CENTS)) if depths.size else None


def _fmt(value, digits: int = 2) -> str:
    return "n/a" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.{digits}f}"


BY_SOURCE_SHOWN = 4  # statistics whose per-source table report.md shows


def markdown(report: dict) -> str:
    """report.md: the distances, the ranking and the medians, side by side."""
    insts = report["instruments"]
    compared = [k for k in (SYNTHETIC, SYNTHETIC_DRY) if k in report["sets"]]
    lines = ["# Realism report: synthetic vs real", ""]
    for key, info in report["sets"].items():
        lines.append(f"- **{info['label']}**: `{info['source']}`, {len(info['tracks'])} tracks")
    a = report["analysis"]
    method = (f"Per part stem, mono, at {a['sample_rate']} Hz, the first {a['max_seconds']:g} s; f0 on "
              f"{a['pyin_seconds']:g} s at {a['pyin_rate']} Hz. Distances: Wasserstein in the statistic's unit "
              "(LTAS: mean absolute band difference in dB). *spread*: real recordings against each other "
              "(each against the rest, averaged); *ratio*: synthetic distance / spread.")
    lines += ["", method, ""]
    lines += ["## Which statistics differ most", "",
              "| rank | statistic | unit | median ratio over instruments | max ratio |", "|---:|---|---|---:|---:|"]
    for n, row in enumerate(report["ranking"], 1):
        stat = report["statistics"][row["statistic"]]
        lines.append(f"| {n} | {row['statistic']} | {stat['unit']} | {_fmt(row['median_ratio'])} | {_fmt(row['max_ratio'])} |")
    lines += ["", "## Distances per statistic and instrument", ""]
    header = "| statistic | unit | " + " | ".join(insts) + " |"
    lines += [f"Each cell: {' / '.join(compared)} distance (real spread) [ratio].", "", header,
              "|---|---|" + "---:|" * len(insts)]
    for stat, per_inst in report["distances"].items():
        cells = []
        for inst in insts:
            row = per_inst[inst]
            dist = " / ".join(_fmt(row[k]) for k in compared)
            cells.append(f"{dist} ({_fmt(row['real_spread'])}) [{_fmt(row.get(SYNTHETIC + '_ratio'), 1)}]")
        lines.append(f"| {stat} | {report['statistics'][stat]['unit']} | " + " | ".join(cells) + " |")
    lines += ["", "## Medians (10th-90th percentile)", "", "| statistic | set | " + " | ".join(insts) + " |",
              "|---|---|" + "---|" * len(insts)]
    for stat, per_inst in report["summaries"].items():
        for key in report["sets"]:
            cells = []
            for inst in insts:
                s = per_inst[inst][key]
                cells.append("n/a" if not s["n"] else f"{_fmt(s['median'], 1)} ({_fmt(s['p10'], 1)}..{_fmt(s['p90'], 1)}) n={s['n']}")
            lines.append(f"| {stat} | {key} | " + " | ".join(cells) + " |")
    lines += ["", "Share of sustained notes with vibrato depth >= 10 cents: " + "; ".join(
        f"{inst}: " + ", ".join(f"{k} {_fmt(v)}" for k, v in report["vibrato_share"][inst].items()) for inst in insts), ""]
    by_source = report.get("by_source", {}).get("statistics") or {}
    if any(by_source.values()):
        top = [r["statistic"] for r in report["ranking"] if r["statistic"] != "ltas"][:BY_SOURCE_SHOWN]
        lines += [f"## By sound source ({report['by_source']['set']} stems against the real part's instrument)", "",
                  f"The {len(top)} statistics ranked first above (every statistic is in report.json); where a "
                  "part was played by another instrument's program or recordings, the sound is that one's.", "",
                  "| statistic | part | sound | n | median | distance |", "|---|---|---|---:|---:|---:|"]
        for stat in top:
            for inst, sounds in by_source[stat].items():
                for sound, row in sorted(sounds.items(), key=lambda kv: -(kv[1]["distance"] or 0.0)):
                    lines.append(f"| {stat} | {inst} | {sound} | {row['n']} | {_fmt(row['median'], 1)} | {_fmt(row['distance'])} |")
        lines.append("")
    lines += ["## Plots", ""] + [f"- `{s}.png`: {report['statistics'][s]['title']}" for s in STAT_NAMES]
    lines += ["- `overview.png`: ratio of the synthetic distance to the real spread, per statistic and instrument", ""]
    return "\n".join(lines)


def write_report(report: dict, sets: dict[str, SetStatistics], out_dir: Path) -> None:
    out_dir = Path(out_dir)
    write_json_atomic(out_dir / "report.json", report)
    write_text_atomic(out_dir / "report.md", markdown(report))
    for stat in STAT_NAMES:
        write_bytes_atomic(out_dir / f"{stat}.png", _figure(stat, report, sets))
    write_bytes_atomic(out_dir / "overview.png", _overview(report))


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _panels(n: int):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols = min(4, max(1, n))
    rows = math.ceil(n / cols) if n else 1
    fig = Figure(figsize=(3.6 * cols + 0.4, 3.0 * rows + 0.8), dpi=100)
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(max(1, n))]
    return fig, axes


def _figure(stat: str, report: dict, sets: dict[str, SetStatistics]) -> bytes:
    info = BY_NAME[stat]
    insts = report["instruments"]
    fig, axes = _panels(len(insts))
    for ax, inst in zip(axes, insts):
        row = report["distances"][stat][inst]
        if stat == "ltas":
            bands = sets[REAL].bands_hz
            for key, s in sets.items():
                curves = s.pooled(inst, stat)
                if curves.size:
                    lo, hi = np.percentile(curves, [25, 75], axis=0)
                    ax.fill_between(bands, lo, hi, color=SET_COLOURS[key], alpha=0.15, linewidth=0)
                    ax.semilogx(bands, curves.mean(axis=0), color=SET_COLOURS[key], label=SET_LABELS[key])
            ax.set_xlabel("band centre (Hz)")
            ax.set_ylabel("band level re stem (dB)")
        else:
            pooled = {key: s.pooled(inst, stat) for key, s in sets.items()}
            everything = np.concatenate([v for v in pooled.values() if v.size] or [np.zeros(1)])
            lo, hi = np.percentile(everything, [1, 99])
            if hi <= lo:
                lo, hi = lo - 0.5, hi + 0.5
            bins = np.linspace(lo, hi, 31)
            for key, values in pooled.items():
                if values.size:
                    ax.hist(np.clip(values, lo, hi), bins=bins, density=True, histtype="step", linewidth=1.6,
                            color=SET_COLOURS[key], label=f"{SET_LABELS[key]} (n={values.size})")
            ax.set_xlabel(f"{stat} ({info.unit})")
            ax.set_ylabel("density")
        dist = row.get(SYNTHETIC)
        ax.set_title(f"{inst}\ndistance {_fmt(dist)} {info.unit}, real spread {_fmt(row['real_spread'])}", fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(info.title)
    fig.tight_layout()
    return _png(fig)


def _overview(report: dict) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    insts = report["instruments"]
    grid = np.array([[report["distances"][s][i].get(f"{SYNTHETIC}_ratio") or np.nan for i in insts] for s in STAT_NAMES],
                    dtype=float)
    fig = Figure(figsize=(2.0 + 1.6 * len(insts), 5.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(np.log2(np.clip(grid, 1 / 16, 16)), cmap="RdYlGn_r", vmin=-4, vmax=4, aspect="auto")
    ax.set_xticks(range(len(insts)), insts, rotation=20)
    ax.set_yticks(range(len(STAT_NAMES)), STAT_NAMES)
    for r in range(grid.shape[0]):
        for c in range(grid.shape[1]):
            ax.text(c, r, _fmt(grid[r, c], 1), ha="center", va="center", fontsize=8)
    fig.colorbar(image, ax=ax, label="log2(synthetic distance / real spread)")
    ax.set_title("Synthetic vs real: distance in units of the real piece-to-piece spread")
    fig.tight_layout()
    return _png(fig)
