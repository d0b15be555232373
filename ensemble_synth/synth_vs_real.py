"""The synth-vs-real benchmark: what each part of the synthesis buys on real recordings.

For the ensemble of a real data set, one training corpus per variant (``dry`` baseline,
``room``, ``timbre``, ``performance``, ``full``) is generated from Bach chorales with the
real pieces excluded (by catalogue number, by melody and, for MIDI sources, by title), the
same ConvTasNet is trained on each for the same number of steps (several models side by
side, one process each, when ``jobs`` allows), and each model is scored on its own synthetic
validation split and on the real recordings.

A real set with several line-ups (URMP) is grouped by line-up (the instruments in part
order): every group gets its own corpora and models, seated by the ensemble preset of its
line-up, and is reported on its own, per piece and overall. Model outputs are the parts in
part order (``1_violin``, ``2_violin``, ...): output i is real part i, its instrument checked.
With ``outputs="targets"``, each instrument of a line-up gets a target model of its own (that
instrument against the rest) instead, trained on the same corpus for the same steps.
"""

from __future__ import annotations

import copy
import io
import json
import math
import re
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from .acoustics.seating import ensemble_instruments, layout_for, load_layout
from .adaptation import adapt, score_instruments
from .corpus.generation import default_rir_cache, generate
from .corpus.preset import resolve_preset
from .distributions import support
from .errors import UserError
from .evaluation.datasets import load_dataset
from .evaluation.model_scoring import evaluate_mixture, evaluate_model, mean_sdr
from .fileio import write_bytes_atomic
from .music.performance import PERFORMANCE_KEYS
from .music.repertoire import load_midi_piece, midi_files
from .presets import list_presets, presets_root, read_toml
from .schema import defaults
from .separation.allocator import jemalloc_preloaded, training_allocator_env
from .separation.config import TRAINING_DEFAULTS, architecture, describe_difference, resolve_config
from .versions import versions

VARIANTS = ("dry", "room", "timbre", "performance", "full")
OUTPUTS = ("voices", "targets")  # one model whose outputs are the parts in part order, or a target model per instrument
BASE_PRESET = "bach10_like"
URMP_PRESET = "urmp_like"  # the base preset of any real line-up other than Bach10's
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
    "small": Budget("small", 16000, 960, 12, 4, 12.0, "small", 32, 150, 16,
                    "about an hour on 2 CPU cores"),
    "full": Budget("full", 44100, 2000, 100, 4, 15.0, "convtasnet_study", 100, 500, 64,
                   "the study's model at 44.1 kHz: for a GPU", 320, 10.0),
}

NO_PERFORMANCE = defaults(PERFORMANCE_KEYS)  # the preset defaults: no variation
NO_TIMBRE = {"soundfont": DRY_SOUNDFONT, "detune_cents": 0.0, "eq_low_db": 0.0, "eq_high_db": 0.0}


def variant_preset(base: dict, variant: str, budget: Budget, layout: str, exclude_melodies: list[str],
                   exclude: list[str] = ()) -> dict:
    """The corpus preset of one variant: the base preset with parts of the synthesis switched off.

    ``exclude``: ids or files left out besides the base preset's own (the real pieces' titles)."""
    if variant not in VARIANTS:
        raise UserError(f"unknown variant '{variant}' (known: {', '.join(VARIANTS)})")
    preset = copy.deepcopy({k: v for k, v in base.items() if not k.startswith("_")})
    preset["name"] = f"bench_{variant}"
    preset["description"] = f"synth-vs-real benchmark, variant {variant}, budget {budget.name}"
    preset["sample_rate"] = budget.sample_rate
    preset["tracks"] = {"train": budget.train, "valid": budget.valid, "test": 0, "per_room": budget.per_room}
    preset["repertoire"]["excerpt_seconds"] = budget.excerpt_seconds
    preset["repertoire"]["exclude_melodies"] = list(exclude_melodies)
    if exclude:
        preset["repertoire"]["exclude"] = [*preset["repertoire"]["exclude"], *exclude]
    preset["ensemble"] = {"layout": layout}
    preset["room"]["mics"] = MONO_MICS  # the real mixtures are mono
    with_room = variant in ("room", "full")
    with_timbre = variant in ("timbre", "full")
    with_performance = variant in ("performance", "full")
    if not with_room:  # the recording chain: the room, the microphones and each part's background noise
        preset["room"] = {"enabled": False, "room": "chamber_hall", "mics": "mono"}
        preset.pop("noise", None)
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
    if kind.lower() == "urmp":  # a piece folder, or a root of piece folders (symlinked ones too)
        return sorted(dict.fromkeys(str(p) for pattern in ("Sco_*.mid", "*/Sco_*.mid") for p in root.glob(pattern)))
    patterns = {"bach10": "*/*.mid", "folder": "**/*.mid"}
    return sorted(str(p) for p in root.glob(patterns.get(kind, "**/*.mid")))


