"""The on-disk cache of room impulse responses, keyed by a hash of what determines them."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from .rir_simulation import SIMULATOR_VERSION, simulate_rirs
from .scene import Scene


def rir_key(scene: Scene, sample_rate: int) -> str:
    """A hash of everything that determines the RIRs (not the mix-down, which is applied later)."""
    import pyroomacoustics as pra  # where used: a second at start-up otherwise

    d = scene.to_dict()
    what = {"room": d["room"], "players": d["players"], "mics": d["mics"], "seed": d["seed"],
            "sample_rate": int(sample_rate), "pyroomacoustics": pra.__version__, "simulator": SIMULATOR_VERSION}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:32]


class RirCache:
    """RIRs on disk (``<key>.npy``), keyed by :func:`rir_key`; computed on a miss."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.hits = 0
        self.misses = 0

    def path(self, scene: Scene, sample_rate: int) -> Path:
        return self.directory / f"{rir_key(scene, sample_rate)}.npy"

    def get(self, scene: Scene, sample_rate: int) -> np.ndarray:
        path = self.path(scene, sample_rate)
        if path.is_file():
            try:
                rirs = np.load(path)
                self.hits += 1
                return rirs
            except (OSError, ValueError):
                pass  # a damaged entry is recomputed
        self.misses += 1
        rirs = simulate_rirs(scene, sample_rate)
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npy")
        try:
            np.save(tmp, rirs)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return rirs
