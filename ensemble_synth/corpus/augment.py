"""Custom augmentation: first-class stages that a corpus records and re-renders exactly.

An augmentation draws its parameters from a generator it is given (``sample``) apart from
applying them (``apply``), as audiomentations' ``randomize_parameters``/``apply`` do, so the
drawn parameters go into the track's metadata and re-rendering the metadata repeats it.
Its constructor arguments are recorded too (in ``corpus.toml`` and every track's metadata):
they are the public attributes named like the ``__init__`` parameters (scikit-learn's
``get_params`` convention), or what a ``to_config()`` method returns. A corpus resumed with
other settings is refused like a corpus of another preset.

Stages:
- ``"score"``: ``apply(notes, params, sample_rate)`` gets and returns the performed notes,
  a list with one (n, 4) array per part (start s, end s, MIDI pitch, velocity);
- ``"dry"``: gets and returns the dry stems, (n_parts, n_samples) float32, before the room;
- ``"image"``: gets and returns the per-part images, (n_parts, channels, n_samples), after
  the room and before the mix-down (so ``mix == sum(stems)`` still holds).

Each augmentation draws from its own random stream (keyed by its name), so adding one does
not change the draws of another. An attribute ``p`` (default 1) is the probability that it
is applied to a track. Parameters must be JSON-serialisable. In a corpus preset:

```toml
[[augment]]
class = "my_package.augment:Tremolo"   # importable module:QualName
args = {depth_db = 3.0, p = 0.5}       # constructor arguments
```
"""

from __future__ import annotations

import importlib
import inspect
import json
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..errors import UserError

STAGES = ("score", "dry", "image")


@runtime_checkable
class Augmentation(Protocol):
    name: str
    stage: str

    def sample(self, rng: np.random.Generator, context: dict) -> dict: ...

    def apply(self, data: Any, params: dict, sample_rate: int) -> Any: ...


def reference(aug: Augmentation) -> str:
    """``module:QualName`` of an augmentation's class, for re-rendering from metadata."""
    cls = type(aug)
    return f"{cls.__module__}:{cls.__qualname__}"


def constructor_args(aug: Augmentation) -> dict:
    """The arguments that rebuild ``aug``: ``to_config()``, else its attributes named like its ``__init__`` parameters."""
    if hasattr(aug, "to_config"):
        args = dict(aug.to_config())
    else:
        params = inspect.signature(type(aug).__init__).parameters
        args = {p: getattr(aug, p) for p, spec in params.items()
                if p != "self" and spec.kind not in (spec.VAR_POSITIONAL, spec.VAR_KEYWORD) and hasattr(aug, p)}
    try:
        return json.loads(json.dumps(args))
    except TypeError:
        raise UserError(f"augmentation '{aug.name}': constructor arguments must be JSON-serialisable, got {args!r}") from None


def describe(aug: Augmentation) -> dict:
    """What the corpus records of an augmentation: its name, class and arguments."""
    return {"name": aug.name, "class": reference(aug), "args": constructor_args(aug)}


def probability(aug: Augmentation) -> float:
    p = getattr(aug, "p", 1.0)
    if not isinstance(p, (int, float)) or isinstance(p, bool) or not 0.0 <= p <= 1.0:
        raise UserError(f"augmentation '{aug.name}': p must be a probability in [0, 1], got {p!r}")
    return float(p)


def check(augmentations) -> list[Augmentation]:
    out = []
    for aug in augmentations or ():
        if not isinstance(aug, Augmentation):
            raise UserError(f"{aug!r}: an augmentation needs name, stage, sample(rng, context) and apply(data, params, sample_rate)")
        if aug.stage not in STAGES:
            raise UserError(f"augmentation '{aug.name}': unknown stage '{aug.stage}' (known: {', '.join(STAGES)})")
        probability(aug)
        out.append(aug)
    names = [a.name for a in out]
    if len(set(names)) != len(names):
        raise UserError(f"augmentation names must be unique, got {names}")
    return out


def import_class(ref: str, where: str):
    module, sep, qualname = str(ref).partition(":")
    if not sep or not module or not qualname:
        raise UserError(f"{where}: expected 'module:QualName', got {ref!r}")
    try:
        obj = importlib.import_module(module)
        for attr in qualname.split("."):
            obj = getattr(obj, attr)
    except Exception as exc:
        raise UserError(f"{where}: cannot import {ref} ({type(exc).__name__}: {exc})") from None
    return obj


def build(ref: str, args: dict, where: str) -> Augmentation:
    """An augmentation from its class reference and constructor arguments."""
    cls = import_class(ref, where)
    try:
        aug = cls(**args)
    except Exception as exc:
        raise UserError(f"{where}: {ref}({', '.join(f'{k}={v!r}' for k, v in args.items())}) failed: {exc}") from None
    return check([aug])[0]


def from_preset(tables: list[dict], source: str) -> list[Augmentation]:
    """The augmentations of a corpus preset's ``[[augment]]`` tables."""
    out = []
    for i, table in enumerate(tables):
        where = f"{source}: [[augment]] {i + 1}"
        if not isinstance(table, dict) or "class" not in table:
            raise UserError(f"{where}: expected a table with 'class' (module:QualName) and optional 'args'")
        unknown = sorted(set(table) - {"class", "args"})
        if unknown:
            raise UserError(f"{where}: unknown key(s) {', '.join(unknown)} (known: class, args)")
        args = table.get("args", {})
        if not isinstance(args, dict):
            raise UserError(f"{where}: 'args' must be a table of constructor arguments, got {args!r}")
        out.append(build(table["class"], args, where))
    return check(out)


def sample_records(augmentations: list[Augmentation], stream, context: dict) -> list[dict]:
    """Draw each augmentation's parameters from its own stream (``stream(name)``): the track's records."""
    records = []
    for aug in augmentations:
        rng = stream(aug.name)
        p = probability(aug)
        applied = p >= 1.0 or bool(rng.random() < p)
        records.append({**describe(aug), "stage": aug.stage, "applied": applied,
                        "params": aug.sample(rng, context) if applied else None})
    return records


def resolve(records: list[dict], given: list[Augmentation]) -> dict[str, Augmentation]:
    """Match recorded augmentations to objects: the ones given, else rebuilt from their class and arguments."""
    by_name = {a.name: a for a in check(given)}
    for record in records:
        if record["name"] not in by_name:
            by_name[record["name"]] = build(record.get("class", ""), record.get("args", {}),
                                            f"track augmentation '{record['name']}'")
    return by_name


def apply_stage(stage: str, data, records: list[dict], augmentations: dict[str, Augmentation], sample_rate: int):
    """Apply the recorded augmentations of one stage, in order."""
    for record in records:
        if record["stage"] == stage and record.get("applied", True):
            data = augmentations[record["name"]].apply(data, record["params"], sample_rate)
    return data
