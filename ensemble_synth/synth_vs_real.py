"""The synth-vs-real benchmark: what each part of the synthesis buys on real recordings.

For the ensemble of a real data set, one training corpus per variant (``dry`` baseline,
``room``, ``timbre``, ``performance``, ``full``) is generated from Bach chorales with the
real pieces excluded (by catalogue number and by melody), the same ConvTasNet is trained
on each for the same number of steps (several models side by side, one process each, when
``jobs`` allows), and each model is scored on its own synthetic validation split and on the
real recordings.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from .acoustics.seating import layout_for
from .adaptation import adapt
from .corpus.generation import generate
from .corpus.preset import resolve_preset
from .errors import UserError
from .evaluation.datasets import load_dataset
from .evaluation.model_scoring import evaluate_mixture, evaluate_model, mean_sdr
from .music.performance import PERFORMANCE_KEYS
from .schema import defaults
from .separation.allocator import jemalloc_preloaded, training_allocator_env
from .separation.config import resolve_config
from .versions import versions

VARIANTS = ("dry", "room", "timbre", "performance", "full")
BASE_PRESET = "bach10_like"
MONO_MICS = ["mono", "decca_tree_spots_mono"]
DRY_SOUNDFONT = "fluidr3_gm"


@dataclass(frozen=True)
class Budget:
    name: str
    sample_rate: int
    train: int
    valid: int
    per_room: int
    excerpt_seconds: float
    model: str
    epochs: int
    steps_per_epoch: int
    valid_items: int
    description: str
    adapt_renditions: int = 160  # --score-informed: renditions of each real piece's score
    adapt_minutes: float = 5.0  # and the fine-tuning budget per piece


BUDGETS = {
    "smoke": Budget("smoke", 16000, 6, 2, 2, 4.0, "tiny", 2, 8, 4,
                    "plumbing check: minutes on 2 CPU cores; the numbers mean nothing", 8, 0.2),
    "small": Budget("small", 16000, 960, 12, 4, 12.0, "small", 20, 150, 16,
                    "about an hour on 2 CPU cores"),
    "full": Budget("full", 44100, 2000, 100, 4, 15.0, "convtasnet_study", 100, 500, 64,
                   "the study's model at 44.1 kHz: for a GPU", 320, 10.0),
}

NO_PERFORMANCE = defaults(PERFORMANCE_KEYS)  # the preset defaults: no variation
NO_TIMBRE = {"soundfont": DRY_SOUNDFONT, "detune_cents": 0.0, "eq_low_db": 0.0, "eq_high_db": 0.0}


def variant_preset(base: dict, variant: str, budget: Budget, layout: str, exclude_melodies: list[str]) -> dict:
    """The corpus preset of one variant: the base preset with parts of the synthesis switched off."""
    if variant not in VARIANTS:
        raise UserError(f"unknown variant '{variant}' (known: {', '.join(VARIANTS)})")
    preset = copy.deepcopy({k: v for k, v in base.items() if not k.startswith("_")})
    preset["name"] = f"bench_{variant}"
    preset["description"] = f"synth-vs-real benchmark, variant {variant}, budget {budget.name}"
    preset["sample_rate"] = budget.sample_rate
    preset["tracks"] = {"train": budget.train, "valid": budget.valid, "test": 0, "per_room": budget.per_room}
    preset["repertoire"]["excerpt_seconds"] = budget.excerpt_seconds
    preset["repertoire"]["exclude_melodies"] = list(exclude_melodies)
    preset["ensemble"] = {"layout": layout}
    preset["room"]["mics"] = MONO_MICS  # the real mixtures are mono
    with_room = variant in ("room", "full")
    with_timbre = variant in ("timbre", "full")
    with_performance = variant in ("performance", "full")
    if not with_room:
        preset["room"] = {"enabled": False, "room": "chamber_hall", "mics": "mono"}
    if not with_timbre:
        preset["timbre"] = dict(NO_TIMBRE)
    if not with_performance:
        preset["performance"] = dict(NO_PERFORMANCE)
    if variant == "dry":
        preset["mix"]["gain_db"] = 0.0
    preset["_source"] = f"<bench variant {variant}>"
    return preset


def real_scores(real: str) -> list[str]:
    """The score files of a real data set, whose tunes the training corpora must avoid."""
    kind, _, path = real.partition(":")
    root = Path(path)
    patterns = {"bach10": "*/*.mid", "urmp": "**/Sco_*.mid", "folder": "**/*.mid"}
    return sorted(str(p) for p in root.glob(patterns.get(kind, "**/*.mid")))


def _generate_variant(variant, preset, out_dir, seed, jobs, progress, log) -> tuple[Path, int, float]:
    """The variant's training corpus (a finished one is reused): (path, tracks, seconds)."""

    corpus = out_dir / "corpora" / variant
    t0 = time.perf_counter()
    summary = generate(preset, corpus, seed=seed, jobs=jobs, progress=progress)
    log(f"[{variant}] corpus: {summary.line()}")
    return corpus, summary.tracks, time.perf_counter() - t0