def melody_files(real: list[str], folder: Path | None = None) -> list[str]:
    """The MIDI files whose tunes the corpora avoid (each is compared as a soprano line).

    A Bach10 score is a chorale with its tune on top: used as it is. Any other score (URMP
    arranges a tune in any part) is written voice by voice as one-voice files, so that a
    chorale whose soprano matches any part of a real piece is left out. The files go to
    ``folder`` (by default ``melodies/`` beside the impulse-response cache), named by the
    score's digest: the same score gives the same paths whatever the output folder, so a
    benchmark folder that is moved or copied still resumes its corpora."""
    import hashlib

    import pretty_midi

    folder = Path(folder) if folder is not None else default_rir_cache().parent / "melodies"
    out = []
    for spec in real:
        scores = real_scores(spec)
        if spec.partition(":")[0].lower() == "bach10":
            out += scores
            continue
        for score in scores:
            digest = hashlib.sha256(Path(score).read_bytes()).hexdigest()[:16]
            piece = load_midi_piece(score)
            for number, voice in enumerate(piece.voices, 1):
                path = folder / f"{Path(score).stem}_{digest}_voice{number}.mid"
                out.append(str(path))
                if path.is_file():
                    continue
                midi = pretty_midi.PrettyMIDI(initial_tempo=120)
                track = pretty_midi.Instrument(program=0, name=f"voice {number}")
                for beat, length, pitch, _ in voice:  # beats at 120 bpm; only the pitch order matters
                    track.notes.append(pretty_midi.Note(80, int(pitch), 0.5 * beat, 0.5 * (beat + max(length, 0.1))))
                midi.instruments.append(track)
                buffer = io.BytesIO()
                midi.write(buffer)
                path.parent.mkdir(parents=True, exist_ok=True)
                write_bytes_atomic(path, buffer.getvalue())
    return list(dict.fromkeys(out))


def _title_key(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def title_exclusions(source, titles: list[str]) -> list[str]:
    """The MIDI files of a ``midi:`` repertoire (or of each ``midi:`` source of a choice) whose
    name holds a real piece's title (of at least four letters or digits, case and punctuation
    ignored). music21's Bach chorales carry no titles to match: they are left out by melody alone."""
    keys = {k for k in (_title_key(t) for t in titles) if len(k) >= 4}
    folders = [s[len("midi:"):] for s in support(source) if isinstance(s, str) and s.startswith("midi:")]
    return [f for folder in folders for f in midi_files(folder) if any(k in _title_key(Path(f).stem) for k in keys)]


# -- the real set, grouped by line-up ---------------------------------------------------


@dataclass
class Group:
    """The real tracks of one line-up (instruments in part order) and where their runs go."""

    layout: str
    instruments: list[str]
    tracks: list = field(repr=False)
    specs: list[str]  # the data sets a training worker loads these tracks from
    key: str | None = None  # the sub-folder of corpora/, runs/, scores/; None for a lone line-up

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.tracks]

    def label(self, variant: str) -> str:
        return variant if self.key is None else f"{self.key}/{variant}"

    def folder(self, out_dir: Path, kind: str) -> Path:
        return out_dir / kind if self.key is None else out_dir / kind / self.key


def load_real(real: list[str], segment: float | None) -> list[tuple[str, object]]:
    """(spec, track) for every track of the real sets; a track given twice is refused."""
    pairs, seen = [], {}
    for spec in real:
        for track in load_dataset(spec, segment=segment):
            if track.name in seen:
                raise UserError(f"{spec}: track '{track.name}' is also in {seen[track.name]}; give each real piece once")
            seen[track.name] = spec
            pairs.append((spec, track))
    return pairs


def seat_lineups(lineups: dict[tuple, list[str]]) -> dict[tuple, str]:
    """The ensemble preset of every line-up (instruments in part order -> track names).

    A line-up no preset seats is one line naming the instruments no preset holds (or, if each
    is held somewhere, the line-up) with the pieces and the presets folder."""
    seated, missing = {}, []
    for lineup in lineups:
        try:
            seated[lineup] = layout_for(list(lineup))
        except UserError:
            missing.append(lineup)
    if not missing:
        return seated
    folder = presets_root() / "ensembles"
    known = {i for name in list_presets("ensembles") for i in ensemble_instruments(load_layout(name))}

    def pieces(lineup):
        names = lineups[lineup]
        return names[0] + (f" and {len(names) - 1} more" if len(names) > 1 else "")

    unseated = list(dict.fromkeys(i for lineup in missing for i in lineup if i not in known))
    if unseated:
        where = "; ".join(pieces(k) for k in missing if set(k) & set(unseated))
        raise UserError(f"no ensemble preset in {folder} seats {', '.join(unseated)} (in {where}); "
                        "add one whose 'instruments' include it")
    lines = "; ".join(f"{', '.join(k)} (in {pieces(k)})" for k in missing)
    raise UserError(f"no ensemble preset in {folder} seats the line-up {lines}; "
                    "add one with these instruments in part order")


def group_by_lineup(pairs: list[tuple[str, object]], real: list[str]) -> list[Group]:
    """The real tracks grouped by line-up, in the order the line-ups first appear."""
    members: dict[tuple, list] = {}
    for spec, track in pairs:
        members.setdefault(tuple(track.instruments), []).append((spec, track))
    layouts = seat_lineups({k: [t.name for _, t in v] for k, v in members.items()})
    if len(members) == 1:
        [(lineup, items)] = members.items()
        return [Group(layouts[lineup], list(lineup), [t for _, t in items], list(real))]
    groups = []
    for lineup, items in members.items():
        specs = []
        for spec, track in items:  # a piece folder where the loader recorded one, so a worker reads only these
            kind = spec.partition(":")[0]
            specs.append(f"{kind}:{track.path}" if getattr(track, "path", None) is not None else spec)
        groups.append(Group(layouts[lineup], list(lineup), [t for _, t in items], list(dict.fromkeys(specs)),
                            key=layouts[lineup]))
    return groups


