"""ensemble_synth: realistic synthetic recordings of small classical ensembles.

The pipeline, one subpackage a stage: ``music`` (instruments, repertoire, scores,
performance) -> ``synthesis`` (soundfonts, FluidSynth, timbre) -> ``acoustics`` (seating,
rooms, microphones, impulse responses, capture) -> ``corpus`` (presets, sampling, rendering,
the on-disk format, generation) -> ``separation`` (ConvTasNet, torch) and ``evaluation``
(metrics, reports, real data sets). See docs/architecture.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._version import __version__
from .adaptation import adapt
from .corpus.augment import Augmentation
from .corpus.format import TrackEntry, read_manifest, write_track
from .corpus.generation import Summary, generate
from .corpus.rendering import RenderedTrack, render_track
from .corpus.sampling import sample_track
from .errors import UserError
from .evaluation.datasets import Recording, load_dataset
from .evaluation.metrics import evaluate_sources
from .fileio import read_wav, write_wav

if TYPE_CHECKING:  # torch-dependent: loaded on first use
    from .separation import Separator, load_separator, train
    from .torch import CorpusDataset

_TORCH = {"train": "train", "load_separator": "load_separator", "Separator": "Separator"}  # of separation
_TORCH_DATA = {"CorpusDataset"}  # of ensemble_synth.torch

__all__ = [
    "adapt", "Augmentation", "CorpusDataset", "RenderedTrack", "Recording", "Separator", "Summary", "TrackEntry",
    "UserError", "__version__", "evaluate_sources", "generate", "load_dataset", "load_separator", "read_manifest",
    "read_wav", "render_track", "sample_track", "train", "write_track", "write_wav",
]


def __getattr__(name: str):
    if name in _TORCH:
        from . import separation

        return getattr(separation, _TORCH[name])
    if name in _TORCH_DATA:
        from . import torch as torch_data

        return getattr(torch_data, name)
    raise AttributeError(f"module 'ensemble_synth' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
