"""Training data from a generated corpus: manifest, source layout, random and fixed segments.

The mixture is always built as the sum of the (resampled) stems, so ``mix == sum(targets)``
holds exactly for every example, remixed or not.
"""

from __future__ import annotations

import math
from concurrent.futures import Executor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from ..corpus.format import TrackEntry
from ..errors import UserError
from ..music import instruments as catalogue
from .score_roll import FEATURES, performed_midi, score_roll, track_midi_notes


@dataclass(frozen=True)
class SourceLayout:
    """What the model outputs and which parts of a track make each output."""

    output_names: tuple[str, ...]
    instruments: tuple[str, ...]
    target: str | None = None  # canonical instrument in target mode, else None

    def groups(self, track: TrackEntry) -> list[list[str]]:
        """For each output, the part names of ``track`` that sum into it."""
        if self.target is None:
            return [[p] for p in track.parts]
        target = [p for p, i in zip(track.parts, track.instruments) if _canonical(i) == self.target]
        rest = [p for p in track.parts if p not in target]
        return [target, rest]

    def to_dict(self) -> dict:
        return {"output_names": list(self.output_names), "instruments": list(self.instruments), "target": self.target}


def _canonical(name: str) -> str:
    inst = catalogue.find(name)
    return inst.name if inst else name


def plan_layout(tracks: list[TrackEntry], target: str | None, corpus_dir: str | Path) -> tuple[SourceLayout, list[TrackEntry]]:
    """The output layout for ``tracks`` and the tracks that serve it.

    Fixed-ensemble mode (no target): every track must have the same parts in the same order.
    Target mode: the tracks holding the target instrument; output is [target, accompaniment].
    """
    if target is None:
        line_ups = {}
        for t in tracks:
            line_ups.setdefault(t.parts, t)
        if len(line_ups) > 1:
            shown = "; ".join(f"{t.ensemble or t.track_id}: {','.join(p)}" for p, t in list(line_ups.items())[:3])
            raise UserError(f"{corpus_dir}: corpus has {len(line_ups)} different ensembles ({shown}); "
                            "a fixed-ensemble model needs one, or train with --target INSTRUMENT")
        first = tracks[0]
        return SourceLayout(first.parts, tuple(_canonical(i) for i in first.instruments)), tracks
    target = catalogue.get(target).name
    chosen = [t for t in tracks if any(_canonical(i) == target for i in t.instruments)]
    if not chosen:
        raise UserError(f"{corpus_dir}: no track has the target instrument '{target}'")
    return SourceLayout((target, "accompaniment"), (target, "accompaniment"), target), chosen


STEM_LENGTH_TOLERANCE_SECONDS = 0.001  # the manifest rounds durations to 1 ms (error up to 0.5 ms)


def check_stems(tracks: list[TrackEntry], tolerance: float = STEM_LENGTH_TOLERANCE_SECONDS) -> None:
    """Every stem of ``tracks`` exists and agrees with its manifest row: sample rate, channels and
    length (within ``tolerance`` seconds of the duration). Reads headers only (soundfile.info).

    A truncated or foreign stem would otherwise be zero-padded into training without a word.
    """
    for track in tracks:
        for part in track.parts:
            path = track.stem_path(part)
            if not path.is_file():
                raise UserError(f"{path}: stem not found (track {track.track_id} lists part {part})")
            try:
                info = sf.info(str(path))
            except Exception as exc:  # soundfile raises several types for unreadable files
                raise UserError(f"{path}: cannot read stem: {' '.join(str(exc).split())[:160]}") from None
            if info.samplerate != track.sample_rate:
                raise UserError(f"{path}: stem sample rate {info.samplerate} Hz differs from the manifest's "
                                f"{track.sample_rate} Hz")
            if info.channels != track.channels:
                raise UserError(f"{path}: stem has {info.channels} channel(s) but the manifest gives {track.channels}")
            seconds = info.frames / info.samplerate
            if abs(seconds - track.duration) > tolerance + 1e-9:
                raise UserError(f"{path}: stem has {info.frames} frames ({seconds:.3f} s) but the manifest gives "
                                f"{track.duration:.3f} s at {track.sample_rate} Hz "
                                f"({round(track.duration * track.sample_rate)} frames); truncated or foreign stem?")


