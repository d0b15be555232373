"""Training throughput on CPU: one process using every core against one process per core.

Usage:
    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1 \\
        .venv/bin/python benchmarks/bench_parallel_training.py [--model small] [--steps 20]

The benchmark command trains its variants' models either one after another, each with all
cores as torch threads (the baseline here), or side by side, one process and one thread per
model. Both layouts run the same training step (ConvTasNet forward, SDR loss, backward, Adam)
on the same random batch; the figure compared is training steps per second, summed over the
processes.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time

import torch


def _train_steps(model_name: str, threads: int, steps: int, batch: int, seconds: float, barrier=None) -> float:
    """Seconds for ``steps`` training steps after two warm-up steps."""
    from ensemble_synth.separation.config import resolve_config
    from ensemble_synth.separation.losses import loss_fn
    from ensemble_synth.separation.model import build_model

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = resolve_config(model_name)["model"]
    cfg["channels"] = 1
    model = build_model(cfg, sources=4)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    criterion = loss_fn("sdr")
    targets = torch.randn(batch, 4, 1, int(seconds * cfg["sample_rate"])) * 0.1
    mixture = targets.sum(1)

    def step():
        loss = criterion(model(mixture), targets, mixture).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(2):
        step()
    if barrier is not None:
        barrier.wait()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return time.perf_counter() - start


def _worker(args):
    return _train_steps(*args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="small")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per process")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    context = multiprocessing.get_context("spawn")
    common = (args.model, args.steps, args.batch, args.seconds)
    with context.Pool(1) as pool:  # a fresh process, as the side-by-side ones are
        alone = pool.apply(_worker, [(args.model, args.cores, *common[1:])])
    baseline = args.steps / alone
    with context.Manager() as manager:
        barrier = manager.Barrier(args.cores)
        with context.Pool(args.cores) as pool:
            times = pool.map(_worker, [(args.model, 1, *common[1:], barrier)] * args.cores)
    side_by_side = sum(args.steps / t for t in times)
    print(f"model {args.model}, batch {args.batch} x {args.seconds:g} s, {args.cores} cores, {args.steps} timed steps")
    print(f"one process, {args.cores} threads:      {baseline:.2f} steps/s ({1 / baseline:.3f} s a step)")
    print(f"{args.cores} processes, 1 thread each: {side_by_side:.2f} steps/s in all "
          f"({', '.join(f'{t / args.steps:.3f}' for t in times)} s a step each)")
    print(f"ratio: {side_by_side / baseline:.2f}x the baseline's training steps per second")


if __name__ == "__main__":
    main()
