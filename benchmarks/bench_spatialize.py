"""Spatialize 30 s of a four-part ensemble in a 1.6 s hall (Decca tree + 4 spots), against plain pyroomacoustics.

Plain path: ``ShoeBox`` with ``inverse_sabine`` absorption and order, air absorption, the same
positions and directivities, ``compute_rir`` + ``simulate``. Ours: ``spatialize`` with a
cold RIR cache (simulation + convolution + mix-down) and with a warm one. RT60 is T30,mid
(mean of the 500 Hz and 1 kHz octaves) over all 28 source-microphone RIRs. One thread.

    .venv/bin/python benchmarks/bench_spatialize.py [--seconds 30]
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # "per core" figures: one thread everywhere

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import pyroomacoustics as pra  # noqa: E402

from ensemble_synth.acoustics.capture import spatialize  # noqa: E402
from ensemble_synth.acoustics.rir_simulation import _directivity, measure_rt60, simulate_rirs  # noqa: E402
from ensemble_synth.acoustics.rir_cache import RirCache  # noqa: E402
from ensemble_synth.acoustics.scene import sample_scene  # noqa: E402

FS = 44100
HALL = {"name": "hall_1.6s", "dimensions": [18.0, 25.0, 12.0], "rt60": 1.6, "stage_centre": [0.5, 0.8],
        "air_absorption": True}
INSTRUMENTS = ["violin", "violin", "viola", "cello"]


def dry_stems(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Four harmonic parts of random half-second notes (float32)."""
    n = int(seconds * FS)
    t = np.arange(n) / FS
    out = np.zeros((4, n), dtype=np.float32)
    for part, base in enumerate([76, 69, 62, 48]):
        pitch = base + rng.integers(-5, 6, size=int(seconds * 2) + 1)
        freq = 440.0 * 2.0 ** ((pitch[(t * 2).astype(int)] - 69) / 12)
        phase = 2 * np.pi * np.cumsum(freq) / FS
        out[part] = (0.15 * sum(np.sin(k * phase) / k for k in range(1, 8))).astype(np.float32)
    return out


def rt60_of(rirs) -> tuple[float, float, float]:
    """Median T30,mid, worst relative miss of T30,mid, median broadband T30."""
    values = np.array([measure_rt60(h, FS) for h in rirs])
    broadband = float(np.median([measure_rt60(h, FS, "broadband") for h in rirs]))
    return float(np.median(values)), float(np.max(np.abs(values - HALL["rt60"])) / HALL["rt60"]), broadband


def plain_pyroomacoustics(scene, dry):
    e_abs, order = pra.inverse_sabine(HALL["rt60"], HALL["dimensions"])
    room = pra.ShoeBox(HALL["dimensions"], fs=FS, materials=pra.Material(e_abs), max_order=order, air_absorption=True)
    for player, signal in zip(scene.players, dry):
        room.add_source(list(player.position), signal=signal,
                        directivity=_directivity(player.p, player.azimuth, player.colatitude))
    room.add_microphone_array(np.array([m.position for m in scene.mics]).T,
                              directivity=[_directivity(m.p, m.azimuth, m.colatitude) for m in scene.mics])
    start = time.perf_counter()
    room.compute_rir()
    room.simulate()
    seconds = time.perf_counter() - start
    return seconds, order, [room.rir[m][s] for s in range(len(scene.players)) for m in range(len(scene.mics))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    scene = sample_scene(HALL, "string_quartet", "decca_tree_spots", INSTRUMENTS, rng)
    dry = dry_stems(args.seconds, rng)
    print(f"scene: {HALL['dimensions']} m, RT60 target {HALL['rt60']} s, {len(scene.players)} players x "
          f"{len(scene.mics)} mics, {args.seconds:g} s at {FS} Hz, 1 thread")

    plain_s, order, plain_rirs = plain_pyroomacoustics(scene, dry)
    plain_rt, plain_err, plain_bb = rt60_of(plain_rirs)
    print(f"plain pyroomacoustics (ISM order {order}, air absorption): {plain_s:7.2f} s   "
          f"RT60 {plain_rt:.2f} s (worst RIR off by {plain_err:.0%}; broadband {plain_bb:.2f} s)")

    with tempfile.TemporaryDirectory() as tmp:
        cache = RirCache(tmp)
        start = time.perf_counter()
        images = spatialize(dry, scene, FS, cache)
        cold_s = time.perf_counter() - start
        start = time.perf_counter()
        spatialize(dry, scene, FS, cache)
        warm_s = time.perf_counter() - start
    start = time.perf_counter()
    rirs = simulate_rirs(scene, FS)
    rir_s = time.perf_counter() - start
    ours_rt, ours_err, ours_bb = rt60_of(rirs.reshape(-1, rirs.shape[-1]))
    print(f"ensemble_synth cold cache (RIRs {rir_s:.2f} s + convolution + mix-down): {cold_s:7.2f} s   "
          f"RT60 {ours_rt:.2f} s (worst RIR off by {ours_err:.0%}; broadband {ours_bb:.2f} s)")
    print(f"ensemble_synth warm cache:                                      {warm_s:7.2f} s")
    print(f"speed-up cold vs plain: {plain_s / cold_s:.1f}x (target >= 3x)")
    print(f"warm cache: {args.seconds / warm_s:.1f}x real time per core (target >= 20x)")
    print(f"RT60 within 10 %: plain {'yes' if abs(plain_rt - 1.6) <= 0.16 else 'no'}, "
          f"ours {'yes' if abs(ours_rt - 1.6) <= 0.16 else 'no'}; images {images.shape} float32")


if __name__ == "__main__":
    main()
