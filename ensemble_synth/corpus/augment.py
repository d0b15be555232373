"""Public hooks for custom augmentation.

An augmentation draws its parameters from a generator it is given (``sample``) apart
from applying them (``apply``), so the drawn parameters are recorded in the track's
metadata and re-rendering the metadata repeats the augmentation exactly.

Stages:
- ``"score"``: ``apply(notes, params, sample_rate)`` gets and returns the performed notes,
  a list with one (n, 4) array per part (start s, end s, MIDI pitch, velocity);
- ``"dry"``: gets and returns the dry stems, (n_parts, n_samples) float32, before the room;
- ``"image"``: gets and returns the per-part images, (n_parts, channels, n_samples), after
  the room and before the mix-down (so ``mix == sum(stems)`` still holds).

Parameters must be JSON-serialisable (numbers, strings, lists, dicts).
"""

from __future__ import annotations

import importlib
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


def check(augmentations) -> list[Augmentation]:
    out = []
    for aug in augmentations or ():
        if not isinstance(aug, Augmentation):
            raise UserError(f"{aug!r}: an augmentation needs name, stage, sample(rng, context) and apply(data, params, sample_rate)")
        if aug.stage not in STAGES:
            raise UserError(f"augmentation '{aug.name}': unknown stage '{aug.stage}' (known: {', '.join(STAGES)})")
        out.append(aug)
    names = [a.name for a in out]
    if len(set(names)) != len(names):
        raise UserError(f"augmentation names must be unique, got {names}")
    return out


def resolve(records: list[dict], given: list[Augmentation]) -> dict[str, Augmentation]:
    """Match recorded augmentations to objects: the ones given, else import their class."""
    by_name = {a.name: a for a in check(given)}
    for record in records:
        if record["name"] in by_name:
            continue
        module, _, qualname = record.get("class", "").partition(":")
        try:
            obj = importlib.import_module(module)
            for attr in qualname.split("."):
                obj = getattr(obj, attr)
            by_name[record["name"]] = obj()
        except Exception:
            raise UserError(
                f"track uses augmentation '{record['name']}' ({record.get('class')}); pass it to render_track(augmentations=[...])"
            ) from None
    return by_name
