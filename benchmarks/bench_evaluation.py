"""Evaluator speed and agreement: ours vs museval (BSSEval v4 images mode) in the same run.

Four mono sources of harmonic notes (120 s at 44.1 kHz by default) and estimates made
from them by filtering, delaying, leaking the neighbouring source in and adding noise,
written to WAV files and read back.

In-process: the wall time of museval.evaluate, of our four-metric evaluate_sources, of
our SDR-only path and of reading the WAV files, the speed-up ratios, and the largest
difference from museval per metric over all windows. BLAS runs on one thread for both
here (set OPENBLAS_NUM_THREADS etc. before starting to change that): on a shared 2-core
machine a second BLAS thread fighting other jobs made a Cholesky factorisation up to 20x
slower, and museval gains nothing from it.

Whole processes (``--process``), as users run them, with the thread settings this script
was started with (the defaults, unless you set them): ``ensemble-synth score REFS ESTS
--json OUT`` against a ``python -c`` that reads the same files with soundfile, runs
museval.evaluate and writes its scores as JSON; every window's scores are compared.

Usage: python benchmarks/bench_evaluation.py [--seconds 120] [--repeats 3] [--no-museval] [--process]
"""

from __future__ import annotations

import os

_STARTED_WITH = dict(os.environ)  # the environment the whole-process runs get
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy loads BLAS

import argparse
import json
import resource
import shutil
import subprocess
import sys
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


MUSEVAL_SCRIPT = """
import json, sys
from pathlib import Path
import numpy as np, soundfile as sf, museval
refs_dir, ests_dir, out = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
names = sorted(p.name for p in refs_dir.glob("*.wav"))
refs = np.stack([sf.read(refs_dir / n, always_2d=True)[0] for n in names])
ests = np.stack([sf.read(ests_dir / n, always_2d=True)[0] for n in names])
rate = sf.info(refs_dir / names[0]).samplerate
scores = museval.evaluate(refs, ests, win=rate, hop=rate)
json.dump({m: np.asarray(v).tolist() for m, v in zip(("SDR", "ISR", "SIR", "SAR"), scores)}, open(out, "w"))
"""


def score_command() -> list[str]:
    """``ensemble-synth`` beside this interpreter (a venv's bin), else on PATH."""
    beside = Path(sys.executable).with_name("ensemble-synth")
    found = str(beside) if beside.exists() else shutil.which("ensemble-synth")
    if found is None:
        raise SystemExit("ensemble-synth is not installed beside this Python or on PATH")
    return [found, "score"]


def timed_run(command: list[str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system, every thread) of one process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(command, check=True, env=_STARTED_WITH, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def process_benchmark(refs: np.ndarray, ests: np.ndarray, repeats: int, with_museval: bool) -> None:
    """Whole processes on the same files: ours best of ``repeats``, museval once, then ours again."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for kind, signals in (("refs", refs), ("ests", ests)):
            (tmp / kind).mkdir()
            for s, audio in enumerate(signals):
                write_wav(tmp / kind / f"{s + 1}_part.wav", audio, SR)
        ours = [*score_command(), str(tmp / "refs"), str(tmp / "ests"), "--json", str(tmp / "ours.json"),
                "--overwrite"]
        threads = {k: _STARTED_WITH[k] for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS") if k in _STARTED_WITH}
        print(f"\nwhole processes, thread settings {threads or 'default'}, {os.cpu_count()} CPUs:")
        runs = [timed_run(ours) for _ in range(max(1, repeats - 1))]
        if not with_museval:
            print(f"ensemble-synth score        {min(w for w, _ in runs):8.3f} s   (best of {len(runs)})")
            return
        t_museval, cpu_museval = timed_run([sys.executable, "-c", MUSEVAL_SCRIPT, str(tmp / "refs"),
                                            str(tmp / "ests"), str(tmp / "museval.json")])
        runs.append(timed_run(ours))  # once more after museval, in case the machine's load changed
        times, cpus = [w for w, _ in runs], [c for _, c in runs]
        print(f"ensemble-synth score        {min(times):8.3f} s   (best of {len(times)}; "
              f"all {', '.join(f'{t:.2f}' for t in times)}); CPU {min(cpus):.2f} s")
        print(f"python -c museval.evaluate  {t_museval:8.3f} s   (one run); CPU {cpu_museval:.2f} s")
        print(f"speed-up, whole process     {t_museval / min(times):8.1f}x   "
              f"(median run {t_museval / float(np.median(times)):.1f}x, slowest {t_museval / max(times):.1f}x; "
              f"CPU time {cpu_museval / min(cpus):.1f}x)")
        try:
            load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
            print(f"load average {load} on {os.cpu_count()} CPUs (other jobs slow both sides, unevenly)")
        except OSError:
            pass
        theirs = json.loads((tmp / "museval.json").read_text())
        data = json.loads((tmp / "ours.json").read_text())
        print("largest |ours - museval| over all sources and windows, as written (5 decimals, dB):")
        for name in METRICS:
            mine = np.array([[np.nan if f["metrics"][name] is None else f["metrics"][name] for f in t["frames"]]
                             for t in data["targets"]])
            values = np.array(theirs[name], dtype=float)
            print(f"  {name}: {np.nanmax(np.abs(mine - values)):.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-museval", action="store_true")
    parser.add_argument("--process", action="store_true", help="Also time whole processes (ours vs museval).")
    parser.add_argument("--process-only", action="store_true", help="Only time whole processes.")
    args = parser.parse_args()

    refs, ests = make_sources(np.random.default_rng(2024), args.seconds, SR)
    if args.process or args.process_only:
        process_benchmark(refs, ests, args.repeats, not args.no_museval)
        if args.process_only:
            return
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
