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

Speed comes from computing every correlation once: the lagged correlations between the
signals by block FFTs accumulated in the frequency domain, one Cholesky factorisation of
the Gram matrix for all estimates and one small one per source, and the per-window
projections as products of spectra. With ``metrics=("SDR",)`` no filter is estimated:
in images mode SDR is the plain framewise ratio of reference energy to error energy.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import scipy.fft
import scipy.linalg

from ..errors import UserError

METRICS = ("SDR", "ISR", "SIR", "SAR")
FILTERS_LEN = 512  # museval's distortion filter length (taps)

_CORR_FFT = 8192  # block FFT size for the lagged correlations
_CORR_CHUNK = 8  # blocks transformed at once
_WINDOW_CHUNK_SAMPLES = 1 << 18  # per-window phase: samples per signal transformed at once


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
    """View (..., n_frames, win_len) of x's last axis."""
    view = np.lib.stride_tricks.sliding_window_view(x, win_len, axis=-1)
    return view[..., starts, :]


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


def _lagged_correlations(x: np.ndarray, y: np.ndarray, max_lag: int) -> np.ndarray:
    """R[p, q, max_lag + k] = sum_n x[p, n] * y[q, n + k] for |k| <= max_lag, exactly.

    Overlap-save in the frequency domain: x is cut into blocks, each block is correlated
    with the stretch of y around it, and the cross-spectra are summed over blocks before
    a single small inverse FFT per pair.
    """
    n_x, n = x.shape
    n_y = y.shape[0]
    nfft = max(_CORR_FFT, scipy.fft.next_fast_len(8 * max_lag, real=True))
    block = nfft - 2 * max_lag
    n_blocks = -(-n // block)
    x_pad = np.zeros((n_x, n_blocks * block))
    x_pad[:, :n] = x
    x_blocks = x_pad.reshape(n_x, n_blocks, block)
    y_pad = np.zeros((n_y, n_blocks * block + 2 * max_lag))
    y_pad[:, max_lag : max_lag + n] = y
    y_frames = np.lib.stride_tricks.sliding_window_view(y_pad, nfft, axis=-1)[:, ::block]
    cross = np.zeros((n_x, n_y, nfft // 2 + 1), dtype=np.complex128)
    for b0 in range(0, n_blocks, _CORR_CHUNK):
        b1 = min(n_blocks, b0 + _CORR_CHUNK)
        xf = scipy.fft.rfft(x_blocks[:, b0:b1], n=nfft, axis=-1).conj()
        yf = scipy.fft.rfft(y_frames[:, b0:b1], axis=-1)
        for q in range(n_y):
            cross[:, q] += np.einsum("pbf,bf->pf", xf, yf[q])
    return scipy.fft.irfft(cross, n=nfft, axis=-1)[..., : 2 * max_lag + 1]


def _solve_psd(matrix: np.ndarray, rhs: np.ndarray, overwrite: bool = False) -> np.ndarray:
    """Solve (matrix + eps I) X = rhs as museval does, by Cholesky where it is positive definite.

    With ``overwrite`` the matrix is used as scratch space.
    """
    a = matrix if overwrite else matrix.copy()
    a.flat[:: len(a) + 1] += np.finfo(float).eps
    try:
        factor = scipy.linalg.cho_factor(a.T, lower=False, overwrite_a=False, check_finite=False)
        return scipy.linalg.cho_solve(factor, rhs, check_finite=False)
    except np.linalg.LinAlgError:
        pass
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


def _distortion_filters(refs: np.ndarray, ests: np.ndarray, active: np.ndarray, filters_len: int, own: bool):
    """museval's whole-signal distortion filters.

    Returns (full, own_filters): full[e, i, cin, tap, cout] projects estimate e onto all
    active references i; own_filters[e] (cin, tap, cout) onto its own reference only
    (None for silent sources, or when ``own`` is False).
    """
    n_src, n_chan, n = refs.shape
    act = np.flatnonzero(active)
    n_act = len(act)
    lag = filters_len - 1
    ref_signals = refs[act].reshape(n_act * n_chan, n)
    est_signals = ests.reshape(n_src * n_chan, n)
    corr = _lagged_correlations(np.concatenate([ref_signals, est_signals]), ref_signals, lag)
    k_refs = n_act * n_chan
    gram = _toeplitz_blocks(corr[:k_refs], filters_len)
    # Cross terms: <r_p(. - a), e_c> = corr[e_c, p, lag - a]
    taps = np.arange(filters_len)
    cross = corr[k_refs:][:, :, lag - taps]  # (e*c, p, a)
    cross = cross.transpose(1, 2, 0).reshape(k_refs * filters_len, n_src * n_chan)

    size = n_chan * filters_len
    own_filters: list[np.ndarray | None] = [None] * n_src
    if own:
        for a_idx, j in enumerate(act):
            rows = slice(a_idx * size, (a_idx + 1) * size)
            cols = slice(j * n_chan, (j + 1) * n_chan)
            own_filters[j] = _solve_psd(gram[rows, rows], cross[rows, cols]).reshape(n_chan, filters_len, n_chan)
    solved = _solve_psd(gram, cross, overwrite=True)
    full = solved.reshape(n_act, n_chan, filters_len, n_src, n_chan).transpose(3, 0, 1, 2, 4)
    return full, own_filters


def _projection_metrics(refs, ests, silent_sources, starts, win_len, filters_len, metrics) -> dict[str, np.ndarray]:
    """ISR, SIR, SAR per source and window from the whole-signal filters.

    As in museval, each window of the references is convolved in full (its tail runs
    filters_len - 1 samples past the window) and compared with the zero-padded estimate.
    """
    n_src, n_chan, _ = refs.shape
    n_frames = len(starts)
    active = ~silent_sources
    out = {m: np.full((n_src, n_frames), np.nan) for m in metrics}
    if not active.any():
        return out
    need_own = "ISR" in metrics or "SIR" in metrics
    need_full = "SIR" in metrics or "SAR" in metrics
    full, own = _distortion_filters(refs, ests, active, filters_len, need_own)
    act = np.flatnonzero(active)

    nfft = scipy.fft.next_fast_len(win_len + filters_len - 1, real=True)
    weights = np.full(nfft // 2 + 1, 2.0 / nfft)  # Parseval for a one-sided spectrum
    weights[0] = 1.0 / nfft
    if nfft % 2 == 0:
        weights[-1] = 1.0 / nfft
    weights = np.repeat(weights, 2)  # over (real, imag) pairs

    def energy(spec):  # (chan, frames, bins) complex -> (frames,)
        pairs = np.ascontiguousarray(spec).view(np.float64)
        return ((pairs * pairs) @ weights).sum(axis=0)

    full_f = scipy.fft.rfft(full, n=nfft, axis=3)  # (est, ref, cin, bin, cout)
    own_f = {j: scipy.fft.rfft(own[j], n=nfft, axis=1) for j in act if own[j] is not None}
    chunk = max(1, _WINDOW_CHUNK_SAMPLES // win_len)
    ref_frames = _windows(refs, starts, win_len)  # (src, chan, frame, sample) views
    est_frames = _windows(ests, starts, win_len)
    for t0 in range(0, n_frames, chunk):
        t1 = min(n_frames, t0 + chunk)
        ref_f = scipy.fft.rfft(ref_frames[act, :, t0:t1].astype(np.float64), n=nfft, axis=-1)  # (act, chan, frame, bin)
        for a_idx, j in enumerate(act):
            true_f = ref_f[a_idx]
            if need_own:
                proj_own = np.einsum("ktf,kfc->ctf", true_f, own_f[j])
            if need_full:
                proj_full = np.einsum("iktf,ikfc->ctf", ref_f, full_f[j])
            if "ISR" in out:
                out["ISR"][j, t0:t1] = _db(energy(true_f), energy(proj_own - true_f))
            if "SIR" in out:
                out["SIR"][j, t0:t1] = _db(energy(proj_own), energy(proj_full - proj_own))
            if "SAR" in out:
                est_f = scipy.fft.rfft(est_frames[j, :, t0:t1].astype(np.float64), n=nfft, axis=-1)
                out["SAR"][j, t0:t1] = _db(energy(proj_full), energy(est_f - proj_full))
    return out
