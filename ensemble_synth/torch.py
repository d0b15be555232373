"""A corpus as a PyTorch dataset, for any trainer: ``(mixture, sources)`` examples.

```python
from torch.utils.data import DataLoader
from ensemble_synth.torch import CorpusDataset

data = CorpusDataset("corpus", segment_seconds=4.0, sample_rate=16000, remix=0.5)
loader = DataLoader(data, batch_size=8, shuffle=True, num_workers=2)
for epoch in range(10):
    data.set_epoch(epoch)          # new random segments each epoch, the same for the same seed
    for mixture, sources in loader:   # (8, channels, samples), (8, outputs, channels, samples)
        ...
```

Examples are the bundled trainer's (:mod:`ensemble_synth.separation.data`): segments of
the split's tracks picked in proportion to their duration, all-silent segments skipped,
with probability ``remix`` each output taken from another track (at a random gain within
``gain_db``); the mixture is the sum of the sources, so ``mixture == sources.sum(0)``
exactly. Without ``target`` there is one output per part (every track must have the same
parts); with ``target`` the outputs are ``[target, accompaniment]``.

Example ``i`` of epoch ``e`` draws from its own random generator, derived from ``(seed, e,
i)``: the same examples whatever the batch size, the shuffling, the number of worker
processes or the order they run in. ``set_epoch`` is read by the workers a ``DataLoader``
starts at each epoch; with ``persistent_workers=True`` it does not reach them. The
``valid`` and ``test`` splits give fixed segments instead (evenly spread over the tracks,
no randomness, no remixing), unless ``fixed=False``.

With ``score=True`` (a score-conditioned model's data) every example also carries its
score roll ``(outputs, FEATURES, frames)`` (:mod:`ensemble_synth.separation.score_roll`), read
from the tracks' performed MIDI (``midi/<part>.mid``, written by ``generate --midi``) over
the same window as the audio; a remixed output carries the roll of the track it came from.
``__getitem__`` then gives ``(mixture, sources, roll)``, and ``example``, ``batch`` and
``stack`` give ``(sources, rolls)``.

The dataset holds only the manifest rows and plain numbers (it pickles for ``spawn``
workers); each example opens the stems it reads, through :meth:`TrackEntry.stem_path`,
so WAV and FLAC corpora both work.
"""

from __future__ import annotations

import math
import numbers
import operator
from concurrent.futures import Executor
from pathlib import Path
from typing import Sequence

import numpy as np

from .corpus.format import TrackEntry, read_manifest
from .corpus.preset import SPLITS
from .errors import UserError
from .separation import INSTALL_HINT
from .separation.data import (
    ScoreRolls,
    SegmentSampler,
    SourceLayout,
    check_channels,
    check_stems,
    plan_layout,
    read_sources,
    validation_segments,
)
from .separation.score_roll import frames_for

try:
    import torch
    from torch.utils.data import Dataset
except ImportError:  # pragma: no cover - torch is the train extra
    raise UserError(f"PyTorch is not installed; CorpusDataset needs it: {INSTALL_HINT}") from None

__all__ = ["CorpusDataset"]


