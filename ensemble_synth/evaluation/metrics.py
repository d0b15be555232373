"""Separation metrics: BSSEval v4 (museval-compatible, images mode), SI-SDR and SNR.

BSSEval v4 in images mode, as museval computes it: the 512-tap distortion filters that
project each estimate onto the delayed references are estimated once over the whole
signal, then SDR, ISR, SIR and SAR are measured per window. Where museval returns a
number we return the same one (to rounding). What museval refuses we define:

- a window where a source's reference is all zeros (a rest) gives NaN for that source
  only; NaN windows are left out of the median and counted (``silent_frames``);
- a source whose reference is all zeros over the whole signal is flagged
  (``silent_sources``), scores NaN everywhere and is left out of the projection basis
  of the others (it spans nothing); museval raises on it;
- an all-zero estimate is scored (SDR, ISR and SNR 0 dB) and flagged (``silent_estimates``);
  museval raises on it. It holds none of its reference, so its SI-SDR is -inf (never +inf:
  silence is not a perfect estimate), and its SIR and SAR, ratios of parts of the estimate
  that are all zero, are undefined (NaN);
- NaN or infinite samples in a reference or an estimate are refused (:class:`UserError`
  naming the input and the source), as is a signal with no samples.

Generally a ratio 0/0 is NaN, never +inf; x/0 for x > 0 is +inf (a perfect estimate), as in museval.

Speed comes from reading the audio once: every quantity is a quadratic form in lagged
correlations (|lag| < filters_len), so one pass of block FFTs computes each window's
correlations (their sum, plus the pairs straddling window boundaries, gives the
whole-signal ones), one Cholesky factorisation of the Gram matrix gives the filters of all
estimates (one small one per source for its own reference), and each window's energies
are the filters' own correlations weighted by the window's. Where an energy of a difference
cancels to within 1e-6 of its terms (a metric above about 60 dB) that window is recomputed
directly from the spectra of the projections, as museval computes it. The FFT chunks run on a thread per core (results do not depend on the count),
the small factorisations on one BLAS thread. With ``metrics=("SDR",)`` no filter is
estimated: in images mode SDR is the plain framewise ratio of reference energy to error energy.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import scipy.fft
import scipy.linalg

from ..errors import UserError

METRICS = ("SDR", "ISR", "SIR", "SAR")
FILTERS_LEN = 512  # museval's distortion filter length (taps)

_CORR_FFT = 4096  # largest block FFT of the lagged correlations
_CORR_CHUNK = 16  # blocks transformed at once
_SEGMENT_SAMPLES = 1 << 16  # segments of the whole-signal correlations when windows do not tile it
_MAX_KEPT_BYTES = 1 << 28  # per-window correlations kept between the passes (else computed twice)
_CANCEL_TOL = 1e-6  # relative size below which a difference of energies is recomputed directly
_MAX_THREADS = 4  # threads of the correlation pass
_MULTITHREAD_GRAM = 4096  # Gram matrices from this size keep the BLAS thread settings
_WINDOW_CHUNK_SAMPLES = 1 << 18  # direct per-window path: samples per signal transformed at once


@dataclass(frozen=True)
class Evaluation:
    """Scores of one track, per source and window.

    frames: metric name -> float64 array (n_sources, n_frames); NaN where the source's
        reference window is silent, and SIR and SAR NaN throughout for an all-zero estimate;
        +inf where an error energy is exactly zero.
    silent_frames: (n_sources,) number of NaN (silent-reference) windows per source.
    silent_sources: (n_sources,) True where the reference is all zeros over the signal.
    si_sdr, snr: (n_sources,) whole-signal SI-SDR and SNR in dB (NaN for silent sources;
        SI-SDR -inf for an all-zero estimate of a non-silent reference).
    silent_estimates: (n_sources,) True where the estimate is all zeros over the signal.
    window, hop: in samples; sample_rate in Hz.
    """

    frames: dict[str, np.ndarray]
    silent_frames: np.ndarray
    silent_sources: np.ndarray
    si_sdr: np.ndarray
    snr: np.ndarray
    window: int
    hop: int
    sample_rate: int
    silent_estimates: np.ndarray | None = None  # None (from older callers) means none is silent

    def __post_init__(self):
        if self.silent_estimates is None:
            object.__setattr__(self, "silent_estimates", np.zeros(len(self.silent_sources), dtype=bool))

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(self.frames)

    @property
    def n_sources(self) -> int:
        return len(self.silent_sources)

    @property
    def n_frames(self) -> int:
        return next(iter(self.frames.values())).shape[1]

    @property
    def frame_times(self) -> np.ndarray:
        """Start of each window in seconds."""
        return np.arange(self.n_frames) * self.hop / self.sample_rate

    def median(self, metric: str) -> np.ndarray:
        """Median over the windows that have a value, per source (NaN if none has)."""
        return _nanmedian_rows(self.frames[metric])

    def summary(self) -> dict[str, np.ndarray]:
        """Metric -> (n_sources,) array: frame medians of the BSSEval metrics, SI-SDR, SNR."""
        out = {metric: self.median(metric) for metric in self.frames}
        out["SI-SDR"] = self.si_sdr
        out["SNR"] = self.snr
        return out


def evaluate_sources(
    references: np.ndarray,
    estimates: np.ndarray,
    sample_rate: int,
    window: float | None = 1.0,
    hop: float | None = 1.0,
    metrics: Sequence[str] = METRICS,
    filters_len: int = FILTERS_LEN,
) -> Evaluation:
    """BSSEval v4 images-mode metrics per source and window, plus SI-SDR and SNR.

    references, estimates: (n_sources, channels, samples) or (n_sources, samples).
    window, hop: seconds (museval's defaults are 1.0 and 1.0); None means one window
    over the whole signal. metrics: any of SDR, ISR, SIR, SAR; SDR alone skips the
    distortion filters entirely.

    Raises :class:`UserError` for NaN or infinite samples (naming the input and the source
    index) and ValueError for arrays of the wrong shape or with no samples.
    """
    metrics = tuple(metrics)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise ValueError(f"unknown metrics {unknown} (known: {', '.join(METRICS)})")
    refs, ests = _as_sources(references, estimates)
    n_samples = refs.shape[-1]
    win = n_samples if window is None else max(1, int(round(window * sample_rate)))
    hop_n = win if hop is None else max(1, int(round(hop * sample_rate)))
    starts, win_len = _frames(n_samples, win, hop_n)

    energy, err_energy = _window_energies(refs, ests if "SDR" in metrics else None, starts, win_len)
    ref_energy, est_energy, dot, error_energy = _signal_sums(refs, ests)
    silent_sources = ref_energy == 0
    silent_estimates = est_energy == 0
    silent_windows = energy == 0

    frames: dict[str, np.ndarray] = {}
    if "SDR" in metrics:
        frames["SDR"] = _db(energy, err_energy)
    projected = [m for m in metrics if m != "SDR"]
    if projected:
        frames.update(_projection_metrics(refs, ests, silent_sources, starts, win_len, filters_len, projected))
    frames = {m: frames[m] for m in metrics}
    for values in frames.values():
        values[silent_windows] = np.nan
    return Evaluation(
        frames=frames,
        silent_frames=silent_windows.sum(axis=1),
        silent_sources=silent_sources,
        si_sdr=_si_sdr_from_sums(ref_energy, est_energy, dot),
        snr=_snr_from_sums(ref_energy, error_energy),
        window=win,
        hop=hop_n,
        sample_rate=int(sample_rate),
        silent_estimates=silent_estimates,
    )


def framewise_sdr(references: np.ndarray, estimates: np.ndarray, window: int, hop: int) -> np.ndarray:
    """The fast path: BSSEval v4 images-mode SDR per source and window (sizes in samples).

    Equal to :func:`evaluate_sources` SDR; silent reference windows give NaN.
    """
    refs, ests = _as_sources(references, estimates)
    starts, win_len = _frames(refs.shape[-1], window, hop)
    energy, err_energy = _window_energies(refs, ests, starts, win_len)
    values = _db(energy, err_energy)
    values[energy == 0] = np.nan
    return values


def si_sdr(references: np.ndarray, estimates: np.ndarray, zero_mean: bool = False) -> np.ndarray:
    """Scale-invariant SDR per source over the whole signal (Le Roux et al. 2019), in dB.

    Channels are treated as one signal. NaN for a silent reference.
    """
    refs, ests = _as_sources(references, estimates)
    if zero_mean:
        refs = refs - refs.mean(axis=(1, 2), keepdims=True)
        ests = ests - ests.mean(axis=(1, 2), keepdims=True)
    ref_energy, est_energy, dot, _ = _signal_sums(refs, ests)
    return _si_sdr_from_sums(ref_energy, est_energy, dot)


def snr(references: np.ndarray, estimates: np.ndarray) -> np.ndarray:
    """Signal-to-noise ratio per source over the whole signal, in dB (NaN for a silent reference)."""
    refs, ests = _as_sources(references, estimates)
    ref_energy, _, _, error = _signal_sums(refs, ests)
    return _snr_from_sums(ref_energy, error)


# -- helpers ---------------------------------------------------------------------------


def _as_sources(references, estimates) -> tuple[np.ndarray, np.ndarray]:
    # float32 input stays float32 (no copy); every sum and transform below runs in float64
    refs, ests = np.asarray(references), np.asarray(estimates)
    dtype = np.float32 if refs.dtype == ests.dtype == np.float32 else np.float64
    refs, ests = refs.astype(dtype, copy=False), ests.astype(dtype, copy=False)
    if refs.shape != ests.shape:
        raise ValueError(f"references {refs.shape} and estimates {ests.shape} differ in shape")
    if refs.ndim == 1:
        refs, ests = refs[None], ests[None]
    if refs.ndim == 2:
        refs, ests = refs[:, None], ests[:, None]
    if refs.ndim != 3 or refs.shape[0] == 0 or refs.shape[-1] == 0:
        raise ValueError(f"expected (sources, channels, samples) or (sources, samples), got {refs.shape}")
    for label, x in (("references", refs), ("estimates", ests)):
        bad = nonfinite_samples(x)
        if bad:
            source, sample = bad[0]
            more = f" (and {len(bad) - 1} other source(s))" if len(bad) > 1 else ""
            raise UserError(f"{label}: source {source} holds NaN or infinite samples (the first at sample {sample})"
                            f"{more}; they cannot be scored")
    return refs, ests


def nonfinite_samples(x: np.ndarray, chunk: int = 1 << 16) -> list[tuple[int, int]]:
    """(source index, first sample index) of every source of ``x`` (sources, ..., samples)
    that holds a NaN or an infinity; empty when all are finite. Chunked: no full-size mask."""
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[None]
    first = np.full(x.shape[0], -1, dtype=np.int64)
    for i in range(0, x.shape[-1], chunk):
        part = x[..., i : i + chunk]
        ok = np.isfinite(part)
        if ok.all():
            continue
        per_sample = ok.reshape(x.shape[0], -1, part.shape[-1]).all(axis=1)  # (sources, chunk)
        for s in np.flatnonzero(~per_sample.all(axis=1)):
            if first[s] < 0:
                first[s] = i + int(np.argmin(per_sample[s]))
    return [(int(s), int(first[s])) for s in np.flatnonzero(first >= 0)]


def _signal_sums(refs: np.ndarray, ests: np.ndarray, chunk: int = 1 << 16):
    """Per source: <s,s>, <e,e>, <e,s> and <e-s,e-s> over the whole signal, in one chunked pass."""
    sums = np.zeros((4, refs.shape[0]))
    for i in range(0, refs.shape[-1], chunk):
        s = refs[..., i : i + chunk].astype(np.float64)
        e = ests[..., i : i + chunk].astype(np.float64)
        d = e - s
        sums[0] += np.einsum("scn,scn->s", s, s)
        sums[1] += np.einsum("scn,scn->s", e, e)
        sums[2] += np.einsum("scn,scn->s", e, s)
        sums[3] += np.einsum("scn,scn->s", d, d)
    return sums


def _si_sdr_from_sums(ref_energy, est_energy, dot) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        target = dot**2 / ref_energy  # energy of the scaled reference
    residual = np.maximum(est_energy - target, 0.0)
    out = _db(target, residual)
    out[est_energy == 0] = -np.inf  # an all-zero estimate holds none of its reference (not 0/0)
    out[ref_energy == 0] = np.nan
    return out


def _snr_from_sums(ref_energy, error) -> np.ndarray:
    out = _db(ref_energy, error)
    out[ref_energy == 0] = np.nan
    return out


def _frames(n_samples: int, window: int, hop: int) -> tuple[np.ndarray, int]:
    """Window starts and length, as museval frames them (a trailing partial window is dropped)."""
    if window >= n_samples:
        return np.zeros(1, dtype=np.int64), n_samples
    n_frames = (n_samples - window) // hop + 1
    return np.arange(n_frames, dtype=np.int64) * hop, window


def _windows(x: np.ndarray, starts: np.ndarray, win_len: int) -> np.ndarray:
    """View (..., n_frames, win_len) of x's last axis (no copy: the starts are evenly spaced)."""
    view = np.lib.stride_tricks.sliding_window_view(x, win_len, axis=-1)
    if len(starts) == 1:
        return view[..., int(starts[0]) : int(starts[0]) + 1, :]
    hop = int(starts[1] - starts[0])
    return view[..., int(starts[0]) :: hop, :][..., : len(starts), :]


def _window_energies(refs: np.ndarray, ests: np.ndarray | None, starts: np.ndarray, win_len: int):
    """Energy per source and window, summed over channels, of the references and (if
    ests is given) of the errors ests - refs: two (n_src, n_frames) arrays (or None)."""
    ref_frames = _windows(refs, starts, win_len)
    est_frames = None if ests is None else _windows(ests, starts, win_len)
    ref_energy = np.empty((refs.shape[0], len(starts)))
    err_energy = None if ests is None else np.empty_like(ref_energy)
    chunk = max(1, (1 << 18) // win_len)
    for t0 in range(0, len(starts), chunk):
        part = ref_frames[:, :, t0 : t0 + chunk].astype(np.float64)
        ref_energy[:, t0 : t0 + chunk] = np.einsum("sctw,sctw->st", part, part)
        if est_frames is not None:
            part = est_frames[:, :, t0 : t0 + chunk] - part
            err_energy[:, t0 : t0 + chunk] = np.einsum("sctw,sctw->st", part, part)
    return ref_energy, err_energy


def _db(num, den) -> np.ndarray:
    """10 log10(num / den) with museval's conventions: den == 0 -> +inf; but 0 / 0 -> NaN
    (where nothing was measured there is no perfect score)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 10.0 * np.log10(num / den)
    return np.where(den == 0, np.where(num == 0, np.nan, np.inf), out)


def _nanmedian_rows(values: np.ndarray) -> np.ndarray:
    out = np.full(values.shape[0], np.nan)
    for i, row in enumerate(values):
        row = row[~np.isnan(row)]
        if row.size:
            out[i] = np.median(row)
    return out


# -- lagged correlations ----------------------------------------------------------------
#
# Every BSSEval v4 quantity is a quadratic form in lagged correlations of the signals:
# the distortion filters solve a system built from the correlations over the whole signal,
# and a window's projection energies and cross terms are the filters' own correlations
# weighted by the correlations of the window's samples (the window's references convolved
# in full, as museval does). So one pass over the signal computes, for every window, the
# correlations ``C[x, y, lag + k] = sum_n x[n] y[n + k]`` (|k| < filters_len) of the
# window-truncated signals, x among the references and the estimates, y among the
# references; the whole-signal correlations are their sum plus the pairs that straddle a
# window boundary. No second pass over the audio is needed.


def _correlation_layout(seg_len: int, lag: int) -> tuple[int, int, int]:
    """Blocks of a segment of ``seg_len`` samples: (count, block length, FFT size)."""
    nfft_max = max(_CORR_FFT, scipy.fft.next_fast_len(4 * lag + 2, real=True))
    block_max = nfft_max - lag
    n_blocks = -(-seg_len // block_max)
    block = -(-seg_len // n_blocks)
    return n_blocks, block, scipy.fft.next_fast_len(block + lag, real=True)


def _gather(groups: Sequence[np.ndarray], out: np.ndarray, starts: np.ndarray, first: int, stride: int,
            clip: tuple[int, int], rows: int | None = None) -> None:
    """Frames of the signals, float64, zero outside ``clip`` (a range relative to each start):
    out[r, t, b, m] = row r of ``groups`` at starts[t] + first + b * stride + m."""
    n_frames, length = out.shape[2], out.shape[3]
    span = (n_frames - 1) * stride + length
    line = np.empty((out.shape[0], span))
    r0 = 0
    for signals in groups:
        if rows is not None and r0 >= rows:
            break
        take = signals if rows is None else signals[: rows - r0]
        r1 = r0 + len(take)
        for t, s in enumerate(starts):
            lo = max(first, clip[0], -s)
            hi = min(first + span, clip[1], take.shape[-1] - s)
            if lo == first and hi == first + span:
                line[r0:r1] = take[:, s + lo : s + hi]
            else:
                line[r0:r1] = 0.0
                if hi > lo:
                    line[r0:r1, lo - first : hi - first] = take[:, s + lo : s + hi]
            out[r0:r1, t] = np.lib.stride_tricks.sliding_window_view(line[r0:r1], length, axis=-1)[:, ::stride][
                :, :n_frames]
        r0 = r1


def _segment_correlations(groups: Sequence[np.ndarray], n_refs: int, starts: np.ndarray, seg_len: int,
                          lag: int) -> np.ndarray:
    """C[t, x, y, lag + k] over each segment [starts[t], starts[t] + seg_len), the signals
    taken as zero outside it: x over all rows of ``groups`` (references first), y over the
    first ``n_refs`` rows. Block FFTs: each block of x against y over the block and the lag
    samples before it, which gives the lags k <= 0; those k > 0 of two references are
    C[y, x, lag - k]. (For an estimate x they are left at zero: nothing uses them.)

    Chunks of segments (or of one long segment's blocks) run on a thread pool; each chunk's
    result lands in its own slice, and partial sums are added in block order, so the result
    does not depend on the number of threads.
    """
    n_x = sum(len(g) for g in groups)
    n_blocks, block, nfft = _correlation_layout(seg_len, lag)
    per_call = max(1, _CORR_CHUNK // n_blocks)  # segments transformed at once
    blocks_per_call = min(n_blocks, _CORR_CHUNK)
    block_ranges = [(b0, min(n_blocks, b0 + blocks_per_call)) for b0 in range(0, n_blocks, blocks_per_call)]
    chunks = [starts[t0 : t0 + per_call] for t0 in range(0, len(starts), per_call)]

    def spectrum(seg: np.ndarray, b0: int, b1: int) -> np.ndarray:
        """(segments, bins, x, y): sum over blocks b0..b1 of spectrum(x block) * conj(spectrum(y up to it))."""
        x = np.empty((n_x, len(seg), b1 - b0, nfft))
        y = np.empty((n_refs, len(seg), b1 - b0, nfft))
        x[..., block:] = 0.0
        y[..., block + lag :] = 0.0
        _gather(groups, x[..., :block], seg, b0 * block, block, (0, seg_len))
        # y over each block and the lag samples before it, but only within the segment
        _gather(groups, y[..., : block + lag], seg, b0 * block - lag, block, (0, seg_len), rows=n_refs)
        xf = scipy.fft.rfft(x, axis=-1)
        yf = scipy.fft.rfft(y, axis=-1).conj()
        # per segment and bin, (x, blocks) by (blocks, y)
        return np.matmul(xf.transpose(1, 3, 0, 2), yf.transpose(1, 3, 2, 0))

    def lags(acc: np.ndarray) -> np.ndarray:
        # acc is the spectrum of the correlations reversed in time: index j <- circular index -j
        circular = scipy.fft.irfft(np.ascontiguousarray(acc.transpose(0, 2, 3, 1)), n=nfft, axis=-1)
        out = np.zeros((*circular.shape[:-1], 2 * lag + 1))
        out[..., 0] = circular[..., 0]
        out[..., 1 : lag + 1] = circular[..., nfft - 1 : nfft - lag - 1 : -1]
        refs = out[:, :n_refs]  # k > 0 of two references: C[x, y, lag + k] = C[y, x, lag - k]
        refs[..., lag + 1 :] = refs.transpose(0, 2, 1, 3)[..., lag - 1 :: -1]
        return out

    out = np.empty((len(starts), n_x, n_refs, 2 * lag + 1))
    with _thread_pool(len(chunks) * len(block_ranges)) as pool:
        if len(block_ranges) == 1:
            done = pool.map(lambda seg: lags(spectrum(seg, 0, n_blocks)), chunks)
            for t0, result in zip(range(0, len(starts), per_call), done):
                out[t0 : t0 + len(result)] = result
        else:  # long segments, one at a time: their blocks in parallel
            for t, s in enumerate(starts):
                seg = np.array([s])
                acc = None
                for part in pool.map(lambda r: spectrum(seg, *r), block_ranges):
                    acc = part if acc is None else acc + part
                out[t] = lags(acc)[0]
    return out


class _Serial:
    """A stand-in for a thread pool when one thread does."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    @staticmethod
    def map(fn, items):
        return map(fn, items)


def _thread_pool(tasks: int):
    """Threads for ``tasks`` independent chunks of FFTs and products (both release the GIL):
    one a usable core, at most _MAX_THREADS."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        cores = os.cpu_count() or 1
    workers = min(cores, _MAX_THREADS, tasks)
    if workers <= 1:
        return _Serial()
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(workers)


def _straddle_correlations(groups: Sequence[np.ndarray], n_refs: int, cuts: Sequence[int], lag: int) -> np.ndarray:
    """C[x, y, lag + k] of the pairs (n, n + k) that lie on both sides of a cut, summed over cuts."""
    n_x = sum(len(g) for g in groups)
    nfft = scipy.fft.next_fast_len(3 * lag + 1, real=True)
    acc = np.zeros((n_x, n_refs, nfft // 2 + 1), dtype=np.complex128)
    cuts = np.asarray(cuts, dtype=np.int64)
    for c0 in range(0, len(cuts), 64):
        part = cuts[c0 : c0 + 64]
        left = np.zeros((n_x, len(part), 1, nfft))  # the lag samples before each cut
        right = np.zeros((n_x, len(part), 1, nfft))  # and after it, placed lag samples later
        _gather(groups, left[..., : 2 * lag], part, -lag, 1, (-lag, 0))
        _gather(groups, right[..., : 2 * lag], part, -lag, 1, (0, lag))
        lf = scipy.fft.rfft(left[:, :, 0], axis=-1)
        rf = scipy.fft.rfft(right[:, :, 0], axis=-1)
        # k > 0: x before the cut, y after it; k < 0: x after, y before
        acc += np.einsum("pcf,qcf->pqf", lf.conj(), rf[:n_refs])
        acc += np.einsum("pcf,qcf->pqf", rf.conj(), lf[:n_refs])
    circular = scipy.fft.irfft(acc, n=nfft, axis=-1)
    return np.concatenate([circular[..., nfft - lag :], circular[..., : lag + 1]], axis=-1)


def _signal_correlations(groups, n_refs, n, lag, window_corr=None, starts=None, win_len=None) -> np.ndarray:
    """C[x, y, lag + k] over the whole signal.

    With ``window_corr`` (the correlations of windows that tile the signal from 0, each at
    least ``lag`` long), their sum plus the rest of the signal and the pairs straddling the
    window boundaries; otherwise from segments of a fixed length.
    """
    if window_corr is not None:
        end = int(starts[-1]) + win_len
        total = window_corr.sum(axis=0)
        cuts = [int(s) for s in starts[1:]]
        if end < n:
            total += _segment_correlations(groups, n_refs, np.array([end]), n - end, lag)[0]
            cuts.append(end)
    else:
        seg_len = max(_SEGMENT_SAMPLES, lag)
        n_full = n // seg_len if n >= 2 * seg_len else 0
        seg_starts = np.arange(n_full, dtype=np.int64) * seg_len
        total = np.zeros((sum(len(g) for g in groups), n_refs, 2 * lag + 1))
        for s0 in range(0, n_full, 64):
            total += _segment_correlations(groups, n_refs, seg_starts[s0 : s0 + 64], seg_len, lag).sum(axis=0)
        cuts = [int(s) for s in seg_starts[1:]]
        end = n_full * seg_len
        if end < n:
            total += _segment_correlations(groups, n_refs, np.array([end]), n - end, lag)[0]
            if end > 0:
                cuts.append(end)
    if cuts:
        total += _straddle_correlations(groups, n_refs, cuts, lag)
    return total


def _filter_correlations(u: np.ndarray, v: np.ndarray, lag: int) -> np.ndarray:
    """W[a, b, lag + k] = sum over channels c and taps m of u[a, m + k, c] * v[b, m, c]."""
    taps = u.shape[1]
    nfft = scipy.fft.next_fast_len(2 * taps, real=True)
    uf = scipy.fft.rfft(u, n=nfft, axis=1)
    vf = scipy.fft.rfft(v, n=nfft, axis=1)
    circular = scipy.fft.irfft(np.einsum("afc,bfc->abf", uf, vf.conj()), n=nfft, axis=-1)
    return np.concatenate([circular[..., nfft - lag :], circular[..., : lag + 1]], axis=-1)


# -- distortion filters -----------------------------------------------------------------


def _blas_threads(size: int):
    """One BLAS thread for the small factorisations: on a busy machine a second OpenBLAS
    thread spinning for a core made a 2048-square Cholesky up to 20x slower."""
    if size >= _MULTITHREAD_GRAM:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def _solve_psd(matrix: np.ndarray, rhs: np.ndarray, rebuild=None) -> np.ndarray:
    """Solve (matrix + eps I) X = rhs as museval does, by Cholesky where it is positive definite.

    With ``rebuild`` (a callable that makes the matrix again) the matrix is factorised in
    place, and made again only if it is not positive definite.
    """
    a = matrix if rebuild is not None else matrix.copy()
    a.flat[:: len(a) + 1] += np.finfo(float).eps
    try:
        # a.T is Fortran-ordered: LAPACK factorises it where it lies
        factor = scipy.linalg.cho_factor(a.T, lower=False, overwrite_a=rebuild is not None, check_finite=False)
        return scipy.linalg.cho_solve(factor, rhs, check_finite=False)
    except np.linalg.LinAlgError:
        pass
    if rebuild is not None:
        matrix = a = rebuild()
        a.flat[:: len(a) + 1] += np.finfo(float).eps
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)  # museval solves these too
            return scipy.linalg.solve(a, rhs, check_finite=False)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(matrix, rhs, rcond=None)[0]


def _toeplitz_blocks(corr: np.ndarray, filters_len: int) -> np.ndarray:
    """Gram matrix of delayed signals from their lagged correlations.

    corr[p, q, lag + k] = sum_n x_p[n] x_q[n + k]; the result's block (p, q) holds
    <x_p(. - a), x_q(. - b)> = corr[p, q, lag + a - b] at row a, column b.
    """
    k = corr.shape[0]
    gram = np.empty((k, filters_len, k, filters_len))
    for p in range(k):
        for q in range(k):
            # row a of the block is corr[p, q, lag + a - L + 1 ... lag + a] reversed
            gram[p, :, q, :] = np.lib.stride_tricks.sliding_window_view(corr[p, q, ::-1], filters_len)[::-1]
    return gram.reshape(k * filters_len, k * filters_len)


def _distortion_filters(corr: np.ndarray, n_src: int, n_chan: int, act: np.ndarray, filters_len: int, own: bool):
    """museval's whole-signal distortion filters from the signal correlations
    ``corr`` (references of the active sources, then every estimate; against the references).

    Returns (full, own_filters): full[e, i, cin, tap, cout] projects estimate e onto all
    active references i; own_filters[e] (cin, tap, cout) onto its own reference only
    (None for silent sources, or when ``own`` is False).
    """
    n_act = len(act)
    lag = filters_len - 1
    k_refs = n_act * n_chan
    gram = _toeplitz_blocks(corr[:k_refs], filters_len)
    # Cross terms: <r_p(. - a), e_c> = corr[e_c, p, lag - a]
    taps = np.arange(filters_len)
    cross = corr[k_refs:][:, :, lag - taps]  # (e*c, p, a)
    cross = cross.transpose(1, 2, 0).reshape(k_refs * filters_len, n_src * n_chan)

    size = n_chan * filters_len
    own_filters: list[np.ndarray | None] = [None] * n_src
    with _blas_threads(len(gram)):
        if own:
            for a_idx, j in enumerate(act):
                rows = slice(a_idx * size, (a_idx + 1) * size)
                cols = slice(j * n_chan, (j + 1) * n_chan)
                own_filters[j] = _solve_psd(gram[rows, rows], cross[rows, cols]).reshape(n_chan, filters_len, n_chan)
        solved = _solve_psd(gram, cross, rebuild=lambda: _toeplitz_blocks(corr[:k_refs], filters_len))
    full = solved.reshape(n_act, n_chan, filters_len, n_src, n_chan).transpose(3, 0, 1, 2, 4)
    return full, own_filters


# -- per-window metrics -----------------------------------------------------------------


def _projection_metrics(refs, ests, silent_sources, starts, win_len, filters_len, metrics) -> dict[str, np.ndarray]:
    """ISR, SIR, SAR per source and window from the whole-signal filters.

    As in museval, each window of the references is convolved in full (its tail runs
    filters_len - 1 samples past the window) and compared with the zero-padded estimate.
    Each energy of a difference is the energies of its terms less twice their product, all
    from the window's correlations; where that cancels to within ``_CANCEL_TOL`` of the terms
    (a metric above about 60 dB, or a single source's exact SIR) the window is recomputed
    directly, from the spectra of the projections.
    """
    n_src, n_chan, n = refs.shape
    n_frames = len(starts)
    active = ~silent_sources
    out = {m: np.full((n_src, n_frames), np.nan) for m in metrics}
    if not active.any():
        return out
    act = np.flatnonzero(active)
    lag = filters_len - 1
    k_refs = len(act) * n_chan
    groups = ((refs if active.all() else refs[act]).reshape(k_refs, n), ests.reshape(n_src * n_chan, n))

    hop = int(starts[1] - starts[0]) if n_frames > 1 else win_len
    n_x = k_refs + n_src * n_chan
    tiles = hop == win_len and win_len >= lag and starts[0] == 0
    keep = tiles and n_frames * n_x * k_refs * (2 * lag + 1) * 8 <= _MAX_KEPT_BYTES
    window_corr = _segment_correlations(groups, k_refs, starts, win_len, lag) if keep else None
    corr = _signal_correlations(groups, k_refs, n, lag, window_corr, starts, win_len)

    need_own = "ISR" in metrics or "SIR" in metrics
    full, own = _distortion_filters(corr, n_src, n_chan, act, filters_len, need_own)
    est_energy = _window_energies(ests, None, starts, win_len)[0] if "SAR" in metrics else None

    # the filters' own correlations, per estimate
    weights = []
    for a_idx, j in enumerate(act):
        f = full[j].reshape(k_refs, filters_len, n_chan)
        h = own[j]
        weights.append({
            "ff": _filter_correlations(f, f, lag) if "SIR" in metrics or "SAR" in metrics else None,
            "hh": _filter_correlations(h, h, lag) if need_own else None,
            "fh": _filter_correlations(f, h, lag) if "SIR" in metrics else None,
        })
    flagged: dict[int, np.ndarray] = {}
    chunk = max(1, _CORR_CHUNK * 4)
    with _blas_threads(0):
        for t0 in range(0, n_frames, chunk):
            t1 = min(n_frames, t0 + chunk)
            c = window_corr[t0:t1] if keep else _segment_correlations(groups, k_refs, starts[t0:t1], win_len, lag)
            for a_idx, j in enumerate(act):
                w = weights[a_idx]
                mine = slice(a_idx * n_chan, (a_idx + 1) * n_chan)  # rows of reference j
                est_rows = slice(k_refs + j * n_chan, k_refs + (j + 1) * n_chan)
                own_block = c[:, mine, mine]  # (t, cin, c, lags)
                e_ref = np.einsum("tccx->tc", own_block[..., lag : lag + 1]).sum(axis=1)
                results = {}
                if need_own:
                    e_own = np.einsum("tabx,abx->t", own_block, w["hh"])
                if "SIR" in metrics or "SAR" in metrics:
                    e_full = c[:, :k_refs, :k_refs].reshape(t1 - t0, -1) @ w["ff"].reshape(-1)
                if "ISR" in metrics:
                    x_or = np.einsum("tica,iac->t", own_block[..., lag:], own[j])
                    results["ISR"] = (e_ref, e_own, x_or, e_ref)
                if "SIR" in metrics:
                    x_po = np.einsum("trix,rix->t", c[:, :k_refs, mine], w["fh"])
                    results["SIR"] = (e_own, e_full, x_po, e_own)
                if "SAR" in metrics:
                    f = full[j].reshape(k_refs, filters_len, n_chan)
                    x_ep = np.einsum("tcra,rac->t", c[:, est_rows, :, lag::-1], f)
                    results["SAR"] = (e_full, est_energy[j, t0:t1], x_ep, e_full)
                for name, (num, a, cross_term, b) in results.items():
                    diff = a - 2.0 * cross_term + b
                    out[name][j, t0:t1] = _db(num, diff)
                    bad = diff < _CANCEL_TOL * (a + b)
                    if bad.any():
                        flagged.setdefault(j, np.zeros(n_frames, dtype=bool))[t0:t1] |= bad
    for j, frames in flagged.items():
        _direct_metrics(out, refs, ests, act, full, own, starts, win_len, filters_len, j, np.flatnonzero(frames))
    return out


def _direct_metrics(out, refs, ests, act, full, own, starts, win_len, filters_len, j, frames) -> None:
    """out[metric][j, frames] computed from the spectra of the window's projections."""
    nfft = scipy.fft.next_fast_len(win_len + filters_len - 1, real=True)
    weights = np.full(nfft // 2 + 1, 2.0 / nfft)  # Parseval for a one-sided spectrum
    weights[0] = 1.0 / nfft
    if nfft % 2 == 0:
        weights[-1] = 1.0 / nfft
    weights = np.repeat(weights, 2)  # over (real, imag) pairs

    def energy(spec):  # (chan, frames, bins) complex -> (frames,)
        pairs = np.ascontiguousarray(spec).view(np.float64)
        return ((pairs * pairs) @ weights).sum(axis=0)

    a_idx = int(np.flatnonzero(act == j)[0])
    full_f = scipy.fft.rfft(full[j], n=nfft, axis=2)  # (ref, cin, bin, cout)
    own_f = scipy.fft.rfft(own[j], n=nfft, axis=1) if own[j] is not None else None
    chunk = max(1, _WINDOW_CHUNK_SAMPLES // win_len)
    ref_frames = _windows(refs, starts, win_len)  # (src, chan, frame, sample) views
    est_frames = _windows(ests, starts, win_len)
    with _blas_threads(0):
        for f0 in range(0, len(frames), chunk):
            sel = frames[f0 : f0 + chunk]
            ref_f = scipy.fft.rfft(ref_frames[:, :, sel][act].astype(np.float64), n=nfft, axis=-1)
            true_f = ref_f[a_idx]
            if own_f is not None:
                proj_own = np.einsum("ktf,kfc->ctf", true_f, own_f)
            proj_full = np.einsum("iktf,ikfc->ctf", ref_f, full_f)
            if "ISR" in out:
                out["ISR"][j, sel] = _db(energy(true_f), energy(proj_own - true_f))
            if "SIR" in out:
                out["SIR"][j, sel] = _db(energy(proj_own), energy(proj_full - proj_own))
            if "SAR" in out:
                est_f = scipy.fft.rfft(est_frames[j][:, sel].astype(np.float64), n=nfft, axis=-1)
                out["SAR"][j, sel] = _db(energy(proj_full), energy(est_f - proj_full))