def _train_and_score(variant: str, corpus: Path, out_dir: Path, budget: Budget, real: list[str], seed: int,
                     causal: bool, threads: int, progress: bool) -> dict:
    """Train the variant's model (a finished run is reused) and score it on synthetic and real
    tracks. Runs in a worker process of its own."""
    import sys

    import torch

    from .separation import load_separator, train

    torch.set_num_threads(threads)

    def log(msg):
        print(f"[{variant}] {msg}", file=sys.stderr, flush=True)

    run_dir = out_dir / "runs" / variant
    t1 = time.perf_counter()
    model_path = run_dir / "model.pt"
    if not (run_dir / "done").exists():
        overrides = {"epochs": budget.epochs, "steps_per_epoch": budget.steps_per_epoch, "valid_items": budget.valid_items}
        if causal:
            overrides.update({"causal": True, "norm": "cLN"})
        model_path = train(corpus, run_dir, model=budget.model, seed=seed, progress=progress,
                           log=None if progress else log, resume=(run_dir / "last.pt").exists(), **overrides)
        (run_dir / "done").write_text("trained\n")
    t2 = time.perf_counter()
    separator = load_separator(model_path)
    synthetic = evaluate_model(separator, load_dataset(f"folder:{corpus / 'valid'}"), metrics=("SDR",))
    # loaded again here rather than sent from the parent: a spawned worker would unpickle the audio anyway
    real_tracks = [t for spec in real for t in load_dataset(spec)]
    real_results = evaluate_model(separator, real_tracks, metrics=("SDR",))
    t3 = time.perf_counter()
    (out_dir / "scores").mkdir(parents=True, exist_ok=True)
    scores = {"synthetic": [r.to_json() for r in synthetic], "real": [r.to_json() for r in real_results]}
    (out_dir / "scores" / f"{variant}.json").write_text(json.dumps(scores))
    syn, rea = mean_sdr(synthetic), mean_sdr(real_results)
    log(f"synthetic SDR {syn['mean']:.2f} dB, real SDR {rea['mean']:.2f} dB")
    return {
        "variant": variant,
        "synthetic": syn,
        "real": rea,
        "gap": (syn["mean"] - rea["mean"]) if syn["mean"] is not None and rea["mean"] is not None else None,
        "seconds": {"train": round(t2 - t1, 1), "evaluate": round(t3 - t2, 1)},
        "training_process": {"threads": torch.get_num_threads(),
                             "allocator": "jemalloc" if jemalloc_preloaded() else "default"},
    }


def _adapt_and_score(variant: str, preset: dict, model_path: Path, out_dir: Path, budget: Budget, real: list[str],
                     track_name: str, seed: int, progress: bool) -> dict:
    """Adapt a variant's model to one real piece's score, then separate and score that piece.
    Runs in a worker process of its own (jemalloc preloaded, every core's thread)."""
    import sys

    from .separation import load_separator

    track = next(t for spec in real for t in load_dataset(spec) if t.name == track_name)
    run = out_dir / "adapted" / variant / track.name
    best = run / "model.pt"
    if not best.is_file():
        if run.exists():  # an interrupted adaptation starts again
            import shutil

            shutil.rmtree(run)
        best = adapt(track.score, run, model=model_path, ensemble=list(track.instruments),
                     renditions=budget.adapt_renditions, minutes=budget.adapt_minutes, seed=seed,
                     base_preset=preset, model_preset=budget.model, jobs=1, progress=progress,
                     log=lambda m: print(f"[{variant} {track.name}] {m}", file=sys.stderr, flush=True))
    general = evaluate_model(load_separator(model_path), [track], metrics=("SDR",))
    adapted = evaluate_model(load_separator(best), [track], metrics=("SDR",))
    return {"general": mean_sdr(general), "adapted": mean_sdr(adapted)}


