"""Training step time and throughput of our ConvTasNet against torchaudio's, same config, same input.

Usage:
    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1 \\
        .venv/bin/python benchmarks/bench_convtasnet.py [--model small|convtasnet_study] [--steps 6]

The reference is torchaudio's ``models/conv_tasnet.py`` (an independent implementation,
pure PyTorch). torchaudio's compiled extension is built for one torch version, so the file
is loaded on its own, without importing the torchaudio package: install the wheel where it
cannot disturb the project's torch, e.g.

    .venv/bin/pip install --no-deps --target /tmp/refpkgs torchaudio

and pass ``--ref-path /tmp/refpkgs`` (or set ENSEMBLE_SYNTH_REFPKGS). Without it the script
measures our model only and says so. Both models run interleaved (ours, theirs, ours, ...)
so that load from other processes hits both alike; the step time compared is the minimum
(least disturbed) and the process CPU time is printed beside it.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from ensemble_synth.separation.config import resolve_config
from ensemble_synth.separation.losses import neg_sisdr
from ensemble_synth.separation.model import ConvTasNet, count_parameters


def load_reference(ref_path: str | None):
    """torchaudio's ConvTasNet class, loaded from its source file alone, or None."""
    candidates = [Path(p) / "torchaudio" for p in filter(None, [ref_path, os.environ.get("ENSEMBLE_SYNTH_REFPKGS")])]
    spec = importlib.util.find_spec("torchaudio")
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(p) for p in spec.submodule_search_locations]
    for folder in candidates:
        source = folder / "models" / "conv_tasnet.py"
        if source.is_file():
            module_spec = importlib.util.spec_from_file_location("reference_conv_tasnet", source)
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
            return module.ConvTasNet, source
    return None, None


def step_timer(model, optimizer, mixture, targets):
    def step() -> tuple[float, float]:
        start, cpu = time.perf_counter(), time.process_time()
        estimates = model(mixture)
        estimates = estimates.view(targets.shape)
        loss = neg_sisdr(estimates, targets, mixture).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return time.perf_counter() - start, time.process_time() - cpu

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="small", help="model preset (non-causal gLN, as torchaudio's)")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per model (after 2 warm-up steps)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=4.0, help="segment length")
    parser.add_argument("--sources", type=int, default=4)
    parser.add_argument("--ref-path", default=None, help="folder holding the torchaudio package (see above)")
    parser.add_argument("--rtf-seconds", type=float, default=10.0, help="audio length for the inference RTF")
    args = parser.parse_args()

    cfg = resolve_config(args.model)["model"]
    if cfg["causal"] or cfg["norm"] != "gLN":
        sys.exit(f"{args.model}: the reference is non-causal with gLN; pick a non-causal gLN preset")
    rate = cfg["sample_rate"]
    samples = int(args.seconds * rate)
    preload = os.environ.get("LD_PRELOAD", "")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"allocator: {'jemalloc' if 'jemalloc' in preload else 'default (slow on this VM: preload jemalloc)'}")
    print(f"config {args.model}: N={cfg['N']} L={cfg['L']} B={cfg['B']} H={cfg['H']} P={cfg['P']} X={cfg['X']} "
          f"R={cfg['R']} at {rate} Hz; batch {args.batch} x {args.seconds:g} s, {args.sources} sources")

    generator = torch.Generator().manual_seed(0)
    targets = 0.1 * torch.randn(args.batch, args.sources, 1, samples, generator=generator)
    mixture = targets.sum(1)

    torch.manual_seed(0)
    ours = ConvTasNet(args.sources, 1, N=cfg["N"], L=cfg["L"], B=cfg["B"], H=cfg["H"], P=cfg["P"], X=cfg["X"],
                      R=cfg["R"], norm="gLN", causal=False, mask=cfg["mask"])
    models = {"ours": ours}
    Reference, source = load_reference(args.ref_path)
    if Reference is None:
        print("reference: torchaudio not found -> measuring ours only "
              "(pip install --no-deps --target /tmp/refpkgs torchaudio; --ref-path /tmp/refpkgs)")
    else:
        print(f"reference: {source}")
        models["torchaudio"] = Reference(
            num_sources=args.sources, enc_kernel_size=cfg["L"], enc_num_feats=cfg["N"], msk_kernel_size=cfg["P"],
            msk_num_feats=cfg["B"], msk_num_hidden_feats=cfg["H"], msk_num_layers=cfg["X"],
            msk_num_stacks=cfg["R"], msk_activate="relu" if cfg["mask"] == "relu" else "sigmoid")
    for name, model in models.items():
        print(f"  {name:10s} {count_parameters(model) / 1e6:.3f} M parameters")

    steps = {name: step_timer(m.train(), torch.optim.Adam(m.parameters(), lr=1e-3), mixture, targets)
             for name, m in models.items()}
    walls: dict[str, list[float]] = {name: [] for name in models}
    cpus: dict[str, list[float]] = {name: [] for name in models}
    names = list(steps)
    for round_index in range(args.steps + 2):
        for name in names if round_index % 2 == 0 else names[::-1]:  # alternate who goes first
            wall, cpu = steps[name]()
            if round_index >= 2:
                walls[name].append(wall)
                cpus[name].append(cpu)

    # On a shared machine the wall-clock maximum and median are mostly other people's load;
    # the minimum wall time and the process CPU time are what the code itself costs.
    print(f"\ntraining step (forward + SI-SDR loss + backward + Adam), {args.steps} steps each, interleaved")
    best = {name: min(t) for name, t in walls.items()}
    cpu = {name: statistics.median(t) for name, t in cpus.items()}
    for name in models:
        print(f"  {name:10s} step: min {best[name]:6.3f} s ({args.batch / best[name]:5.2f} segments/s), "
              f"median {statistics.median(walls[name]):6.3f} s, max {max(walls[name]):6.3f} s; "
              f"CPU time median {cpu[name]:6.3f} s")
    if "torchaudio" in models:
        ratio, cpu_ratio = best["ours"] / best["torchaudio"], cpu["ours"] / cpu["torchaudio"]
        verdict = "ours faster or equal" if ratio <= 1 else "ours SLOWER"
        print(f"  ours / torchaudio: min step time {ratio:.2f}, CPU time {cpu_ratio:.2f} ({verdict})")

    ours.eval()
    audio = 0.1 * torch.randn(1, 1, int(args.rtf_seconds * rate), generator=generator)
    with torch.inference_mode():
        ours(audio[..., :rate])
        runs = []
        for _ in range(3):
            start = time.perf_counter()
            ours(audio)
            runs.append(time.perf_counter() - start)
    rtf = statistics.median(runs) / args.rtf_seconds
    print(f"\ninference on CPU, {args.rtf_seconds:g} s mono in one pass: real-time factor {rtf:.3f} "
          f"({1 / rtf:.1f}x faster than real time)")


if __name__ == "__main__":
    main()