# -- aggregation ----------------------------------------------------------------------


def _finite_mean(values) -> float | None:
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def part_rows(results) -> list[dict]:
    """track, part, instrument and SDR (frame median) of every scored part."""
    return [{k: row[k] for k in ("track", "part", "instrument", "SDR")} for r in results for row in r.rows()]


def pooled_sdr(rows: list[dict]) -> dict:
    """As :func:`mean_sdr`, over part rows: per instrument the mean over its parts, then the
    mean over instruments (an accompaniment output left out of that)."""
    per: dict[str, list] = {}
    for row in rows:
        per.setdefault(row["instrument"] or row["part"], []).append(row["SDR"])
    instruments = {name: {"mean": _finite_mean(v), "tracks": sum(1 for x in v if math.isfinite(x))}
                   for name, v in sorted(per.items())}
    return {"instruments": instruments,
            "mean": _finite_mean(v["mean"] for k, v in instruments.items() if k != "accompaniment")}


def per_piece(rows: list[dict], piece_of) -> dict:
    """Per piece, the mean SDR over its parts (and segments)."""
    out: dict[str, list] = {}
    for row in rows:
        out.setdefault(piece_of(row["track"]), []).append(row["SDR"])
    return {piece: _finite_mean(v) for piece, v in out.items()}


def per_part(rows: list[dict]) -> dict:
    """Per part name (1_violin, 2_violin apart), the mean SDR over the tracks."""
    out: dict[str, list] = {}
    for row in rows:
        out.setdefault(row["part"], []).append(row["SDR"])
    return {part: _finite_mean(v) for part, v in out.items()}


def piece_namer(segment: float | None):
    """Track name -> piece name (a segment ``<piece>_segNN`` belongs to ``<piece>``)."""
    if segment is None:
        return lambda name: name
    return lambda name: re.sub(r"_seg\d{2,}$", "", name)


# -- generation, training, scoring ------------------------------------------------------


def _generate_variant(label, preset, corpus, seed, jobs, progress, log) -> tuple[Path, int, float]:
    """The variant's training corpus (a finished one is reused): (path, tracks, seconds)."""

    t0 = time.perf_counter()
    summary = generate(preset, corpus, seed=seed, jobs=jobs, progress=progress)
    log(f"[{label}] corpus: {summary.line()}")
    return corpus, summary.tracks, time.perf_counter() - t0


def training_overrides(budget: Budget, causal: bool) -> dict:
    """What the bench changes in the budget's model preset for every model it trains."""
    overrides = {"epochs": budget.epochs, "steps_per_epoch": budget.steps_per_epoch, "valid_items": budget.valid_items}
    if causal:
        overrides.update({"causal": True, "norm": "cLN"})
    return overrides


def _as_trained(config: dict) -> dict:
    model = {f"model.{k}": v for k, v in architecture(config.get("model", {})).items() if k != "channels"}
    # a key added since a run was trained had its default then
    training = {f"training.{k}": v for k, v in {**TRAINING_DEFAULTS, **config.get("training", {})}.items()}
    return {**model, **training, "seed": config.get("data", {}).get("seed")}


def check_finished_runs(folders: list[Path], budget: Budget, causal: bool, seed: int) -> None:
    """A finished run in the output folder is reused as it is, so it must have been trained as
    this bench would train it: another model, budget or seed there is one line naming the
    folder, before any work."""
    expected = _as_trained({**resolve_config(budget.model, training_overrides(budget, causal)), "data": {"seed": seed}})
    for folder in folders:
        if not (folder / "done").exists():
            continue
        found = _as_trained(read_toml(folder / "config.toml"))
        if found != expected:
            raise UserError(f"{folder}: a finished run trained otherwise than this bench would "
                            f"({describe_difference(found, expected)}, as found vs as asked); "
                            f"move it away or use another --out")


def run_folder(out_dir: Path, label: str, target: str | None = None) -> Path:
    """Where a model is trained: ``runs/<label>``, a target model ``runs/targets/<label>/<instrument>``."""
    return out_dir / "runs" / label if target is None else out_dir / "runs" / "targets" / label / target


