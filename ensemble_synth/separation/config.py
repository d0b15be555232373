"""Model and training configuration: read from a TOML preset, validated, written back.

A model preset has two tables::

    [model]     # the network: ConvTasNet hyperparameters, sample rate, norm, causality
    [training]  # segment length, batch size, optimiser, loss, schedule, budgets

Anything not given takes the defaults below. ``channels`` may be left out: training
takes it from the corpus.

``score_features`` (``[model]``, optional, 0 = off) makes a score-conditioned model: the
number of roll features per part it reads beside the mixture (:mod:`.score_roll`). It is
written into a resolved config only when on, so the configs and checkpoints of
unconditioned models are exactly what they were before the key existed.

``stride`` (``[model]``, optional, 0 = L/2) is the encoder's hop in samples: ``stride = L``
tiles the signal with non-overlapping windows (as the first TasNet did), half the frames and
so about half the separator's compute of the default hop. Like ``score_features`` it is
written only when set, so existing configs and checkpoints are unchanged.
"""

from __future__ import annotations

import copy
from typing import Any

from ..errors import UserError
from ..presets import get_key, load_preset

DEFAULT_SHIFTS = 4  # separation passes a separator averages, delayed within one encoder hop (.inference)

NORMS = ("gLN", "cLN", "chanLN")
MASKS = ("relu", "sigmoid", "softmax")
LOSSES = ("sisdr", "sdr", "l1")
SCHEDULES = ("plateau", "cosine", "constant")

MODEL_DEFAULTS: dict[str, Any] = {
    "N": 256, "L": 20, "B": 256, "H": 512, "P": 3, "X": 8, "R": 3,
    "skip_channels": 0,  # 0 = same as B
    "norm": "gLN",
    "causal": False,
    "mask": "relu",
    "sample_rate": 16000,
    "channels": 0,  # 0 = from the corpus
}

TRAINING_DEFAULTS: dict[str, Any] = {
    "segment_seconds": 4.0,
    "batch_size": 4,
    "epochs": 100,
    "steps_per_epoch": 200,
    "valid_items": 32,
    "valid_segment_seconds": 0.0,  # 0 = same as segment_seconds
    "lr": 1e-3,
    "weight_decay": 0.0,
    "schedule": "plateau",
    "plateau_patience": 3,
    "plateau_factor": 0.5,
    "clip_grad": 5.0,
    "loss": "sdr",  # scale-dependent: SI-SDR training leaves the output scale free, and SDR punishes it
    "patience": 10,  # early stopping, in epochs without a better validation SDR
    "remix": 0.5,  # probability that a training example is remixed across tracks
    "gain_db": 3.0,  # random gain per source when remixing, +-dB
}

# Optional [model] keys: accepted, resolved only when set to something other than their default.
OPTIONAL_MODEL_DEFAULTS: dict[str, Any] = {"score_features": 0, "stride": 0}

_INT_KEYS = {"score_features", "stride", "N", "L", "B", "H", "P", "X", "R", "skip_channels", "sample_rate", "channels",
             "batch_size", "epochs", "steps_per_epoch", "valid_items", "plateau_patience", "patience"}
_FLOAT_KEYS = {"segment_seconds", "valid_segment_seconds", "lr", "weight_decay", "plateau_factor",
               "clip_grad", "remix", "gain_db"}
_CHOICES = {"norm": NORMS, "mask": MASKS, "loss": LOSSES, "schedule": SCHEDULES}


def _validated(table: dict, defaults: dict, source: str, section: str) -> dict:
    unknown = sorted(set(table) - set(defaults))
    if unknown:
        raise UserError(f"{source}: [{section}] unknown key(s) {', '.join(unknown)} (known: {', '.join(defaults)})")
    out = dict(defaults)
    for key in defaults:
        if key not in table:
            continue
        if key in _INT_KEYS:
            out[key] = get_key(table, key, int, f"{source} [{section}]")
        elif key in _FLOAT_KEYS:
            out[key] = get_key(table, key, float, f"{source} [{section}]")
        elif key == "causal":
            out[key] = get_key(table, key, bool, f"{source} [{section}]")
        else:
            value = get_key(table, key, str, f"{source} [{section}]")
            if key in _CHOICES and value not in _CHOICES[key]:
                raise UserError(f"{source}: [{section}] {key} = {value!r}: expected one of {', '.join(_CHOICES[key])}")
            out[key] = value
    return out


