"""Score-conditioned against plain adaptation, on real pieces whose notes are annotated.

Usage (full size: two adaptations a piece, each rendering ``--renditions`` and training
``--steps``; about 25 minutes for the three Bach10 development pieces on two cores):

    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1 \\
        .venv/bin/python benchmarks/bench_score_conditioning.py --model BENCH/runs/timbre/model.pt \\
        --preset BENCH/corpora/timbre --real bach10:../shared/real/bach10 \\
        --renditions 160 --minutes 10 --steps 600 --jobs 2 --out runs/score_conditioning

(``--preset``: the general model's own training corpus, so the renditions have its timbres,
rooms and channel count; ``--steps N`` also caps both fine-tunings at the same step count.)

For each real piece with a score (MIDI) and note annotations (Bach10 ``-GTNotes.mat``, URMP
``Notes_*.txt``) whose parts the general model separates, the same general model is adapted
to the piece's score twice, with the same renditions, seed and minutes: plainly (``adapt``)
and score-conditioned (``adapt(condition_on_score=True)``, which separates with the piece's
annotated notes). Prints a Markdown table of real SDR per piece and instrument: the mixture
divided by the number of parts (no model), the general model, plain adapted, conditioned;
writes it and the numbers to ``--out`` (``results.md``, ``results.json``). A piece already
adapted in ``--out`` is not adapted again. Pieces left out are listed with the reason.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import time
import tomllib
from pathlib import Path

import numpy as np

from ensemble_synth.adaptation import BASE_PRESET, adapt
from ensemble_synth.evaluation.datasets import load_dataset
from ensemble_synth.evaluation.model_scoring import evaluate_mixture, evaluate_model, mean_sdr
from ensemble_synth.separation import load_separator, read_checkpoint

KINDS = ("mixture", "general", "adapted", "conditioned")


def rendition_base(value: str):
    """``--preset``: a corpus preset name or TOML file, or a corpus folder (the preset it was
    generated from, as its corpus.toml records it: the general model's own training corpus)."""
    record = Path(value) / "corpus.toml"
    if record.is_file():
        return tomllib.loads(record.read_text())["preset"]
    return value


def why_left_out(track, instruments: list[str]) -> str | None:
    """Why a piece cannot be measured here (None: it can)."""
    if track.score is None:
        return "no score (MIDI)"
    if track.notes is None or any(n is None for n in track.notes):
        return "no note annotations for every part"
    if list(track.instruments) != instruments:
        return f"parts {', '.join(track.instruments)}, but the model separates {', '.join(instruments)}"
    return None


def adapted_model(track, run: Path, args, conditioned: bool) -> Path:
    """The piece's adapted model in ``run`` (adapted now unless a finished one is there)."""
    best = run / "model.pt"
    if best.is_file():
        return best
    shutil.rmtree(run, ignore_errors=True)  # an interrupted adaptation starts again
    return adapt(track.score, run, model=args.model, ensemble=list(track.instruments), renditions=args.renditions,
                 minutes=args.minutes, max_steps=args.steps, seed=args.seed, base_preset=args.preset,
                 model_preset=args.model_preset,
                 jobs=args.jobs, progress=False, log=lambda m: print(f"  {m}", flush=True),
                 condition_on_score=conditioned)


def first_mix_digest(run: Path) -> str:
    """sha256 of the first training rendition's mix, to show both adaptations rendered the same audio."""
    mix = sorted((run / "renditions" / "train").glob("*/mix.*"))[0]
    return hashlib.sha256(mix.read_bytes()).hexdigest()[:12]


def score_piece(track, args, out: Path) -> dict:
    runs = {"adapted": out / track.name / "adapted", "conditioned": out / track.name / "conditioned"}
    models = {kind: adapted_model(track, run, args, kind == "conditioned") for kind, run in runs.items()}
    separators = {"general": load_separator(args.model),
                  **{kind: load_separator(path) for kind, path in models.items()}}
    results = {"mixture": evaluate_mixture([track]),
               **{kind: evaluate_model(separator, [track], metrics=("SDR",)) for kind, separator in separators.items()}}
    same = first_mix_digest(runs["adapted"]) == first_mix_digest(runs["conditioned"])
    records = {kind: json.loads((run / "adapt.json").read_text()) for kind, run in runs.items()}
    return {"sdr": {kind: mean_sdr(r) for kind, r in results.items()}, "same_renditions": same,
            "best_epoch": {kind: r["best_epoch"] for kind, r in records.items()},
            "steps": {kind: int(r["history"][-1]["step"]) for kind, r in records.items()}}


def _preset_name(preset) -> str:
    return preset.get("name", "preset") if isinstance(preset, dict) else str(preset)


def markdown(pieces: dict, left_out: dict, args, seconds: float) -> str:
    lines = ["# Score-conditioned vs plain adaptation (real SDR, dB)", "",
             f"General model {args.model}; per piece {args.renditions} renditions of its score "
             f"({_preset_name(args.preset)}), {args.minutes:g} min" + (f" or {args.steps} steps" if args.steps else "")
             + f" of fine-tuning, seed {args.seed}, for both adaptations. "
             "The conditioned model separates with the piece's annotated notes. SDR: BSSEval v4 images, "
             "median over 1 s frames per part.", "",
             "| piece | instrument | mixture / parts | general | adapted | conditioned | conditioned - adapted |",
             "|---|---|---:|---:|---:|---:|---:|"]
    means = {kind: [] for kind in KINDS}
    for name, piece in pieces.items():
        sdr = piece["sdr"]
        for inst in sdr["general"]["instruments"]:
            cells = [sdr[kind]["instruments"][inst]["mean"] for kind in KINDS]
            lines.append(f"| {name} | {inst} | " + " | ".join(f"{c:.2f}" for c in cells)
                         + f" | {cells[3] - cells[2]:+.2f} |")
        cells = [sdr[kind]["mean"] for kind in KINDS]
        for kind, value in zip(KINDS, cells):
            means[kind].append(value)
        lines.append(f"| {name} | **mean** | " + " | ".join(f"{c:.2f}" for c in cells)
                     + f" | {cells[3] - cells[2]:+.2f} |")
    if pieces:
        cells = [float(np.mean(means[kind])) for kind in KINDS]
        lines.append("| **all pieces** | **mean** | " + " | ".join(f"**{c:.2f}**" for c in cells)
                     + f" | **{cells[3] - cells[2]:+.2f}** |")
    lines.append("")
    for name, piece in pieces.items():
        epochs = piece["best_epoch"]
        steps = piece["steps"]
        lines.append(f"{name}: steps trained adapted {steps['adapted']}, conditioned {steps['conditioned']}; "
                     f"best epoch adapted {epochs['adapted']}, conditioned {epochs['conditioned']} "
                     "(0: no epoch beat the general model on the renditions' validation split, so it was kept).")
        if not piece["same_renditions"]:
            lines.append(f"Warning: {name}: the two adaptations rendered different audio.")
    for name, reason in left_out.items():
        lines.append(f"Left out {name}: {reason}.")
    lines.append(f"\nWall time {seconds:.0f} s.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, type=Path,
                        help="the general model (model.pt) both adaptations start from")
    parser.add_argument("--real", action="append", required=True, help="KIND:PATH of real pieces (repeatable)")
    parser.add_argument("--renditions", type=int, default=160)
    parser.add_argument("--minutes", type=float, default=3.0, help="fine-tuning wall time of each adaptation")
    parser.add_argument("--steps", type=int, default=None,
                        help="also stop each fine-tuning after this many steps (the same steps for both)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--preset", default=BASE_PRESET, type=rendition_base,
                        help="the renditions' timbres, rooms and mics: a corpus preset, or a corpus folder "
                             "(use the general model's training corpus: its channels must match the model's)")
    parser.add_argument("--model-preset", default="small", help="training settings of the fine-tuning")
    parser.add_argument("--jobs", type=int, default=1, help="processes rendering the renditions")
    parser.add_argument("--pieces", nargs="*", help="only these pieces (names)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    started = time.monotonic()
    instruments = list(read_checkpoint(args.model)["layout"]["instruments"])
    pieces, left_out = {}, {}
    for spec in args.real:
        for track in load_dataset(spec):
            if args.pieces and track.name not in args.pieces:
                continue
            reason = why_left_out(track, instruments)
            if reason:
                left_out[track.name] = reason
                print(f"{track.name}: left out ({reason})", flush=True)
                continue
            print(f"{track.name}: adapting plainly and score-conditioned", flush=True)
            pieces[track.name] = score_piece(track, args, args.out)
    text = markdown(pieces, left_out, args, time.monotonic() - started)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text(text)
    arguments = {k: _preset_name(v) if k == "preset" else str(v) for k, v in vars(args).items()}
    (args.out / "results.json").write_text(json.dumps({"args": arguments,
                                                       "pieces": pieces, "left_out": left_out}, indent=1))
    print(text)


if __name__ == "__main__":
    main()