def _train_and_score(variant: str, corpus: Path, out_dir: Path, budget: Budget, real: list[str], seed: int,
                     causal: bool, threads: int, progress: bool, group: str | None = None,
                     names: list[str] | None = None, segment: float | None = None, target: str | None = None) -> dict:
    """Train the variant's model (a finished run is reused) and score it on synthetic and real
    tracks. Runs in a worker process of its own. ``group``: the line-up's sub-folder when the
    real set has several; ``names``: the real tracks of that line-up; ``target``: train a target
    model (that instrument against the rest) instead of one output per part."""
    import sys

    import torch

    from .separation import load_separator, train

    torch.set_num_threads(threads)
    # numpy's BLAS too (example reading, scoring): its thread count changes its rounding, and
    # so the training curve, which would otherwise depend on the caller's environment.
    threadpool_limits(threads)
    label = variant if group is None else f"{group}/{variant}"
    prefix = label if target is None else f"{label} {target}"

    def log(msg):
        print(f"[{prefix}] {msg}", file=sys.stderr, flush=True)

    run_dir = run_folder(out_dir, label, target)
    t1 = time.perf_counter()
    model_path = run_dir / "model.pt"
    if not (run_dir / "done").exists():
        model_path = train(corpus, run_dir, model=budget.model, target=target, seed=seed, progress=progress,
                           log=None if progress else log, resume=(run_dir / "last.pt").exists(),
                           **training_overrides(budget, causal))
        (run_dir / "done").write_text("trained\n")
    else:
        log(f"reusing the finished run in {run_dir} (scored again)")
    t2 = time.perf_counter()
    separator = load_separator(model_path)
    synthetic = evaluate_model(separator, load_dataset(f"folder:{corpus / 'valid'}"), metrics=("SDR",))
    # loaded again here rather than sent from the parent: a spawned worker would unpickle the audio anyway
    real_tracks = [t for spec in real for t in load_dataset(spec, segment=segment)]
    if names is not None:
        wanted = set(names)
        real_tracks = [t for t in real_tracks if t.name in wanted]
    for track in real_tracks:  # outputs are the parts in part order: output i is real part i
        if target is None and list(separator.instruments) != list(track.instruments):
            raise UserError(f"{model_path}: the model separates {', '.join(separator.instruments)} in this order, "
                            f"but {track.name} has {', '.join(track.instruments)}")
    real_results = evaluate_model(separator, real_tracks, metrics=("SDR",))
    t3 = time.perf_counter()
    scores_path = (out_dir / "scores" / f"{label}.json" if target is None
                   else out_dir / "scores" / "targets" / label / f"{target}.json")
    scores_path.parent.mkdir(parents=True, exist_ok=True)
    scores = {"synthetic": [r.to_json() for r in synthetic], "real": [r.to_json() for r in real_results]}
    scores_path.write_text(json.dumps(scores))
    syn, rea = mean_sdr(synthetic), mean_sdr(real_results)
    log(f"synthetic SDR {_fmt(syn['mean'])} dB, real SDR {_fmt(rea['mean'])} dB")
    row = {
        "variant": variant,
        "synthetic": syn,
        "real": rea,
        "gap": (syn["mean"] - rea["mean"]) if syn["mean"] is not None and rea["mean"] is not None else None,
        "seconds": {"train": round(t2 - t1, 1), "evaluate": round(t3 - t2, 1)},
        "training_process": {"threads": torch.get_num_threads(),
                             "allocator": "jemalloc" if jemalloc_preloaded() else "default"},
        "separation": {"shifts": separator.shifts, "consistency": separator.consistency},
    }
    if target is not None:  # the target's part rows, named as the real parts, for combining the target models
        parts = {t.name: dict(zip(t.instruments, t.parts)) for t in real_tracks}
        real_rows = [{**r, "part": parts[r["track"]][target]} for r in part_rows(real_results) if r["instrument"] == target]
        row["_rows"] = {"synthetic": [r for r in part_rows(synthetic) if r["instrument"] == target],
                        "real": real_rows, "outputs": [target]}
        row["model"] = str(model_path)
    elif group is None:  # one line-up: its per-piece table
        row["pieces"] = per_piece(part_rows(real_results), piece_namer(segment))
    else:  # for the per-part, per-piece and overall tables (not written as such)
        row["_rows"] = {"synthetic": part_rows(synthetic), "real": part_rows(real_results),
                        "outputs": list(separator.output_names)}
    return row


def combine_targets(variant: str, rows: list[dict], keep_rows: bool) -> dict:
    """One row for a variant's target models, one per instrument (in part order): each
    instrument's scores are its own model's; the means are over the instruments."""

    targets = [r["_rows"]["outputs"][0] for r in rows]

    def merged(kind: str) -> dict:
        instruments = {target: r[kind]["instruments"][target] for target, r in zip(targets, rows)}
        return {"instruments": instruments, "mean": _finite_mean(v["mean"] for v in instruments.values())}

    syn, rea = merged("synthetic"), merged("real")
    row = {
        "variant": variant,
        "synthetic": syn,
        "real": rea,
        "gap": (syn["mean"] - rea["mean"]) if syn["mean"] is not None and rea["mean"] is not None else None,
        "seconds": {k: round(sum(r["seconds"][k] for r in rows), 1) for k in ("train", "evaluate")},
        "training_process": rows[0]["training_process"],
        "separation": rows[0]["separation"],
        "models": {target: r["model"] for target, r in zip(targets, rows)},
    }
    if keep_rows:
        row["_rows"] = {kind: [x for r in rows for x in r["_rows"][kind]] for kind in ("synthetic", "real", "outputs")}
    return row


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


def score_informed(variants, presets: dict, out_dir: Path, budget: Budget, real: list[str], real_tracks,
                   seed: int, progress: bool, log, groups: list[Group] | None = None) -> list[dict]:
    """Per variant and piece: the blind model's SDR and the SDR after adapting it to the piece's score.

    These rows use the test piece's score, so they are reported apart from the blind ones.
    ``presets`` is keyed by run label (the variant, or ``<line-up>/<variant>``)."""
    import concurrent.futures as cf
    import multiprocessing

    if groups is None:
        groups = [Group("", [], list(real_tracks), list(real))]
    pieces = [(g, t) for g in groups for t in g.tracks if t.score is not None]
    if not pieces:
        raise UserError(f"--score-informed: no piece of {', '.join(real)} ships a score")
    rows = []
    context = multiprocessing.get_context("spawn")
    with training_allocator_env(), cf.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        for variant in variants:
            per_piece_scores = {}
            for group, track in pieces:
                label = group.label(variant)
                log(f"[{label}] adapting to the score of {track.name} ({budget.adapt_renditions} renditions, "
                    f"{budget.adapt_minutes:g} min)")
                scores = pool.submit(_adapt_and_score, variant, presets[label], run_folder(out_dir, label) / "model.pt",
                                     out_dir, budget, group.specs, track.name, seed, progress).result()
                per_piece_scores[track.name] = scores
                log(f"[{label}] {track.name}: general {_fmt(scores['general']['mean'])} dB, "
                    f"adapted {_fmt(scores['adapted']['mean'])} dB")
            means = {k: float(np.mean([p[k]["mean"] for p in per_piece_scores.values()])) for k in ("general", "adapted")}
            rows.append({"variant": variant, "pieces": per_piece_scores, **means})
    return rows