class CorpusDataset(Dataset):
    """Training examples of one split of a corpus as ``(mixture, sources)`` float32 tensors:
    mixture ``(channels, samples)``, sources ``(outputs, channels, samples)``.

    corpus: a corpus folder (with ``manifest.csv``). segment_seconds: length of an example.
    sample_rate: of the examples (stems are resampled to it; default the corpus's). remix:
    probability that an example mixes outputs from different tracks. target: an instrument
    for target-versus-accompaniment outputs. split: ``train``, ``valid`` or ``test``. seed:
    of the random segments. examples: the length of an epoch (default: as many segments as
    the split's duration holds, at least one). gain_db: remixed outputs get a random gain
    within +-gain_db. fixed: fixed segments instead of random ones (default for ``valid``
    and ``test``). check: check every stem's header against the manifest first. score: also
    give each example's score roll (needs the tracks' ``midi/``).

    Bad arguments and damaged corpora are refused with :class:`UserError` naming the corpus.
    """

    def __init__(self, corpus: str | Path, segment_seconds: float = 4.0, sample_rate: int | None = None,
                 remix: float = 0.0, target: str | None = None, split: str = "train", seed: int = 0, *,
                 examples: int | None = None, gain_db: float = 0.0, fixed: bool | None = None, check: bool = True,
                 score: bool = False):
        corpus = Path(corpus)
        if split not in SPLITS:
            raise UserError(f"{corpus}: split {split!r}: expected one of {', '.join(SPLITS)}")
        layout, tracks = plan_layout(read_manifest(corpus), target, corpus)  # over every split, as the trainer
        chosen = [t for t in tracks if t.split == split]
        if not chosen:
            raise UserError(f"{corpus}: no tracks in split '{split}'" + (f" with '{layout.target}'" if target else ""))
        if sample_rate is None:
            rates = sorted({t.sample_rate for t in chosen})
            if len(rates) > 1:
                raise UserError(f"{corpus}: the tracks have different sample rates {rates}; give sample_rate")
            sample_rate = rates[0]
        check_channels(chosen, corpus)
        if check:
            check_stems(chosen)
        self._setup(chosen, layout, sample_rate, segment_seconds, remix=remix, gain_db=gain_db, seed=seed,
                    examples=examples, fixed=split != "train" if fixed is None else fixed, where=str(corpus),
                    score=score)

    @classmethod
    def from_tracks(cls, tracks: Sequence[TrackEntry], layout: SourceLayout, sample_rate: int,
                    segment_seconds: float, *, remix: float = 0.0, gain_db: float = 0.0, seed: int = 0,
                    examples: int | None = None, fixed: bool = False, where: str = "training data",
                    score: bool = False) -> CorpusDataset:
        """A dataset of manifest rows already chosen and checked (the bundled trainer's)."""
        dataset = cls.__new__(cls)
        dataset._setup(list(tracks), layout, sample_rate, segment_seconds, remix=remix, gain_db=gain_db, seed=seed,
                       examples=examples, fixed=fixed, where=where, score=score)
        return dataset

    def _setup(self, tracks, layout, sample_rate, segment_seconds, *, remix, gain_db, seed, examples, fixed, where,
               score=False):
        if not tracks:
            raise UserError(f"{where}: no tracks")
        sample_rate = _whole(sample_rate, "sample_rate", where, minimum=1)
        segment_seconds = _number(segment_seconds, "segment_seconds", where)
        samples = int(round(segment_seconds * sample_rate))
        if not segment_seconds > 0 or samples < 1:
            raise UserError(f"{where}: segment_seconds = {segment_seconds}: must be positive "
                            f"(at least one sample at {sample_rate} Hz)")
        remix = _number(remix, "remix", where)
        if not 0.0 <= remix <= 1.0:
            raise UserError(f"{where}: remix = {remix}: must be a probability, 0 to 1")
        gain_db = _number(gain_db, "gain_db", where)
        if not gain_db >= 0.0:
            raise UserError(f"{where}: gain_db = {gain_db}: must be 0 or more")
        self.seed = _whole(seed, "seed", where, minimum=0)
        total = sum(t.duration for t in tracks)
        default = max(1, int(round(total / segment_seconds)))
        self.examples = default if examples is None else _whole(examples, "examples", where, minimum=1)
        self.tracks, self.layout, self.sample_rate, self.segment_samples = list(tracks), layout, sample_rate, samples
        self.channels = tracks[0].channels
        self.remix, self.gain_db, self.fixed, self.epoch = remix, gain_db, bool(fixed), 0
        self._sampler = SegmentSampler(self.tracks, layout, sample_rate, samples, remix, gain_db)
        self._segments = validation_segments(self.tracks, sample_rate, samples, self.examples) if self.fixed else None
        self._rolls = ScoreRolls(self.tracks, layout, where) if score else None
        self.score_frames = frames_for(samples, sample_rate)

    @property
    def score(self) -> bool:
        """Whether examples carry their score roll."""
        return self._rolls is not None

    @property
    def output_names(self) -> tuple[str, ...]:
        return self.layout.output_names

    def __len__(self) -> int:
        return self.examples

    def __getitem__(self, index) -> tuple[torch.Tensor, ...]:
        if self.score:
            sources, roll = (torch.from_numpy(a) for a in self.example(index))
            return sources.sum(0), sources, roll
        sources = torch.from_numpy(self.example(index))
        return sources.sum(0), sources

    def set_epoch(self, epoch: int) -> None:
        """Random segments of epoch ``epoch`` from now on (as ``DistributedSampler.set_epoch``)."""
        self.epoch = _whole(epoch, "epoch", "CorpusDataset.set_epoch", minimum=0)

    def example(self, index, epoch: int | None = None):
        """Sources ``(outputs, channels, samples)`` of example ``index`` (of ``epoch``, default the
        current one), as numpy float32; their sum is the mixture. With ``score``: (sources, roll)."""
        index = operator.index(index)
        if index < 0:
            index += self.examples
        if not 0 <= index < self.examples:
            raise IndexError(f"example {index} of {self.examples}")
        if self.fixed:
            track, start = self._segments[index]
            sources = read_sources(track, self.layout.groups(track), start, self.segment_samples, self.sample_rate)
            origins = [(track, start)] * len(self.output_names)
        else:
            sources, origins = self._sampler.example_and_origins(self.generator(index, epoch))
        if self.score:
            return sources, self._rolls.roll(origins, self.score_frames)
        return sources

    def generator(self, index: int, epoch: int | None = None) -> np.random.Generator:
        """The random generator of example ``index`` of ``epoch``: derived from (seed, epoch, index) alone."""
        epoch = self.epoch if epoch is None else epoch
        return np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(epoch, index)))

    def batch(self, rng: np.random.Generator, size: int, readers: Executor | None = None):
        """Sources ``(size, outputs, channels, samples)`` drawn one after another from ``rng``: the
        bundled trainer's stream (its generator is checkpointed to resume it). ``readers``: a
        thread pool that reads each example's stems concurrently (the same batch). With ``score``:
        (sources, rolls ``(size, outputs, FEATURES, frames)``)."""
        if self.fixed:
            raise UserError("batch: a dataset of fixed segments has no random stream (use stack())")
        if not self.score:
            return self._sampler.batch(rng, size, readers)
        drawn = [self._sampler.example_and_origins(rng, readers) for _ in range(size)]
        return (np.stack([sources for sources, _ in drawn]),
                np.stack([self._rolls.roll(origins, self.score_frames) for _, origins in drawn]))

    def stack(self):
        """Every example of the epoch, ``(examples, outputs, channels, samples)`` (the fixed
        validation items of the bundled trainer). With ``score``: (sources, rolls)."""
        if self.score:
            drawn = [self.example(i) for i in range(self.examples)]
            return np.stack([sources for sources, _ in drawn]), np.stack([roll for _, roll in drawn])
        return np.stack([self.example(i) for i in range(self.examples)])

    def __repr__(self) -> str:
        kind = "fixed" if self.fixed else f"random (seed {self.seed}, epoch {self.epoch}, remix {self.remix:g})"
        return (f"CorpusDataset({len(self.tracks)} tracks, {self.examples} {kind} examples of "
                f"{self.segment_samples / self.sample_rate:g} s at {self.sample_rate} Hz, "
                f"outputs {', '.join(self.output_names)})")


def _number(value, name: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise UserError(f"{where}: {name} = {value!r}: expected a finite number")
    return float(value)


def _whole(value, name: str, where: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise UserError(f"{where}: {name} = {value!r}: expected a whole number, at least {minimum}")
    return int(value)
