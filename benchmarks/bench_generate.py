"""Corpus generation throughput of the bach10_like preset: cold and warm RIR cache, 1 and 2 jobs.

Each configuration is a real `ensemble-synth generate` run in a fresh process (imports,
repertoire parsing and worker start-up included), on N training tracks of the preset.
"Cold" uses a new, empty RIR cache; "warm" reruns into a new corpus folder with the cache
the cold run filled. Printed per run: audio seconds, wall time, real-time factor, real-time
factor per core (audio / (wall x jobs)) and per CPU second used (audio / CPU time of the
run and its workers: less sensitive to other load on a shared machine); then the ratios
jobs2/jobs1 (scaling) and warm/cold, and, as the baseline for scaling, what two processes
of pure CPU work gain over one on the machine at that moment (on a shared machine it can
be far below 2). All corpora must be byte-identical (checked).
Targets (issue 4): >= 20x real time per core warm, >= 8x cold, jobs 2 >= 1.8x jobs 1.

``--format flac`` writes 24-bit FLAC corpora instead of float WAV; ``--format both`` runs the
grid once per format and compares them: disk (the audio files: mix, stems, and dry stems with
``--dry``) and speed. Target (issue 17): the FLAC corpus at most half the disk of the WAV one.

    python benchmarks/bench_generate.py [--tracks 16] [--preset bach10_like] [--format wav|flac|both] [--dry] [--keep DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS = {"warm": 20.0, "cold": 8.0, "scaling": 1.8, "flac_disk": 0.5}


def cpu_seconds_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(preset: str, tracks: int, jobs: int, out: Path, cache: Path, seed: int, audio_format: str = "wav",
        dry: bool = False) -> dict:
    cli = Path(sys.executable).with_name("ensemble-synth")
    command = [str(cli), "generate", "--preset", preset, "-o", str(out), "--tracks", str(tracks),
               "--jobs", str(jobs), "--seed", str(seed), "--rir-cache", str(cache), "--quiet",
               "--format", audio_format, "--dry" if dry else "--no-dry"]
    cpu0, t0 = cpu_seconds_of_children(), time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, cpu_seconds_of_children() - cpu0
    if result.returncode != 0:
        sys.exit(f"generate failed:\n{result.stderr[-2000:]}")
    audio = 0.0
    for line in (out / "manifest.csv").read_text().splitlines()[1:]:
        audio += float(line.split(",")[3])
    return {"audio": audio, "wall": wall, "cpu": cpu, "jobs": jobs, "bytes": audio_bytes(out)}


def audio_bytes(folder: Path) -> int:
    """Bytes of the corpus's audio files (mix, stems, dry stems)."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.suffix in (".wav", ".flac"))