def training_workers(jobs: int, variants: int) -> tuple[int, int]:
    """(models trained side by side, torch threads each). One ConvTasNet process barely gains
    from a second CPU thread, so on a few cores separate processes train more steps an hour."""
    import os

    cores = os.cpu_count() or 1
    workers = max(1, min(jobs, variants, cores))
    return workers, max(1, cores // workers)


@dataclass
class _Job:
    """One model to train and score: a variant of a line-up."""

    label: str
    variant: str
    corpus: Path
    group: Group
    target: str | None = None  # a target model of this instrument, or one output per part

    @property
    def key(self) -> str:
        return self.label if self.target is None else f"{self.label} {self.target}"


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def _train_all(jobs: list[_Job], out_dir, plan, seed, causal, workers, threads, progress, log,
               segment: float | None = None) -> dict:
    """Every job's scores row (keyed by :attr:`_Job.key`), training ``workers`` models at a time with
    ``threads`` torch threads each, each in a process of its own (with jemalloc preloaded where
    it is installed); a line of progress with an estimate of the time left after each model."""
    import concurrent.futures as cf
    import multiprocessing

    alone = workers == 1
    if not alone:
        label = "<variant>" if all(job.group.key is None for job in jobs) else "<layout>/<variant>"
        runs = run_folder(out_dir, label, "<instrument>" if any(job.target for job in jobs) else None)
        log(f"training {workers} models at a time ({threads} thread(s) each); epoch lines follow, "
            f"curves in {runs / 'metrics.csv'}")
    # spawn: the parent may already run torch threads, which a forked child would inherit broken
    context = multiprocessing.get_context("spawn")
    started = time.perf_counter()
    with training_allocator_env() as jemalloc:
        if not jemalloc:
            log("jemalloc not found: training runs with the default allocator (several times slower on CPU)")
        with cf.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = {}
            for job in jobs:
                several = job.group.key is not None
                futures[pool.submit(_train_and_score, job.variant, job.corpus, out_dir, plan, job.group.specs, seed,
                                    causal, threads, progress and alone, job.group.key,
                                    job.group.names if several else None, segment, job.target)] = job.key
            done = {}
            for future in cf.as_completed(futures):
                done[futures[future]] = future.result()
                if len(jobs) > 1:
                    elapsed = time.perf_counter() - started
                    left = elapsed / len(done) * (len(jobs) - len(done))
                    log(f"{len(done)}/{len(jobs)} models trained and scored in {_minutes(elapsed)}"
                        + (f", about {_minutes(left)} left" if len(done) < len(jobs) else ""))
            return {job.key: done[job.key] for job in jobs}


def run_bench(real: list[str], out_dir, budget: str = "smoke", causal: bool = False, seed: int = 0,
              variants=VARIANTS, jobs: int = 1, progress: bool = True, log=print, preset=None,
              model: str | None = None, score_informed_pieces: bool = False, segment: float | None = None,
              outputs: str = "voices") -> dict:
    """Run the benchmark; writes results.json, results.md and gap.png into ``out_dir``.

    ``preset`` is the corpus preset (name, path or table) the variants switch parts of off; by
    default ``bach10_like`` for the Bach10 line-up and ``urmp_like`` for any other.
    ``model`` a model preset (name or TOML) in place of the budget's. ``score_informed_pieces``:
    also adapt each variant's model to every real piece's score (``adapt``) and score it again,
    reported apart from the blind rows. ``segment``: score the real pieces in segments of this
    many seconds (the study's 15 s) rather than whole. ``outputs``: ``"voices"``, one model per
    line-up and variant whose outputs are the parts in part order, or ``"targets"``, one target
    model (an instrument against the rest) per instrument of the line-up, trained on the same
    corpus for the same steps each (``runs/targets/``; results-targets.json, .md and .png, so
    both can share one output folder and its corpora).

    A real set of several line-ups is grouped by line-up: corpora, models and scores per group
    under ``corpora/<layout>/<variant>`` (``runs/``, ``scores/`` alike), and the results add a
    ``groups`` section (per line-up, per part and per piece) to the overall rows.
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
    if not variants:
        raise UserError(f"--variants: give at least one of {', '.join(VARIANTS)}")
    variants = list(dict.fromkeys(variants))
    if segment is not None and not (isinstance(segment, (int, float)) and math.isfinite(segment) and segment > 0):
        raise UserError(f"--segment {segment}: must be a positive number of seconds")
    if segment is not None and score_informed_pieces:
        raise UserError("--score-informed adapts to and scores whole pieces: leave out --segment")
    if outputs not in OUTPUTS:
        raise UserError(f"--outputs {outputs}: must be one of {', '.join(OUTPUTS)}")
    if outputs == "targets" and score_informed_pieces:
        raise UserError("--score-informed adapts models whose outputs are the parts: leave out --outputs targets")

    resolve_config(plan.model)  # a bad model preset fails now, not after the first corpus
    pairs = load_real(list(real), segment)
    real_tracks = [t for _, t in pairs]
    groups = group_by_lineup(pairs, list(real))  # a line-up no preset seats fails here
    several = len(groups) > 1
    if outputs == "targets":
        check_distinct_instruments(groups)
    if score_informed_pieces:  # a score that cannot be mapped to its piece's parts fails now, not after training
        for track in real_tracks:
            if track.score is not None:
                score_instruments(track.score, list(track.instruments), None)
    if preset is None:
        preset = BASE_PRESET if all(g.layout == "bach10" for g in groups) else URMP_PRESET
    base = resolve_preset(preset)
    titles = sorted({t.title for t in real_tracks if getattr(t, "title", None)})
    by_title = title_exclusions(base["repertoire"]["source"], titles)
    out_dir = Path(out_dir)
    scores = [s for spec in real for s in real_scores(spec)]
    specs = {}
    for group in groups:
        group_base = copy.deepcopy(base)
        if group.layout != "bach10":
            group_base["repertoire"]["part_policy"] = "fit"
        for variant in variants:
            specs[group.label(variant)] = (group, variant, group_base)
    melodies = melody_files(list(real))
    presets = {}  # every variant preset checked before the first corpus (an unknown key or reference fails now)
    for label, (group, variant, group_base) in specs.items():
        presets[label] = variant_preset(group_base, variant, plan, group.layout, melodies, by_title)
        resolve_preset(presets[label])
    check_finished_runs([run_folder(out_dir, label, target) for label, (group, _, _) in specs.items()
                         for target in (group.instruments if outputs == "targets" else [None])],
                        plan, causal, seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if several:
        log(f"{len(real_tracks)} real tracks in {len(groups)} line-ups: "
            + "; ".join(f"{g.layout} ({len(g.tracks)})" for g in groups)
            + f"; {len(presets)} corpora and models")
    corpora, generated, train_jobs = {}, {}, []
    for index, (label, (group, variant, _)) in enumerate(specs.items(), 1):
        corpus, tracks, seconds = _generate_variant(label, presets[label], group.folder(out_dir, "corpora") / variant,
                                                    seed, jobs, progress, log)
        corpora[label] = corpus
        generated[label] = ({"path": str(corpus), "tracks": tracks}, round(seconds, 1))
        if outputs == "targets":
            train_jobs += [_Job(label, variant, corpus, group, target) for target in group.instruments]
        else:
            train_jobs.append(_Job(label, variant, corpus, group))
        if len(specs) > 1 and index < len(specs):
            elapsed = time.perf_counter() - started
            log(f"{index}/{len(specs)} corpora in {_minutes(elapsed)}, "
                f"about {_minutes(elapsed / index * (len(specs) - index))} left for the others")
    workers, threads = training_workers(jobs, len(train_jobs))
    scored = _train_all(train_jobs, out_dir, plan, seed, causal, workers, threads, progress, log, segment)
    rows = {}
    for label, (group, variant, _) in specs.items():
        corpus_info, seconds = generated[label]
        if outputs == "targets":
            row = combine_targets(variant, [scored[j.key] for j in train_jobs if j.label == label], several)
        else:
            row = scored[label]
        row["corpus"] = corpus_info
        row["seconds"] = {"generate": seconds, **row["seconds"]}
        rows[label] = row

    adapted = (score_informed(variants, presets, out_dir, plan, list(real), real_tracks, seed, progress, log,
                              groups if several else None)
               if score_informed_pieces else None)
    excluded = {"names": base["repertoire"]["exclude"], "melodies_of": scores}
    if melodies != scores:
        excluded["melody_files"] = {"note": "every voice of each score (but Bach10's), as a one-voice file",
                                    "files": melodies}
    if titles:
        excluded["titles"] = {"of_real_pieces": titles, "files": by_title,
                              "note": "titles are matched in midi: repertoires; music21's chorales have none to match"}
    evaluation = ("SDR (BSSEval v4 images, museval-compatible), median over 1 s frames per part, mean over tracks, "
                  "then over instruments; real pieces whole")
    if segment is not None:
        evaluation = evaluation.replace("real pieces whole", f"real pieces cut into {segment:g} s segments "
                                        "(a shorter remainder dropped), each segment a track")
    results = {
        "budget": asdict(plan),
        "causal": causal,
        "preset": base["name"],
        "seed": seed,
        "real": real,
        "real_tracks": [t.name for t in real_tracks],
        "ensemble": ({"layout": groups[0].layout, "instruments": groups[0].instruments} if not several else
                     {"layout": [g.layout for g in groups],
                      "instruments": list(dict.fromkeys(i for g in groups for i in g.instruments))}),
        "excluded": excluded,
        "outputs": outputs,
        "training": f"same steps for every variant: {plan.epochs} epochs x {plan.steps_per_epoch} steps, model preset '{plan.model}'"
                    + ("; one target model (the instrument against the rest) per instrument of the line-up, "
                       "each trained for those steps" if outputs == "targets" else ""),
        "training_workers": {"models_at_a_time": workers, "threads_each": threads},
        "evaluation": evaluation,
    }
    if segment is not None:
        results["segment_seconds"] = segment
    if not several:
        results["variants"] = [rows[v] for v in variants]
        mixture = evaluate_mixture(real_tracks)
        results["mixture_reference"] = {"real": mean_sdr(mixture),
                                        "pieces": per_piece(part_rows(mixture), piece_namer(segment))}
    else:
        results.update(_grouped_results(groups, variants, rows, piece_namer(segment)))
    results["score_adapted"] = adapted
    results["wall_seconds"] = round(time.perf_counter() - started, 1)
    results["versions"] = versions()
    suffix = "" if outputs == "voices" else f"-{outputs}"
    (out_dir / f"results{suffix}.json").write_text(json.dumps(results, indent=2) + "\n")
    (out_dir / f"results{suffix}.md").write_text(results_markdown(results))
    plot_gap(results, out_dir / f"gap{suffix}.png")
    return results


def check_distinct_instruments(groups: list[Group]) -> None:
    """Target models need each instrument once per line-up: one model cannot tell two violins apart."""
    for group in groups:
        repeated = [i for i in dict.fromkeys(group.instruments) if group.instruments.count(i) > 1]
        if repeated:
            raise UserError(f"--outputs targets: {group.names[0]} has {group.instruments.count(repeated[0])} "
                            f"{repeated[0]} parts, which one target model cannot tell apart; use --outputs voices")


def _grouped_results(groups: list[Group], variants, rows: dict, piece_of) -> dict:
    """The overall rows (every piece of every line-up), the no-model row, and per line-up
    its rows, its parts' and pieces' SDR and how the model outputs map to the real parts."""
    out_groups, pooled = [], {v: {"synthetic": [], "real": []} for v in variants}
    mixture_all = []
    for group in groups:
        mixture = part_rows(evaluate_mixture(group.tracks))
        mixture_all += mixture
        group_rows = []
        outputs = None
        for variant in variants:
            row = rows[group.label(variant)]
            detail = row.pop("_rows")
            outputs = detail["outputs"]
            pooled[variant]["synthetic"] += detail["synthetic"]
            pooled[variant]["real"] += detail["real"]
            row["parts"] = per_part(detail["real"])
            row["pieces"] = per_piece(detail["real"], piece_of)
            group_rows.append(row)
        out_groups.append({
            "layout": group.layout,
            "instruments": group.instruments,
            "parts": list(group.tracks[0].parts),
            # model output i is real part i (part order), so two violins stay apart
            "outputs": dict(zip(outputs, group.tracks[0].parts)),
            "pieces": list(dict.fromkeys(piece_of(n) for n in group.names)),
            "tracks": group.names,
            "variants": group_rows,
            "mixture_reference": {"real": pooled_sdr(mixture), "parts": per_part(mixture),
                                  "pieces": per_piece(mixture, piece_of)},
        })
    overall = []
    for variant in variants:
        syn = pooled_sdr(pooled[variant]["synthetic"])
        rea = pooled_sdr(pooled[variant]["real"])
        rea["pieces_mean"] = _finite_mean(per_piece(pooled[variant]["real"], piece_of).values())
        overall.append({
            "variant": variant,
            "synthetic": syn,
            "real": rea,
            "gap": (syn["mean"] - rea["mean"]) if syn["mean"] is not None and rea["mean"] is not None else None,
            "seconds": {k: round(sum(rows[g.label(variant)]["seconds"][k] for g in groups), 1)
                        for k in ("generate", "train", "evaluate")},
        })
    reference = pooled_sdr(mixture_all)
    reference["pieces_mean"] = _finite_mean(per_piece(mixture_all, piece_of).values())
    return {"variants": overall, "mixture_reference": {"real": reference}, "groups": out_groups,
            "overall": "real SDR: per instrument the mean over all its parts in every piece and line-up, then the "
                       "mean over instruments; pieces_mean: the mean over pieces of each piece's mean over its parts"}


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def results_markdown(results: dict) -> str:
    if results.get("groups"):
        return _grouped_markdown(results)
    instruments = results["ensemble"]["instruments"]
    lines = [
        f"# Synth-vs-real benchmark ({_run_kind(results)})",
        "",
        (f"Real set: {', '.join(results['real'])} ({len(results['real_tracks'])} tracks). {results['training']}. "
        f"{results['evaluation']}."),
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
    lines += ["", (f"Wall time {results['wall_seconds']:.0f} s. SDR in dB. The last row scores the mixture itself, "
              "divided by the number of parts, as every part's estimate: a model below it makes the parts worse."), ""]
    if reference.get("pieces") and all("pieces" in row for row in results["variants"]):  # not target models
        lines += _pieces_markdown([row["variant"] for row in results["variants"]],
                                  [(None, results["variants"], reference["pieces"])])
    lines += _score_adapted_markdown(results)
    return "\n".join(lines)


def _pieces_markdown(variants: list[str], lineups: list[tuple[str | None, list[dict], dict]]) -> list[str]:
    """The per-piece table: each variant's real SDR (mean over the piece's parts) and the no-model
    score. ``lineups``: (line-up, or None when there is one, its variant rows, its no-model pieces)."""
    named = any(layout is not None for layout, _, _ in lineups)
    lines = ["## Per piece (real SDR, mean over the piece's parts)", "",
             "| piece | " + ("line-up | " if named else "") + " | ".join(variants) + " | no model |",
             ("|---|---|" if named else "|---|") + "---:|" * (len(variants) + 1)]
    for layout, rows, no_model in lineups:
        for piece, reference in no_model.items():
            cells = [_fmt(row["pieces"].get(piece)) for row in rows]
            lines.append(f"| {piece} | " + (f"{layout} | " if named else "") + " | ".join(cells) + f" | {_fmt(reference)} |")
    return [*lines, ""]


NO_MODEL = "*mixture / parts (no model)*"


def _run_kind(results: dict) -> str:
    """'small budget', with ', causal' and ', target models' where they apply."""
    return (f"{results['budget']['name']} budget" + (", causal" if results["causal"] else "")
            + (", target models" if results.get("outputs") == "targets" else ""))


def _grouped_markdown(results: dict) -> str:
    groups = results["groups"]
    instruments = results["ensemble"]["instruments"]
    pieces = sum(len(g["pieces"]) for g in groups)
    lines = [
        f"# Synth-vs-real benchmark ({_run_kind(results)})",
        "",
        (f"Real set: {', '.join(results['real'])} ({len(results['real_tracks'])} tracks, {pieces} pieces in "
        f"{len(groups)} line-ups). Corpora and models per line-up. {results['training']}. {results['evaluation']}."),
        "",
        f"## Overall: {len(groups)} line-ups, {pieces} pieces",
        "",
        "| variant | synthetic SDR | real SDR | gap | real SDR, mean over pieces | "
        + " | ".join(f"real {i}" for i in instruments) + " |",
        "|---|---:|---:|---:|---:|" + "---:|" * len(instruments),
    ]
    for row in results["variants"]:
        per = [_fmt(row["real"]["instruments"].get(i, {}).get("mean")) for i in instruments]
        lines.append(f"| {row['variant']} | {_fmt(row['synthetic']['mean'])} | {_fmt(row['real']['mean'])} | "
                     f"{_fmt(row['gap'])} | {_fmt(row['real']['pieces_mean'])} | " + " | ".join(per) + " |")
    reference = results["mixture_reference"]["real"]
    per = [_fmt(reference["instruments"].get(i, {}).get("mean")) for i in instruments]
    lines.append(f"| {NO_MODEL} | | {_fmt(reference['mean'])} | | {_fmt(reference['pieces_mean'])} | "
                 + " | ".join(per) + " |")
    lines += ["", ("Real SDR: per instrument the mean over its parts in every piece, then over instruments; "
              "the mean over pieces averages each piece's mean over its parts."), ""]
    for group in groups:
        parts = group["parts"]
        mapping = ", ".join(f"{out} -> part {part}" for out, part in group["outputs"].items())
        lines += [(f"## Line-up {', '.join(group['instruments'])} (preset {group['layout']}; "
                  f"{len(group['pieces'])} piece(s): {', '.join(group['pieces'])})"), "",
                  (f"One target model per part: {mapping}." if results.get("outputs") == "targets"
                   else f"Model outputs in part order: {mapping}."), "",
                  "| variant | synthetic SDR | real SDR | gap | " + " | ".join(f"real {p}" for p in parts) + " |",
                  "|---|---:|---:|---:|" + "---:|" * len(parts)]
        for row in group["variants"]:
            per = [_fmt(row["parts"].get(p)) for p in parts]
            lines.append(f"| {row['variant']} | {_fmt(row['synthetic']['mean'])} | {_fmt(row['real']['mean'])} | "
                         f"{_fmt(row['gap'])} | " + " | ".join(per) + " |")
        ref = group["mixture_reference"]
        per = [_fmt(ref["parts"].get(p)) for p in parts]
        lines += [f"| {NO_MODEL} | | {_fmt(ref['real']['mean'])} | | " + " | ".join(per) + " |", ""]
    lines += _pieces_markdown([row["variant"] for row in results["variants"]],
                              [(g["layout"], g["variants"], {p: g["mixture_reference"]["pieces"].get(p) for p in g["pieces"]})
                               for g in groups])
    lines += [(f"Wall time {results['wall_seconds']:.0f} s. SDR in dB. The no-model rows score the mixture itself, "
              "divided by the number of parts, as every part's estimate: a model below it makes the parts worse."), ""]
    lines += _score_adapted_markdown(results)
    return "\n".join(lines)


def _score_adapted_markdown(results: dict) -> list[str]:
    if not results.get("score_adapted"):
        return []
    budget = results["budget"]
    pieces = list(results["score_adapted"][0]["pieces"])
    lines = ["## Score-adapted (uses each test piece's score: not comparable with the blind rows)", "",
             (f"Each variant's model fine-tuned on {budget['adapt_renditions']} renditions of the piece's score "
             f"for {budget['adapt_minutes']:g} min, then scored on that piece. general / adapted real SDR:"), "",
             "| variant | general | adapted | " + " | ".join(pieces) + " |",
             "|---|---:|---:|" + "---:|" * len(pieces)]
    for row in results["score_adapted"]:
        cells = [f"{_fmt(row['pieces'][p]['general']['mean'])} / {_fmt(row['pieces'][p]['adapted']['mean'])}" for p in pieces]
        lines.append(f"| {row['variant']} | {_fmt(row['general'])} | {_fmt(row['adapted'])} | " + " | ".join(cells) + " |")
    lines.append("")
    return lines


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