def _check_ranges(model: dict, training: dict, source: str) -> None:
    for key in ("N", "L", "B", "H", "P", "X", "R", "sample_rate", "batch_size", "epochs", "steps_per_epoch"):
        table = model if key in model else training
        if table[key] < 1:
            raise UserError(f"{source}: {key} = {table[key]} must be at least 1")
    if model["L"] % 2:
        raise UserError(f"{source}: L = {model['L']} must be even (the encoder hops by L/2)")
    if not 0 <= model.get("stride", 0) <= model["L"]:
        raise UserError(f"{source}: stride = {model['stride']} must be between 1 and L = {model['L']} (0: L/2)")
    if model.get("score_features", 0) < 0:
        raise UserError(f"{source}: score_features = {model['score_features']} must be 0 (off) or more")
    if model["channels"] not in (0, 1, 2):
        raise UserError(f"{source}: channels = {model['channels']} must be 1 or 2")
    if model["causal"] and model["norm"] == "gLN":
        raise UserError(f"{source}: a causal model cannot use gLN (it looks at the whole signal); use cLN or chanLN")
    if training["segment_seconds"] <= 0:
        raise UserError(f"{source}: segment_seconds must be positive")
    if not 0.0 <= training["remix"] <= 1.0:
        raise UserError(f"{source}: remix = {training['remix']} must be a probability in [0, 1]")


def resolve_config(model: str | dict = "small", overrides: dict | None = None) -> dict:
    """A full config ``{"name", "model": {...}, "training": {...}}`` from a preset name, a TOML
    path or a dict with ``model``/``training`` tables; ``overrides`` are flat keys of either table."""
    if isinstance(model, dict):
        raw = copy.deepcopy(model)
        source = str(raw.pop("_source", "model config"))
        name = str(raw.get("name", "custom"))
    else:
        raw = load_preset("models", model)
        source = raw.pop("_source")
        name = str(raw.get("name", str(model)))
    unknown = sorted(set(raw) - {"name", "description", "model", "training"})
    if unknown:
        raise UserError(f"{source}: unknown table(s) {', '.join(unknown)} (expected [model] and [training])")
    model_table = dict(raw.get("model", {}))
    training_table = dict(raw.get("training", {}))
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key in MODEL_DEFAULTS or key in OPTIONAL_MODEL_DEFAULTS:
            model_table[key] = value
        elif key in TRAINING_DEFAULTS:
            training_table[key] = value
        else:
            raise UserError(f"unknown config override '{key}' (model keys: {', '.join(MODEL_DEFAULTS)}; "
                            f"training keys: {', '.join(TRAINING_DEFAULTS)})")
    model_cfg = _validated(model_table, {**MODEL_DEFAULTS, **OPTIONAL_MODEL_DEFAULTS}, source, "model")
    for key, default in OPTIONAL_MODEL_DEFAULTS.items():
        if model_cfg[key] == default:
            del model_cfg[key]
    training_cfg = _validated(training_table, TRAINING_DEFAULTS, source, "training")
    _check_ranges(model_cfg, training_cfg, source)
    return {"name": name, "model": model_cfg, "training": training_cfg}


def architecture(model_cfg: dict) -> dict:
    """The keys that decide the network's shape and behaviour (what a checkpoint must match)."""
    return {k: model_cfg.get(k, default) for k, default in {**MODEL_DEFAULTS, **OPTIONAL_MODEL_DEFAULTS}.items()}


def score_features(model_cfg: dict) -> int:
    """Roll features per part a model reads beside the mixture (0: not score-conditioned)."""
    return int(model_cfg.get("score_features", 0))


def describe_difference(a: dict, b: dict) -> str:
    diffs = [f"{k}={a.get(k)!r} vs {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return ", ".join(diffs)