def check_channels(tracks: list[TrackEntry], corpus_dir) -> int:
    counts = sorted({t.channels for t in tracks})
    if len(counts) > 1:
        raise UserError(f"{corpus_dir}: tracks have different channel counts {counts}")
    return counts[0]


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Polyphase resampling along the last axis (float32 in, float32 out)."""
    if from_rate == to_rate:
        return audio
    ratio = Fraction(to_rate, from_rate)
    return resample_poly(audio, ratio.numerator, ratio.denominator, axis=-1).astype(np.float32)


def read_stem(track: TrackEntry, part: str, start_s: float, samples: int, rate: int) -> np.ndarray:
    """One stem's segment ``(channels, <= samples)`` at ``rate`` from ``start_s`` seconds in."""
    start = int(round(start_s * track.sample_rate))
    frames = int(math.ceil(samples * track.sample_rate / rate)) + 1
    path = track.stem_path(part)
    try:
        data, _ = sf.read(str(path), start=start, frames=frames, dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise UserError(f"{path}: cannot read stem: {exc}") from None
    return resample(np.ascontiguousarray(data.T), track.sample_rate, rate)[:, :samples]


def read_sources(track: TrackEntry, groups: list[list[str]], start_s: float, samples: int, rate: int,
                 readers: Executor | None = None) -> np.ndarray:
    """Sources ``(len(groups), channels, samples)`` at ``rate`` from ``start_s`` seconds in; zero-padded.

    ``readers``: a thread pool that reads (and resamples) the stems concurrently; same result.
    """
    parts = list(dict.fromkeys(part for group in groups for part in group))
    stems = dict(zip(parts, (readers.map if readers else map)(
        lambda part: read_stem(track, part, start_s, samples, rate), parts)))
    out = np.zeros((len(groups), track.channels, samples), dtype=np.float32)
    for index, group in enumerate(groups):
        for part in group:
            out[index, :, : stems[part].shape[1]] += stems[part]
    return out


class SegmentSampler:
    """Random training examples: segments of tracks, optionally remixed across tracks."""

    def __init__(self, tracks: list[TrackEntry], layout: SourceLayout, rate: int, samples: int,
                 remix: float = 0.0, gain_db: float = 0.0):
        self.tracks, self.layout, self.rate, self.samples = tracks, layout, rate, samples
        self.remix, self.gain_db = remix, gain_db
        durations = np.array([t.duration for t in tracks], dtype=np.float64)
        self.weights = durations / durations.sum()
        self.seconds = samples / rate

    def _pick(self, rng: np.random.Generator) -> tuple[TrackEntry, float]:
        track = self.tracks[int(rng.choice(len(self.tracks), p=self.weights))]
        start = float(rng.uniform(0.0, max(0.0, track.duration - self.seconds)))
        return track, start

    def example(self, rng: np.random.Generator, readers: Executor | None = None) -> np.ndarray:
        """Sources ``(sources, channels, samples)``; their sum is the mixture. ``readers``: a
        thread pool to read the stems with (the random draws stay in this thread, in order)."""
        return self.example_and_origins(rng, readers)[0]

    def example_and_origins(self, rng: np.random.Generator,
                            readers: Executor | None = None) -> tuple[np.ndarray, list[tuple[TrackEntry, float]]]:
        """:meth:`example`, and the (track, start in seconds) each output was read from."""
        for _ in range(10):  # skip segments where everything rests
            if rng.random() < self.remix:
                picks = []  # (track, start, gain) of each output, drawn before any is read
                for _ in self.layout.output_names:
                    track, start = self._pick(rng)
                    picks.append((track, start, 10.0 ** (rng.uniform(-self.gain_db, self.gain_db) / 20.0)))

                def read(index: int) -> np.ndarray:
                    track, start, gain = picks[index]
                    group = self.layout.groups(track)[index]
                    return read_sources(track, [group], start, self.samples, self.rate)[0] * np.float32(gain)

                stacked = np.stack(list((readers.map if readers else map)(read, range(len(picks)))))
                origins = [(track, start) for track, start, _ in picks]
            else:
                track, start = self._pick(rng)
                stacked = read_sources(track, self.layout.groups(track), start, self.samples, self.rate, readers)
                origins = [(track, start)] * len(self.layout.output_names)
            if np.abs(stacked).max() > 1e-5:
                return stacked, origins
        return stacked, origins

    def batch(self, rng: np.random.Generator, size: int, readers: Executor | None = None) -> np.ndarray:
        return np.stack([self.example(rng, readers) for _ in range(size)])


def validation_segments(tracks: list[TrackEntry], rate: int, samples: int, count: int) -> list[tuple[TrackEntry, float]]:
    """(track, start in seconds) of each of ``count`` fixed examples: evenly spread over the
    tracks (by track id) and over time within each track, no randomness."""
    tracks = sorted(tracks, key=lambda t: t.track_id)
    per_track = max(1, math.ceil(count / len(tracks)))
    seconds = samples / rate
    segments = []
    for k in range(count):
        track = tracks[k % len(tracks)]
        slot = k // len(tracks)
        segments.append((track, (slot + 0.5) / per_track * max(0.0, track.duration - seconds)))
    return segments


def validation_items(tracks: list[TrackEntry], layout: SourceLayout, rate: int, samples: int, count: int) -> np.ndarray:
    """Fixed validation examples ``(count, sources, channels, samples)`` (:func:`validation_segments`),
    so every epoch sees the same."""
    return np.stack([read_sources(track, layout.groups(track), start, samples, rate)
                     for track, start in validation_segments(tracks, rate, samples, count)])


class ScoreRolls:
    """The score rolls of training examples, from each track's performed MIDI (``midi/<part>.mid``),
    read once per part and kept. One output per part only (a roll row is a part's notes)."""

    def __init__(self, tracks: list[TrackEntry], layout: SourceLayout, where: str):
        if layout.target is not None:
            raise UserError(f"{where}: a score-conditioned model needs one output per part, not target "
                            f"'{layout.target}' against the accompaniment")
        for track in tracks:  # every file is there before training starts
            for part in track.parts:
                performed_midi(track.folder, part, where)
        self.layout, self.where = layout, where
        self._notes: dict[tuple[str, str], np.ndarray] = {}

    def notes(self, track: TrackEntry, part: str) -> np.ndarray:
        key = (str(track.folder), part)
        if key not in self._notes:
            self._notes[key] = track_midi_notes(track.folder, [part], self.where)[0]
        return self._notes[key]

    def roll(self, origins: list[tuple[TrackEntry, float]], frames: int) -> np.ndarray:
        """``(outputs, FEATURES, frames)``: output i's part of the track it was read from, from its start."""
        out = np.zeros((len(origins), FEATURES, frames), dtype=np.float32)
        for index, (track, start) in enumerate(origins):
            part = self.layout.groups(track)[index][0]
            out[index] = score_roll([self.notes(track, part)], start, frames)[0]
        return out