def score_informed(variants: dict, presets: dict, out_dir: Path, budget: Budget, real: list[str], real_tracks,
                   seed: int, progress: bool, log) -> list[dict]:
    """Per variant and piece: the blind model's SDR and the SDR after adapting it to the piece's score.

    These rows use the test piece's score, so they are reported apart from the blind ones."""
    import concurrent.futures as cf
    import multiprocessing

    pieces = [t for t in real_tracks if t.score is not None]
    if not pieces:
        raise UserError(f"--score-informed: no piece of {', '.join(real)} ships a score")
    rows = []
    context = multiprocessing.get_context("spawn")
    with training_allocator_env(), cf.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        for variant in variants:
            per_piece = {}
            for track in pieces:
                log(f"[{variant}] adapting to the score of {track.name} ({budget.adapt_renditions} renditions, "
                    f"{budget.adapt_minutes:g} min)")
                scores = pool.submit(_adapt_and_score, variant, presets[variant], out_dir / "runs" / variant / "model.pt",
                                     out_dir, budget, real, track.name, seed, progress).result()
                per_piece[track.name] = scores
                log(f"[{variant}] {track.name}: general {_fmt(scores['general']['mean'])} dB, "
                    f"adapted {_fmt(scores['adapted']['mean'])} dB")
            means = {k: float(np.mean([p[k]["mean"] for p in per_piece.values()])) for k in ("general", "adapted")}
            rows.append({"variant": variant, "pieces": per_piece, **means})
    return rows