def _burn(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


def machine_scaling(n: int = 10_000_000) -> float:
    """What two processes gain over one on this machine right now (pure CPU work): the
    ceiling for the jobs2/jobs1 speed-up when other users share the cores."""
    import multiprocessing

    t0 = time.perf_counter()
    _burn(n), _burn(n)
    serial = time.perf_counter() - t0
    with multiprocessing.get_context("fork").Pool(2) as pool:
        t0 = time.perf_counter()
        pool.map(_burn, [n, n])
        parallel = time.perf_counter() - t0
    return serial / parallel


def digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def grid(args, root: Path, audio_format: str) -> dict:
    """cold/warm x jobs 1/2 for one format; returns the results."""
    results, digests = {}, set()
    print(f"format {audio_format}:")
    print(f"{'run':<12}{'audio s':>9}{'wall s':>9}{'CPU s':>8}{'x RT':>8}{'x RT/core':>11}{'x RT/CPU s':>12}{'MB':>9}")
    for jobs in (1, 2):
        cache = root / f"rirs-{audio_format}-j{jobs}"  # a fresh, empty cache for each cold run
        for state in ("cold", "warm"):
            out = root / f"corpus-{audio_format}-j{jobs}-{state}"
            r = run(args.preset, args.tracks, jobs, out, cache, args.seed, audio_format, args.dry)
            results[(state, jobs)] = r
            digests.add(digest(out))
            rtf = r["audio"] / r["wall"]
            print(f"{state + ' j' + str(jobs):<12}{r['audio']:>9.1f}{r['wall']:>9.1f}{r['cpu']:>8.1f}"
                  f"{rtf:>8.1f}{rtf / jobs:>11.1f}{r['audio'] / r['cpu']:>12.1f}{r['bytes'] / 1e6:>9.1f}")
    ceiling = machine_scaling()
    print(f"load average at end {os.getloadavg()[0]:.1f}; corpora identical: {len(digests) == 1}")
    print(f"machine now: 2 processes of pure CPU work run {ceiling:.2f}x faster than 1 (the ceiling for scaling)")

    def per_core(state, jobs):
        r = results[(state, jobs)]
        return r["audio"] / (r["wall"] * jobs)

    for state in ("cold", "warm"):
        scaling = results[(state, 1)]["wall"] / results[(state, 2)]["wall"]
        print(f"{state}: jobs2/jobs1 speed-up {scaling:.2f}x (target >= {TARGETS['scaling']}x; "
              f"{scaling / ceiling:.0%} of the machine's ceiling now)")
    for state in ("cold", "warm"):
        best = max(per_core(state, 1), per_core(state, 2))
        ok = "ok" if best >= TARGETS[state] else "MISSED"
        print(f"{state}: {best:.1f}x real time per core (best of jobs 1/2; target >= {TARGETS[state]}x) {ok}")
    warm_cold = results[("cold", 1)]["wall"] / results[("warm", 1)]["wall"]
    print(f"warm/cold speed-up (jobs 1): {warm_cold:.2f}x")
    hours_per_core_hour = results[("warm", 1)]["audio"] / results[("warm", 1)]["cpu"]
    print(f"throughput: {hours_per_core_hour:.1f} hours of audio per CPU-hour (warm, jobs 1)")
    if len(digests) != 1:
        sys.exit("corpora differ between runs: generation is not deterministic")
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="bach10_like")
    ap.add_argument("--tracks", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--format", dest="audio_format", choices=("wav", "flac", "both"), default="wav",
                    help="audio format of the corpora; both: one grid each, then compared")
    ap.add_argument("--dry", action="store_true", help="also write the dry stems")
    ap.add_argument("--keep", type=Path, default=None, help="keep the corpora and caches here")
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench_generate."))
    try:
        print(f"preset {args.preset}, {args.tracks} tracks, {os.cpu_count()} cores, load average "
              f"{os.getloadavg()[0]:.1f} at start")
        formats = ("wav", "flac") if args.audio_format == "both" else (args.audio_format,)
        results = {fmt: grid(args, root, fmt) for fmt in formats}
        if len(formats) == 2:
            wav, flac = results["wav"], results["flac"]
            ratio = flac[("warm", 1)]["bytes"] / wav[("warm", 1)]["bytes"]
            ok = "ok" if ratio <= TARGETS["flac_disk"] else "MISSED"
            print(f"disk: WAV {wav[('warm', 1)]['bytes'] / 1e6:.1f} MB, FLAC {flac[('warm', 1)]['bytes'] / 1e6:.1f} MB "
                  f"for {wav[('warm', 1)]['audio']:.0f} s of audio: FLAC is {ratio:.0%} of WAV "
                  f"(target <= {TARGETS['flac_disk']:.0%}) {ok}")
            for state in ("cold", "warm"):
                for jobs in (1, 2):
                    w, f = wav[(state, jobs)], flac[(state, jobs)]
                    print(f"speed {state} j{jobs}: WAV {w['audio'] / w['wall']:.1f}x, FLAC {f['audio'] / f['wall']:.1f}x "
                          f"real time; FLAC CPU time {f['cpu'] / w['cpu']:.2f}x WAV's")
    finally:
        if args.keep:
            shutil.copytree(root, args.keep, dirs_exist_ok=True)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
