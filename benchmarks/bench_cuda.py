"""The trainer on a CUDA device: steps a second, resume to identical weights, separation.

Usage (on a machine with a GPU, a corpus and a real piece at hand):
    python benchmarks/bench_cuda.py CORPUS --real bach10:PATH -o OUT [--steps 400]

What it measures, each with the bundled trainer's own code path (``ensemble_synth.separation``):

- steps a second of the ``small`` model (16 kHz, batch 4 x 4 s) and of the reference study's
  ``convtasnet_study`` (44.1 kHz, batch 4 x 5 s), bf16 autocast as the trainer uses it on CUDA,
  timed from ``metrics.csv`` (training time of an epoch, validation excluded), with the
  trainer's batch prefetching (``separation.prefetch.training_plan``) and, as the baseline in
  the same run, with each batch drawn in the training loop (``--baseline-steps``);
- whether ``train --resume`` continues to the same weights on CUDA (2 epochs in one run
  against 1 epoch, then a resume to 2): the largest weight difference is reported, not asserted,
  because cuDNN may pick non-deterministic kernels;
- a ``small`` model trained on CUDA, loaded and run on CUDA and on the CPU for the first real
  piece: the largest difference between the two separations, and each output's SDR.

Writes ``OUT/cuda.json`` and the ``small`` run's ``model.pt`` (to check on another machine).
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch


def _epoch_rates(run: Path, batch: int) -> list[float]:
    with open(run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    return [float(r["segments_per_s"]) / batch for r in rows if float(r["segments_per_s"]) > 0]


def _max_weight_difference(a: Path, b: Path) -> float:
    from ensemble_synth.separation.checkpoint import read_checkpoint

    sa, sb = read_checkpoint(a)["state_dict"], read_checkpoint(b)["state_dict"]
    return max(float((sa[k].float() - sb[k].float()).abs().max()) for k in sa)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--real", required=True, help="a data set (bach10:PATH); its first piece is separated")
    parser.add_argument("-o", "--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=400, help="training steps of the small model")
    parser.add_argument("--study-steps", type=int, default=100, help="training steps of convtasnet_study")
    parser.add_argument("--baseline-steps", type=int, default=200,
                        help="steps of each model with batches drawn in the training loop (0: skip)")
    parser.add_argument("--skip-resume", action="store_true", help="leave out the resume check")
    parser.add_argument("--device", default="cuda", help="cuda (cpu: to try the script without a GPU)")
    args = parser.parse_args()

    from ensemble_synth.evaluation.datasets import load_dataset
    from ensemble_synth.evaluation.metrics import evaluate_sources
    from ensemble_synth.separation import load_separator, train
    from ensemble_synth.separation import trainer as trainer_module  # it calls training_plan by this name

    device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device")
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.out / "runs"
    shutil.rmtree(work, ignore_errors=True)
    result: dict = {"device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu", "torch": torch.__version__}

    def timed(name: str, model: str, steps: int, prefetch: bool, **overrides) -> dict:
        per_epoch = max(1, steps // 2)
        run = work / f"{name}{'' if prefetch else '_baseline'}"
        plan = trainer_module.training_plan
        if not prefetch:  # each batch drawn in the training loop, as before prefetching
            trainer_module.training_plan = lambda on_cpu: (0, 0)
        try:
            start = time.perf_counter()
            train(args.corpus, run, model=model, epochs=2, steps_per_epoch=per_epoch, device=device,
                  progress=False, **overrides)
        finally:
            trainer_module.training_plan = plan
        out = {"steps": 2 * per_epoch, "wall_s": time.perf_counter() - start,
               "steps_per_s_per_epoch": _epoch_rates(run, 4)}
        print(name, "prefetch" if prefetch else "baseline", out, flush=True)
        return out

    result["small"] = timed("small", "small", args.steps, True)
    # 44.1 kHz, 5 s, batch 4: about 26 GB of activations, more than a 24 GB CPU machine holds.
    if args.study_steps:
        result["convtasnet_study"] = timed("study", "convtasnet_study", args.study_steps, True, valid_items=8)
    if args.baseline_steps:
        result["small_baseline"] = timed("small", "small", args.baseline_steps, False)
        if args.study_steps:
            result["convtasnet_study_baseline"] = timed("study", "convtasnet_study", args.baseline_steps, False,
                                                        valid_items=8)

    if not args.skip_resume:
        per_epoch = args.steps // 2
        train(args.corpus, work / "resumed", model="small", epochs=1, steps_per_epoch=per_epoch, device=device,
              progress=False)
        train(args.corpus, work / "resumed", model="small", epochs=2, steps_per_epoch=per_epoch, device=device,
              progress=False, resume=True)
        result["resume_max_weight_difference"] = _max_weight_difference(work / "small" / "last.pt",
                                                                         work / "resumed" / "last.pt")
        print("resume", result["resume_max_weight_difference"], flush=True)

    track = load_dataset(args.real)[0]
    outputs = {}
    for where in dict.fromkeys((device, "cpu")):
        separator = load_separator(work / "small" / "model.pt", device=where)
        start = time.perf_counter()
        outputs[where] = separator.separate(track.mixture, track.sample_rate, adapt_channels=True)
        result[f"separate_{where}_s"] = time.perf_counter() - start
    names = list(outputs["cpu"])
    estimates = np.stack([outputs[device][n] for n in names])
    result["separation_max_difference_device_cpu"] = float(
        np.abs(estimates - np.stack([outputs["cpu"][n] for n in names])).max())
    scores = evaluate_sources(track.stems, estimates, track.sample_rate, metrics=("SDR",))
    result["real_piece"] = track.name
    result["real_sdr"] = {n: float(np.nanmedian(scores.frames["SDR"][i])) for i, n in enumerate(names)}
    shutil.copy(work / "small" / "model.pt", args.out / "model.pt")
    (args.out / "cuda.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