def training_workers(jobs: int, variants: int) -> tuple[int, int]:
    """(models trained side by side, torch threads each). One ConvTasNet process barely gains
    from a second CPU thread, so on a few cores separate processes train more steps an hour."""
    import os

    cores = os.cpu_count() or 1
    workers = max(1, min(jobs, variants, cores))
    return workers, max(1, cores // workers)


def _train_all(corpora: dict, out_dir, plan, real, seed, causal, workers, threads, progress, log) -> dict:
    """Every variant's scores row, training ``workers`` models at a time with ``threads`` torch
    threads each, each in a process of its own (with jemalloc preloaded where it is installed)."""
    import concurrent.futures as cf
    import multiprocessing

    alone = workers == 1
    if not alone:
        log(f"training {workers} variants at a time ({threads} thread(s) each); epoch lines follow, "
            f"curves in {out_dir / 'runs' / '<variant>' / 'metrics.csv'}")
    # spawn: the parent may already run torch threads, which a forked child would inherit broken
    context = multiprocessing.get_context("spawn")
    with training_allocator_env() as jemalloc:
        if not jemalloc:
            log("jemalloc not found: training runs with the default allocator (several times slower on CPU)")
        with cf.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = {v: pool.submit(_train_and_score, v, c, out_dir, plan, real, seed, causal, threads,
                                      progress and alone) for v, c in corpora.items()}
            return {v: f.result() for v, f in futures.items()}


def run_bench(real: list[str], out_dir, budget: str = "smoke", causal: bool = False, seed: int = 0,
              variants=VARIANTS, jobs: int = 1, progress: bool = True, log=print, preset=BASE_PRESET,
              model: str | None = None, score_informed_pieces: bool = False) -> dict:
    """Run the benchmark; writes results.json, results.md and gap.png into ``out_dir``.

    ``preset`` is the corpus preset (name, path or table) the variants switch parts of off;
    ``model`` a model preset (name or TOML) in place of the budget's. ``score_informed_pieces``:
    also adapt each variant's model to every real piece's score (``adapt``) and score it again,
    reported apart from the blind rows.
    """

    if budget not in BUDGETS:
        raise UserError(f"unknown budget '{budget}' (known: {', '.join(BUDGETS)})")
    plan = BUDGETS[budget] if model is None else replace(BUDGETS[budget], model=str(model))
    if not real:
        raise UserError("give at least one real data set: --real bach10:PATH")
    if jobs < 1:
        raise UserError(f"--jobs {jobs}: must be at least 1")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise UserError(f"unknown variant(s) {', '.join(unknown)} (known: {', '.join(VARIANTS)})")

    resolve_config(plan.model)  # a bad model preset fails now, not after the first corpus
    real_tracks = []
    for spec in real:
        real_tracks += load_dataset(spec)
    ensembles = {tuple(t.instruments) for t in real_tracks}
    if len(ensembles) != 1:
        raise UserError(f"the real sets mix ensembles ({'; '.join(', '.join(e) for e in sorted(ensembles))}); "
                        "run one benchmark per ensemble")
    instruments = list(next(iter(ensembles)))
    layout = layout_for(instruments)
    melodies = [s for spec in real for s in real_scores(spec)]
    base = resolve_preset(preset)
    if layout != "bach10":
        base["repertoire"]["part_policy"] = "fit"
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    corpora, generated, presets = {}, {}, {}
    for variant in variants:
        variant_spec = presets[variant] = variant_preset(base, variant, plan, layout, melodies)
        corpus, tracks, seconds = _generate_variant(variant, variant_spec, out_dir, seed, jobs, progress, log)
        corpora[variant] = corpus
        generated[variant] = ({"path": str(corpus), "tracks": tracks}, round(seconds, 1))
    workers, threads = training_workers(jobs, len(variants))
    scored = _train_all(corpora, out_dir, plan, list(real), seed, causal, workers, threads, progress, log)
    rows = []
    for variant in variants:
        corpus_info, seconds = generated[variant]
        row = scored[variant]
        row["corpus"] = corpus_info
        row["seconds"] = {"generate": seconds, **row["seconds"]}
        rows.append(row)

    adapted = (score_informed(variants, presets, out_dir, plan, list(real), real_tracks, seed, progress, log)
               if score_informed_pieces else None)
    results = {
        "budget": asdict(plan),
        "causal": causal,
        "preset": base["name"],
        "seed": seed,
        "real": real,
        "real_tracks": [t.name for t in real_tracks],
        "ensemble": {"layout": layout, "instruments": instruments},
        "excluded": {"names": base["repertoire"]["exclude"], "melodies_of": melodies},
        "training": f"same steps for every variant: {plan.epochs} epochs x {plan.steps_per_epoch} steps, model preset '{plan.model}'",
        "training_workers": {"models_at_a_time": workers, "threads_each": threads},
        "evaluation": "SDR (BSSEval v4 images, museval-compatible), median over 1 s frames per part, mean over tracks, then over instruments; real pieces whole",
        "variants": rows,
        "mixture_reference": {"real": mean_sdr(evaluate_mixture(real_tracks))},
        "score_adapted": adapted,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "versions": versions(),
    }
    (out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out_dir / "results.md").write_text(results_markdown(results))
    plot_gap(results, out_dir / "gap.png")
    return results


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def results_markdown(results: dict) -> str:
    instruments = results["ensemble"]["instruments"]
    lines = [
        f"# Synth-vs-real benchmark ({results['budget']['name']} budget{', causal' if results['causal'] else ''})",
        "",
        f"Real set: {', '.join(results['real'])} ({len(results['real_tracks'])} tracks). {results['training']}. "
        f"{results['evaluation']}.",
        "",
        "| variant | synthetic SDR | real SDR | gap | " + " | ".join(f"real {i}" for i in instruments) + " |",
        "|---|---:|---:|---:|" + "---:|" * len(instruments),
    ]
    for row in results["variants"]:
        per = [_fmt(row["real"]["instruments"].get(i, {}).get("mean")) for i in instruments]
        lines.append(f"| {row['variant']} | {_fmt(row['synthetic']['mean'])} | {_fmt(row['real']['mean'])} | "
                     f"{_fmt(row['gap'])} | " + " | ".join(per) + " |")
    reference = results["mixture_reference"]
    per = [_fmt(reference["real"]["instruments"].get(i, {}).get("mean")) for i in instruments]
    lines.append(f"| *mixture / parts (no model)* | | {_fmt(reference['real']['mean'])} | | " + " | ".join(per) + " |")
    lines += ["", f"Wall time {results['wall_seconds']:.0f} s. SDR in dB. The last row scores the mixture itself, "
              "divided by the number of parts, as every part's estimate: a model below it makes the parts worse.", ""]
    if results.get("score_adapted"):
        budget = results["budget"]
        pieces = list(results["score_adapted"][0]["pieces"])
        lines += ["## Score-adapted (uses each test piece's score: not comparable with the blind rows)", "",
                  f"Each variant's model fine-tuned on {budget['adapt_renditions']} renditions of the piece's score "
                  f"for {budget['adapt_minutes']:g} min, then scored on that piece. general / adapted real SDR:", "",
                  "| variant | general | adapted | " + " | ".join(pieces) + " |",
                  "|---|---:|---:|" + "---:|" * len(pieces)]
        for row in results["score_adapted"]:
            cells = [f"{_fmt(row['pieces'][p]['general']['mean'])} / {_fmt(row['pieces'][p]['adapted']['mean'])}" for p in pieces]
            lines.append(f"| {row['variant']} | {_fmt(row['general'])} | {_fmt(row['adapted'])} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def plot_gap(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["variants"]
    names = [r["variant"] for r in rows]
    syn = [r["synthetic"]["mean"] if r["synthetic"]["mean"] is not None else float("nan") for r in rows]
    rea = [r["real"]["mean"] if r["real"]["mean"] is not None else float("nan") for r in rows]
    x = range(len(rows))
    fig, ax = plt.subplots(figsize=(1.4 * len(rows) + 2, 3.6))
    ax.bar([i - 0.2 for i in x], syn, width=0.4, label="synthetic validation")
    ax.bar([i + 0.2 for i in x], rea, width=0.4, label="real recordings")
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xticks(list(x), names)
    ax.set_ylabel("mean SDR (dB)")
    ax.set_title(f"Synth vs real, {results['budget']['name']} budget")
    ax.legend(frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
