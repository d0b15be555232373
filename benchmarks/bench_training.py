"""Learning per CPU-hour of the `small` model: step speed of code paths, and SDR reached per CPU time.

Two measurements, each against today's baseline in the same run:

The baseline is the ``small`` model of 2026-12-05 (a 16 ms encoder hop, 20 x 150 steps), with its
hop named explicitly so that the settings that change it compare with the same model. (Since
2026-12-06 the ``small`` preset hops 32 ms and the budget trains 32 x 150 steps: the ``hop32``
setting at ``--epochs 32``.) Validation runs the model once per item: the separator's shifts
and consistency (``separate``, ``evaluate``, the bench) are not in these curves.

``steps``: the training step (forward, loss, backward, Adam: ``bench_convtasnet``'s) of the baseline model, of
the same model under ``torch.compile``, and of cheaper architectures, interleaved so that
other load hits them alike; minimum wall time and median process CPU time per step.

``learning``: trains several settings on one corpus (the same ``--seed``, one torch thread each,
two processes side by side on 2 cores) and reads each run's validation SDR per epoch against
its process CPU time; reports the best validation SDR and the CPU time each setting needs to
reach the baseline's final SDR. Validation is the corpus's own (synthetic) split: settings
are never chosen on real recordings.

Usage (jemalloc, as the bench trains):
    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1 \\
        .venv/bin/python benchmarks/bench_training.py steps [--steps 10]
    ... benchmarks/bench_training.py learning CORPUS -o OUT [--settings base,cosine,short2] [--epochs 20] [--base-epochs 20]

``CORPUS`` is a bench corpus (for example ``BENCH_OUT/corpora/timbre`` of ``ensemble-synth
bench --budget small``); ``learning`` takes about 15 minutes per pair of settings on 2 cores.
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from ensemble_synth.separation.config import resolve_config
from ensemble_synth.separation.model import ConvTasNet, build_model, count_parameters

from bench_convtasnet import step_timer  # the same timed step (this script's folder is on sys.path)

# The baseline: the `small` model of 2026-12-05 (16 ms hop, 20 x 150 steps), named explicitly.
BASE = {"stride": 256}
# name -> (description, train() keyword overrides, or a two-phase schedule)
SETTINGS = {
    "base": ("the small budget: 16 ms hop, plateau schedule, 4 s segments", BASE),
    "cosine": ("cosine learning-rate decay over all the epochs", {**BASE, "schedule": "cosine"}),
    "cosine75": ("cosine decay over 3/4 of the epochs (3/4 of the CPU time)",
                 {**BASE, "schedule": "cosine", "_epochs": 0.75}),
    "short2": ("curriculum: 2 s segments for the first half of the steps, then 4 s", {**BASE, "_short_segment": 2.0}),
    "n256": ("N = 256 encoder filters (half the encoder, decoder and mask cost)", {**BASE, "N": 256}),
    "lr2x": ("learning rate 2e-3 (twice the baseline's), plateau schedule", {**BASE, "lr": 2e-3}),
    "hop32": ("encoder hop 32 ms (stride = L = 512: half the frames)", {"stride": 512}),
    "hop32_lr2x": ("encoder hop 32 ms and learning rate 2e-3", {"stride": 512, "lr": 2e-3}),
    "hop32_n256": ("encoder hop 32 ms and N = 256 encoder filters", {"stride": 512, "N": 256}),
    "hop32_pat2": ("encoder hop 32 ms, learning rate halved after 2 epochs without progress (not 3)",
                   {"stride": 512, "plateau_patience": 2}),
}
ARCHITECTURES = {"base": BASE, "N=256": {**BASE, "N": 256}, "X=6": {**BASE, "X": 6}, "H=192": {**BASE, "H": 192},
                 "stride=L": {"stride": 512}}


def _model(overrides: dict) -> ConvTasNet:
    torch.manual_seed(0)
    return build_model({**resolve_config("small", overrides)["model"], "channels": 1}, sources=4)


def measure_steps(args) -> None:
    torch.set_num_threads(1)
    rate = resolve_config("small")["model"]["sample_rate"]
    generator = torch.Generator().manual_seed(0)
    targets = 0.1 * torch.randn(4, 4, 1, int(4.0 * rate), generator=generator)
    mixture = targets.sum(1)
    steps, models = {}, {}
    for name, overrides in ARCHITECTURES.items():
        models[name] = _model(overrides)
        steps[name] = step_timer(models[name], torch.optim.Adam(models[name].parameters(), 1e-3), mixture, targets)
    models["base, torch.compile"] = compiled = _model(BASE)
    steps["base, torch.compile"] = step_timer(torch.compile(compiled), torch.optim.Adam(compiled.parameters(), 1e-3),
                                              mixture, targets)

    warm = {}
    for name, step in steps.items():  # warm-up (compilation included)
        start = time.perf_counter()
        for _ in range(3):
            step()
        warm[name] = time.perf_counter() - start
    walls = {name: [] for name in steps}
    cpus = {name: [] for name in steps}
    names = list(steps)
    for index in range(args.steps):
        for name in names if index % 2 == 0 else names[::-1]:
            wall, cpu = steps[name]()
            walls[name].append(wall)
            cpus[name].append(cpu)
    base = min(walls["base"])
    print(f"torch {torch.__version__}, 1 thread, allocator "
          f"{'jemalloc' if 'jemalloc' in os.environ.get('LD_PRELOAD', '') else 'default'}; "
          f"batch 4 x 4 s at {rate} Hz, {args.steps} steps each, interleaved\n")
    print("| code path | parameters | min step (s) | median CPU (s) | steps/s vs base | warm-up (s) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, model in models.items():
        print(f"| {name} | {count_parameters(model) / 1e6:.2f} M | {min(walls[name]):.3f} | "
              f"{statistics.median(cpus[name]):.3f} | {base / min(walls[name]):.2f}x | {warm[name]:.1f} |")


def _train_setting(corpus: str, run_dir: str, name: str, epochs: int, steps_per_epoch: int, seed: int, queue) -> None:
    torch.set_num_threads(1)
    from ensemble_synth.separation.trainer import train

    overrides = dict(SETTINGS[name][1])
    short = overrides.pop("_short_segment", None)
    epochs = max(1, round(epochs * overrides.pop("_epochs", 1.0)))
    common = dict(model="small", seed=seed, progress=False, epochs=epochs, steps_per_epoch=steps_per_epoch, valid_items=16,
                  valid_segment_seconds=4.0)
    common.update(overrides)
    cpu_at_epoch = []

    def log(message: str) -> None:
        if message.startswith("epoch "):
            cpu_at_epoch.append(time.process_time())

    if short:
        steps = common["epochs"] * common["steps_per_epoch"] // 2
        train(corpus, run_dir, log=log, max_steps=steps, segment_seconds=short, **common)
        train(corpus, run_dir, log=log, resume=True, **common)
    else:
        train(corpus, run_dir, log=log, **common)
    with open(Path(run_dir) / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    queue.put((name, [(cpu, float(row["valid_sdr"])) for cpu, row in zip(cpu_at_epoch, rows)]))


def measure_learning(args) -> None:
    names = args.settings.split(",")
    unknown = [n for n in names if n not in SETTINGS]
    if unknown or ("base" not in names and not args.reference):
        sys.exit(f"--settings: unknown {unknown} (known: {', '.join(SETTINGS)}); 'base' must be one of them "
                 f"unless --reference gives its curve")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    curves = {}
    for start in range(0, len(names), 2):  # two processes at a time, one per core
        batch = names[start:start + 2]
        processes = [context.Process(target=_train_setting, args=(args.corpus, str(out / n), n,
                                                                  args.base_epochs if n == "base" else args.epochs,
                                                                  args.steps_per_epoch, args.seed, queue))
                     for n in batch]
        for p in processes:
            p.start()
        for _ in processes:
            name, curve = queue.get()
            curves[name] = curve
        for p in processes:
            p.join()
    (out / "curves.json").write_text(json.dumps(curves, indent=1))
    if "base" not in curves:  # the baseline's curve from an earlier run on the same corpus (training is deterministic)
        curves["base"] = json.loads(Path(args.reference).read_text())["base"]
        names = ["base", *names]
    target = max(sdr for _, sdr in curves["base"])
    base_cpu = curves["base"][-1][0]
    print(f"corpus {args.corpus}; base {args.base_epochs} epochs, the others {args.epochs}, x {args.steps_per_epoch} steps "
          f"(batch 4); validation SDR on 16 fixed items "
          f"of the corpus's valid split; CPU = process CPU time\n")
    print("| setting | best valid SDR (dB) | CPU at the end (s) | CPU to reach base's best (s) | CPU ratio vs base "
          "| best valid SDR within base's CPU (dB) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in names:
        curve = curves[name]
        reached = next((cpu for cpu, sdr in curve if sdr >= target), None)
        when, ratio = (f"{reached:.0f}", f"{base_cpu / reached:.2f}x") if reached else ("-", "not reached")
        within = max((sdr for cpu, sdr in curve if cpu <= base_cpu), default=float("nan"))
        print(f"| {name}: {SETTINGS[name][0]} | {max(s for _, s in curve):.2f} | {curve[-1][0]:.0f} | "
              f"{when} | {ratio} | {within:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    steps = sub.add_parser("steps")
    steps.add_argument("--steps", type=int, default=10)
    learning = sub.add_parser("learning")
    learning.add_argument("corpus")
    learning.add_argument("-o", "--out", required=True)
    learning.add_argument("--settings", default="base,cosine75,cosine,short2")
    learning.add_argument("--epochs", type=int, default=20)
    learning.add_argument("--steps-per-epoch", type=int, default=150)
    learning.add_argument("--seed", type=int, default=0, help="the training seed (initial weights, example stream)")
    learning.add_argument("--reference", help="curves.json of an earlier run whose 'base' curve to compare with "
                          "(its CPU times were measured then: compare runs made under the same load)")
    learning.add_argument("--base-epochs", type=int, default=None,
                          help="epochs of the baseline (default --epochs); today's small budget is 20")
    args = parser.parse_args()
    if args.what == "learning" and args.base_epochs is None:
        args.base_epochs = args.epochs
    measure_steps(args) if args.what == "steps" else measure_learning(args)


if __name__ == "__main__":
    main()
