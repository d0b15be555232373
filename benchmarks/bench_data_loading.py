"""The trainer's data path alone (no model): batches a second, drawn synchronously and prefetched.

Usage:
    python benchmarks/bench_data_loading.py CORPUS [CORPUS ...] [--batches 40] [--readers N] [--step-ms 0]

For each corpus (WAV or FLAC) and model config (``small``: 16 kHz, 4 s, batch 4, stems resampled
from the corpus rate; ``convtasnet_study``: 44.1 kHz, 5 s, batch 4), the training batches of
seed 0 are drawn as the trainer draws them:

- baseline: ``CorpusDataset.batch(rng, batch_size)`` in the main thread, one after another (the
  trainer before prefetching);
- ours: :class:`BatchPrefetcher` with ``--readers`` threads reading each example's stems (default
  the trainer's choice on a GPU, ``training_plan(on_cpu=False)``), taken as fast as possible:
  the rate a GPU step faster than reading would see;
- ours without readers (prefetching alone).

Each variant checks that it drew the baseline's batches, byte for byte. Prints batches/s and the
ratio to the baseline (the best of ``--repeats`` interleaved runs of each). ``--step-ms``
sleeps that long after taking each batch, as a GPU step would leave the CPU free: drawing
when needed then costs step + batch, prefetching the longer of the two.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

CONFIGS = ("small", "convtasnet_study")


def _dataset(corpus: Path, config_name: str):
    from ensemble_synth.corpus.format import read_manifest
    from ensemble_synth.separation.config import resolve_config
    from ensemble_synth.separation.data import plan_layout
    from ensemble_synth.separation.trainer import training_data

    config = resolve_config(config_name)
    layout, tracks = plan_layout(read_manifest(corpus), None, corpus)
    train = [t for t in tracks if t.split == "train"]
    data, _ = training_data(train, train, layout, config, seed=0)  # the validation items are read only by stack()
    return data, config["training"]["batch_size"]


def _time(take, batches: int, step_s: float) -> tuple[float, str]:
    digest = hashlib.sha256()
    start = time.perf_counter()
    for _ in range(batches):
        digest.update(take().tobytes())
        time.sleep(step_s)  # a GPU step: the CPU is free meanwhile
    return batches / (time.perf_counter() - start), digest.hexdigest()


def main() -> None:
    from ensemble_synth.separation.prefetch import BatchPrefetcher, training_plan
    from ensemble_synth.separation.trainer import training_stream

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpora", type=Path, nargs="+")
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--readers", type=int, default=training_plan(on_cpu=False)[1])
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--step-ms", type=float, default=0.0, help="a training step's time, spent sleeping")
    args = parser.parse_args()

    print(f"{'corpus':<24} {'config':<17} {'baseline':>9} {'ours':>9} {'ratio':>6} {'no readers':>11} {'ratio':>6}"
          f"   (batches/s, {args.readers} reader threads)")
    for corpus in args.corpora:
        for name in args.configs.split(","):
            data, size = _dataset(corpus, name)
            rates = {"baseline": [], "ours": [], "no readers": []}
            for _ in range(args.repeats):  # interleaved, the best of each: the machine may be shared
                rng = training_stream(0)
                rate, expected = _time(lambda: data.batch(rng, size), args.batches, args.step_ms / 1000)
                rates["baseline"].append(rate)
                for label, readers in (("ours", args.readers), ("no readers", 0)):
                    with BatchPrefetcher(data, training_stream(0), size, readers=readers) as batches:
                        rate, digest = _time(batches.next, args.batches, args.step_ms / 1000)
                    if digest != expected:
                        raise SystemExit(f"{corpus} {name}: prefetched batches differ from the baseline's")
                    rates[label].append(rate)
            base, ours, alone = (max(r) for r in rates.values())
            print(f"{corpus.name:<24} {name:<17} {base:9.2f} {ours:9.2f} {ours / base:6.2f} "
                  f"{alone:11.2f} {alone / base:6.2f}", flush=True)


if __name__ == "__main__":
    main()
