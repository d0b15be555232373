"""Importable augmentations for the tests (a corpus records them as module:QualName)."""

from __future__ import annotations

import numpy as np


class Gain:
    """Scales every dry stem by a drawn gain up to ``max_db`` (dry stage)."""

    name = "gain"
    stage = "dry"

    def __init__(self, max_db: float = 3.0, p: float = 1.0):
        self.max_db = max_db
        self.p = p

    def sample(self, rng: np.random.Generator, context: dict) -> dict:
        return {"db": float(rng.uniform(-self.max_db, self.max_db))}

    def apply(self, dry: np.ndarray, params: dict, sample_rate: int) -> np.ndarray:
        return dry * np.float32(10 ** (params["db"] / 20))


class Delay:
    """Every note of every part a drawn number of milliseconds late (score stage)."""

    name = "delay"
    stage = "score"

    def __init__(self, max_ms: float = 30.0):
        self.max_ms = max_ms

    def sample(self, rng: np.random.Generator, context: dict) -> dict:
        return {"ms": float(rng.uniform(0.0, self.max_ms))}

    def apply(self, notes, params: dict, sample_rate: int):
        out = [n.copy() for n in notes]
        for n in out:
            n[:, :2] += params["ms"] / 1000.0
        return out
