"""Separating recordings of any length with a trained model: resample, chunk, overlap-add.

The model runs on one chunk at a time, so its memory is bounded by the chunk length, not
by the file's. Neighbouring chunks overlap by at least twice the model's receptive field and
are cross-faded, so away from the file's ends every output sample has full context.

A score-conditioned model also needs the notes of each of its parts (``notes=``); each chunk
gets the roll of its own window (:mod:`.score_roll`).

Two refinements, both on by default, both measured on held-out synthetic tracks of recorded
instruments the models had not heard (docs/benchmark.md, 2026-12-06, evening):

- *shifts*: the model runs on the mixture delayed by ``shifts`` evenly spaced fractions of
  its encoder hop and the estimates are averaged (Demucs's shift trick). A strided encoder
  is not shift-invariant; the average smooths out where its frames happen to fall.
- *consistency*: the estimates are moved to sum to the mixture, each taking an equal share
  of the residual (mixture consistency, Wisdom et al. 2019).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from .checkpoint import model_from_checkpoint, read_checkpoint
from .config import DEFAULT_SHIFTS, score_features
from .data import resample
from .device import resolve_device
from .score_roll import frames_for, score_roll

DEFAULT_CHUNK_SECONDS = 10.0
MIN_OVERLAP_SECONDS = 0.5


def chunk_starts(length: int, chunk: int, overlap: int, align: int = 1) -> list[int]:
    """Chunk start positions covering ``length`` samples, each a multiple of ``align``, with
    neighbours overlapping by at least ``overlap``; the last chunk ends at or past the end
    (``align`` - 1 samples at most; the caller pads)."""
    if length <= chunk:
        return [0]
    hop = max(align, (chunk - overlap - align + 1) // align * align)
    starts = list(range(0, length - chunk, hop))
    last = -(-(length - chunk) // align) * align
    if last > starts[-1]:
        starts.append(last)
    return starts


def _fade_weights(chunk: int, overlap: int, first: bool, last: bool) -> np.ndarray:
    weights = np.ones(chunk, dtype=np.float32)
    ramp = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
    if not first:
        weights[:overlap] = ramp
    if not last:
        weights[chunk - overlap:] = ramp[::-1]
    return weights


class Separator:
    """A trained model ready to separate: ``separate(mixture, rate) -> {output name: audio}``.

    ``shifts``: how many evenly spaced delays within one encoder hop the model runs on, its
    estimates averaged (1: one pass); ``consistency``: make the estimates sum to the mixture."""

    def __init__(self, model: torch.nn.Module, config: dict, layout: dict, device: torch.device,
                 source: str | None = None, shifts: int = DEFAULT_SHIFTS, consistency: bool = True):
        check_shifts(shifts)
        self.shifts = int(shifts)
        self.consistency = bool(consistency)
        self.model = model.to(device).eval()
        self.source = source  # the checkpoint it was loaded from, for messages
        self.config = config
        self.device = device
        self.sample_rate: int = int(config["model"]["sample_rate"])
        self.channels: int = int(config["model"]["channels"]) or 1
        self.output_names: list[str] = list(layout["output_names"])
        self.instruments: list[str] = list(layout["instruments"])
        self.target: str | None = layout.get("target")
        self.causal: bool = bool(config["model"]["causal"])
        self.score_features: int = score_features(config["model"])

    @property
    def conditioned(self) -> bool:
        """Whether the model reads the score (the notes of each part) beside the mixture."""
        return self.score_features > 0

    @property
    def receptive_field_samples(self) -> int:
        return self.model.receptive_field * self.model.stride + self.model.L

    def _run(self, audio: np.ndarray, notes=None, start: int = 0) -> np.ndarray:
        """Model pass on ``(batch, channels, samples)`` -> ``(batch, sources, channels, samples)``;
        ``notes`` (conditioned model): the roll of the window from sample ``start`` goes with it."""
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)).to(self.device)
            score = None
            if self.conditioned:
                roll = score_roll(notes, start / self.sample_rate, frames_for(audio.shape[-1], self.sample_rate))
                score = torch.from_numpy(np.repeat(roll[None], audio.shape[0], axis=0)).to(self.device)
            return self.model(x, score).float().cpu().numpy()

    def separate_at_model_rate(self, audio: np.ndarray, chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
                               overlap_seconds: float | None = None, notes=None) -> np.ndarray:
        """``(batch, channels, n)`` at the model's rate -> ``(batch, sources, channels, n)``, chunked,
        averaged over the separator's shifts and made to sum to ``audio`` (where it is set to);
        ``notes``: each output's notes (a conditioned model's, see :meth:`separate`)."""
        check_chunking(chunk_seconds, overlap_seconds)
        offsets = sorted({round(k * self.model.stride / self.shifts) for k in range(self.shifts)})
        total = None
        for offset in offsets:
            delayed = np.pad(audio, [(0, 0), (0, 0), (offset, 0)]) if offset else audio
            # the notes are timed from the mixture's start, so they are delayed with it
            moved = _delayed_notes(notes, offset / self.sample_rate) if offset else notes
            estimate = self._separate_chunked(delayed, chunk_seconds, overlap_seconds, moved)[..., offset:]
            total = estimate if total is None else total + estimate
        out = total / len(offsets)
        if self.consistency:
            out = mixture_consistent(out, audio)
        return out

    def _separate_chunked(self, audio: np.ndarray, chunk_seconds: float, overlap_seconds: float | None,
                          notes) -> np.ndarray:
        length = audio.shape[-1]
        overlap = max(int(round((overlap_seconds if overlap_seconds is not None else MIN_OVERLAP_SECONDS)
                                * self.sample_rate)),
                      2 * self.receptive_field_samples if overlap_seconds is None else 1)
        chunk = max(int(round(chunk_seconds * self.sample_rate)), 2 * overlap + 1)
        # every chunk on the whole signal's frame grid, so chunking does not move where frames fall
        starts = chunk_starts(length, chunk, overlap, align=self.model.stride)
        if len(starts) == 1:
            return self._run(audio, notes)
        padded = starts[-1] + chunk
        audio = np.pad(audio, [(0, 0), (0, 0), (0, padded - length)]) if padded > length else audio
        out = np.zeros((audio.shape[0], len(self.output_names), audio.shape[1], padded), dtype=np.float32)
        norm = np.zeros(padded, dtype=np.float32)
        for index, start in enumerate(starts):
            weights = _fade_weights(chunk, overlap, index == 0, index == len(starts) - 1)
            out[..., start:start + chunk] += self._run(audio[..., start:start + chunk], notes, start) * weights
            norm[start:start + chunk] += weights
        return (out / norm)[..., :length]

    def separate(self, mixture: np.ndarray, sample_rate: int, chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
                 overlap_seconds: float | None = None, adapt_channels: bool = False,
                 name: str | None = None, notes=None) -> dict[str, np.ndarray]:
        """Separate ``mixture`` ``(channels, n)`` at ``sample_rate``; returns ``{name: (channels, n)}``
        at the same rate and length. ``adapt_channels`` runs a mono model on each channel of a
        multichannel file, or a stereo model on a duplicated mono file (and averages back).

        A mixture with no samples, or with NaN or infinite samples, is refused (:class:`UserError`,
        naming ``name``, the file or track it came from, where given), as are chunk or overlap
        lengths that are not positive.

        ``notes``: for a score-conditioned model (required there, ignored otherwise), the notes
        of each output's part in output order, each ``(n, 3)`` onset s, pitch Hz, duration s
        from the mixture's start (or None for a part that rests throughout).
        """
        where = f"{name}: " if name else ""
        check_chunking(chunk_seconds, overlap_seconds)
        notes = self._checked_notes(notes, where) if self.conditioned else None
        mixture = np.asarray(mixture, dtype=np.float32)
        if mixture.ndim == 1:
            mixture = mixture[None]
        if mixture.ndim != 2:
            raise UserError(f"{where}mixture must be (channels, samples), got shape {mixture.shape}")
        check_mixture(mixture, sample_rate, name or "mixture")
        in_channels, length = mixture.shape
        if in_channels == self.channels:
            batch = mixture[None]
        elif adapt_channels and self.channels == 1:
            batch = mixture[:, None]  # each channel separately, as a batch of mono signals
        elif adapt_channels and in_channels == 1:
            batch = np.repeat(mixture, self.channels, axis=0)[None]
        else:
            raise UserError(f"{where}mixture has {in_channels} channel(s) but the model was trained on {self.channels} "
                            "(downmix or duplicate it, or use --adapt-channels)")
        audio = resample(batch, sample_rate, self.sample_rate)
        separated = self.separate_at_model_rate(audio, chunk_seconds, overlap_seconds, notes)
        separated = resample(separated, self.sample_rate, sample_rate)
        if separated.shape[-1] < length:
            separated = np.pad(separated, [(0, 0)] * 3 + [(0, length - separated.shape[-1])])
        separated = separated[..., :length]
        if in_channels == self.channels:
            result = separated[0]  # (sources, channels, n)
        elif self.channels == 1:
            result = separated[:, :, 0].transpose(1, 0, 2)  # batch was the channels
        else:
            result = separated[0].mean(axis=1, keepdims=True)
        if not np.isfinite(result).all():
            raise UserError(f"{self.source or 'the model'}: the model's output for {name or 'the mixture'} holds NaN "
                            "or infinite samples (are its weights finite?)")
        return {name: np.ascontiguousarray(result[i]) for i, name in enumerate(self.output_names)}

    def _checked_notes(self, notes, where: str) -> list:
        if notes is None:
            raise UserError(f"{where}{self.source or 'the model'} is score-conditioned: it needs the notes of each of "
                            f"its parts ({', '.join(self.output_names)}) and none were given")
        if len(notes) != len(self.output_names):
            raise UserError(f"{where}notes for {len(notes)} part(s) given, but the model separates "
                            f"{len(self.output_names)} ({', '.join(self.output_names)})")
        checked = []
        for name, rows in zip(self.output_names, notes):
            rows = None if rows is None else np.asarray(rows, dtype=np.float64)
            if rows is not None and (rows.ndim != 2 or rows.shape[1] != 3 or not np.isfinite(rows).all()
                                     or (rows[:, 1] <= 0).any()):
                raise UserError(f"{where}notes of {name}: expected finite (n, 3) rows of onset s, pitch Hz > 0, "
                                f"duration s, got shape {rows.shape}")
            checked.append(rows)
        return checked


def mixture_consistent(estimates: np.ndarray, mixture: np.ndarray) -> np.ndarray:
    """``estimates`` ``(batch, sources, channels, n)`` moved to sum to ``mixture`` ``(batch, channels, n)``:
    each takes an equal share of the residual (Wisdom et al. 2019, unweighted)."""
    residual = mixture - estimates.sum(axis=1)
    return (estimates + residual[:, None] / estimates.shape[1]).astype(np.float32)


def _delayed_notes(notes, seconds: float):
    if notes is None:
        return None
    moved = []
    for rows in notes:
        if rows is None:
            moved.append(None)
            continue
        rows = np.array(rows, dtype=np.float64)
        rows[:, 0] += seconds
        moved.append(rows)
    return moved


def check_shifts(shifts) -> None:
    """Refuse a number of shifts that is not a whole number of at least 1."""
    if isinstance(shifts, bool) or not isinstance(shifts, (int, np.integer)) or shifts < 1:
        raise UserError(f"shifts = {shifts!r}: must be a whole number of at least 1 (1: no shifts)")


def check_chunking(chunk_seconds: float, overlap_seconds: float | None = None,
                   chunk_option: str = "chunk_seconds", overlap_option: str = "overlap_seconds") -> None:
    """Refuse a chunk length (or an overlap) that is not a finite number of seconds above 0."""
    for option, value in ((chunk_option, chunk_seconds), (overlap_option, overlap_seconds)):
        if value is None and option == overlap_option:
            continue
        try:
            ok = math.isfinite(float(value)) and float(value) > 0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise UserError(f"{option} = {value}: must be a number of seconds greater than 0 and finite "
                            "(chunks shorter than twice the overlap are lengthened to that)")


def check_mixture(mixture: np.ndarray, sample_rate: int, name: str = "mixture") -> None:
    """Refuse a mixture ``(channels, n)`` with no samples or with NaN or infinite samples."""
    if mixture.shape[-1] == 0:
        raise UserError(f"{name}: the mixture holds no samples (0 frames); there is nothing to separate")
    finite = np.isfinite(mixture)
    if not finite.all():
        first = int(np.argmin(finite.all(axis=0)))
        raise UserError(f"{name}: the mixture holds {int(finite.size - finite.sum())} NaN or infinite sample(s) "
                        f"(the first at sample {first}, {first / sample_rate:.3f} s); it cannot be separated")


def load_separator(path: str | Path, device: str = "auto", shifts: int = DEFAULT_SHIFTS,
                   consistency: bool = True) -> Separator:
    """The separator saved at ``path`` (``model.pt``/``last.pt`` or a run directory); ``shifts``
    and ``consistency`` as in :class:`Separator` (the module's docstring)."""
    payload = read_checkpoint(path)
    model = model_from_checkpoint(payload)
    return Separator(model, payload["config"], payload["layout"], resolve_device(device), source=payload["_path"],
                     shifts=shifts, consistency=consistency)
