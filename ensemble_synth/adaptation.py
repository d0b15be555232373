"""Score-informed adaptation: fine-tune a separator on synthetic renditions of one score.

When the score of the recording to be separated is known, render many performances of
exactly that piece with the corpus machinery (tempo and tempo curves, fermatas, timing,
dynamics and articulation drawn wide enough to cover a real performance; the timbre pools;
rooms and microphones as the base preset has them), then fine-tune the general model on
them for a wall-time budget. The run folder holds:

```
RUN/renditions/     the rendition corpus (train + valid splits of the one score)
RUN/training/       the fine-tuning run (model.pt: best on the renditions' validation split)
RUN/model.pt        the adapted model, for `separate` and `evaluate`
RUN/adapt.json      what was asked, the model it started from, the validation SDR before and after
```

Same score, model, seed and budget give the same renditions; the training is as
deterministic as the trainer is on one machine.

``condition_on_score=True`` (0.33 dB above plain adaptation on the Bach10 development pieces) writes
the renditions with their performed MIDI and fine-tunes a score-conditioned copy of the
model (:mod:`.separation.score_roll`; the new layer starts at zero, so training starts from
the general model's behaviour); the adapted model then separates with the piece's notes.
"""

from __future__ import annotations

import copy
import csv
import shutil
from pathlib import Path

from .acoustics.seating import layout_for
from .corpus.generation import generate
from .corpus.preset import resolve_preset
from .errors import UserError
from .fileio import check_output_dir, write_json_atomic
from .music.score import load_midi
from .separation.score_roll import FEATURES

DEFAULT_RENDITIONS = 160
DEFAULT_MINUTES = 5.0
EXCERPT_SECONDS = 12.0
BASE_PRESET = "bach10_like"

# A real performance of the piece may be slower or faster than its MIDI file and shaped
# differently: the renditions cover that (the MIDI tempo times this factor, with rubato).
PERFORMANCE = {
    "tempo_factor": {"loguniform": [0.7, 1.4]},
    "rubato": 0.08,
    "fermata_beats": [0.5, 3.0],
    "onset_jitter_ms": [5, 30],
    "level_db": [-5, 5],
    "dynamics_db": 3.0,
    "articulation": [0.7, 1.0],
    "transpose": 0,
}


def rendition_preset(score: Path, instruments: list[str], sample_rate: int, renditions: int,
                     base: str | dict = BASE_PRESET, excerpt_seconds: float = EXCERPT_SECONDS) -> dict:
    """The corpus preset of the renditions of one score (the base preset's timbre, rooms and mix)."""
    preset = copy.deepcopy({k: v for k, v in resolve_preset(base).items() if not k.startswith("_")})
    preset["name"] = "renditions"
    preset["description"] = f"synthetic renditions of {score.name} for score-informed adaptation"
    preset["sample_rate"] = int(sample_rate)
    valid = max(8, renditions // 10)
    preset["tracks"] = {"train": int(renditions), "valid": valid, "test": 0, "per_room": 4}
    preset["repertoire"] = {"source": f"midi:{score}", "exclude": [], "exclude_melodies": [],
                            "part_policy": "skip", "excerpt_seconds": excerpt_seconds}
    preset["ensemble"] = {"layout": layout_for(instruments)}
    preset["performance"] = {**preset["performance"], **PERFORMANCE}
    preset["_source"] = f"<renditions of {score}>"
    return preset


def score_instruments(score: Path, ensemble: list[str] | None, parts: dict[int, str] | None) -> list[str]:
    """The score's parts as instruments, mapped as `render` maps them (--part, track names, programs, --ensemble)."""
    return [p.instrument for p in load_midi(score, parts, ensemble).parts]


def adapt(score, out_dir, model=None, ensemble: list[str] | None = None, parts: dict[int, str] | None = None,
          renditions: int = DEFAULT_RENDITIONS, minutes: float = DEFAULT_MINUTES, seed: int = 0,
          base_preset: str | dict = BASE_PRESET, model_preset: str = "small", jobs: int = 1,
          max_steps: int | None = None, progress: bool = True, log=print, condition_on_score: bool = False) -> Path:
    """Adapt ``model`` (a general checkpoint, or None to train from scratch) to ``score``; returns RUN/model.pt.

    ``condition_on_score``: fine-tune a score-conditioned model on renditions written with MIDI."""
    from .separation import read_checkpoint, train

    score, out_dir = Path(score), Path(out_dir)
    if renditions < 8:
        raise UserError(f"--renditions = {renditions}: need at least 8")
    if not minutes > 0:
        raise UserError(f"--minutes = {minutes}: must be more than 0")
    instruments = score_instruments(score, ensemble, parts)
    sample_rate, outputs = None, None
    if model is not None:
        checkpoint = read_checkpoint(model)
        layout = checkpoint["layout"]
        if layout.get("target") is not None:
            raise UserError(f"{model}: a target-vs-accompaniment model; adaptation needs one output per part")
        outputs = list(layout["instruments"])
        if outputs != instruments:
            raise UserError(f"{score}: the score's parts are {', '.join(instruments)} but {model} separates "
                            f"{', '.join(outputs)}; map them with --part N=INSTRUMENT or --ensemble")
        sample_rate = int(checkpoint["config"]["model"]["sample_rate"])
    check_output_dir(out_dir)
    preset = rendition_preset(score.resolve(), instruments, sample_rate or 16000, renditions, base_preset)
    created = not out_dir.exists()
    try:
        corpus = out_dir / "renditions"
        log(f"rendering {renditions} renditions of {score.name} ({', '.join(instruments)})")
        conditioning = {"write_midi": True} if condition_on_score else {}
        generate(preset, corpus, seed=seed, jobs=jobs, rir_cache=None, progress=progress, **conditioning)
        run = out_dir / "training"
        conditioning = {"score_features": FEATURES} if condition_on_score else {}
        best = train(corpus, run, model=model_preset, max_minutes=minutes, max_steps=max_steps, seed=seed,
                     progress=progress, init_from=model, log=log, **conditioning)
        shutil.copyfile(best, out_dir / "model.pt")
        with open(run / "metrics.csv", newline="") as f:
            history = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
        chosen = read_checkpoint(best)
        write_json_atomic(out_dir / "adapt.json", {
            "score": str(score), "instruments": instruments, "model": str(model) if model else None,
            "renditions": renditions, "minutes": minutes, "seed": seed,
            "valid_sdr_start": history[0]["valid_sdr"] if model is not None and history else None,
            "valid_sdr_best": chosen.get("valid_sdr"), "best_epoch": chosen.get("epoch"), "history": history,
            **({"score_conditioned": True} if condition_on_score else {}),
        })
    except BaseException:
        if created:
            shutil.rmtree(out_dir, ignore_errors=True)
        raise
    return out_dir / "model.pt"
