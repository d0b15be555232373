"""Evaluator speed and agreement: ours vs museval (BSSEval v4 images mode) in the same run.

Four mono sources of harmonic notes (120 s at 44.1 kHz by default) and estimates made
from them by filtering, delaying, leaking the neighbouring source in and adding noise,
written to WAV files and read back. Prints the wall time of museval.evaluate, of our
four-metric evaluate_sources, of our SDR-only path and of reading the WAV files, the
speed-up ratios, and the largest difference from museval per metric over all windows.

BLAS runs on one thread for both (set OPENBLAS_NUM_THREADS etc. before starting to
change that): on this shared 2-core machine a second BLAS thread fighting other jobs made
our one Cholesky factorisation up to 20x slower, and museval gains nothing from it.

Usage: python benchmarks/bench_evaluation.py [--seconds 120] [--repeats 3] [--no-museval]
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy loads BLAS

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.signal

from ensemble_synth.evaluation.metrics import METRICS, evaluate_sources
from ensemble_synth.fileio import read_wav, write_wav

SR = 44100


def harmonic_part(rng: np.random.Generator, n: int, sr: int, low: int, high: int) -> np.ndarray:
    """A melody of harmonic notes (random pitches in [low, high], 0.25-1.5 s each)."""
    x = np.zeros(n)
    start = 0
    while start < n:
        length = min(n - start, int(rng.uniform(0.25, 1.5) * sr))
        t = np.arange(length) / sr
        f0 = 440.0 * 2 ** ((rng.integers(low, high + 1) - 69) / 12)
        env = np.minimum(1.0, t / 0.02) * np.exp(-t / rng.uniform(0.3, 1.5))
        note = sum(np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 2 * np.pi)) / h for h in range(1, 6) if f0 * h < sr / 2)
        x[start : start + length] = env * note
        start += length
    return x + 1e-3 * rng.standard_normal(n)


def make_sources(rng: np.random.Generator, seconds: float, sr: int) -> tuple[np.ndarray, np.ndarray]:
    n = int(seconds * sr)
    ranges = [(67, 91), (55, 79), (48, 72), (36, 60)]
    refs = np.stack([harmonic_part(rng, n, sr, lo, hi)[None] for lo, hi in ranges])
    ests = np.empty_like(refs)
    for s in range(len(refs)):
        taps = np.concatenate([[1.0], 0.2 * rng.standard_normal(15)])
        filtered = scipy.signal.lfilter(taps, [1.0], refs[s], axis=-1)
        delayed = np.roll(filtered, int(rng.integers(0, 30)), axis=-1)
        ests[s] = delayed + 0.3 * refs[(s + 1) % len(refs)] + 0.02 * rng.standard_normal(refs[s].shape)
    return refs.astype(np.float32), ests.astype(np.float32)


def best_time(fn, repeats: int):
    best, result = np.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-museval", action="store_true")
    args = parser.parse_args()

    refs, ests = make_sources(np.random.default_rng(2024), args.seconds, SR)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for s in range(len(refs)):
            for kind, audio in (("ref", refs[s]), ("est", ests[s])):
                path = Path(tmp) / f"{kind}{s}.wav"
                write_wav(path, audio, SR)
                paths.append(path)

        def read_all():
            audio = [read_wav(p)[0] for p in paths]
            return np.stack(audio[0::2]), np.stack(audio[1::2])

        t_read, (refs, ests) = best_time(read_all, args.repeats)

    print(f"{len(refs)} mono sources x {args.seconds:g} s at {SR} Hz, 1 s windows and hop; best of {args.repeats}; "
          f"BLAS threads {os.environ['OPENBLAS_NUM_THREADS']}")
    t_full, ours = best_time(lambda: evaluate_sources(refs, ests, SR), args.repeats)
    t_sdr, _ = best_time(lambda: evaluate_sources(refs, ests, SR, metrics=("SDR",)), args.repeats)
    print(f"read WAVs (8 files)        {t_read:8.3f} s")
    print(f"ours, SDR only             {t_sdr:8.3f} s   ({t_sdr / t_read:.2f}x the file reading)")
    print(f"ours, SDR ISR SIR SAR      {t_full:8.3f} s")
    if args.no_museval:
        return

    import museval  # the reference; the library itself never imports it

    t0 = time.perf_counter()
    theirs = museval.evaluate(
        refs.astype(np.float64).transpose(0, 2, 1), ests.astype(np.float64).transpose(0, 2, 1), win=SR, hop=SR
    )
    t_museval = time.perf_counter() - t0
    print(f"museval.evaluate (v4)      {t_museval:8.3f} s   (one run)")
    print(f"speed-up, four metrics     {t_museval / t_full:8.1f}x")
    print(f"speed-up, SDR only         {t_museval / t_sdr:8.1f}x")
    print("largest |ours - museval| over all sources and windows (dB):")
    for name, values in zip(METRICS, theirs):
        diff = np.abs(ours.frames[name] - values)
        print(f"  {name}: {np.nanmax(diff):.2e}   ({np.isfinite(values).sum()} windows compared, median {name} {np.nanmedian(values):.2f} dB)")


if __name__ == "__main__":
    main()
