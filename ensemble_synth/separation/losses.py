"""Waveform losses and the validation metric, with silent targets handled on purpose.

Classical parts rest, so a training segment often has a silent target. SDR and SI-SDR are
undefined there (the reference has no energy). For those sources the loss is the estimate's
energy relative to the mixture's, floored at ``-SNR_MAX`` dB (as in MixIT, Wisdom et al.
2020): the model is taught to output silence, and a near-silent estimate stops pulling.
The same floor caps the SDR of active sources at ``SNR_MAX`` dB, so no single easy source
dominates the batch.
"""

from __future__ import annotations

import torch

SNR_MAX = 30.0
_TAU = 10.0 ** (-SNR_MAX / 10.0)
EPS = 1e-8
SILENCE_DB = -60.0  # a target this far below the mixture counts as silent


def _energy(x: torch.Tensor) -> torch.Tensor:
    return x.pow(2).flatten(2).sum(-1)  # (batch, sources)


def silent_mask(targets: torch.Tensor, mixture: torch.Tensor) -> torch.Tensor:
    """(batch, sources) True where the target is silent relative to the mixture."""
    mix_energy = mixture.pow(2).flatten(1).sum(-1, keepdim=True)
    return _energy(targets) <= mix_energy * 10.0 ** (SILENCE_DB / 10.0) + EPS


def _silent_term(estimates: torch.Tensor, mixture: torch.Tensor) -> torch.Tensor:
    mix_energy = mixture.pow(2).flatten(1).sum(-1, keepdim=True)
    return 10 * torch.log10(_energy(estimates) + _TAU * mix_energy + EPS) - 10 * torch.log10(mix_energy + EPS)


def neg_sdr(estimates: torch.Tensor, targets: torch.Tensor, mixture: torch.Tensor) -> torch.Tensor:
    """Negative thresholded SDR per (batch, source); tensors (batch, sources, channels, samples)."""
    ref = _energy(targets)
    err = _energy(targets - estimates)
    active = 10 * torch.log10(err + _TAU * ref + EPS) - 10 * torch.log10(ref + EPS)
    return torch.where(silent_mask(targets, mixture), _silent_term(estimates, mixture), active)


def neg_sisdr(estimates: torch.Tensor, targets: torch.Tensor, mixture: torch.Tensor) -> torch.Tensor:
    """Negative thresholded scale-invariant SDR per (batch, source), on zero-mean signals."""
    est = estimates - estimates.mean(-1, keepdim=True)
    ref = targets - targets.mean(-1, keepdim=True)
    dims = tuple(range(2, est.dim()))
    scale = (est * ref).sum(dims, keepdim=True) / (ref.pow(2).sum(dims, keepdim=True) + EPS)
    projection = scale * ref
    proj_energy = _energy(projection)
    active = (10 * torch.log10(_energy(est - projection) + _TAU * proj_energy + EPS)
              - 10 * torch.log10(proj_energy + EPS))
    return torch.where(silent_mask(targets, mixture), _silent_term(estimates, mixture), active)


def l1(estimates: torch.Tensor, targets: torch.Tensor, mixture: torch.Tensor) -> torch.Tensor:
    """Mean absolute error per (batch, source); silence needs no special case."""
    return (estimates - targets).abs().flatten(2).mean(-1)


LOSSES = {"sdr": neg_sdr, "sisdr": neg_sisdr, "l1": l1}


def loss_fn(name: str):
    return LOSSES[name]


def sdr_db(estimates: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Plain SDR (dB) per (batch, source), uncapped: the validation metric."""
    return 10 * torch.log10(_energy(targets) + EPS) - 10 * torch.log10(_energy(targets - estimates) + EPS)
